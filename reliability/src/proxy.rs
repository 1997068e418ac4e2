//! A fault-injecting TCP proxy for baton's wire format.
//!
//! One [`FaultNet`] controls any number of proxy ports, one in front of each node. A node
//! advertises its port's address ([`TcpConfig::advertise`](baton_transport_tcp::TcpConfig)),
//! so every connection to it — from peers, their redials and clients — passes through the
//! proxy. The proxy reads the first frame of each connection, the handshake's `Hello`, to learn
//! which node dialed (`from`); the node behind the port is `to`.
//!
//! baton writes to a peer only over its own outbound connection to that peer's advertised
//! address, so the bytes of a connection dialed by `from` to `to` carry `from`'s messages to
//! `to` ("up"), and the opposite direction carries only the handshake's answers ("down"). Every
//! direction of every connection is a *pump* of frames from `x` to `y`, governed by the
//! [`Fault`] of the directed link `(x, y)`:
//!
//! | [`Mode`] | frames `x → y` | socket |
//! | --- | --- | --- |
//! | `Pass` | forwarded after `delay` (+ a random part of `reorder`) | open |
//! | `Cut` | — | closed at once (both ends); new connections between the two are closed after their `Hello` |
//! | `Hold` | not read (they wait in socket buffers; TCP pushes back on the sender), none delivered | open |
//! | `BlackHole` | read and thrown away | open |
//!
//! Besides, [`FaultNet::tamper`] plays an on-path attacker on the next *message* frame (after
//! the handshake) of a directed link: it alters it, injects a forged frame after it, or
//! replays it ([`Tamper`]). baton seals every frame after the handshake, so each closes that
//! connection.
//!
//! A fault changes every existing connection at once and applies to new ones. `reorder` gives
//! every frame an extra random delay below it and lets frames overtake each other; without it
//! frames keep their order even when the delay changes.
//!
//! Caveat: a proxied node's death cannot be *proven* to its peers (their redial reaches the
//! proxy, which accepts; the proxy then finds the node gone and closes, which proves nothing),
//! so peers of a killed proxied node fall back to the failure timeout. Kill tests that need the
//! millisecond path connect nodes directly.

use baton_testkit::Rng;
use baton_transport_tcp::handshake::Hello;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

/// The largest frame the proxy forwards (far above baton's 64 KiB limit, so the proxy never
/// decides a frame is too large in the node's place).
const PROXY_MAX_FRAME: usize = 16 << 20;
/// Frames recorded per direction of each connection (see [`FaultNet::captured`]).
const CAPTURE_FRAMES: usize = 4;
/// Connections whose frames are recorded, at most.
const CAPTURE_CONNS: usize = 4096;

/// What a directed link does to its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Forward (after the link's delay).
    #[default]
    Pass,
    /// Close every connection between the two nodes, and each new one right after its `Hello`.
    Cut,
    /// Stop reading and delivering; sockets stay open.
    Hold,
    /// Read and discard; sockets stay open.
    BlackHole,
}

/// What an on-path attacker does to the next message frame of a link ([`FaultNet::tamper`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Flip one bit in the middle of the frame.
    Alter,
    /// Forward the frame, then a forged one: the same bytes under the next sequence number.
    Inject,
    /// Forward the frame twice.
    Replay,
}

/// The fault of one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// What happens to frames.
    pub mode: Mode,
    /// Added to every frame's delivery.
    pub delay: Duration,
    /// Every frame is delayed by a further random amount below this, and frames may overtake
    /// each other.
    pub reorder: Duration,
}

impl Fault {
    /// A fault of `mode` with no delay.
    pub fn mode(mode: Mode) -> Self {
        Fault {
            mode,
            ..Fault::default()
        }
    }
    /// Forwarding after `delay`.
    pub fn delay(delay: Duration) -> Self {
        Fault {
            delay,
            ..Fault::default()
        }
    }
    /// Forwarding after `delay` plus a random part of `window`, out of order.
    pub fn reorder(delay: Duration, window: Duration) -> Self {
        Fault {
            mode: Mode::Pass,
            delay,
            reorder: window,
        }
    }
}

/// Counters of one directed link `(x, y)` (frames travelling from `x` to `y`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections dialed by `x` to `y`'s port that reached `y`.
    pub connections: u64,
    /// Of those, how many are open now.
    pub open: u64,
    /// Connections closed (or refused after their `Hello`) because of a `Cut`.
    pub cut: u64,
    /// Frames read from `x`'s side.
    pub frames: u64,
    /// Frames delivered to `y`.
    pub delivered: u64,
    /// Frames thrown away by a `BlackHole`.
    pub dropped: u64,
    /// Frames scheduled to arrive before a frame read ahead of them (`reorder`).
    pub reordered: u64,
    /// Frames tampered with ([`FaultNet::tamper`]).
    pub tampered: u64,
}

