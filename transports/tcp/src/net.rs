//! The IO side: the accept loop, inbound connections, dialing, outbound writers and the
//! per-peer dialer that reconnects (and so proves peers dead or alive).

use crate::Inner;
use crate::admission::{Limit, Stage, Ticket};
use crate::handshake::SessionKeys;
use crate::handshake::{
    BusyReason, HandshakeError, Hello, HelloReply, Initiator, Nonce, PeerInfo, Responder, Step,
    TlsNotice, busy_frame, tls_notice_frame,
};
use crate::peers::{AfterFailure, Conn, Decline, Direction};
use crate::queue::{Queue, lock};
use crate::stream::{Stream, looks_like_tls, tls_failure};
use crate::wire::{
    FrameOpener, FrameSealer, authenticated, handshake_codec, open_message, seal_message,
};
use baton_core::{
    CloseKind, Envelope, Fingerprint, FingerprintMismatch, NodeId, Refusal, TransportEvent,
};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

type Framing = Framed<Stream, LengthDelimitedCodec>;

/// Why a dial (connect + initiator handshake) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("connection refused")]
    Refused,
    #[error("no complete handshake within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(io::Error),
    #[error(
        "peer closed the connection during the handshake (refused: wrong cluster, protocol version or secret?)"
    )]
    PeerClosed,
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    #[error("{0}")]
    Declined(Decline),
    #[error("no randomness for the handshake nonce: {0}")]
    Random(String),
    #[error("transport is not started")]
    NotStarted,
    /// The TLS handshake failed, or TLS failed under baton's handshake (a certificate the
    /// peer refused): why, with a hint.
    #[error("{0}")]
    Tls(String),
}

impl From<HandshakeError> for DialError {
    fn from(e: HandshakeError) -> Self {
        DialError::Handshake(e)
    }
}

/// The kind of a dial or handshake failure, without its details: what a log line is
/// rate-limited by.
fn kind_of(e: &DialError) -> &'static str {
    match e {
        DialError::Refused => "refused",
        DialError::Timeout(_) => "timeout",
        DialError::Io(e) if e.kind() == io::ErrorKind::InvalidData => "invalid frame",
        DialError::Io(_) => "io",
        DialError::PeerClosed => "peer closed",
        DialError::Handshake(h) => match h {
            HandshakeError::BadMagic => "bad magic",
            HandshakeError::Version { .. } => "version",
            HandshakeError::Cluster { .. } => "cluster",
            HandshakeError::BadMac => "bad mac",
            HandshakeError::InvalidField { .. } => "invalid field",
            HandshakeError::Malformed { .. } => "malformed",
            HandshakeError::SelfConnection => "self",
            HandshakeError::Finished => "finished",
            HandshakeError::Fingerprint(_) => "fingerprint",
            HandshakeError::Refused(_) => "refused by peer",
            HandshakeError::Aborted(_) => "aborted",
            HandshakeError::Busy(_) => "busy",
            HandshakeError::TlsMode(_) => "tls mode",
        },
        DialError::Tls(_) => "tls",
        DialError::Declined(_) => "declined",
        DialError::Random(_) => "random",
        DialError::NotStarted => "not started",
    }
}

fn nonce() -> Result<Nonce, String> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| e.to_string())?;
    Ok(n)
}

/// Reads the next frame of a handshake.
async fn next_frame(framed: &mut Framing) -> Result<bytes::BytesMut, DialError> {
    match framed.next().await {
        Some(Ok(frame)) => Ok(frame),
        Some(Err(e)) => Err(match tls_failure(&e) {
            Some(why) => DialError::Tls(why),
            None => DialError::Io(e),
        }),
        None => Err(DialError::PeerClosed),
    }
}

/// Sends one handshake frame and reads the peer's answer to it.
async fn send_then_next(
    framed: &mut Framing,
    frame: Vec<u8>,
) -> Result<bytes::BytesMut, DialError> {
    framed
        .send(Bytes::from(frame))
        .await
        .map_err(DialError::Io)?;
    next_frame(framed).await
}

/// A failed TLS handshake, as a dial error: the TLS reason when there is one.
#[cfg(feature = "tls")]
fn tls_dial_error(e: io::Error) -> DialError {
    match tls_failure(&e) {
        Some(why) => DialError::Tls(why),
        None => DialError::Io(e),
    }
}

/// The dialer's stream over `tcp`: TLS when the config has it (the TLS handshake runs here,
/// inside the dial deadline), else `tcp` itself.
pub(crate) async fn dialed_stream(
    cfg: &crate::TcpConfig,
    addr: &str,
    tcp: TcpStream,
) -> Result<Stream, DialError> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &cfg.tls {
        return match tls.connect(addr, tcp).await {
            Ok(s) => Ok(Stream::TlsClient(Box::new(s))),
            // The listener answered in plain text: a notice (busy, or it has no TLS).
            Err((e, Some(notice))) => Err(
                match (
                    crate::handshake::parse_busy(&notice),
                    crate::handshake::parse_tls_notice(&notice),
                ) {
                    (Some(reason), _) => DialError::Handshake(HandshakeError::Busy(reason)),
                    (_, Some(notice)) => DialError::Handshake(HandshakeError::TlsMode(notice)),
                    _ => tls_dial_error(e),
                },
            ),
            Err((e, _)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                // Closed before the TLS handshake finished: a dying listener, as over TCP.
                Err(DialError::PeerClosed)
            }
            Err((e, None)) => Err(tls_dial_error(e)),
        };
    }
    let _ = (cfg, addr);
    Ok(Stream::Plain(tcp))
}

