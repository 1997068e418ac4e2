//! Helpers for the loopback tests: start nodes, wait for events, capture logs, a killable TCP
//! proxy and raw frame IO.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    reason = "shared by the TCP test binaries (each uses part, none exports it); a panic is the failure report"
)]

use baton_core::{Incarnation, LocalNode, NodeId, Transport};
use baton_transport_tcp::{TcpConfig, TcpTransport};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const CLUSTER: &str = "test-cluster";
pub const SECRET: &[u8] = b"correct horse battery staple";

pub fn config() -> TcpConfig {
    TcpConfig::new(CLUSTER, SECRET.to_vec())
}

pub fn local(name: &str, incarnation: u64, listen: &str) -> LocalNode {
    LocalNode {
        id: NodeId::new(name),
        incarnation: Incarnation(incarnation),
        listen: listen.to_string(),
        fingerprint: Default::default(),
        death_proof: Default::default(),
    }
}

/// Starts a transport on a free loopback port.
pub async fn start_with(cfg: TcpConfig, name: &str, incarnation: u64) -> (TcpTransport, String) {
    start_on(cfg, name, incarnation, "127.0.0.1:0").await
}

pub async fn start_on(
    cfg: TcpConfig,
    name: &str,
    incarnation: u64,
    listen: &str,
) -> (TcpTransport, String) {
    let t = TcpTransport::new(cfg);
    let addr = t
        .start(&local(name, incarnation, listen))
        .await
        .expect("start");
    (t, addr)
}

pub async fn start(name: &str, incarnation: u64) -> (TcpTransport, String) {
    start_with(config(), name, incarnation).await
}

/// The config of node `name` of a loopback test cluster: a free port, [`CLUSTER`], `seeds`
/// (`id@addr`) and `voters`; timings are the defaults.
pub fn node_config(name: &str, seeds: &[String], voters: &[&str]) -> baton_core::config::Config {
    let mut cfg = baton_core::config::Config::new(name);
    cfg.node.listen = "127.0.0.1:0".into();
    cfg.cluster.name = CLUSTER.into();
    cfg.cluster.seeds = seeds.to_vec();
    cfg.cluster.voters = voters.iter().map(|v| v.to_string()).collect();
    cfg
}

/// Starts a node from `cfg` over `transport` and joins group "g". The node stays a member
/// while the caller holds the service (dropping it leaves the group).
pub async fn start_node(
    cfg: baton_core::config::Config,
    transport: Arc<TcpTransport>,
) -> (baton_core::Node, baton_core::Service) {
    let node = baton_core::Node::builder(cfg)
        .transport(transport)
        .start()
        .await
        .expect("node starts");
    let svc = node.join("g", Default::default()).await.expect("join");
    (node, svc)
}

#[allow(unused_imports, reason = "each test binary uses some of them")]
pub use baton_testkit::conformance::{
    SOON, assert_no_death, drain, expect, is_connected, is_dead, is_disconnected,
};

/// No event in `seen` is a `Connected`.
#[track_caller]
pub fn assert_not_connected(seen: &[baton_core::TransportEvent], what: &str) {
    let connected: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, baton_core::TransportEvent::Connected { .. }))
        .collect();
    assert!(connected.is_empty(), "{what}: {connected:?} among {seen:?}");
}

/// `b` (node "b", incarnation 1, at `b_addr`) still lets a genuine peer in; then both shut
/// down.
pub async fn a_good_peer_still_gets_in(b: TcpTransport, b_addr: &str) {
    let (a, _) = start("a", 1).await;
    pair(&a, "a", 1, &b, b_addr, "b", 1).await;
    shutdown_all([a, b]).await;
}

/// Shuts every transport down, in order.
pub async fn shutdown_all<const N: usize>(ts: [TcpTransport; N]) {
    for t in ts {
        t.shutdown().await;
    }
}

/// Starts `a` and `b` (each: configuration, name, incarnation), connects `a` to `b` and waits
/// until each reports the other connected. Returns each with its address.
pub async fn start_paired(
    a: (TcpConfig, &str, u64),
    b: (TcpConfig, &str, u64),
) -> ((TcpTransport, String), (TcpTransport, String)) {
    let (ta, a_addr) = start_with(a.0, a.1, a.2).await;
    let (tb, b_addr) = start_with(b.0, b.1, b.2).await;
    pair(&ta, a.1, a.2, &tb, &b_addr, b.1, b.2).await;
    ((ta, a_addr), (tb, b_addr))
}

/// Connects `a` to `b` and waits until each reports the other connected.
pub async fn pair(
    a: &TcpTransport,
    a_name: &str,
    a_inc: u64,
    b: &TcpTransport,
    b_addr: &str,
    b_name: &str,
    b_inc: u64,
) {
    a.connect(b_addr).await;
    expect(a, SOON, "a: Connected{b}", is_connected(b_name, b_inc)).await;
    expect(b, SOON, "b: Connected{a}", is_connected(a_name, a_inc)).await;
}

