//! Helpers for the loopback tests: start nodes, wait for events, capture logs, a killable TCP
//! proxy and raw frame IO.
#![allow(dead_code)]

use baton_core::{LocalNode, NodeId, Transport};
use baton_transport_tcp::{TcpConfig, TcpTransport};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        incarnation,
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

#[allow(unused_imports)] // each test binary uses some of them
pub use baton_testkit::conformance::{
    SOON, assert_no_death, drain, expect, is_connected, is_dead, is_disconnected,
};

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

#[allow(unused_imports)] // not every test binary captures logs
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
pub async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = s.read_u32().await?;
    let mut buf = vec![0; len as usize];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

pub async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    s.write_u32(payload.len() as u32).await?;
    s.write_all(payload).await
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