/// Releases a node's outbound-handshake claim when the attempt ends, however it ends.
pub(crate) struct Claim {
    inner: Arc<Inner>,
    node: NodeId,
    attempt: u64,
}

impl Drop for Claim {
    fn drop(&mut self) {
        lock(&self.inner.state).release_claim(&self.node, self.attempt);
    }
}

/// A finished outbound handshake: the connection, the peer, the attempt id, the node's claim
/// and the keys of the connection's frames.
type Dialed = (Framing, PeerInfo, u64, Claim, SessionKeys);

/// Connects to `addr` and runs the initiator handshake. `expected` is the node we mean to
/// reach (a peer's dialer), `None` for a `connect(addr)`.
async fn dial(
    inner: &Arc<Inner>,
    addr: &str,
    expected: Option<&NodeId>,
) -> Result<Dialed, DialError> {
    let deadline = inner.cfg.handshake_timeout;
    match tokio::time::timeout(deadline, dial_inner(inner, addr, expected)).await {
        Ok(result) => result,
        Err(_) => Err(DialError::Timeout(deadline)),
    }
}

async fn dial_inner(
    inner: &Arc<Inner>,
    addr: &str,
    expected: Option<&NodeId>,
) -> Result<Dialed, DialError> {
    let (hcfg, attempt) = {
        let mut st = lock(&inner.state);
        let Some(me) = st.me.clone() else {
            return Err(DialError::NotStarted);
        };
        (me, st.next_id())
    };
    let my_node = hcfg.node.clone();
    let stream = TcpStream::connect(addr).await.map_err(|e| {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            DialError::Refused
        } else {
            DialError::Io(e)
        }
    })?;
    let _ = stream.set_nodelay(true);
    let stream = dialed_stream(&inner.cfg, addr, stream).await?;
    let mut framed = Framed::new(stream, handshake_codec(inner.cfg.max_frame));
    let (mut hs, hello) = Initiator::new(hcfg, nonce().map_err(DialError::Random)?);
    let reply = send_then_next(&mut framed, hello).await?;
    let step = match hs.on_frame(&reply) {
        Ok(step) => step,
        Err(e) => {
            if let HandshakeError::Fingerprint(m) = &e {
                // The reply's MAC verified before the comparison: an authenticated peer.
                let theirs =
                    postcard::from_bytes::<HelloReply>(&reply).map(|r| r.hello.fingerprint);
                report_mismatch(inner, addr, m, theirs.ok());
            }
            // A fingerprint mismatch: tell the responder why before closing (best effort).
            if let Some(abort) = hs.take_abort() {
                let _ = framed.send(Bytes::from(abort)).await;
            }
            return Err(e.into());
        }
    };
    let (auth, info) = match step {
        Step::Reply {
            frame,
            peer: Some(info),
        } => (frame, info),
        _ => return Err(DialError::Handshake(HandshakeError::Finished)),
    };
    let verdict = lock(&inner.state).pre_auth(attempt, expected, &info);
    if let Err(decline) = verdict {
        if let Decline::Refused(refusal) = &decline {
            if info.node == my_node {
                // The peer runs under this node's own name: we learn of a duplicate as much
                // as it does (the engine halts whichever of the two no peer accepted).
                let st = lock(&inner.state);
                st.emit(TransportEvent::Refused {
                    addr: addr.to_string(),
                    refusal: Refusal::DuplicateName {
                        node: info.node.clone(),
                        addr: info.addr.clone(),
                        incarnation: info.incarnation,
                    },
                });
            }
            // Tell the peer why, so that its log (and a duplicate's exit) says the truth.
            let _ = framed.send(Bytes::from(hs.abort(refusal.clone()))).await;
        }
        return Err(DialError::Declined(decline));
    }
    let claim = Claim {
        inner: inner.clone(),
        node: info.node.clone(),
        attempt,
    };
    let accept = send_then_next(&mut framed, auth).await?;
    match hs.on_frame(&accept)? {
        Step::Done { peer, .. } => match hs.session_keys() {
            Some(keys) => {
                authenticated(&mut framed, inner.cfg.max_frame);
                Ok((framed, peer, attempt, claim, keys.clone()))
            }
            None => Err(DialError::Handshake(HandshakeError::Finished)),
        },
        Step::Reply { .. } => Err(DialError::Handshake(HandshakeError::Finished)),
    }
}