/// The frames recorded on one connection: the first few each way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// The node (or client name) that dialed, from its `Hello`; `?` when it did not decode.
    pub from: String,
    /// The node behind the port.
    pub to: String,
    /// Frame payloads from `from` to `to`, in order.
    pub up: Vec<Vec<u8>>,
    /// Frame payloads from `to` to `from`, in order.
    pub down: Vec<Vec<u8>>,
}

type Link = (String, String);

struct NetInner {
    faults: watch::Sender<BTreeMap<Link, Fault>>,
    stats: Mutex<BTreeMap<Link, LinkStats>>,
    captures: Mutex<Vec<Arc<Mutex<Capture>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    seeds: AtomicU64,
    tampers: Mutex<BTreeMap<Link, std::collections::VecDeque<Tamper>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Controls every proxy port and the faults between the nodes behind them. Cheap to clone.
#[derive(Clone)]
pub struct FaultNet {
    inner: Arc<NetInner>,
}

impl Default for FaultNet {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FaultNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultNet")
            .field("faults", &*self.inner.faults.borrow())
            .finish()
    }
}

/// A proxy port in front of one node.
#[derive(Clone, Debug)]
pub struct ProxyPort {
    node: String,
    addr: String,
    target: watch::Sender<Option<SocketAddr>>,
}

impl ProxyPort {
    /// The address peers use: the node advertises it.
    pub fn addr(&self) -> &str {
        &self.addr
    }
    /// The node behind the port.
    pub fn node(&self) -> &str {
        &self.node
    }
    /// Where the node really listens (set after the node starts; again after a restart).
    /// Connections accepted before it is set wait for it.
    pub fn set_target(&self, addr: SocketAddr) {
        self.target.send_replace(Some(addr));
    }
    /// Forgets the target: new connections wait (as if the node's host were unreachable).
    pub fn clear_target(&self) {
        self.target.send_replace(None);
    }
}

