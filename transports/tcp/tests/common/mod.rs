//! Helpers for the loopback tests: start nodes, wait for events, capture logs, a killable TCP
//! proxy and raw frame IO.
#![allow(dead_code)]

use baton_core::{LocalNode, NodeId, Transport};
use baton_transport_tcp::{TcpConfig, TcpTransport};
use std::io::Write;
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
pub use baton_testkit::conformance::{SOON, drain, expect, is_connected, is_dead, is_disconnected};

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

/// Log lines written while the guard lives (on this thread: use a current-thread runtime).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (logs, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until a log line contains every one of `needles`.
    pub async fn wait_for(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no log line containing {needles:?}; logs:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter(self.0.clone())
    }
}

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