/// Installs a dialed connection as the peer's outbound one and starts its writer (and, for a
/// peer new to us, its dialer). Errs, dropping the connection, when the state refuses it.
fn install(
    inner: &Arc<Inner>,
    framed: Framing,
    info: &PeerInfo,
    attempt: u64,
    keys: &SessionKeys,
) -> Result<(), Refusal> {
    let token = inner.root.child_token();
    let (spawn_dialer, queue, id) = {
        let mut st = lock(&inner.state);
        if st.closed {
            return Err(Refusal::ShuttingDown);
        }
        let id = st.next_id();
        let conn = Conn {
            id,
            token: token.clone(),
        };
        let (spawn, queue) = st.install_outbound(attempt, info, conn)?;
        (spawn, queue, id)
    };
    if let Ok(a) = info.addr.parse::<SocketAddr>() {
        inner.admission.know(a.ip());
    }
    let node = info.node.clone();
    let peer_addr = info.addr.clone();
    let task_inner = inner.clone();
    let sealer = FrameSealer::new(&keys.send);
    inner.tracker.spawn(async move {
        run_outbound(
            task_inner, node, id, token, framed, queue, peer_addr, sealer,
        )
        .await;
    });
    if spawn_dialer {
        spawn_dialer_task(inner, info.node.clone());
    }
    Ok(())
}

/// Writes the peer's queue to its outbound connection, each message sealed; notices the
/// connection closing.
#[allow(
    clippy::too_many_arguments,
    reason = "a task body: it owns each piece it needs"
)]
async fn run_outbound(
    inner: Arc<Inner>,
    node: NodeId,
    id: u64,
    token: CancellationToken,
    framed: Framing,
    queue: Arc<Queue>,
    peer_addr: String,
    mut sealer: FrameSealer,
) {
    let (mut sink, mut stream) = framed.split();
    let (why, how) = loop {
        tokio::select! {
            biased;
            _ = token.cancelled() => return,
            read = stream.next() => break match read {
                None => ("closed by peer".to_string(), CloseKind::Orderly),
                Some(Ok(_)) => {
                    warn!(peer = %peer_addr, node = %node, "closing connection: peer sent data on our outbound connection");
                    ("protocol violation".to_string(), CloseKind::Abrupt)
                }
                Some(Err(e)) => (e.to_string(), CloseKind::Abrupt),
            },
            message = queue.pop() => {
                let bytes = match seal_message(&mut sealer, &message, inner.cfg.max_frame) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        warn!(peer = %peer_addr, node = %node, "dropping message: {e}");
                        continue;
                    }
                };
                tokio::select! {
                    _ = token.cancelled() => return,
                    sent = sink.send(Bytes::from(bytes)) => if let Err(e) = sent {
                        break (e.to_string(), CloseKind::Abrupt);
                    },
                }
            }
        }
    };
    debug!(peer = %peer_addr, node = %node, ?how, "outbound connection closed: {why}");
    lock(&inner.state).on_closed(&node, id, Direction::Outbound, how);
}

pub(crate) fn spawn_dialer_task(inner: &Arc<Inner>, node: NodeId) {
    let task_inner = inner.clone();
    let dialing = inner.dialing.clone();
    inner.dial_tracker.spawn(async move {
        tokio::select! {
            _ = dialing.cancelled() => {}
            _ = run_dialer(task_inner, node) => {}
        }
    });
}

/// How many times, and how soon, a dialer retries after a reset before backing off.
const QUICK_RETRIES: u32 = 50;
const QUICK_RETRY_GAP: Duration = Duration::from_millis(1);

/// A dial that met a listener in the middle of dying: the connection was reset or closed before
/// the handshake finished. The next attempt will most likely be refused (proof) or answered by
/// a new process.
fn dying_listener(e: &DialError) -> bool {
    match e {
        DialError::PeerClosed => true,
        DialError::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::BrokenPipe
        ),
        _ => false,
    }
}

fn next_backoff(inner: &Inner, current: Duration) -> Duration {
    if current.is_zero() {
        // Never zero: a zero backoff would spin on a peer that keeps failing.
        inner.cfg.reconnect_min.max(Duration::from_millis(1))
    } else {
        (current * 2).min(inner.cfg.reconnect_max)
    }
}

enum Next {
    Exit,
    Sleep(Arc<tokio::sync::Notify>, Instant),
    Dial(String),
}