impl FaultNet {
    /// No ports, no faults.
    pub fn new() -> Self {
        FaultNet {
            inner: Arc::new(NetInner {
                faults: watch::channel(BTreeMap::new()).0,
                stats: Mutex::new(BTreeMap::new()),
                captures: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                seeds: AtomicU64::new(0x0ba7_0f00),
                tampers: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Opens a proxy port on loopback for `node`.
    pub async fn port(&self, node: &str) -> std::io::Result<ProxyPort> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let (target, target_rx) = watch::channel(None);
        let port = ProxyPort {
            node: node.to_string(),
            addr,
            target,
        };
        let net = self.clone();
        let to = node.to_string();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = tokio::spawn(net.clone().serve(to.clone(), stream, target_rx.clone()));
                net.track(conn);
            }
        });
        self.track(accept);
        Ok(port)
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = lock(&self.inner.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Sets the fault of the directed link `from → to`.
    pub fn set(&self, from: &str, to: &str, fault: Fault) {
        self.inner.faults.send_modify(|f| {
            if fault == Fault::default() {
                f.remove(&(from.to_string(), to.to_string()));
            } else {
                f.insert((from.to_string(), to.to_string()), fault);
            }
        });
    }

    /// Tampers with the next message frame (the first after the handshake of a connection, or
    /// any later one) travelling `from → to`, once. Queued actions apply in order, one per
    /// frame.
    pub fn tamper(&self, from: &str, to: &str, action: Tamper) {
        lock(&self.inner.tampers)
            .entry((from.to_string(), to.to_string()))
            .or_default()
            .push_back(action);
    }

    fn take_tamper(&self, from: &str, to: &str) -> Option<Tamper> {
        let mut t = lock(&self.inner.tampers);
        let q = t.get_mut(&(from.to_string(), to.to_string()))?;
        let action = q.pop_front();
        if q.is_empty() {
            t.remove(&(from.to_string(), to.to_string()));
        }
        action
    }

    /// Sets the same fault both ways between `a` and `b`.
    pub fn set_both(&self, a: &str, b: &str, fault: Fault) {
        self.set(a, b, fault);
        self.set(b, a, fault);
    }

    /// Applies `mode` both ways between every node of `left` and every node of `right`.
    pub fn partition(&self, left: &[&str], right: &[&str], mode: Mode) {
        self.inner.faults.send_modify(|f| {
            for a in left {
                for b in right {
                    f.insert((a.to_string(), b.to_string()), Fault::mode(mode));
                    f.insert((b.to_string(), a.to_string()), Fault::mode(mode));
                }
            }
        });
    }

    /// Delays every frame to and from `node` by `delay` each way.
    pub fn slow(&self, node: &str, others: &[&str], delay: Duration) {
        for o in others {
            self.set_both(node, o, Fault::delay(delay));
        }
    }

    /// The fault of `from → to`.
    pub fn fault(&self, from: &str, to: &str) -> Fault {
        self.inner
            .faults
            .borrow()
            .get(&(from.to_string(), to.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.inner.faults.send_modify(|f| f.clear());
    }

    /// The counters of `from → to`.
    pub fn stats(&self, from: &str, to: &str) -> LinkStats {
        lock(&self.inner.stats)
            .get(&(from.to_string(), to.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// The first frames of every connection seen so far (up to a few thousand connections).
    pub fn captured(&self) -> Vec<Capture> {
        lock(&self.inner.captures)
            .iter()
            .map(|c| lock(c).clone())
            .collect()
    }

    /// Stops every port and connection.
    pub fn shutdown(&self) {
        for t in lock(&self.inner.tasks).drain(..) {
            t.abort();
        }
    }

    fn bump(&self, from: &str, to: &str, f: impl FnOnce(&mut LinkStats)) {
        f(lock(&self.inner.stats)
            .entry((from.to_string(), to.to_string()))
            .or_default());
    }

    fn is_cut(&self, a: &str, b: &str) -> bool {
        self.fault(a, b).mode == Mode::Cut || self.fault(b, a).mode == Mode::Cut
    }

    /// One accepted connection to `to`'s port.
    async fn serve(
        self,
        to: String,
        client: TcpStream,
        mut target: watch::Receiver<Option<SocketAddr>>,
    ) {
        let (cr, cw) = client.into_split();
        let mut client_frames =
            FramedRead::new(cr, baton_transport_tcp::wire::codec(PROXY_MAX_FRAME));
        // The dialer's Hello names it; anything else is forwarded as it is, from "?".
        let first = match tokio::time::timeout(Duration::from_secs(10), client_frames.next()).await
        {
            Ok(Some(Ok(frame))) => frame.freeze(),
            _ => return,
        };
        let from = postcard::from_bytes::<Hello>(&first)
            .map(|h| h.node.as_str().to_string())
            .unwrap_or_else(|_| "?".to_string());
        let addr = loop {
            if self.is_cut(&from, &to) {
                self.bump(&from, &to, |s| s.cut += 1);
                return;
            }
            if let Some(addr) = *target.borrow_and_update() {
                break addr;
            }
            if target.changed().await.is_err() {
                return;
            }
        };
        let Ok(server) = TcpStream::connect(addr).await else {
            return; // The node is gone: the dialer sees the connection close.
        };
        let _ = server.set_nodelay(true);
        let (sr, sw) = server.into_split();
        let server_frames = FramedRead::new(sr, baton_transport_tcp::wire::codec(PROXY_MAX_FRAME));
        let capture = Arc::new(Mutex::new(Capture {
            from: from.clone(),
            to: to.clone(),
            ..Capture::default()
        }));
        {
            let mut captures = lock(&self.inner.captures);
            if captures.len() < CAPTURE_CONNS {
                captures.push(capture.clone());
            }
        }
        self.bump(&from, &to, |s| {
            s.connections += 1;
            s.open += 1;
        });
        let up = Pump {
            net: self.clone(),
            from: from.clone(),
            to: to.clone(),
            capture: capture.clone(),
            up: true,
            rng: Rng::with_seed(self.inner.seeds.fetch_add(1, Ordering::Relaxed)),
            read: 0,
        };
        let down = Pump {
            net: self.clone(),
            from: to.clone(),
            to: from.clone(),
            capture,
            up: false,
            rng: Rng::with_seed(self.inner.seeds.fetch_add(1, Ordering::Relaxed)),
            read: 0,
        };
        let sink_up = FramedWrite::new(sw, baton_transport_tcp::wire::codec(PROXY_MAX_FRAME));
        let sink_down = FramedWrite::new(cw, baton_transport_tcp::wire::codec(PROXY_MAX_FRAME));
        // Whichever direction ends (close, error, cut) ends the connection: both sockets drop.
        tokio::select! {
            _ = up.run(client_frames, sink_up, Some(first)) => {}
            _ = down.run(server_frames, sink_down, None) => {}
        }
        self.bump(&from, &to, |s| s.open = s.open.saturating_sub(1));
    }
}

/// One direction of one connection.
struct Pump {
    net: FaultNet,
    from: String,
    to: String,
    capture: Arc<Mutex<Capture>>,
    up: bool,
    rng: Rng,
    /// Frames read so far (the first two each way are the handshake's).
    read: u64,
}

/// The frames of one direction waiting for their delivery time.
struct InFlight {
    /// (at, sequence, payload), soonest first; the sequence keeps equal times in order.
    queue: BinaryHeap<Reverse<(Instant, u64, Bytes)>>,
    /// The sequence number of the last frame queued.
    seq: u64,
    /// The latest delivery time queued so far (frames stay in order unless reordering).
    last_at: Instant,
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;
type Writer = FramedWrite<tokio::net::tcp::OwnedWriteHalf, tokio_util::codec::LengthDelimitedCodec>;

impl Pump {
    async fn run(mut self, mut src: Reader, mut dst: Writer, first: Option<Bytes>) {
        let mut faults = self.net.inner.faults.subscribe();
        let mut flight = InFlight {
            queue: BinaryHeap::new(),
            seq: 0,
            last_at: Instant::now(),
        };
        let mut pending = first;
        let mut eof = false;
        loop {
            let fault = faults
                .borrow_and_update()
                .get(&(self.from.clone(), self.to.clone()))
                .copied()
                .unwrap_or_default();
            if fault.mode == Mode::Cut {
                let (from, to) = if self.up {
                    (&self.from, &self.to)
                } else {
                    (&self.to, &self.from)
                };
                self.net.bump(from, to, |s| s.cut += 1);
                return;
            }
            if let Some(frame) = pending.take() {
                self.accept(frame, fault, &mut flight);
                continue;
            }
            let held = fault.mode == Mode::Hold;
            let now = Instant::now();
            if !held {
                while let Some(Reverse((at, _, _))) = flight.queue.peek() {
                    if *at > now {
                        break;
                    }
                    let Some(Reverse((_, _, frame))) = flight.queue.pop() else {
                        break;
                    };
                    if dst.send(frame).await.is_err() {
                        return;
                    }
                    self.net.bump(&self.from, &self.to, |s| s.delivered += 1);
                }
            }
            if eof && flight.queue.is_empty() {
                return;
            }
            let next_at = if held {
                None
            } else {
                flight.queue.peek().map(|Reverse((at, _, _))| *at)
            };
            tokio::select! {
                changed = faults.changed() => if changed.is_err() { return },
                frame = src.next(), if !held && !eof => match frame {
                    Some(Ok(frame)) => pending = Some(frame.freeze()),
                    // The sender closed: deliver what is in flight, then close.
                    _ => eof = true,
                },
                _ = sleep_until_opt(next_at) => {}
            }
        }
    }

    fn accept(&mut self, frame: Bytes, fault: Fault, flight: &mut InFlight) {
        {
            let mut c = lock(&self.capture);
            let list = if self.up { &mut c.up } else { &mut c.down };
            if list.len() < CAPTURE_FRAMES {
                list.push(frame.to_vec());
            }
        }
        self.net.bump(&self.from, &self.to, |s| s.frames += 1);
        self.read += 1;
        if fault.mode == Mode::BlackHole {
            self.net.bump(&self.from, &self.to, |s| s.dropped += 1);
            return;
        }
        let mut frames = vec![frame];
        if self.read > 2
            && let Some(action) = self.net.take_tamper(&self.from, &self.to)
        {
            self.net.bump(&self.from, &self.to, |s| s.tampered += 1);
            let original = frames[0].to_vec();
            match action {
                Tamper::Alter => {
                    let mut f = original;
                    let mid = f.len() / 2;
                    if let Some(b) = f.get_mut(mid) {
                        *b ^= 0x01;
                    }
                    frames = vec![Bytes::from(f)];
                }
                Tamper::Inject => {
                    let mut f = original;
                    if f.len() >= 8 {
                        let mut seq = [0u8; 8];
                        seq.copy_from_slice(&f[..8]);
                        let next = u64::from_be_bytes(seq).wrapping_add(1);
                        f[..8].copy_from_slice(&next.to_be_bytes());
                    }
                    frames.push(Bytes::from(f));
                }
                Tamper::Replay => frames.push(Bytes::from(original)),
            }
        }
        for frame in frames {
            self.schedule(frame, fault, flight);
        }
    }

    fn schedule(&mut self, frame: Bytes, fault: Fault, flight: &mut InFlight) {
        let mut at = Instant::now() + fault.delay;
        if fault.reorder.is_zero() {
            // In order, even when the delay shrinks.
            at = at.max(flight.last_at);
        } else {
            let window = fault.reorder.as_micros().max(1) as usize;
            at += Duration::from_micros(self.rng.usize(..window) as u64);
            if at < flight.last_at {
                self.net.bump(&self.from, &self.to, |s| s.reordered += 1);
            }
        }
        flight.last_at = at.max(flight.last_at);
        flight.seq += 1;
        flight.queue.push(Reverse((at, flight.seq, frame)));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
