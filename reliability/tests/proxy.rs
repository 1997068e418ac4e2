//! The fault proxy itself, on raw frames: each mode does what `proxy`'s docs say.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_core::{NodeId, PROTOCOL_VERSION};
use baton_reliability::proxy::{Fault, FaultNet, Mode, ProxyPort};
use baton_reliability::run;
use baton_transport_tcp::handshake::{Hello, MAGIC, NONCE_LEN};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

fn hello(node: &str) -> Vec<u8> {
    Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        cluster: "c".into(),
        node: NodeId::new(node),
        incarnation: baton_core::Incarnation(1),
        addr: "127.0.0.1:1".into(),
        nonce: [0; NONCE_LEN],
        client: false,
        fingerprint: Default::default(),
    }
    .encode()
}

async fn write_frame(s: &mut TcpStream, payload: &[u8]) {
    s.write_u32(payload.len() as u32).await.unwrap();
    s.write_all(payload).await.unwrap();
}

/// The next frame, `None` on close, `Err` when nothing came within `within`.
async fn read_frame(s: &mut TcpStream, within: Duration) -> Result<Option<Vec<u8>>, ()> {
    match timeout(within, async {
        let len = s.read_u32().await.ok()?;
        let mut buf = vec![0; len as usize];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    {
        Ok(f) => Ok(f),
        Err(_) => Err(()),
    }
}

/// A "node" n behind a port, and a connection to it from "x": (client, server side).
/// Writes `frame` on `from`; the same frame arrives at `to` (within [`LONG`]).
async fn pass(from: &mut TcpStream, to: &mut TcpStream, frame: &[u8]) {
    write_frame(from, frame).await;
    assert_eq!(
        read_frame(to, LONG).await,
        Ok(Some(frame.to_vec())),
        "{}",
        String::from_utf8_lossy(frame)
    );
}

/// Under `mode` from "x" to "n", `frame` written on `client` does not reach `server` within
/// [`SHORT`] and the socket stays open; then the network heals.
async fn withheld(
    net: &FaultNet,
    mode: Mode,
    client: &mut TcpStream,
    server: &mut TcpStream,
    frame: &[u8],
) {
    net.set("x", "n", Fault::mode(mode));
    write_frame(client, frame).await;
    assert_eq!(
        read_frame(server, SHORT).await,
        Err(()),
        "{mode:?}: open, nothing read"
    );
    net.heal();
}

/// A fresh fault network, node "n" behind its port, and a connection from "x" to it (client
/// and server ends).
async fn connected() -> (FaultNet, ProxyPort, TcpListener, TcpStream, TcpStream) {
    let net = FaultNet::new();
    let node = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = net.port("n").await.unwrap();
    port.set_target(node.local_addr().unwrap());
    let (client, server) = connect(&port, &node).await;
    (net, port, node, client, server)
}

async fn connect(port: &ProxyPort, node: &TcpListener) -> (TcpStream, TcpStream) {
    let mut client = TcpStream::connect(port.addr()).await.unwrap();
    write_frame(&mut client, &hello("x")).await;
    let (mut server, _) = node.accept().await.unwrap();
    assert_eq!(
        read_frame(&mut server, Duration::from_secs(2)).await,
        Ok(Some(hello("x")))
    );
    (client, server)
}

const SHORT: Duration = Duration::from_millis(200);
const LONG: Duration = Duration::from_secs(2);

#[test]
fn pass_delay_and_reorder() {
    run(async {
        let (net, _port, _node, mut client, mut server) = connected().await;
        // Both directions pass.
        pass(&mut server, &mut client, b"down").await;

        net.set("x", "n", Fault::delay(Duration::from_millis(150)));
        let t = Instant::now();
        pass(&mut client, &mut server, b"slow").await;
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // The other direction is not delayed.
        let t = Instant::now();
        pass(&mut server, &mut client, b"fast").await;
        assert!(
            t.elapsed() < Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );

        net.set(
            "x",
            "n",
            Fault::reorder(Duration::ZERO, Duration::from_millis(40)),
        );
        for i in 0..100u8 {
            write_frame(&mut client, &[i]).await;
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            got.push(read_frame(&mut server, LONG).await.unwrap().unwrap()[0]);
        }
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..100).collect::<Vec<u8>>(),
            "every frame arrives once"
        );
        assert_ne!(got, sorted, "some frames overtook others");
        assert!(net.stats("x", "n").reordered > 0);
        net.shutdown();
    });
}

#[test]
fn hold_and_black_hole_keep_the_socket_open() {
    run(async {
        let (net, _port, _node, mut client, mut server) = connected().await;

        withheld(&net, Mode::Hold, &mut client, &mut server, b"held").await;
        assert_eq!(
            read_frame(&mut server, LONG).await,
            Ok(Some(b"held".to_vec()))
        );

        withheld(&net, Mode::BlackHole, &mut client, &mut server, b"lost").await;
        pass(&mut client, &mut server, b"after").await;
        let s = net.stats("x", "n");
        assert_eq!((s.dropped, s.cut, s.open, s.connections), (1, 0, 1, 1));
        net.shutdown();
    });
}

#[test]
fn cut_closes_both_ends_and_refuses_new_connections_until_healed() {
    run(async {
        let (net, port, node, mut client, mut server) = connected().await;
        net.set("n", "x", Fault::mode(Mode::Cut));
        assert_eq!(
            read_frame(&mut server, LONG).await,
            Ok(None),
            "server side closed"
        );
        assert_eq!(
            read_frame(&mut client, LONG).await,
            Ok(None),
            "client side closed"
        );

        // A new connection from x gets as far as its Hello, then is closed; n never sees it.
        let mut again = TcpStream::connect(port.addr()).await.unwrap();
        write_frame(&mut again, &hello("x")).await;
        assert_eq!(read_frame(&mut again, LONG).await, Ok(None));
        assert!(timeout(SHORT, node.accept()).await.is_err());
        // Another node still gets through.
        let mut other = TcpStream::connect(port.addr()).await.unwrap();
        write_frame(&mut other, &hello("y")).await;
        assert!(timeout(LONG, node.accept()).await.is_ok());
        assert_eq!(net.stats("x", "n").cut, 2);

        net.heal();
        let (mut client, mut server) = connect(&port, &node).await;
        pass(&mut client, &mut server, b"back").await;
        net.shutdown();
    });
}