/// One per live peer: keeps an outbound connection to its advertised address. After a close it
/// redials at once; a refusal then proves the peer dead, a handshake proves it alive (or a new
/// incarnation), silence is retried with capped exponential backoff.
async fn run_dialer(inner: Arc<Inner>, node: NodeId) {
    let mut backoff = Duration::ZERO;
    let mut retry_at: Option<Instant> = None;
    // Quick retries left after a reset (see `dying_listener`).
    let mut quick = QUICK_RETRIES;
    loop {
        let next = {
            let mut st = lock(&inner.state);
            let closed = st.closed;
            let silence = st.takeover_silence;
            match st.peers.get_mut(&node) {
                None => Next::Exit,
                Some(_) if closed => Next::Exit,
                Some(p) if p.status == crate::peers::Status::Dead => {
                    p.dialer = false;
                    Next::Exit
                }
                Some(p) if p.outbound.is_some() && !p.probe => {
                    p.dial_now = false;
                    let quiet_until = p.last_received + silence;
                    if Instant::now() >= quiet_until {
                        // Silent with its connections open: a black-holed path (DROP) leaves TCP
                        // retransmitting with a growing backoff, so the old connection may take
                        // seconds to carry anything once the path is back. Dial a fresh one
                        // beside it (with this dialer's backoff): the link heals as soon as the
                        // path does.
                        debug!(node = %node, "peer silent for {silence:?}: probing with a fresh connection");
                        p.probe = true;
                        Next::Dial(p.addr.clone())
                    } else {
                        Next::Sleep(p.wake.clone(), quiet_until)
                    }
                }
                Some(p) => {
                    let now = Instant::now();
                    if std::mem::take(&mut p.dial_now) || retry_at.is_none_or(|t| t <= now) {
                        Next::Dial(p.addr.clone())
                    } else {
                        Next::Sleep(p.wake.clone(), retry_at.unwrap_or(now))
                    }
                }
            }
        };
        match next {
            Next::Exit => return,
            Next::Sleep(wake, at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => retry_at = None,
                    _ = wake.notified() => {}
                }
            }
            Next::Dial(addr) => {
                let result = dial(&inner, &addr, Some(&node)).await;
                let last_was_reset = result.as_ref().err().is_some_and(dying_listener);
                let established = match result {
                    Ok((framed, info, attempt, claim, keys)) => {
                        let result = install(&inner, framed, &info, attempt, &keys);
                        drop(claim);
                        match result {
                            Ok(()) => true,
                            Err(why) => {
                                if let Some(more) = inner.limited("dropping", &node) {
                                    warn!(peer = %addr, node = %node, "dropping connection: {why}{more}");
                                }
                                false
                            }
                        }
                    }
                    Err(DialError::Refused) => {
                        if lock(&inner.state).on_gone(&node) == AfterFailure::Exit {
                            debug!(peer = %addr, node = %node, "reconnect refused after an orderly close: proof of death");
                            return;
                        }
                        debug!(
                            peer = %addr, node = %node,
                            "reconnect refused without an orderly close before it: no proof of \
                             death (a firewall may reset its traffic); it stays silent until heard"
                        );
                        false
                    }
                    Err(DialError::Declined(Decline::Refused(refusal))) => {
                        if let Some(more) = inner.limited("not connecting", &node) {
                            warn!(peer = %addr, node = %node, "not connecting: {refusal}{more}");
                        }
                        false
                    }
                    Err(DialError::Handshake(HandshakeError::Refused(refusal))) => {
                        if let Some(more) = inner.limited("refused by peer", &node) {
                            warn!(peer = %addr, node = %node, "refused by the peer: {refusal}{more}");
                        }
                        let st = lock(&inner.state);
                        st.emit(TransportEvent::Refused {
                            addr: addr.clone(),
                            refusal,
                        });
                        false
                    }
                    Err(DialError::Declined(Decline::WrongNode(other))) => {
                        info!(peer = %addr, node = %node, "node {other} now answers at the address of {node}");
                        if lock(&inner.state).on_gone(&node) == AfterFailure::Exit {
                            return;
                        }
                        false
                    }
                    Err(DialError::Declined(Decline::Redundant)) => false,
                    Err(e @ (DialError::Timeout(_) | DialError::Io(_))) => {
                        debug!(peer = %addr, node = %node, "reconnect failed: {e}");
                        false
                    }
                    Err(e) => {
                        if let Some(more) = inner.limited(kind_of(&e), &node) {
                            warn!(peer = %addr, node = %node, "reconnect failed: {e}{more}");
                        }
                        false
                    }
                };
                if established {
                    backoff = Duration::ZERO;
                    retry_at = None;
                    quick = QUICK_RETRIES;
                } else if quick > 0 && last_was_reset {
                    // A killed process's listener resets connections for a moment before the
                    // port refuses them: retry at once rather than waiting a backoff, so the
                    // refusal — the proof of death — arrives in milliseconds.
                    quick -= 1;
                    retry_at = Some(Instant::now() + QUICK_RETRY_GAP);
                } else {
                    backoff = next_backoff(&inner, backoff);
                    retry_at = Some(Instant::now() + backoff);
                }
            }
        }
    }
}

/// Logs a fingerprint mismatch with an authenticated peer and tells the engine, which decides
/// whether that configuration is a danger (see `TransportEvent::Mismatch`).
fn report_mismatch(
    inner: &Arc<Inner>,
    addr: &str,
    mismatch: &FingerprintMismatch,
    theirs: Option<Fingerprint>,
) {
    warn!(peer = %addr, "handshake refused: {mismatch}");
    let Some(theirs) = theirs else {
        return;
    };
    lock(&inner.state).emit_unless_closed(TransportEvent::Mismatch {
        addr: addr.to_string(),
        mismatch: mismatch.clone(),
        theirs,
    });
}

/// When `addr` is a name (not an `ip:port`), resolves it and names the node whose advertised
/// address it leads to: this node or a live peer. A seed given as `localhost:7201` is then
/// recognised as the peer advertising `127.0.0.1:7201` instead of being dialed again (which the
/// peer would see as a connection closed before authenticating).
async fn known_under_another_name(inner: &Inner, addr: &str) -> Option<String> {
    if addr.parse::<SocketAddr>().is_ok() {
        return None;
    }
    let resolved: Vec<SocketAddr> =
        tokio::time::timeout(inner.cfg.handshake_timeout, tokio::net::lookup_host(addr))
            .await
            .ok()?
            .ok()?
            .collect();
    let local = *lock(&inner.local_addr);
    let st = lock(&inner.state);
    let hit = |a: &str| a.parse::<SocketAddr>().is_ok_and(|a| resolved.contains(&a));
    if st.me.as_ref().is_some_and(|me| hit(&me.addr))
        || local.is_some_and(|l| resolved.contains(&l))
    {
        return Some("this node".into());
    }
    st.peers
        .iter()
        .find(|(_, p)| p.status != crate::peers::Status::Dead && hit(&p.addr))
        .map(|(n, p)| format!("{n} (advertising {})", p.addr))
}

