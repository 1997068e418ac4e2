//! # baton-transport-tcp
//!
//! The production [`Transport`] of baton: nodes talk over tokio TCP. It implements
//! `baton_core`'s [`Transport`] trait, so a `Node` runs over it exactly as over the in-memory
//! transport; the engine never sees sockets, only [`TransportEvent`]s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), baton_core::TransportError> {
//! use baton_core::{LocalNode, NodeId, Transport};
//! use baton_transport_tcp::{TcpConfig, TcpTransport};
//!
//! let transport = TcpTransport::new(TcpConfig::new("demo", b"cluster secret".to_vec()));
//! let me = LocalNode::new("a", 1, "127.0.0.1:0");
//! let advertised = transport.start(&me).await?; // the bound address (e.g. 127.0.0.1:41234) unless `advertise` is set
//! transport.connect("127.0.0.1:7102").await;     // outcome arrives as an event
//! while let Some(event) = transport.recv().await {
//!     println!("{event:?}");
//! }
//! # let _ = advertised; Ok(()) }
//! ```
//!
//! ## Wire format
//!
//! Every frame is a 4-byte big-endian length and a payload of at most
//! [`TcpConfig::max_frame`] bytes (4 MiB by default; 64 KiB until the handshake authenticated
//! the peer, [`wire::HANDSHAKE_MAX_FRAME`]), via tokio-util's
//! `LengthDelimitedCodec` (see [`wire`]). Payloads are postcard: first the handshake frames
//! (see [`handshake`]), then one sealed [`baton_core::Message`] per frame (see *Authenticated
//! frames*). An oversized or
//! undecodable frame closes that connection with a `warn!` naming the peer address and the
//! reason; the node keeps running. No byte sequence from the network can make it panic.
//!
//! ## Handshake
//!
//! Before anything else each connection runs a mutual HMAC-SHA256 challenge-response over the
//! cluster secret, with fresh random nonces from both sides (see [`handshake`] for the exact
//! transcript):
//!
//! ```text
//! dialer ── Hello{magic "BATN", version, cluster, node, incarnation, addr, nonce_i, client, fingerprint} ──▶ listener
//! dialer ◀── HelloReply{Hello{…, nonce_r, fingerprint}, mac_r = HMAC(secret, "baton-v1"|"responder"|transcript)}
//! dialer ── Auth{mac_i = HMAC(secret, "baton-v1"|"initiator"|transcript)} ──▶ listener
//!        or Abort{refusal, HMAC(secret, "baton-v1"|"initiator-abort"|transcript|refusal)}
//! dialer ◀── Accept
//!        or Refuse{refusal, HMAC(secret, "baton-v1"|"responder-refuse"|transcript|refusal)}
//! ```
//!
//! Wrong magic, protocol version, cluster or secret, and a handshake not finished within
//! [`TcpConfig::handshake_timeout`], close the connection with a log line saying why and naming
//! the peer address; the peer learns only that it was refused. A replayed handshake fails
//! because the listener's nonce is new. Message senders (`Envelope::from`, `incarnation`) come
//! from the authenticated handshake, never from message contents.
//!
//! Both `Hello`s carry the node's safety [`baton_core::Fingerprint`] (sorted voters, quorum
//! mode, heartbeat, failure timeout, protocol version); two nodes whose fingerprints differ
//! refuse each other once the MACs verified, and *both* log which field differs with both
//! values (the dialer sees it in the reply and sends `Abort`; the listener reports it on that
//! frame). A side that declines an authenticated peer for another reason says why the same
//! way (`Abort` from the dialer, `Refuse` from the listener, each a
//! [`baton_core::Refusal`] MAC'd over the handshake), so the refused side logs the true
//! reason rather than guessing from a closed connection. Clients' fingerprints are never
//! compared.
//!
//! ## Authenticated frames
//!
//! Every frame after the handshake is sealed under a key of its direction derived from the
//! handshake transcript (both nonces, so fresh per connection; see
//! [`handshake::SessionKeys`]):
//!
//! ```text
//! key(dialer → listener) = HMAC(secret, transcript("key-initiator"))
//! key(listener → dialer) = HMAC(secret, transcript("key-responder"))
//! payload = seq (u64 BE, from 0 per direction) | postcard Message | HMAC-SHA256(key, seq | message)[..16]
//! ```
//!
//! The receiver checks the tag, then the sequence number against a 64-frame anti-replay window
//! ([`wire`]): an altered or injected frame, a replayed one and one removed in flight each
//! close the connection with a `warn!` that says which (rate-limited per peer and kind), and
//! the sender redials. Frames are authenticated, not encrypted, unless TLS is on (below).
//!
//! ## TLS (feature `tls`)
//!
//! With [`TcpConfig::tls`] set (`[cluster.tls]` in the CLI's config) every connection, peer
//! and client, first runs a TLS 1.3 handshake with certificates on both sides, verified against
//! the CA (see [`tls`] for what is and is not verified); the handshake above and the sealed
//! frames then run inside the TLS stream, unchanged. The TLS handshake counts against the same
//! [`TcpConfig::handshake_timeout`] and pending slot. A TCP FIN without TLS `close_notify` (a
//! killed process) is the end of the stream, as over plain TCP, so [`baton_core::CloseKind`]
//! and the proof of death are the same in both modes. A plaintext dialer at a TLS listener (or
//! the reverse) is told so in a plain-text notice ([`handshake::TLS_MAGIC`]) and refused; both
//! sides log the reason.
//!
//! ## Connections
//!
//! Each node writes to a peer only over its **own outbound** connection to that peer's
//! advertised address, and reads only from **inbound** ones; so there are never two
//! connections to reconcile. When a node learns of a peer through an inbound connection, it
//! dials the peer back. [`Transport::send`] pushes onto a bounded per-peer queue drained by the
//! outbound connection's writer; it never waits.
//!
//! ## Outgoing queues: coalesced, never silently dropped
//!
//! A peer that reads slowly (or not at all) makes its queue grow. Heartbeats and heartbeat acks
//! are **coalesced**: a newer one replaces the unsent one of its kind (periodic heartbeat,
//! greeting, ack) in its place in the line, so at most three of them wait per peer. A newer
//! heartbeat carries the sender's whole state and an ack to a newer heartbeat renews a lease at
//! least as far as an older one; what an older one had that the newer lacks (the discovery
//! peer list, refused claims) is carried over. Every **other message** (votes, step-downs,
//! routed requests and answers, `Leave`, client answers, and a `Batch` whole, whatever its
//! parts) is kept in order, up to
//! [`TcpConfig::outbound_queue`] messages or [`TcpConfig::outbound_queue_bytes`] encoded
//! bytes. One more empties the queue and **closes the connection** as a reset would: the
//! engine hears `Disconnected { how: Abrupt }` (no proof of death), the dialer redials at once
//! and the redial reports the peer `Connected` again; a client's connection is closed. One
//! `warn!` per overflow names the peer and the queue's size (rate-limited like the others). A
//! message is never dropped on its own because a queue is full. (A single message larger than
//! [`TcpConfig::max_frame`] cannot be sent at all; the writer drops it with a `warn!`.)
//! The reasoning, message by message, is in `queue.rs`.
//!
//! ## Clients
//!
//! A tool such as `baton status` connects with [`TcpClient`]: the same handshake, flagged as a
//! client and without a listen address. Its messages arrive as
//! [`TransportEvent::ClientMessage`] from an id unique to the connection (`name@ip:port#n`,
//! which no node name can be); [`Transport::send`] to that id answers over the same connection
//! while it is open. Clients never produce `Connected`, `Disconnected` or `Dead`.
//!
//! ## Proof of death
//!
//! A closed connection alone proves nothing (a middlebox may have reset it), so when the
//! current inbound or outbound connection of a peer closes the transport reports
//! [`TransportEvent::Disconnected`] and redials the peer's advertised address **at once**:
//!
//! | the redial…                               | events                               |
//! | ----------------------------------------- | ------------------------------------ |
//! | is refused (`ECONNREFUSED`)               | `Dead{node, incarnation}`            |
//! | reaches a **new** incarnation             | `Dead{old}`, then `Connected{new}`   |
//! | reaches the **same** incarnation          | `Connected{same}` (no death)         |
//! | times out / gets no answer                | nothing; retried with capped backoff |
//!
//! An inbound handshake from a known node with a higher incarnation also proves the old one
//! dead (`Dead{old}`, `Connected{new}`). A peer's own connection of the *same* incarnation
//! does not end a probe: only this node's redial reports it `Connected` again (the peer may
//! have sent that handshake just before shutting down).
//!
//! After `Dead` the peer is no longer dialed; a later handshake from a newer incarnation (it
//! connects to us, or `connect(addr)` reaches it) reports it `Connected` again, while its dead
//! incarnation stays refused. [`Transport::shutdown`] closes the listener first, then stops
//! dialing, then closes every connection, so peers' redials are refused: they report this
//! node `Dead` within a round trip.
//!
//! ## Limits
//!
//! | limit | default | on excess |
//! | --- | --- | --- |
//! | frame payload ([`TcpConfig::max_frame`]) | 4 MiB (64 KiB during the handshake) | connection closed, `warn!` |
//! | handshake deadline ([`TcpConfig::handshake_timeout`]), also bounds connect | 500 ms | connection closed, `warn!` (rate-limited) |
//! | connections still in their handshake ([`TcpConfig::max_pending_handshakes`]) | 64, + 16 for addresses of known peers ([`TcpConfig::reserved_known_handshakes`]) | the oldest idle one is displaced; when none is idle the newcomer is refused; both told "rate limited" (see *Admission*) |
//! | … of them from one source IP ([`TcpConfig::max_pending_per_source`], [`TcpConfig::max_pending_known_source`]) | 8; 16 for the IP of a known peer | the same, within that address |
//! | undelivered messages per inbound connection ([`TcpConfig::inbound_queue`]) | 256 | reading pauses: TCP pushes back on the sender |
//! | queued outgoing messages per peer or client ([`TcpConfig::outbound_queue`]; heartbeats and acks coalesced, see above) | 65 536 | queue emptied and connection closed as a reset (`Disconnected { Abrupt }`, redial), `warn!` (rate-limited) |
//! | … their encoded bytes ([`TcpConfig::outbound_queue_bytes`]) | 16 MiB | the same |
//! | cluster name, node id, address in a `Hello` | 255 bytes | handshake refused |
//! | voters in a fingerprint (each name 255 bytes) | 128 | handshake refused; [`Transport::start`] fails |
//! | inbound connections kept per peer | 4 | the oldest is closed |
//! | reconnect backoff ([`TcpConfig::reconnect_min`] … [`TcpConfig::reconnect_max`]) | 50 ms … 1 s | the first redial after a close waits not at all; a peer silent for `failure_timeout + heartbeat` with its connection open gets a fresh one dialed beside it |
//!
//! ## Admission
//!
//! An accepted connection holds a *pending* slot until its handshake ends, bounded per source
//! IP and in all (table above), with a reserve for the IPs of peers this node authenticated
//! before. When a limit is reached the newcomer does not simply lose: the slot held longest
//! by a connection that has **sent nothing yet** is taken from it (then the oldest whose
//! `Hello` is incomplete), within the same address when that address is over its share, else
//! from the address holding the most slots. A genuine peer or client sends its `Hello` the
//! moment it connects, so the idle or trickling connections a flood is made of are the ones
//! displaced, even when the flood comes from the peers' own address (one host, loopback). Only
//! when every slot concerned holds a connection that already sent a valid `Hello` is the
//! newcomer refused. An idle pending connection costs its socket and a task, no buffer, so
//! memory returns to its baseline after a flood. A refused or displaced connection gets a
//! 5-byte unauthenticated notice (`BUSY` + a reason, see [`handshake::BUSY_MAGIC`]) before
//! it is closed, so the dialer (node or [`TcpClient`]) logs "rate limited" rather than a
//! guess; it retries with its backoff.
//!
//! ## Logs
//!
//! Repeated warnings of one kind for one peer (address or node) are rate-limited: the first
//! is logged, the next ones within 10 s are counted, and the first after that carries the
//! count (`… 312 more in the last 10 s`). A `connect` to an address that keeps failing backs
//! off (up to [`TcpConfig::reconnect_max`]; calls in between are skipped) and logs only its
//! first failure (none when the address is that of a peer known dead), then one INFO line
//! when the address answers again. A `connect` to a name (`localhost:7201`) that resolves to
//! the advertised address of this node or of a live peer is recognised as such and not dialed.
//!
//! Control events (`Connected`, `Dead`, …) are never dropped; there are a few per handshake or
//! close at most. Messages waiting in the event stream are bounded by the per-connection
//! inbound queue.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// `impl Debug` for a type that holds key material or sockets: its name and only the fields
/// listed, in order, as `#[derive(Debug)]` would print them. `field = value` prints `value`
/// instead of the field (`"<redacted>"`, or what `$this`, the value shown, computes). A macro: a
/// function cannot write an impl.
macro_rules! debug_showing {
    ($ty:ident $(as $this:ident)? { $($field:ident $(= $value:expr)?),+ $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $(let $this = self;)?
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &debug_showing!(@value self $field $($value)?)))+
                    .finish()
            }
        }
    };
    (@value $self:ident $field:ident) => {
        $self.$field
    };
    (@value $self:ident $field:ident $value:expr) => {
        $value
    };
}