#[allow(unused_imports, reason = "not every test binary captures logs")]
pub use baton_testkit::logs::Logs;

/// A TCP proxy to `target` whose live connections can be cut (like a middlebox reset).
pub struct Proxy {
    pub addr: String,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let pipes: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let p = pipes.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                p.lock().unwrap().push(pipe);
            }
        });
        Proxy {
            addr,
            pipes,
            accept,
        }
    }

    /// Cuts every connection through the proxy (both sockets of each are closed).
    pub fn cut(&self) {
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Reads one length-delimited frame's payload (4-byte big-endian length).
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await?;
    let mut buf = vec![0; len as usize];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

pub async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, payload: &[u8]) -> std::io::Result<()> {
    s.write_u32(payload.len() as u32).await?;
    s.write_all(payload).await?;
    // A TLS stream holds what it encrypts until flushed.
    s.flush().await
}

/// baton's handshake as node `node` (advertising `addr`), by hand, over any stream (TCP, or
/// TLS in the TLS tests); returns the connection's frame keys.
pub async fn raw_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    node: &str,
    incarnation: u64,
    addr: &str,
) -> baton_transport_tcp::handshake::SessionKeys {
    use baton_transport_tcp::handshake::{HandshakeConfig, Initiator, NONCE_LEN, Step};
    let cfg = HandshakeConfig {
        cluster: CLUSTER.into(),
        secret: SECRET.to_vec(),
        node: NodeId::new(node),
        incarnation: Incarnation(incarnation),
        addr: addr.into(),
        client: false,
        fingerprint: Default::default(),
    };
    let (mut hs, hello) = Initiator::new(cfg, [9; NONCE_LEN]);
    write_frame(s, &hello).await.unwrap();
    let reply = read_frame(s).await.unwrap();
    let Ok(Step::Reply { frame: auth, .. }) = hs.on_frame(&reply) else {
        panic!("bad reply")
    };
    write_frame(s, &auth).await.unwrap();
    let accept = read_frame(s).await.unwrap();
    assert!(matches!(hs.on_frame(&accept), Ok(Step::Done { .. })));
    hs.session_keys().expect("keys after the handshake").clone()
}

/// A stream over one TCP socket: the socket itself, or TLS over it.
pub trait OverTcp: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl OverTcp for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Peer `name` (incarnation `inc`, advertising the closed port `addr`) handshakes with `t`
/// over `s`, then drops it without a shutdown — only the kernel's FIN, as when the process is
/// killed with `kill -9`, or with `reset` a reset, what a firewall's `REJECT --reject-with
/// tcp-reset` does to a live peer — and [`expect_close_then_proof`] checks what `t` makes of it.
pub async fn handshake_then_drop(
    t: &TcpTransport,
    mut s: impl OverTcp,
    name: &str,
    inc: u64,
    addr: &str,
    reset: bool,
) {
    raw_handshake(&mut s, name, inc, addr).await;
    expect(t, SOON, "Connected{x}", is_connected(name, inc)).await;
    if reset {
        #[allow(
            deprecated,
            reason = "tokio deprecates SO_LINGER for its blocking close; here only the reset it causes matters"
        )]
        s.tcp().set_linger(Some(Duration::ZERO)).unwrap();
    }
    drop(s);
    expect_close_then_proof(t, name, inc, reset).await;
}

/// After peer `name` (incarnation `inc`, advertising a closed port) closed its connection to
/// `t` with a FIN (`reset` false) or a reset: `t` reports it `Disconnected` with the matching
/// [`baton_core::CloseKind`], then, only after the FIN, `Dead` by a refused redial.
pub async fn expect_close_then_proof(t: &TcpTransport, name: &str, inc: u64, reset: bool) {
    use baton_core::{CloseKind, DeathProof, TransportEvent};
    let seen = expect(t, SOON, "Disconnected{x}", is_disconnected(name)).await;
    let how = if reset {
        CloseKind::Abrupt
    } else {
        CloseKind::Orderly
    };
    assert!(
        seen.iter()
            .any(|e| matches!(e, TransportEvent::Disconnected { how: h, .. } if *h == how)),
        "{seen:?}"
    );
    if reset {
        let later = drain(t, Duration::from_millis(500)).await;
        assert_no_death(&later, "a reset followed by refusals is no proof");
    } else {
        let seen = expect(t, SOON, "Dead{x}", is_dead(name, inc)).await;
        assert!(
            seen.iter().any(|e| matches!(
                e,
                TransportEvent::Dead {
                    proof: DeathProof::RefusedAfterOrderlyClose,
                    ..
                }
            )),
            "{seen:?}"
        );
    }
}

/// Reads until EOF (or error); returns what was read. Panics if the peer keeps the connection
/// open for longer than `within`.
pub async fn read_to_close(s: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut buf = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut buf)).await {
        Ok(_) => buf,
        Err(_) => panic!("connection still open after {within:?}"),
    }
}

/// A loopback address nobody listens on (bound once, then released).
pub async fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}