/// `Transport::connect`: one attempt at `addr`; failure is reported as `ConnectFailed`.
/// Repeated failures of one address back off and log quietly (debug) after the first; the
/// address answering again is logged once (info).
pub(crate) async fn run_connect(inner: Arc<Inner>, addr: String) {
    if let Some(who) = known_under_another_name(&inner, &addr).await {
        debug!(peer = %addr, "connect: {addr} resolves to {who}, connected already");
        lock(&inner.state).pending_addrs.remove(&addr);
        return;
    }
    let result = dial(&inner, &addr, None).await;
    let outcome = match result {
        Ok((framed, info, attempt, claim, keys)) => {
            // Taken before `install`, which forgets the failures of an address that answers.
            let failed = lock(&inner.state).connect_failures.remove(&addr);
            let r = install(&inner, framed, &info, attempt, &keys);
            lock(&inner.state).pending_addrs.remove(&addr);
            drop(claim);
            if let Some(f) = failed
                && r.is_ok()
                && f.warned
            {
                info!(peer = %addr, node = %info.node, "{addr} answers again ({}), after {} failed connects over {:.1?}", info.node, f.count, f.since.elapsed());
            }
            r.map_err(|refusal| refusal.to_string())
        }
        Err(e) => {
            lock(&inner.state).pending_addrs.remove(&addr);
            match e {
                DialError::Handshake(HandshakeError::SelfConnection) => {
                    debug!(peer = %addr, "connect: that address is this node");
                    Ok(())
                }
                DialError::Declined(Decline::Redundant) => Ok(()),
                DialError::Handshake(HandshakeError::Refused(refusal)) => {
                    if let Some(more) = inner.limited("refused by peer", &addr) {
                        warn!(peer = %addr, "refused by the peer: {refusal}{more}");
                    }
                    lock(&inner.state).emit_unless_closed(TransportEvent::Refused {
                        addr: addr.clone(),
                        refusal,
                    });
                    return;
                }
                e => Err(e.to_string()),
            }
        }
    };
    if let Err(reason) = outcome {
        let (count, dead) = lock(&inner.state).connect_failed(
            &addr,
            inner.cfg.reconnect_min,
            inner.cfg.reconnect_max,
        );
        if count == 1 && !dead {
            warn!(peer = %addr, "connect failed: {reason} (retrying quietly with backoff; logged again once it answers)");
        } else {
            debug!(peer = %addr, failures = count, "connect failed: {reason}");
        }
        lock(&inner.state).emit_unless_closed(TransportEvent::ConnectFailed { addr, reason });
    }
}

/// The busy notice as it goes on the wire (length header included).
fn busy_wire(limit: Limit) -> [u8; 9] {
    let reason = match limit {
        Limit::Source { .. } => BusyReason::Source,
        Limit::Total { .. } => BusyReason::Total,
    };
    let frame = busy_frame(reason);
    let mut wire = [0u8; 9];
    wire[..4].copy_from_slice(&(frame.len() as u32).to_be_bytes());
    wire[4..].copy_from_slice(&frame);
    wire
}

/// The stage of a connection just accepted: `Reading` when bytes wait already (a genuine
/// peer's `Hello` usually does), else `Idle`. One non-blocking peek.
fn first_stage(stream: &TcpStream) -> Stage {
    let mut byte = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut byte);
    let mut cx = std::task::Context::from_waker(futures::task::noop_waker_ref());
    match stream.poll_peek(&mut cx, &mut buf) {
        std::task::Poll::Ready(Ok(n)) if n > 0 => Stage::Reading,
        _ => Stage::Idle,
    }
}

/// Tells a connection about to be closed that it is rate limited, without waiting (best
/// effort). What it sent already is read first (and thrown away), so that closing it sends a
/// FIN after the notice rather than a reset that could destroy it.
fn tell_busy(stream: &TcpStream, limit: Limit) {
    let mut sink = [0u8; 2048];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(&busy_wire(limit));
}