mod admission;
mod client;
pub mod handshake;
mod net;
mod peers;
mod ports;
mod queue;
mod ratelimit;
mod stream;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

use crate::handshake::{HandshakeConfig, MAX_FIELD_LEN};
use crate::peers::{Item, State, Status};
use crate::queue::{Pushed, encoded_len, lock};
use async_trait::async_trait;
use baton_core::{
    Incarnation, LocalNode, Message, NodeId, Transport, TransportError, TransportEvent,
};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use crate::client::{ClientError, TcpClient};
pub use crate::ports::free_ports;
pub use crate::wire::DEFAULT_MAX_FRAME;

/// The default of [`TcpConfig::outbound_queue`]: generous, since only a peer that stopped
/// reading fills it (heartbeats and acks do not pile up; see the crate docs' *Outgoing queues*).
pub const DEFAULT_OUTBOUND_QUEUE: usize = 65_536;
/// The default of [`TcpConfig::outbound_queue_bytes`].
pub const DEFAULT_OUTBOUND_QUEUE_BYTES: usize = 16 << 20;

/// Settings of a [`TcpTransport`]. [`TcpConfig::new`] gives the defaults of the crate docs'
/// limits table.
#[derive(Clone)]
pub struct TcpConfig {
    /// Cluster name: peers of another cluster are refused.
    pub cluster: String,
    /// Shared secret: peers that cannot prove they know it are refused. Empty means anyone who
    /// knows the cluster name may join (a warning is logged at start).
    pub secret: Vec<u8>,
    /// Largest frame payload once authenticated, in bytes (default 4 MiB; during the handshake
    /// at most 64 KiB); larger frames close the connection and
    /// larger outgoing messages are dropped.
    pub max_frame: usize,
    /// Deadline for connect + handshake, both ways (default 500 ms: a handshake is four
    /// one-way trips; an accepted connection that has not authenticated by then is closed).
    pub handshake_timeout: Duration,
    /// First retry delay after a failed reconnect (default 50 ms); doubled per failure.
    pub reconnect_min: Duration,
    /// Largest retry delay (default 1 s: a healed link is back within a second).
    pub reconnect_max: Duration,
    /// Accepted connections allowed in their handshake at once (default 64); see the crate
    /// docs' *Admission*.
    pub max_pending_handshakes: usize,
    /// Of those, at most this many from one source IP (default 8).
    pub max_pending_per_source: usize,
    /// … or this many from the IP of a peer this node authenticated before (default 16: on one
    /// host every node shares the address).
    pub max_pending_known_source: usize,
    /// Slots beyond `max_pending_handshakes` that only IPs of known peers may take (default 16).
    pub reserved_known_handshakes: usize,
    /// Messages read from one connection but not yet taken by [`Transport::recv`] (default 256).
    pub inbound_queue: usize,
    /// Most outgoing messages queued per peer or client (default 65 536). Heartbeats and acks
    /// are coalesced (at most three wait); one message past this limit empties the queue and
    /// closes the connection, as a reset would, rather than dropping anything quietly (see the
    /// crate docs' *Outgoing queues*).
    pub outbound_queue: usize,
    /// Most encoded bytes of the messages queued per peer or client (default 16 MiB; never
    /// less than [`TcpConfig::max_frame`]); past it, the same as past `outbound_queue`.
    pub outbound_queue_bytes: usize,
    /// The address peers are told to reach this node at (in the handshake, and returned by
    /// [`Transport::start`] for the node's heartbeats). Default `None`: the bound listen
    /// address. Set it when peers reach this node through an address other than the one it
    /// binds: NAT, a port forward, a container's published port, or a test proxy. Peers
    /// redial this address to prove the node alive or dead, so it must lead to this listener.
    pub advertise: Option<String>,
    /// Mutual TLS for every connection, peer and client (feature `tls`; default `None`: plain
    /// TCP). A node with TLS refuses plaintext dialers and cannot reach plaintext listeners,
    /// and both sides log why. See [`tls`].
    #[cfg(feature = "tls")]
    pub tls: Option<tls::Tls>,
}