/// Accepts connections until `stop` is cancelled. Each takes a pending slot of the admission
/// table (see [`crate::admission`]) until its handshake ends; one that gets none is told it is
/// rate limited and closed at once.
pub(crate) async fn run_acceptor(
    inner: Arc<Inner>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => match inner.admission.admit(peer.ip(), first_stage(&stream)) {
                Ok((ticket, displaced)) => {
                    let task_inner = inner.clone();
                    inner
                        .tracker
                        .spawn(run_inbound(task_inner, stream, peer, ticket));
                    if displaced > 0 {
                        // Under a flood: let the connections just admitted read their first
                        // bytes (and so leave the idle stage) before more are accepted.
                        tokio::task::yield_now().await;
                    }
                }
                Err(limit) => {
                    tell_busy(&stream, limit);
                    if let Some(more) = inner.limited("refused", peer.ip()) {
                        warn!(peer = %peer, "refusing connection: {limit}{more}");
                    }
                    drop(stream);
                }
            },
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                if let Some(more) = inner.limited("accept", "") {
                    warn!("accept failed: {e}{more}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn run_inbound(inner: Arc<Inner>, stream: TcpStream, peer: SocketAddr, ticket: Ticket) {
    let token = inner.root.child_token();
    tokio::select! {
        _ = token.cancelled() => {}
        _ = inbound(&inner, stream, peer, ticket, &token) => {}
    }
}

/// Tells a connection about to be closed that it speaks the other TLS mode (a plaintext notice,
/// see [`crate::handshake::TLS_MAGIC`]); what it sent is read first, so that the close is a
/// FIN after the notice rather than a reset that could destroy it.
fn tell_tls_mode(stream: &TcpStream, notice: TlsNotice) {
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let frame = tls_notice_frame(notice);
    let mut wire = [0u8; 9];
    wire[..4].copy_from_slice(&(frame.len() as u32).to_be_bytes());
    wire[4..].copy_from_slice(&frame);
    let _ = stream.try_write(&wire);
}

/// The listener's stream over an accepted connection that has bytes to read: TLS when the
/// config has it (the TLS handshake runs here), else the connection itself. A dialer of the
/// other mode (a plaintext `Hello` here under TLS, a TLS `ClientHello` here without) is told
/// so and refused, both sides logging why; `None` when the connection is to be closed.
async fn accepted_stream(inner: &Inner, tcp: TcpStream, peer: SocketAddr) -> Option<Stream> {
    let mut first = [0u8; 2];
    let n = tcp.peek(&mut first).await.unwrap_or(0);
    let tls_dialer = n > 0 && looks_like_tls(&first[..n]);
    #[cfg(feature = "tls")]
    if let Some(tls) = &inner.cfg.tls {
        if n > 0 && !tls_dialer {
            // Log before telling: the dialer may act on the notice at once.
            if let Some(more) = inner.limited("plaintext", peer.ip()) {
                warn!(peer = %peer, "handshake refused: the dialer speaks plain text and this node requires TLS (does it have [cluster.tls]?){more}");
            }
            tell_tls_mode(&tcp, TlsNotice::Required);
            return None;
        }
        return match tls.accept(tcp).await {
            Ok(s) => Some(Stream::TlsServer(Box::new(s))),
            Err(e) => {
                match crate::stream::tls_failure_kind(&e) {
                    Some((kind, why)) => {
                        if let Some(more) = inner.limited(kind, peer.ip()) {
                            warn!(peer = %peer, "handshake refused: {why}{more}");
                        }
                    }
                    // The dialer sent its ClientHello, then closed: most likely it refused
                    // our certificate (rustls closes without an alert we could read then),
                    // as over plain TCP a dialer closing before `Auth` most likely failed
                    // our MAC.
                    None if e.kind() == io::ErrorKind::UnexpectedEof => {
                        if let Some(more) = inner.limited("tls closed", peer.ip()) {
                            warn!(peer = %peer, "handshake refused: the dialer closed the connection during the TLS handshake (did it refuse this node's certificate? is cluster.tls.cert signed by the CA it trusts?){more}");
                        }
                    }
                    None => debug!(peer = %peer, "connection closed during the TLS handshake: {e}"),
                }
                None
            }
        };
    }
    if tls_dialer {
        if let Some(more) = inner.limited("tls dialer", peer.ip()) {
            warn!(peer = %peer, "handshake refused: the dialer speaks TLS and this node has no [cluster.tls]{more}");
        }
        tell_tls_mode(&tcp, TlsNotice::Unsupported);
        return None;
    }
    Some(Stream::Plain(tcp))
}

/// Logs, rate-limited per source address, why a pending connection lost its slot.
fn log_displaced(inner: &Inner, peer: SocketAddr, why: Option<Limit>) {
    if let Some(more) = inner.limited("displaced", peer.ip()) {
        match why {
            Some(limit) => {
                warn!(peer = %peer, "closing connection before its handshake completed: {limit}; it had sent no complete hello{more}")
            }
            None => {
                warn!(peer = %peer, "closing connection before its handshake completed: rate limited{more}")
            }
        }
    }
}

/// Responder handshake, then reads messages until the connection ends.
async fn inbound(
    inner: &Arc<Inner>,
    stream: TcpStream,
    peer: SocketAddr,
    ticket: Ticket,
    token: &CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let deadline = inner.cfg.handshake_timeout;
    let deadline_at = Instant::now() + deadline;
    let timed_out = |inner: &Inner| {
        if let Some(more) = inner.limited("handshake timeout", peer.ip()) {
            warn!(peer = %peer, "handshake refused: no complete handshake within {deadline:?}{more}");
        }
    };
    // Wait for the first bytes before allocating any buffer: an idle connection (what a flood
    // is made of) costs its socket and this task, nothing more.
    tokio::select! {
        readable = stream.readable() => if readable.is_err() {
            return;
        },
        _ = ticket.evicted() => {
            if let Some(why) = ticket.why() {
                tell_busy(&stream, why);
            }
            log_displaced(inner, peer, ticket.why());
            return;
        }
        _ = tokio::time::sleep_until(deadline_at) => {
            timed_out(inner);
            return;
        }
    }
    ticket.reached(Stage::Reading);
    let Some(hcfg) = lock(&inner.state).me.clone() else {
        return;
    };
    let nonce = match nonce() {
        Ok(n) => n,
        Err(e) => {
            warn!(peer = %peer, "refusing connection: no randomness for the handshake nonce: {e}");
            return;
        }
    };
    let stream = tokio::select! {
        stream = tokio::time::timeout_at(deadline_at, accepted_stream(inner, stream, peer)) => match stream {
            Ok(Some(stream)) => stream,
            Ok(None) => return,
            Err(_) => {
                timed_out(inner);
                return;
            }
        },
        _ = ticket.evicted() => {
            log_displaced(inner, peer, ticket.why());
            return;
        }
    };
    let mut framed = Framed::new(stream, handshake_codec(inner.cfg.max_frame));
    let mut hs = Responder::new(hcfg, nonce);
    let mut theirs: Option<Hello> = None;
    let handshake = async {
        let hello = next_frame(&mut framed).await?;
        theirs = postcard::from_bytes::<Hello>(&hello).ok();
        let reply = match hs.on_frame(&hello)? {
            Step::Reply { frame, .. } => frame,
            Step::Done { .. } => return Err(DialError::Handshake(HandshakeError::Finished)),
        };
        // A valid Hello: this one is no longer displaced by newcomers.
        ticket.reached(Stage::Hello);
        let auth = send_then_next(&mut framed, reply).await?;
        match hs.on_frame(&auth)? {
            Step::Done { frame, peer } => Ok((frame, peer)),
            Step::Reply { .. } => Err(DialError::Handshake(HandshakeError::Finished)),
        }
    };
    let outcome = tokio::select! {
        outcome = tokio::time::timeout_at(deadline_at, handshake) => Some(outcome),
        _ = ticket.evicted() => None,
    };
    let Some(outcome) = outcome else {
        if let Some(why) = ticket.why()
            && let Some(tcp) = framed.get_ref().plain()
        {
            // (Under TLS the notice would have to go inside the TLS stream, and the dialer
            // may not have finished its side: it sees the connection close.)
            tell_busy(tcp, why);
        }
        log_displaced(inner, peer, ticket.why());
        return;
    };
    let theirs_fp = theirs.as_ref().map(|h| h.fingerprint.clone());
    let (accept, info) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(DialError::PeerClosed)) if hs.claims_our_identity() => {
            debug!(peer = %peer, "closed: this node connected to itself");
            return;
        }
        Ok(Err(DialError::PeerClosed)) => {
            // A peer already connected to us (same node and incarnation) that closes after our
            // reply most likely found its dial redundant (it reached us under another name of
            // our address); anyone else most likely failed to verify our MAC.
            let redundant = theirs.as_ref().is_some_and(|h| {
                lock(&inner.state).peers.get(&h.node).is_some_and(|p| {
                    p.incarnation == h.incarnation && p.status == crate::peers::Status::Up
                })
            });
            if redundant {
                debug!(peer = %peer, "peer closed the connection before authenticating: it is connected already (a redundant dial)");
            } else if let Some(more) = inner.limited("closed before auth", peer.ip()) {
                warn!(peer = %peer, "handshake refused: peer closed the connection before authenticating (wrong cluster secret?){more}");
            }
            return;
        }
        Ok(Err(DialError::Handshake(HandshakeError::Fingerprint(m)))) => {
            // Compared once the peer's MAC verified: an authenticated peer.
            report_mismatch(inner, &peer.to_string(), &m, theirs_fp);
            return;
        }
        Ok(Err(DialError::Handshake(HandshakeError::Aborted(refusal)))) => {
            warn!(peer = %peer, "handshake ended: the dialing peer declined the connection: {refusal}");
            lock(&inner.state).emit_unless_closed(TransportEvent::Refused {
                addr: peer.to_string(),
                refusal,
            });
            return;
        }
        Ok(Err(e)) if dying_listener(&e) => {
            // Reset or closed mid-handshake: the dialer gave up (it shuts down, or its own
            // deadline passed). Nothing was refused.
            debug!(peer = %peer, "connection closed during the handshake: {e}");
            return;
        }
        Ok(Err(e)) => {
            if let Some(more) = inner.limited(kind_of(&e), peer.ip()) {
                warn!(peer = %peer, "handshake refused: {e}{more}");
            }
            return;
        }
        Err(_) => {
            timed_out(inner);
            return;
        }
    };
    drop(ticket);
    let Some(keys) = hs.session_keys() else {
        return;
    };
    if !info.client {
        inner.admission.know(peer.ip());
    }
    authenticated(&mut framed, inner.cfg.max_frame);
    let mut opener = FrameOpener::new(&keys.recv);
    if info.client {
        let sealer = FrameSealer::new(&keys.send);
        return serve_client(inner, framed, accept, peer, &info, token, opener, sealer).await;
    }

    let registered = {
        let mut st = lock(&inner.state);
        if st.closed {
            return;
        }
        let id = st.next_id();
        let conn = Conn {
            id,
            token: token.clone(),
        };
        st.register_inbound(&info, conn).map(|spawn| (spawn, id))
    };
    let (spawn, id) = match registered {
        Ok(r) => r,
        Err(refusal) => {
            warn!(peer = %peer, node = %info.node, "refusing connection: {refusal}");
            // Tell the peer why, so that its log (and a duplicate's exit) says the truth.
            let _ = framed.send(Bytes::from(hs.refuse(refusal))).await;
            return;
        }
    };
    if spawn {
        spawn_dialer_task(inner, info.node.clone());
    }
    let (why, how) = match framed.send(Bytes::from(accept.unwrap_or_default())).await {
        Ok(()) => {
            read_messages(
                inner,
                &mut framed,
                peer,
                &info.node,
                &info,
                token,
                &mut opener,
            )
            .await
        }
        Err(e) => (e.to_string(), CloseKind::Abrupt),
    };
    debug!(peer = %peer, node = %info.node, ?how, "inbound connection closed: {why}");
    lock(&inner.state).on_closed(&info.node, id, Direction::Inbound, how);
}