impl TcpConfig {
    /// A config for `cluster` with `secret` and every limit at its default.
    pub fn new(cluster: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        TcpConfig {
            cluster: cluster.into(),
            secret: secret.into(),
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_millis(500),
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(1),
            max_pending_handshakes: 64,
            max_pending_per_source: 8,
            max_pending_known_source: 16,
            reserved_known_handshakes: 16,
            inbound_queue: 256,
            outbound_queue: DEFAULT_OUTBOUND_QUEUE,
            outbound_queue_bytes: DEFAULT_OUTBOUND_QUEUE_BYTES,
            advertise: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Whether connections run over TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }
}

debug_showing!(TcpConfig as this {
    cluster, secret = "<redacted>", max_frame, handshake_timeout, reconnect_min, reconnect_max,
    max_pending_handshakes, max_pending_per_source, max_pending_known_source,
    reserved_known_handshakes, inbound_queue, outbound_queue, outbound_queue_bytes, advertise,
    tls = this.uses_tls(),
});

/// Shared by the transport handle and its tasks.
pub(crate) struct Inner {
    pub(crate) cfg: TcpConfig,
    pub(crate) state: Mutex<State>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Item>>,
    /// Cancelled at shutdown: every task and connection ends.
    pub(crate) root: CancellationToken,
    /// Cancelled first at shutdown: the listener closes before any connection does.
    listener: CancellationToken,
    acceptor: Mutex<Option<JoinHandle<()>>>,
    /// Cancelled second at shutdown: dialers and connection attempts end (a handshake in
    /// flight must not reach a peer after it saw this node's connections close).
    pub(crate) dialing: CancellationToken,
    /// Dialers and `connect` attempts.
    pub(crate) dial_tracker: TaskTracker,
    /// Connections (and everything else).
    pub(crate) tracker: TaskTracker,
    local_addr: Mutex<Option<SocketAddr>>,
    /// Pending-handshake slots of the listener.
    pub(crate) admission: Arc<admission::Admission>,
    /// Rate limit of repeated log lines, by kind and key (a peer address or node).
    logs: Mutex<ratelimit::LogLimiter<(&'static str, String)>>,
}

impl Inner {
    /// Whether to log an occurrence of `kind` for `key` now: `Some(suffix)` to append to the
    /// line (a summary of the occurrences held back), `None` to stay silent.
    pub(crate) fn limited(&self, kind: &'static str, key: impl ToString) -> Option<String> {
        let verdict = lock(&self.logs).check(&(kind, key.to_string()), tokio::time::Instant::now());
        match verdict {
            ratelimit::Verdict::HoldBack => None,
            v => Some(v.suffix()),
        }
    }
}

/// [`Transport`] over TCP. See the crate docs for the wire format, the handshake and the
/// reconnect rules.
pub struct TcpTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("cfg", &self.inner.cfg)
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl TcpTransport {
    /// A transport with `config`; nothing happens until [`Transport::start`].
    pub fn new(config: TcpConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbound_queue = queue::Limits {
            messages: config.outbound_queue,
            bytes: config.outbound_queue_bytes.max(config.max_frame),
        };
        let root = CancellationToken::new();
        let admission = admission::Admission::new(admission::Limits {
            total: config.max_pending_handshakes,
            reserved_known: config.reserved_known_handshakes,
            per_source: config.max_pending_per_source,
            per_known_source: config.max_pending_known_source,
        });
        TcpTransport {
            inner: Arc::new(Inner {
                cfg: config,
                state: Mutex::new(State::new(tx, outbound_queue)),
                events: tokio::sync::Mutex::new(rx),
                listener: root.child_token(),
                dialing: root.child_token(),
                root,
                acceptor: Mutex::new(None),
                dial_tracker: TaskTracker::new(),
                tracker: TaskTracker::new(),
                local_addr: Mutex::new(None),
                admission,
                logs: Mutex::new(ratelimit::LogLimiter::new(
                    ratelimit::LOG_WINDOW,
                    ratelimit::LOG_KEYS,
                )),
            }),
        }
    }

    /// The config this transport runs with.
    pub fn config(&self) -> &TcpConfig {
        &self.inner.cfg
    }

    /// The bound listen address, once started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        *lock(&self.inner.local_addr)
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        // Without `shutdown()`: stop the listener and every task; sockets close as the tasks
        // are dropped by the runtime.
        self.inner.listener.cancel();
        self.inner.root.cancel();
    }
}

fn check_name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_FIELD_LEN {
        Err(format!(
            "{what} must be 1 to {MAX_FIELD_LEN} bytes long, is {}",
            value.len()
        ))
    } else {
        Ok(())
    }
}

#[async_trait]
impl Transport for TcpTransport {
    async fn start(&self, me: &LocalNode) -> Result<String, TransportError> {
        let start_err = |reason: String| TransportError::Start {
            addr: me.listen.clone(),
            reason,
        };
        if self.inner.root.is_cancelled() {
            return Err(TransportError::Closed);
        }
        if lock(&self.inner.state).me.is_some() {
            return Err(start_err("transport already started".into()));
        }
        check_name("cluster name", &self.inner.cfg.cluster).map_err(start_err)?;
        check_name("node id", me.id.as_str()).map_err(start_err)?;
        if let Some(advertise) = &self.inner.cfg.advertise {
            check_name("advertised address", advertise).map_err(start_err)?;
        }
        // Peers would refuse a `Hello` whose fingerprint is out of bounds.
        handshake::check_fingerprint(&me.fingerprint).map_err(|e| start_err(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&me.listen)
            .await
            .map_err(|e| start_err(e.to_string()))?;
        let local = listener
            .local_addr()
            .map_err(|e| start_err(e.to_string()))?;
        if self.inner.cfg.advertise.is_none() && local.ip().is_unspecified() {
            warn!(
                "listening on {local}: peers are told to reconnect to this unspecified address; \
                 listen on a specific address so that proof of death works"
            );
        }
        if self.inner.cfg.secret.is_empty() {
            if self.inner.cfg.uses_tls() {
                warn!(
                    "cluster secret is empty: anyone with a certificate from cluster.tls.ca who knows the cluster name can join"
                );
            } else {
                warn!("cluster secret is empty: anyone who knows the cluster name can join");
            }
        }
        let advertised = self
            .inner
            .cfg
            .advertise
            .clone()
            .unwrap_or_else(|| local.to_string());
        {
            let mut st = lock(&self.inner.state);
            if st.me.is_some() {
                return Err(start_err("transport already started".into()));
            }
            st.me = Some(HandshakeConfig {
                cluster: self.inner.cfg.cluster.clone(),
                secret: self.inner.cfg.secret.clone(),
                node: me.id.clone(),
                incarnation: me.incarnation,
                addr: advertised.clone(),
                client: false,
                fingerprint: me.fingerprint.clone(),
            });
            st.takeover_silence = me.takeover_silence();
            st.death_proof = me.death_proof;
        }
        *lock(&self.inner.local_addr) = Some(local);
        let handle = tokio::spawn(net::run_acceptor(
            self.inner.clone(),
            listener,
            self.inner.listener.clone(),
        ));
        *lock(&self.inner.acceptor) = Some(handle);
        debug!(node = %me.id, incarnation = me.incarnation.get(), addr = %advertised, "tcp transport listening");
        Ok(advertised)
    }

    async fn connect(&self, addr: &str) {
        {
            let mut st = lock(&self.inner.state);
            if st.closed || self.inner.root.is_cancelled() {
                return;
            }
            let Some(me) = st.me.as_ref() else {
                st.emit(TransportEvent::ConnectFailed {
                    addr: addr.to_string(),
                    reason: "transport is not started".into(),
                });
                return;
            };
            if me.addr == addr
                || st.connected_to(addr)
                || st.connect_backing_off(addr)
                || !st.pending_addrs.insert(addr.into())
            {
                return;
            }
        }
        let dialing = self.inner.dialing.clone();
        let attempt = net::run_connect(self.inner.clone(), addr.to_string());
        self.inner.dial_tracker.spawn(async move {
            tokio::select! {
                _ = dialing.cancelled() => {}
                _ = attempt => {}
            }
        });
    }

    async fn send(&self, to: &NodeId, message: Message) -> Result<(), TransportError> {
        if self.inner.root.is_cancelled() {
            return Err(TransportError::Closed);
        }
        // Sized before taking the lock: it walks the whole message.
        let bytes = encoded_len(&message);
        // Pushed under the state lock, so that an overflow closes the connection the queue was
        // feeding, not one installed in between.
        let mut st = lock(&self.inner.state);
        let (queue, peer) = match st.peers.get(to) {
            Some(p) if p.status != Status::Dead => (p.queue.clone(), true),
            _ => match st.clients.get(to) {
                Some((q, _)) => (q.clone(), false),
                None => return Err(TransportError::Unreachable(to.clone())),
            },
        };
        let Pushed::Overflow(overflow) = queue.push(message, bytes) else {
            return Ok(());
        };
        let what = if peer {
            if st.overflowed(to) {
                "closed the connection as a reset and redialing"
            } else {
                "no connection was open; redialing"
            }
        } else {
            if let Some((_, token)) = st.clients.remove(to) {
                token.cancel();
            }
            "closed the client's connection"
        };
        drop(st);
        if let Some(more) = self.inner.limited("queue overflow", to) {
            let limits = queue.limits();
            warn!(
                node = %to,
                "outgoing queue to {to} full: {} messages, {} bytes waiting (limits {}, {} bytes), \
                 the peer reads too slowly or cannot be reached; {what} instead of dropping messages one by one{more}",
                overflow.messages, overflow.bytes, limits.messages, limits.bytes,
            );
        }
        Ok(())
    }

    async fn recv(&self) -> Option<TransportEvent> {
        if self.inner.root.is_cancelled() {
            return None;
        }
        let mut rx = tokio::select! {
            _ = self.inner.root.cancelled() => return None,
            rx = self.inner.events.lock() => rx,
        };
        tokio::select! {
            biased;
            _ = self.inner.root.cancelled() => None,
            item = rx.recv() => item.map(|(event, _slot)| event),
        }
    }

    async fn reincarnate(&self, incarnation: Incarnation) -> bool {
        let moved = lock(&self.inner.state).reincarnate(incarnation);
        if moved {
            info!(
                incarnation = incarnation.get(),
                "moved to a new incarnation; reconnecting to every peer"
            );
        }
        moved
    }

    async fn shutdown(&self) {
        lock(&self.inner.state).closed = true;
        // The listener goes first, so that peers redialing after their connection closes are
        // refused (proof of death) rather than left waiting in the accept backlog.
        self.inner.listener.cancel();
        let acceptor = lock(&self.inner.acceptor).take();
        if let Some(handle) = acceptor {
            let _ = handle.await;
        }
        // Then dialers and handshakes in flight, so that none completes at a peer after it
        // saw our connections close (it would report us connected once more).
        self.inner.dialing.cancel();
        self.inner.dial_tracker.close();
        self.inner.dial_tracker.wait().await;
        // Then every connection.
        lock(&self.inner.state).close_all();
        self.inner.root.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `debug_showing!`: the configurations print every field but the secret, in order.
    #[test]
    fn debug_of_the_configurations_hides_the_secret() {
        let cfg = TcpConfig::new("c", b"hunter2-secret".to_vec());
        let text = format!("{cfg:?}");
        assert!(
            text.starts_with(r#"TcpConfig { cluster: "c", secret: "<redacted>", max_frame: "#),
            "{text}"
        );
        assert!(text.ends_with("advertise: None, tls: false }"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let hs = format!(
            "{:?}",
            HandshakeConfig {
                cluster: "c".into(),
                secret: b"hunter2-secret".to_vec(),
                node: NodeId::new("n"),
                incarnation: baton_core::Incarnation(1),
                addr: "a:1".into(),
                client: false,
                fingerprint: Default::default(),
            }
        );
        assert!(hs.starts_with(r#"HandshakeConfig { cluster: "c", secret: "<redacted>", node: "#));
        assert!(!hs.contains("hunter2"), "{hs}");
    }
}