/// A client (a CLI): its messages become `ClientMessage` events from a per-connection id, and
/// what the node sends to that id goes back over the same connection. No peer state, no
/// `Connected`/`Disconnected`/`Dead` for it.
#[allow(
    clippy::too_many_arguments,
    reason = "one connection's pieces, each used on its own; a struct would only bundle them"
)]
async fn serve_client(
    inner: &Arc<Inner>,
    framed: Framing,
    accept: Option<Vec<u8>>,
    peer: SocketAddr,
    info: &PeerInfo,
    token: &CancellationToken,
    mut opener: FrameOpener,
    mut sealer: FrameSealer,
) {
    let (client, queue) = {
        let mut st = lock(&inner.state);
        if st.closed {
            return;
        }
        let id = st.next_id();
        st.register_client(info, peer, id, token.clone())
    };
    debug!(peer = %peer, client = %client, "client connected");
    let (mut sink, mut stream) = framed.split();
    let why = match sink.send(Bytes::from(accept.unwrap_or_default())).await {
        Err(e) => e.to_string(),
        Ok(()) => {
            let writer = async {
                loop {
                    let message = queue.pop().await;
                    match seal_message(&mut sealer, &message, inner.cfg.max_frame) {
                        Ok(bytes) => {
                            if let Err(e) = sink.send(Bytes::from(bytes)).await {
                                return e.to_string();
                            }
                        }
                        Err(e) => warn!(peer = %peer, client = %client, "dropping message: {e}"),
                    }
                }
            };
            tokio::select! {
                (why, _) = read_messages(inner, &mut stream, peer, &client, info, token, &mut opener) => why,
                why = writer => why,
            }
        }
    };
    debug!(peer = %peer, client = %client, "client disconnected: {why}");
    lock(&inner.state).clients.remove(&client);
}

/// Delivers the connection's messages as events from `from`, at most `inbound_queue`
/// undelivered at once (then it stops reading, and TCP pushes back on the sender). Returns why
/// it stopped and whether the peer closed it in order (EOF) or abruptly. Every frame must open
/// under `opener` (see [`crate::wire`]): an altered, injected, replayed or removed frame closes
/// the connection.
async fn read_messages<S>(
    inner: &Arc<Inner>,
    frames: &mut S,
    peer: SocketAddr,
    from: &NodeId,
    info: &PeerInfo,
    token: &CancellationToken,
    opener: &mut FrameOpener,
) -> (String, CloseKind)
where
    S: futures::Stream<Item = io::Result<bytes::BytesMut>> + Unpin,
{
    let slots = Arc::new(Semaphore::new(inner.cfg.inbound_queue.max(1)));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return ("inbound queue closed".into(), CloseKind::Abrupt);
        };
        let frame = match frames.next().await {
            None => return ("closed by peer".into(), CloseKind::Orderly),
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    warn!(peer = %peer, node = %from, "closing connection: {e}");
                }
                return (e.to_string(), CloseKind::Abrupt);
            }
        };
        let message = match open_message(opener, &frame) {
            Ok(m) => m,
            Err(e) => {
                // Rate-limited per peer: an attacker on the path could make every reconnect
                // fail this way.
                let kind = match &e {
                    crate::wire::WireError::Frame(crate::wire::FrameError::Replayed { .. }) => {
                        "frame replayed"
                    }
                    crate::wire::WireError::Frame(crate::wire::FrameError::Missing { .. }) => {
                        "frame missing"
                    }
                    crate::wire::WireError::Frame(_) => "frame forged",
                    _ => "undecodable",
                };
                if let Some(more) = inner.limited(kind, from) {
                    warn!(peer = %peer, node = %from, "closing connection: {e}{more}");
                }
                return (e.to_string(), CloseKind::Abrupt);
            }
        };
        let envelope = Envelope {
            from: from.clone(),
            incarnation: info.incarnation,
            message,
        };
        let event = if info.client {
            TransportEvent::ClientMessage(envelope)
        } else {
            TransportEvent::Message(envelope)
        };
        let mut st = lock(&inner.state);
        if token.is_cancelled() {
            return ("closed".into(), CloseKind::Abrupt);
        }
        if !info.client {
            st.heard(from);
        }
        st.emit_message(event, slot);
    }
}
