//! The connection handshake as a pure, sans-IO state machine.
//!
//! Nothing here touches a socket or a clock: an [`Initiator`] (the side that dialed) and a
//! [`Responder`] (the side that accepted) each take the payload of one received frame at a time
//! and answer with the frame to send next, the authenticated peer, or a [`HandshakeError`]. The
//! caller brings the nonces (fresh random bytes), the framing and the deadline. That keeps the
//! code a fuzzer targets free of IO and makes every step unit-testable.
//!
//! # Transcript
//!
//! ```text
//! initiator                                         responder
//!   Hello{magic, version, cluster, node, incarnation, addr, nonce_i, client, fp_i}  ──▶
//!                                                     checks magic, version, cluster, fields
//!   ◀── HelloReply{Hello{magic, version, cluster, node, incarnation, addr, nonce_r, false, fp_r},
//!                  mac_r = HMAC(secret, transcript("responder"))}
//!   checks magic, version, cluster, fields, mac_r; then fp_r = fp_i (nodes only)
//!   Decision::Auth{mac_i = HMAC(secret, transcript("initiator"))}  ──▶
//!   or, declining the peer (fingerprints differ, duplicate name, …):
//!   Decision::Abort{refusal, mac_a = HMAC(secret, transcript("initiator-abort") | refusal)}  ──▶
//!                                                     checks mac_i (or mac_a); then fp_i = fp_r
//!                                                     (nodes only)
//!   ◀── Verdict::Accept                                 (the caller took the peer)
//!   or  Verdict::Refuse{refusal, mac_f = HMAC(secret, transcript("responder-refuse") | refusal)}
//! ```
//!
//! `transcript(label)` is the domain tag `baton-v1`, the label, the cluster name, the protocol
//! version and both identities (node, incarnation, advertised address, nonce, client flag and
//! the postcard bytes of the safety [`Fingerprint`]), each field length-prefixed so that no two
//! transcripts encode to the same bytes; an abort or refusal MAC adds the postcard bytes of the
//! [`Refusal`], length-prefixed as well. Each side's MAC covers the other side's fresh nonce,
//! so a recorded handshake replayed on a new connection fails (the responder picks a new
//! `nonce_r`); the labels keep one side's MAC from being reflected as the other's, and an
//! `Auth` from being turned into an `Abort` or back. MACs are compared in constant time
//! ([`hmac::Mac::verify_slice`]).
//!
//! # Fingerprints and refusals
//!
//! Two nodes (never a client) compare their [`Fingerprint`]s once the peer's MAC verified. The
//! initiator does so after the reply: on a mismatch it fails with
//! [`HandshakeError::Fingerprint`] and leaves an `Abort` frame to send
//! ([`Initiator::take_abort`]). The responder replies normally even to a differing fingerprint,
//! so that the initiator sees both values; on the initiator's next frame (`Abort` or `Auth`,
//! MAC verified) it fails with its own [`HandshakeError::Fingerprint`]. So both sides log the
//! field and both values.
//!
//! Beyond that the caller may decline an authenticated peer: the initiator with
//! [`Initiator::abort`] instead of sending `Auth` (the responder fails with
//! [`HandshakeError::Aborted`]), the responder with [`Responder::refuse`] instead of the
//! `Accept` frame (the initiator fails with [`HandshakeError::Refused`]). A refusal is MAC'd like
//! the rest, so only a peer that knows the secret, in this very handshake, can make a node
//! believe it was refused. On the wire a [`Refusal::Fingerprint`] is in its sender's view
//! (`ours` = the sender's values); every [`Refusal`] this module hands out is in the local
//! node's view (`ours` = ours).
//!
//! # What a stranger learns
//!
//! A refused peer learns nothing but the closed connection: no frame ever carries the expected
//! cluster name or anything derived from the secret before the peer proved it knows it (the
//! responder's `mac_r` is keyed but bound to the initiator's nonce, so it is useless elsewhere).
//! A peer that names the right cluster does see the responder's `Hello` before it proved the
//! secret: its node id, incarnation, address and fingerprint (voter names and timings). A
//! refusal's details (such as where a duplicate runs) go only to a peer whose MAC verified.
//!
//! Every frame's payload is postcard. [`Hello`] starts with the magic bytes and the version, so
//! a peer of another protocol version (whose `Hello` may no longer decode) is still told apart
//! from a stranger. Decoding requires the whole payload to be consumed, and every string and
//! list a peer sends is bounded.

use baton_core::{
    Fingerprint, FingerprintMismatch, Incarnation, NodeId, PROTOCOL_VERSION, Refusal,
};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The first four bytes of every `Hello` payload.
pub const MAGIC: [u8; 4] = *b"BATN";
/// Length of a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Longest accepted cluster name, node id or advertised address, in bytes; also the longest
/// voter name and quorum mode of a fingerprint, and the longest node id, address and field name
/// of a refusal.
pub const MAX_FIELD_LEN: usize = 255;
/// Most voters a fingerprint may list.
pub const MAX_VOTERS: usize = 128;
/// Longest value shown in a fingerprint refusal (`ours`, `theirs`), in bytes; longer ones are
/// cut (at a character boundary, ending in `…`) before they are sent.
pub const MAX_REFUSAL_TEXT: usize = 1024;
/// Domain-separation tag at the start of every MAC'd transcript.
pub const DOMAIN: &[u8] = b"baton-v1";
/// Payload of the responder's final frame when it accepts: [`Verdict::Accept`], encoded.
pub const ACCEPT: [u8; 1] = [0];

/// The first four bytes of a listener's *busy* notice: a frame sent, unauthenticated, in place
/// of the `HelloReply` to a connection the listener will not take (too many unauthenticated
/// connections from its address, or in all), right before it closes the connection. It is
/// followed by one [`BusyReason`] byte. Being unauthenticated, it only ever makes a dialer log
/// the reason and retry later, never decide anything.
pub const BUSY_MAGIC: [u8; 4] = *b"BUSY";

/// Why a listener is busy (the byte after [`BUSY_MAGIC`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyReason {
    /// Too many unauthenticated connections from the dialer's address (`1`).
    Source,
    /// Too many unauthenticated connections in all (`2`).
    Total,
    /// Any other byte: a future reason.
    Other(u8),
}

impl std::fmt::Display for BusyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusyReason::Source => {
                f.write_str("rate limited: too many unauthenticated connections from this address")
            }
            BusyReason::Total => f.write_str("rate limited: too many unauthenticated connections"),
            BusyReason::Other(n) => write!(f, "rate limited (reason {n})"),
        }
    }
}

/// The busy notice for `reason`: [`BUSY_MAGIC`] and the reason byte.
pub fn busy_frame(reason: BusyReason) -> [u8; 5] {
    let code = match reason {
        BusyReason::Source => 1,
        BusyReason::Total => 2,
        BusyReason::Other(n) => n,
    };
    let [a, b, c, d] = BUSY_MAGIC;
    [a, b, c, d, code]
}

/// The reason of a busy notice, if `frame` is one.
pub fn parse_busy(frame: &[u8]) -> Option<BusyReason> {
    match frame {
        [a, b, c, d, code] if [*a, *b, *c, *d] == BUSY_MAGIC => Some(match code {
            1 => BusyReason::Source,
            2 => BusyReason::Total,
            n => BusyReason::Other(*n),
        }),
        _ => None,
    }
}

/// The first four bytes of a *TLS mode* notice: a frame sent, unauthenticated and in plain
/// text, by a listener that met a dialer of the other mode (a plaintext `Hello` at a node with
/// `[cluster.tls]`, a TLS `ClientHello` at a node without), right before it closes the
/// connection. It is followed by one [`TlsNotice`] byte. Like the busy notice it only ever
/// makes the dialer log the true reason.
pub const TLS_MAGIC: [u8; 4] = *b"TLS?";

/// What a [`TLS_MAGIC`] notice says about the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsNotice {
    /// The listener requires TLS; the dialer spoke plain text (`1`).
    Required,
    /// The listener does not use TLS; the dialer sent a TLS `ClientHello` (`2`).
    Unsupported,
}

impl std::fmt::Display for TlsNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsNotice::Required => f.write_str(
                "the peer requires TLS ([cluster.tls] is set there) and this side has no [cluster.tls]",
            ),
            TlsNotice::Unsupported => f.write_str(
                "the peer does not use TLS (no [cluster.tls] there) and this side has [cluster.tls]",
            ),
        }
    }
}

/// The TLS mode notice: [`TLS_MAGIC`] and the notice byte.
pub fn tls_notice_frame(notice: TlsNotice) -> [u8; 5] {
    let code = match notice {
        TlsNotice::Required => 1,
        TlsNotice::Unsupported => 2,
    };
    let [a, b, c, d] = TLS_MAGIC;
    [a, b, c, d, code]
}

/// The notice of a TLS mode frame, if `frame` is one.
pub fn parse_tls_notice(frame: &[u8]) -> Option<TlsNotice> {
    match frame {
        [a, b, c, d, 1] if [*a, *b, *c, *d] == TLS_MAGIC => Some(TlsNotice::Required),
        [a, b, c, d, 2] if [*a, *b, *c, *d] == TLS_MAGIC => Some(TlsNotice::Unsupported),
        _ => None,
    }
}

/// A handshake nonce: fresh random bytes per connection and side.
pub type Nonce = [u8; NONCE_LEN];

/// The first frame each way: who is speaking, and a fresh nonce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sender's cluster name.
    pub cluster: String,
    /// The sender's node id.
    pub node: NodeId,
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// The address the sender listens on (where to reconnect to it).
    pub addr: String,
    /// The sender's fresh nonce.
    pub nonce: Nonce,
    /// The sender is a client (a CLI such as `baton status`), not a cluster node: it has no
    /// listen address (`addr` may be empty), is never dialed back and never counts as a peer.
    pub client: bool,
    /// What the sender's safety depends on; two nodes whose fingerprints differ refuse each
    /// other. A client's is never compared.
    pub fingerprint: Fingerprint,
}

/// The responder's answer to a [`Hello`]: its own `Hello` and its proof of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The responder's identity and nonce.
    pub hello: Hello,
    /// `HMAC(secret, transcript("responder"))`.
    pub mac: [u8; MAC_LEN],
}

/// The initiator's second frame: its proof of the secret, or why it declines the responder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Go on: `HMAC(secret, transcript("initiator"))`.
    Auth {
        /// The initiator's MAC.
        mac: [u8; MAC_LEN],
    },
    /// The initiator declines the responder, and says why.
    Abort {
        /// Why, in the initiator's view.
        refusal: Refusal,
        /// `HMAC(secret, transcript("initiator-abort") | refusal)`.
        mac: [u8; MAC_LEN],
    },
}

/// The responder's final frame: it took the initiator, or refuses it and says why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The connection now carries messages ([`ACCEPT`]).
    Accept,
    /// The responder refuses the initiator.
    Refuse {
        /// Why, in the responder's view.
        refusal: Refusal,
        /// `HMAC(secret, transcript("responder-refuse") | refusal)`.
        mac: [u8; MAC_LEN],
    },
}

/// Who this side is and what it shares with its cluster.
#[derive(Clone)]
pub struct HandshakeConfig {
    /// Cluster name; peers of another cluster are refused.
    pub cluster: String,
    /// The shared secret both sides prove knowledge of.
    pub secret: Vec<u8>,
    /// This node.
    pub node: NodeId,
    /// This process's incarnation.
    pub incarnation: Incarnation,
    /// This node's advertised listen address (empty for a client).
    pub addr: String,
    /// This side is a client, not a node (only ever an initiator).
    pub client: bool,
    /// This node's safety fingerprint ([`baton_core::LocalNode::fingerprint`]); nodes whose
    /// fingerprint differs are refused. Clients send the default, which is never compared.
    pub fingerprint: Fingerprint,
}

debug_showing!(HandshakeConfig {
    cluster, secret = "<redacted>", node, incarnation, addr, client, fingerprint,
});

impl HandshakeConfig {
    fn hello(&self, nonce: Nonce) -> Hello {
        Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            incarnation: self.incarnation,
            addr: self.addr.clone(),
            nonce,
            client: self.client,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// The authenticated peer a handshake ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its node id.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: Incarnation,
    /// Its advertised listen address (empty for a client).
    pub addr: String,
    /// It is a client, not a node.
    pub client: bool,
}

impl PeerInfo {
    fn of(hello: &Hello) -> Self {
        PeerInfo {
            node: hello.node.clone(),
            incarnation: hello.incarnation,
            addr: hello.addr.clone(),
            client: hello.client,
        }
    }
}

/// Why a handshake failed. The `Display` text is meant for the local log; nothing of it is sent
/// to the peer (a refusal is sent by [`Initiator::abort`] and [`Responder::refuse`] only).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The payload does not start with [`MAGIC`]: not a baton peer.
    #[error("not a baton peer (bad magic bytes)")]
    BadMagic,
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: peer speaks {theirs}, we speak {ours}")]
    Version {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// The peer belongs to another cluster.
    #[error("wrong cluster: peer is in {theirs:?}, we are in {ours:?}")]
    Cluster {
        /// Ours.
        ours: String,
        /// The peer's.
        theirs: String,
    },
    /// The MAC did not verify: the peer does not know the cluster secret, or it replayed an
    /// old handshake.
    #[error(
        "authentication failed: peer does not know the cluster secret (or replayed a handshake)"
    )]
    BadMac,
    /// A field of the peer's `Hello` is empty or too long.
    #[error("invalid {field} in hello: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The payload does not decode as the expected handshake frame.
    #[error("malformed {expected} frame: {reason}")]
    Malformed {
        /// The frame expected at this point.
        expected: &'static str,
        /// Why it does not decode.
        reason: String,
    },
    /// The peer is this very node (we dialed our own address).
    #[error("connected to ourselves")]
    SelfConnection,
    /// A frame arrived after the handshake finished or failed.
    #[error("unexpected frame: the handshake is already over")]
    Finished,
    /// The authenticated peer's safety fingerprint differs from ours (`ours` = this node's
    /// value). Both sides report it: the initiator on the reply (and sends an abort, see
    /// [`Initiator::take_abort`]), the responder on the initiator's next frame.
    #[error("refusing the peer: {0}")]
    Fingerprint(FingerprintMismatch),
    /// The authenticated responder refused us ([`Verdict::Refuse`]); in our view.
    #[error("refused by the peer: {0}")]
    Refused(Refusal),
    /// The authenticated initiator declined us ([`Decision::Abort`]); in our view.
    #[error("the peer declined the connection: {0}")]
    Aborted(Refusal),
    /// The listener sent a busy notice ([`BUSY_MAGIC`], unauthenticated) instead of its reply.
    #[error("refused by the peer: {0} (try again later)")]
    Busy(BusyReason),
    /// The listener sent a TLS mode notice ([`TLS_MAGIC`], unauthenticated): the two sides
    /// disagree on `[cluster.tls]`.
    #[error("refused by the peer: {0}")]
    TlsMode(TlsNotice),
}

fn decode_exact<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    expected: &'static str,
) -> Result<T, HandshakeError> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(HandshakeError::Malformed {
            expected,
            reason: format!("{} trailing bytes", rest.len()),
        }),
        Err(e) => Err(HandshakeError::Malformed {
            expected,
            reason: e.to_string(),
        }),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails to serialize sequences of unknown length and types with custom
    // serializers that error; the handshake frames have neither, so this never yields an empty
    // frame in practice (and an empty frame would merely be refused by the peer).
    postcard::to_allocvec(value).unwrap_or_default()
}

impl Hello {
    /// Encodes this `Hello` as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl HelloReply {
    /// Encodes this reply as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl Decision {
    /// Encodes this decision as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl Verdict {
    /// Encodes this verdict as a frame payload.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

/// Checks magic and version from the first bytes alone, so that a peer of another version is
/// reported as such even when the rest of its `Hello` has another shape.
fn check_prefix(bytes: &[u8]) -> Result<(), HandshakeError> {
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(HandshakeError::BadMagic);
    }
    match postcard::take_from_bytes::<([u8; 4], u16)>(bytes) {
        Ok(((_, version), _)) if version == PROTOCOL_VERSION => Ok(()),
        Ok(((_, theirs), _)) => Err(HandshakeError::Version {
            ours: PROTOCOL_VERSION,
            theirs,
        }),
        Err(e) => Err(HandshakeError::Malformed {
            expected: "hello",
            reason: e.to_string(),
        }),
    }
}

/// Why `value` is not 1 to `max` bytes long, if it is not.
fn bad_len(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        Some("empty".into())
    } else if value.len() > max {
        Some(format!("{} bytes, at most {max} allowed", value.len()))
    } else {
        None
    }
}

fn check_field(field: &'static str, value: &str) -> Result<(), HandshakeError> {
    match bad_len(value, MAX_FIELD_LEN) {
        Some(reason) => Err(HandshakeError::InvalidField { field, reason }),
        None => Ok(()),
    }
}

/// Checks that `fingerprint` fits the bounds a `Hello` allows: at most [`MAX_VOTERS`] voters,
/// each name and the quorum mode 1 to [`MAX_FIELD_LEN`] bytes. A transport checks its own at
/// start, so that peers do not refuse it.
pub fn check_fingerprint(fingerprint: &Fingerprint) -> Result<(), HandshakeError> {
    if fingerprint.voters.len() > MAX_VOTERS {
        return Err(HandshakeError::InvalidField {
            field: "fingerprint.voters",
            reason: format!(
                "{} voters, at most {MAX_VOTERS} allowed",
                fingerprint.voters.len()
            ),
        });
    }
    for voter in &fingerprint.voters {
        check_field("fingerprint.voters", voter.as_str())?;
    }
    check_field("fingerprint.quorum", &fingerprint.quorum)
}

/// Validates a peer's `Hello` against our config (magic and version were checked already).
fn check_hello(cfg: &HandshakeConfig, hello: &Hello) -> Result<(), HandshakeError> {
    check_field("cluster", &hello.cluster)?;
    if hello.cluster != cfg.cluster {
        return Err(HandshakeError::Cluster {
            ours: cfg.cluster.clone(),
            theirs: hello.cluster.clone(),
        });
    }
    check_field("node", hello.node.as_str())?;
    check_fingerprint(&hello.fingerprint)?;
    if hello.client && hello.addr.is_empty() {
        return Ok(());
    }
    check_field("addr", &hello.addr)?;
    Ok(())
}

/// Decodes and validates a `Hello` payload.
pub fn decode_hello(cfg: &HandshakeConfig, bytes: &[u8]) -> Result<Hello, HandshakeError> {
    check_prefix(bytes)?;
    let hello: Hello = decode_exact(bytes, "hello")?;
    check_hello(cfg, &hello)?;
    Ok(hello)
}

/// The fingerprint mismatch between two hellos, when both are nodes' (a client's fingerprint is
/// never compared).
fn mismatch(ours: &Hello, theirs: &Hello) -> Option<FingerprintMismatch> {
    if ours.client || theirs.client {
        return None;
    }
    ours.fingerprint.mismatch(&theirs.fingerprint)
}

/// Cuts `s` to at most `max` bytes at a character boundary, ending in `…` when cut.
fn cut(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push(ellipsis);
}

/// `refusal` cut to the bounds a receiver checks ([`check_refusal`]), so that our own refusals
/// always arrive.
fn bounded(mut refusal: Refusal) -> Refusal {
    match &mut refusal {
        Refusal::DuplicateName { node, addr, .. } => {
            let mut name = node.as_str().to_string();
            cut(&mut name, MAX_FIELD_LEN);
            *node = NodeId::new(name);
            cut(addr, MAX_FIELD_LEN);
        }
        Refusal::StaleIncarnation { node, .. } => {
            let mut name = node.as_str().to_string();
            cut(&mut name, MAX_FIELD_LEN);
            *node = NodeId::new(name);
        }
        Refusal::Fingerprint(m) => {
            cut(&mut m.field, MAX_FIELD_LEN);
            cut(&mut m.ours, MAX_REFUSAL_TEXT);
            cut(&mut m.theirs, MAX_REFUSAL_TEXT);
        }
        Refusal::ShuttingDown => {}
    }
    refusal
}

/// Checks the bounds of a received refusal (strings may be empty, but not long).
fn check_refusal(refusal: &Refusal, expected: &'static str) -> Result<(), HandshakeError> {
    let too_long = |what: &str, value: &str, max: usize| {
        if value.len() > max {
            Err(HandshakeError::Malformed {
                expected,
                reason: format!("{what}: {} bytes, at most {max} allowed", value.len()),
            })
        } else {
            Ok(())
        }
    };
    match refusal {
        Refusal::DuplicateName { node, addr, .. } => {
            too_long("refusal node", node.as_str(), MAX_FIELD_LEN)?;
            too_long("refusal addr", addr, MAX_FIELD_LEN)
        }
        Refusal::StaleIncarnation { node, .. } => {
            too_long("refusal node", node.as_str(), MAX_FIELD_LEN)
        }
        Refusal::Fingerprint(m) => {
            too_long("refusal field", &m.field, MAX_FIELD_LEN)?;
            too_long("refusal value", &m.ours, MAX_REFUSAL_TEXT)?;
            too_long("refusal value", &m.theirs, MAX_REFUSAL_TEXT)
        }
        Refusal::ShuttingDown => Ok(()),
    }
}

/// A refusal received from the peer, turned into our view: a fingerprint mismatch is sent in
/// its sender's view (`ours` = the sender's values).
fn our_view(refusal: Refusal) -> Refusal {
    match refusal {
        Refusal::Fingerprint(m) => Refusal::Fingerprint(FingerprintMismatch {
            field: m.field,
            ours: m.theirs,
            theirs: m.ours,
        }),
        other => other,
    }
}

/// Which side computes a MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that dialed.
    Initiator,
    /// The side that accepted.
    Responder,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Initiator => b"initiator",
            Role::Responder => b"responder",
        }
    }

    /// The label of a refusal sent by this side: an initiator's abort, a responder's refusal.
    fn refusal_label(self) -> &'static [u8] {
        match self {
            Role::Initiator => b"initiator-abort",
            Role::Responder => b"responder-refuse",
        }
    }
}

fn put(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    // Every field is length-prefixed: the transcript is injective.
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn keyed_transcript(
    secret: &[u8],
    label: &[u8],
    initiator: &Hello,
    responder: &Hello,
) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed, short ones padded), so
    // `new_from_slice` cannot fail; the fallback keeps this function total all the same.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    put(&mut mac, DOMAIN);
    put(&mut mac, label);
    put(&mut mac, initiator.cluster.as_bytes());
    mac.update(&initiator.version.to_be_bytes());
    for hello in [initiator, responder] {
        put(&mut mac, hello.node.as_str().as_bytes());
        mac.update(&hello.incarnation.get().to_be_bytes());
        put(&mut mac, hello.addr.as_bytes());
        put(&mut mac, &hello.nonce);
        mac.update(&[u8::from(hello.client)]);
        put(&mut mac, &encode(&hello.fingerprint));
    }
    mac
}

/// `HMAC-SHA256(secret, transcript(role, initiator, responder))`.
pub fn transcript_mac(
    secret: &[u8],
    role: Role,
    initiator: &Hello,
    responder: &Hello,
) -> [u8; MAC_LEN] {
    keyed_transcript(secret, role.label(), initiator, responder)
        .finalize()
        .into_bytes()
        .into()
}

/// Verifies `tag` against the transcript in constant time.
pub fn verify_transcript_mac(
    secret: &[u8],
    role: Role,
    initiator: &Hello,
    responder: &Hello,
    tag: &[u8],
) -> Result<(), HandshakeError> {
    keyed_transcript(secret, role.label(), initiator, responder)
        .verify_slice(tag)
        .map_err(|_| HandshakeError::BadMac)
}

fn keyed_refusal(
    secret: &[u8],
    by: Role,
    initiator: &Hello,
    responder: &Hello,
    refusal: &Refusal,
) -> Hmac<Sha256> {
    let mut mac = keyed_transcript(secret, by.refusal_label(), initiator, responder);
    put(&mut mac, &encode(refusal));
    mac
}

/// The MAC of a refusal sent by `by` (an initiator's [`Decision::Abort`], a responder's
/// [`Verdict::Refuse`]): `HMAC-SHA256(secret, transcript(label, initiator, responder) |
/// refusal)`, `refusal` as sent (in the sender's view).
pub fn refusal_mac(
    secret: &[u8],
    by: Role,
    initiator: &Hello,
    responder: &Hello,
    refusal: &Refusal,
) -> [u8; MAC_LEN] {
    keyed_refusal(secret, by, initiator, responder, refusal)
        .finalize()
        .into_bytes()
        .into()
}

fn verify_refusal_mac(
    secret: &[u8],
    by: Role,
    initiator: &Hello,
    responder: &Hello,
    refusal: &Refusal,
    tag: &[u8],
) -> Result<(), HandshakeError> {
    keyed_refusal(secret, by, initiator, responder, refusal)
        .verify_slice(tag)
        .map_err(|_| HandshakeError::BadMac)
}

/// The keys that seal the frames of one connection after its handshake, one per direction
/// ([`crate::wire::FrameSealer`], [`crate::wire::FrameOpener`]):
///
/// ```text
/// key(initiator → responder) = HMAC(secret, transcript("key-initiator"))
/// key(responder → initiator) = HMAC(secret, transcript("key-responder"))
/// ```
///
/// with the transcript of the MACs above (so both nonces, fresh per connection): only the two
/// ends of this very handshake know them.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Seals what this side sends.
    pub send: [u8; 32],
    /// Opens what this side receives.
    pub recv: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(<redacted>)")
    }
}

fn session_keys(secret: &[u8], me: Role, initiator: &Hello, responder: &Hello) -> SessionKeys {
    let key = |label: &[u8]| -> [u8; 32] {
        keyed_transcript(secret, label, initiator, responder)
            .finalize()
            .into_bytes()
            .into()
    };
    let i2r = key(b"key-initiator");
    let r2i = key(b"key-responder");
    match me {
        Role::Initiator => SessionKeys {
            send: i2r,
            recv: r2i,
        },
        Role::Responder => SessionKeys {
            send: r2i,
            recv: i2r,
        },
    }
}

/// What to do after feeding a frame to a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `frame` and wait for the peer's next one. `peer` is set once the peer's identity is
    /// authenticated (the initiator knows it after verifying the reply, before sending `Auth`:
    /// it may still decline the peer, e.g. when it is redundant (drop the connection) or
    /// refused (send [`Initiator::abort`] instead of `frame`)).
    Reply {
        /// The frame to send.
        frame: Vec<u8>,
        /// The authenticated peer, when known.
        peer: Option<PeerInfo>,
    },
    /// The handshake is complete. Send `frame` (if any: the responder's `Accept`) *after*
    /// accepting the peer, then the connection carries messages. A responder that cannot take
    /// the peer sends [`Responder::refuse`] instead.
    Done {
        /// The last frame to send.
        frame: Option<Vec<u8>>,
        /// The authenticated peer.
        peer: PeerInfo,
    },
}

#[derive(Clone)]
enum InitiatorState {
    AwaitReply,
    /// The reply verified; waiting for the verdict (or for the caller's [`Initiator::abort`]).
    AwaitVerdict {
        peer: PeerInfo,
        theirs: Box<Hello>,
    },
    Over,
}

/// The dialing side of the handshake.
#[derive(Clone)]
pub struct Initiator {
    cfg: HandshakeConfig,
    hello: Hello,
    state: InitiatorState,
    /// The abort frame left by a fingerprint mismatch, for [`Initiator::take_abort`].
    abort: Option<Vec<u8>>,
    /// Set once the responder's reply verified (boxed: the machine stays small).
    keys: Option<Box<SessionKeys>>,
}

impl Initiator {
    /// Starts a handshake with a fresh `nonce`; returns the machine and the first frame to send.
    pub fn new(cfg: HandshakeConfig, nonce: Nonce) -> (Self, Vec<u8>) {
        let hello = cfg.hello(nonce);
        let frame = hello.encode();
        (
            Initiator {
                cfg,
                hello,
                state: InitiatorState::AwaitReply,
                abort: None,
                keys: None,
            },
            frame,
        )
    }

    /// Feeds the payload of the next frame received. After an error the machine is over and
    /// refuses every further frame. After [`HandshakeError::Fingerprint`], send the frame of
    /// [`Initiator::take_abort`] before closing, so that the responder learns why.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, InitiatorState::Over);
        if !matches!(state, InitiatorState::Over)
            && let Some(reason) = parse_busy(frame)
        {
            return Err(HandshakeError::Busy(reason));
        }
        if !matches!(state, InitiatorState::Over)
            && let Some(notice) = parse_tls_notice(frame)
        {
            return Err(HandshakeError::TlsMode(notice));
        }
        match state {
            InitiatorState::AwaitReply => {
                check_prefix(frame)?;
                let reply: HelloReply = decode_exact(frame, "hello reply")?;
                check_hello(&self.cfg, &reply.hello)?;
                if reply.hello.client {
                    return Err(HandshakeError::InvalidField {
                        field: "client",
                        reason: "the accepting side claims to be a client".into(),
                    });
                }
                verify_transcript_mac(
                    &self.cfg.secret,
                    Role::Responder,
                    &self.hello,
                    &reply.hello,
                    &reply.mac,
                )?;
                if !self.cfg.client
                    && reply.hello.node == self.cfg.node
                    && reply.hello.incarnation == self.cfg.incarnation
                {
                    return Err(HandshakeError::SelfConnection);
                }
                if let Some(m) = mismatch(&self.hello, &reply.hello) {
                    self.abort =
                        Some(self.abort_frame(&reply.hello, Refusal::Fingerprint(m.clone())));
                    return Err(HandshakeError::Fingerprint(m));
                }
                let mac =
                    transcript_mac(&self.cfg.secret, Role::Initiator, &self.hello, &reply.hello);
                let peer = PeerInfo::of(&reply.hello);
                self.keys = Some(Box::new(session_keys(
                    &self.cfg.secret,
                    Role::Initiator,
                    &self.hello,
                    &reply.hello,
                )));
                self.state = InitiatorState::AwaitVerdict {
                    peer: peer.clone(),
                    theirs: Box::new(reply.hello),
                };
                Ok(Step::Reply {
                    frame: Decision::Auth { mac }.encode(),
                    peer: Some(peer),
                })
            }
            InitiatorState::AwaitVerdict { peer, theirs } => {
                match decode_exact::<Verdict>(frame, "verdict")? {
                    Verdict::Accept => Ok(Step::Done { frame: None, peer }),
                    Verdict::Refuse { refusal, mac } => {
                        verify_refusal_mac(
                            &self.cfg.secret,
                            Role::Responder,
                            &self.hello,
                            &theirs,
                            &refusal,
                            &mac,
                        )?;
                        check_refusal(&refusal, "verdict")?;
                        Err(HandshakeError::Refused(our_view(refusal)))
                    }
                }
            }
            InitiatorState::Over => Err(HandshakeError::Finished),
        }
    }

    /// Declines the responder instead of sending the `Auth` frame of the [`Step::Reply`] that
    /// authenticated it: returns the `Abort` frame to send (then close the connection); the
    /// responder fails with [`HandshakeError::Aborted`]. Ends the machine. Valid only while the
    /// verdict is awaited (the reply verified, no verdict yet); otherwise there is no verified
    /// responder to tell and it returns an empty `Vec` (send nothing, just close).
    pub fn abort(&mut self, refusal: Refusal) -> Vec<u8> {
        match std::mem::replace(&mut self.state, InitiatorState::Over) {
            InitiatorState::AwaitVerdict { theirs, .. } => self.abort_frame(&theirs, refusal),
            _ => Vec::new(),
        }
    }

    /// The keys of the connection's frames, once the responder authenticated (use them after
    /// [`Step::Done`]).
    pub fn session_keys(&self) -> Option<&SessionKeys> {
        self.keys.as_deref()
    }

    /// The `Abort` frame left by a fingerprint mismatch ([`HandshakeError::Fingerprint`] from
    /// [`Initiator::on_frame`]): send it before closing. `None` otherwise, and once taken.
    pub fn take_abort(&mut self) -> Option<Vec<u8>> {
        self.abort.take()
    }

    fn abort_frame(&self, theirs: &Hello, refusal: Refusal) -> Vec<u8> {
        let refusal = bounded(refusal);
        let mac = refusal_mac(
            &self.cfg.secret,
            Role::Initiator,
            &self.hello,
            theirs,
            &refusal,
        );
        Decision::Abort { refusal, mac }.encode()
    }
}

#[derive(Clone)]
enum ResponderState {
    AwaitHello,
    AwaitDecision {
        theirs: Box<Hello>,
        ours: Box<Hello>,
        /// How the initiator's fingerprint differs from ours, reported once its MAC verified.
        mismatch: Option<FingerprintMismatch>,
    },
    Over,
}

/// The accepting side of the handshake.
#[derive(Clone)]
pub struct Responder {
    cfg: HandshakeConfig,
    nonce: Nonce,
    state: ResponderState,
    claims_our_identity: bool,
    /// Both hellos (initiator's, ours) once the initiator's `Auth` verified: what a
    /// [`Responder::refuse`] is MAC'd over.
    authenticated: Option<(Box<Hello>, Box<Hello>)>,
}

impl Responder {
    /// Waits for a peer's `Hello`; `nonce` must be fresh random bytes.
    pub fn new(cfg: HandshakeConfig, nonce: Nonce) -> Self {
        Responder {
            cfg,
            nonce,
            state: ResponderState::AwaitHello,
            claims_our_identity: false,
            authenticated: None,
        }
    }

    /// The keys of the connection's frames, once the initiator's `Auth` verified (use them
    /// after [`Step::Done`]).
    pub fn session_keys(&self) -> Option<SessionKeys> {
        self.authenticated
            .as_ref()
            .map(|(theirs, ours)| session_keys(&self.cfg.secret, Role::Responder, theirs, ours))
    }

    /// Whether the peer's `Hello` named this very node and incarnation: most likely this node
    /// dialed itself, and the other side will drop the connection quietly.
    pub fn claims_our_identity(&self) -> bool {
        self.claims_our_identity
    }

    /// Feeds the payload of the next frame received. After an error the machine is over and
    /// refuses every further frame.
    ///
    /// The reply to a `Hello` is sent even when the initiator's fingerprint differs; the
    /// mismatch is reported as [`HandshakeError::Fingerprint`] on the initiator's next frame,
    /// once its MAC verified (a frame whose MAC fails is [`HandshakeError::BadMac`]).
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, ResponderState::Over);
        match state {
            ResponderState::AwaitHello => {
                let theirs = decode_hello(&self.cfg, frame)?;
                self.claims_our_identity = !theirs.client
                    && theirs.node == self.cfg.node
                    && theirs.incarnation == self.cfg.incarnation;
                let ours = self.cfg.hello(self.nonce);
                let mac = transcript_mac(&self.cfg.secret, Role::Responder, &theirs, &ours);
                let reply = HelloReply {
                    hello: ours.clone(),
                    mac,
                }
                .encode();
                self.state = ResponderState::AwaitDecision {
                    mismatch: mismatch(&ours, &theirs),
                    theirs: Box::new(theirs),
                    ours: Box::new(ours),
                };
                Ok(Step::Reply {
                    frame: reply,
                    peer: None,
                })
            }
            ResponderState::AwaitDecision {
                theirs,
                ours,
                mismatch,
            } => match decode_exact::<Decision>(frame, "decision")? {
                Decision::Auth { mac } => {
                    verify_transcript_mac(&self.cfg.secret, Role::Initiator, &theirs, &ours, &mac)?;
                    let peer = PeerInfo::of(&theirs);
                    self.authenticated = Some((theirs, ours));
                    if let Some(m) = mismatch {
                        return Err(HandshakeError::Fingerprint(m));
                    }
                    Ok(Step::Done {
                        frame: Some(ACCEPT.to_vec()),
                        peer,
                    })
                }
                Decision::Abort { refusal, mac } => {
                    verify_refusal_mac(
                        &self.cfg.secret,
                        Role::Initiator,
                        &theirs,
                        &ours,
                        &refusal,
                        &mac,
                    )?;
                    check_refusal(&refusal, "decision")?;
                    Err(match mismatch {
                        Some(m) => HandshakeError::Fingerprint(m),
                        None => HandshakeError::Aborted(our_view(refusal)),
                    })
                }
            },
            ResponderState::Over => Err(HandshakeError::Finished),
        }
    }

    /// Refuses the authenticated initiator instead of sending the `Accept` frame of
    /// [`Step::Done`] (e.g. the caller's peer table refuses it): returns the `Refuse` frame to
    /// send (then close the connection); the initiator fails with [`HandshakeError::Refused`].
    /// Valid once the initiator's `Auth` verified (after `Done`, or after a
    /// [`HandshakeError::Fingerprint`] reported on that `Auth`); before, nothing may be told
    /// to an unauthenticated peer and it returns an empty `Vec` (send nothing, just close).
    pub fn refuse(&self, refusal: Refusal) -> Vec<u8> {
        let Some((theirs, ours)) = &self.authenticated else {
            return Vec::new();
        };
        let refusal = bounded(refusal);
        let mac = refusal_mac(&self.cfg.secret, Role::Responder, theirs, ours, &refusal);
        Verdict::Refuse { refusal, mac }.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> Fingerprint {
        Fingerprint {
            voters: vec![NodeId::new("a"), NodeId::new("b"), NodeId::new("c")],
            ..Fingerprint::default()
        }
    }

    fn cfg(node: &str, secret: &[u8]) -> HandshakeConfig {
        HandshakeConfig {
            cluster: "demo".into(),
            secret: secret.to_vec(),
            node: NodeId::new(node),
            incarnation: Incarnation(7),
            addr: format!("{node}.local:1"),
            client: false,
            fingerprint: fingerprint(),
        }
    }

    fn client(node: &str, secret: &[u8]) -> HandshakeConfig {
        HandshakeConfig {
            addr: String::new(),
            client: true,
            fingerprint: Fingerprint::default(),
            ..cfg(node, secret)
        }
    }

    /// Runs a full handshake; returns what each side learned.
    fn run(a: HandshakeConfig, b: HandshakeConfig) -> Result<(PeerInfo, PeerInfo), HandshakeError> {
        let (mut init, hello) = Initiator::new(a, [1; NONCE_LEN]);
        let mut resp = Responder::new(b, [2; NONCE_LEN]);
        let Step::Reply { frame: reply, .. } = resp.on_frame(&hello)? else {
            panic!("responder must reply to hello")
        };
        let Step::Reply {
            frame: auth,
            peer: Some(_),
        } = init.on_frame(&reply)?
        else {
            panic!("initiator must send auth")
        };
        let Step::Done {
            frame: Some(accept),
            peer: seen_by_b,
        } = resp.on_frame(&auth)?
        else {
            panic!("responder must finish")
        };
        let Step::Done {
            peer: seen_by_a, ..
        } = init.on_frame(&accept)?
        else {
            panic!("initiator must finish")
        };
        Ok((seen_by_a, seen_by_b))
    }

    /// Both machines after the reply went through: the initiator authenticated the responder
    /// and returned its `Auth` frame.
    fn to_decision(a: HandshakeConfig, b: HandshakeConfig) -> (Initiator, Responder, Vec<u8>) {
        let (mut init, hello) = Initiator::new(a, [1; NONCE_LEN]);
        let mut resp = Responder::new(b, [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!("responder must reply to hello")
        };
        let Ok(Step::Reply {
            frame: auth,
            peer: Some(_),
        }) = init.on_frame(&reply)
        else {
            panic!("initiator must send auth")
        };
        (init, resp, auth)
    }

    /// What a fresh responder under `b` (nonce 0) answers to `hello`.
    fn answer(b: &HandshakeConfig, hello: &Hello) -> Result<Step, HandshakeError> {
        Responder::new(b.clone(), [0; NONCE_LEN]).on_frame(&hello.encode())
    }

    /// `result` is the refusal of the field `field`.
    #[track_caller]
    fn assert_invalid_field<T: std::fmt::Debug>(result: Result<T, HandshakeError>, field: &str) {
        assert!(
            matches!(&result, Err(HandshakeError::InvalidField { field: f, .. }) if *f == field),
            "{result:?}"
        );
    }

    /// Each of `frames`, fed to its own copy of `machine`, is an error (malformed or a bad
    /// MAC), after which that copy is finished: `next`, the frame it waited for, is refused.
    #[track_caller]
    fn assert_each_rejected<M: Clone>(
        machine: &M,
        on_frame: fn(&mut M, &[u8]) -> Result<Step, HandshakeError>,
        frames: &[Vec<u8>],
        next: &[u8],
    ) {
        for f in frames {
            let mut m = machine.clone();
            let result = on_frame(&mut m, f);
            assert!(
                matches!(
                    result,
                    Err(HandshakeError::Malformed { .. } | HandshakeError::BadMac)
                ),
                "{f:?}: {result:?}"
            );
            assert_eq!(on_frame(&mut m, next), Err(HandshakeError::Finished));
        }
    }

    /// Runs a handshake between nodes whose fingerprints may differ; returns the initiator's
    /// error and what the responder made of the abort frame it was left (if any).
    fn mismatched(
        a: Fingerprint,
        b: Fingerprint,
    ) -> (HandshakeError, Result<Step, HandshakeError>) {
        let mut ca = cfg("a", b"s");
        ca.fingerprint = a;
        let mut cb = cfg("b", b"s");
        cb.fingerprint = b;
        let (mut init, hello) = Initiator::new(ca, [1; NONCE_LEN]);
        let mut resp = Responder::new(cb, [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!("the responder replies even to a differing fingerprint")
        };
        let err = init.on_frame(&reply).unwrap_err();
        let abort = init.take_abort().expect("an abort frame to send");
        assert_eq!(init.take_abort(), None, "taken once");
        assert_eq!(init.on_frame(&ACCEPT), Err(HandshakeError::Finished));
        (err, resp.on_frame(&abort))
    }

    fn refusal() -> Refusal {
        Refusal::DuplicateName {
            node: NodeId::new("a"),
            addr: "10.0.0.1:7101".into(),
            incarnation: Incarnation(5),
        }
    }

    #[test]
    fn good_handshake_authenticates_both_sides() {
        let (a_sees, b_sees) = run(cfg("a", b"s"), cfg("b", b"s")).unwrap();
        assert_eq!(a_sees.node, NodeId::new("b"));
        assert_eq!(b_sees.node, NodeId::new("a"));
        assert_eq!(b_sees.incarnation, Incarnation(7));
        assert_eq!(b_sees.addr, "a.local:1");
    }

    #[test]
    fn accept_is_the_encoded_verdict() {
        assert_eq!(Verdict::Accept.encode(), ACCEPT);
    }

    #[test]
    fn wrong_secret_fails_at_the_initiator() {
        assert_eq!(
            run(cfg("a", b"s"), cfg("b", b"t")).unwrap_err(),
            HandshakeError::BadMac
        );
    }

    #[test]
    fn wrong_cluster_is_refused_by_the_responder() {
        let mut other = cfg("a", b"s");
        other.cluster = "prod".into();
        let err = run(other, cfg("b", b"s")).unwrap_err();
        assert!(matches!(err, HandshakeError::Cluster { .. }), "{err:?}");
    }

    #[test]
    fn self_connection_is_detected() {
        assert_eq!(
            run(cfg("a", b"s"), cfg("a", b"s")).unwrap_err(),
            HandshakeError::SelfConnection
        );
    }

    #[test]
    fn bad_magic_and_version_are_told_apart() {
        let b = cfg("b", b"s");
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.magic = *b"HTTP";
        assert_eq!(answer(&b, &hello).unwrap_err(), HandshakeError::BadMagic);
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            answer(&b, &hello).unwrap_err(),
            HandshakeError::Version {
                ours: PROTOCOL_VERSION,
                theirs: PROTOCOL_VERSION + 1
            }
        );
    }

    #[test]
    fn replayed_auth_fails_against_a_fresh_nonce() {
        let a = cfg("a", b"s");
        let b = cfg("b", b"s");
        // A recorded, successful handshake.
        let (mut init, hello) = Initiator::new(a, [1; NONCE_LEN]);
        let mut resp = Responder::new(b.clone(), [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!()
        };
        let Ok(Step::Reply { frame: auth, .. }) = init.on_frame(&reply) else {
            panic!()
        };
        // Replayed against a responder with a new nonce.
        let mut replayed = Responder::new(b, [3; NONCE_LEN]);
        assert!(replayed.on_frame(&hello).is_ok());
        assert_eq!(
            replayed.on_frame(&auth).unwrap_err(),
            HandshakeError::BadMac
        );
    }

    #[test]
    fn replayed_abort_and_refusal_fail_against_fresh_nonces() {
        let b = cfg("b", b"s");
        // A recorded abort ...
        let (mut init, _, _) = to_decision(cfg("a", b"s"), b.clone());
        let abort = init.abort(refusal());
        let (_, hello) = Initiator::new(cfg("a", b"s"), [1; NONCE_LEN]);
        let mut replayed = Responder::new(b.clone(), [3; NONCE_LEN]);
        assert!(replayed.on_frame(&hello).is_ok());
        assert_eq!(replayed.on_frame(&abort), Err(HandshakeError::BadMac));
        // ... and a recorded refusal, replayed to an initiator with a new nonce.
        let (mut init, mut resp, auth) = to_decision(cfg("a", b"s"), b.clone());
        assert!(matches!(resp.on_frame(&auth), Ok(Step::Done { .. })));
        let refuse = resp.refuse(Refusal::ShuttingDown);
        assert_eq!(
            init.on_frame(&refuse),
            Err(HandshakeError::Refused(Refusal::ShuttingDown))
        );
        let (mut fresh, hello) = Initiator::new(cfg("a", b"s"), [4; NONCE_LEN]);
        let mut resp = Responder::new(b, [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!()
        };
        assert!(fresh.on_frame(&reply).is_ok());
        assert_eq!(fresh.on_frame(&refuse), Err(HandshakeError::BadMac));
    }

    #[test]
    fn reflected_responder_mac_is_not_an_initiator_mac() {
        let a = cfg("a", b"s").hello([1; NONCE_LEN]);
        let b = cfg("b", b"s").hello([2; NONCE_LEN]);
        let r = transcript_mac(b"s", Role::Responder, &a, &b);
        assert_eq!(
            verify_transcript_mac(b"s", Role::Initiator, &a, &b, &r),
            Err(HandshakeError::BadMac)
        );
        // Nor is an abort's MAC a refusal's, or an Auth's an abort's.
        let abort = refusal_mac(b"s", Role::Initiator, &a, &b, &refusal());
        assert_eq!(
            verify_refusal_mac(b"s", Role::Responder, &a, &b, &refusal(), &abort),
            Err(HandshakeError::BadMac)
        );
        let auth = transcript_mac(b"s", Role::Initiator, &a, &b);
        assert_eq!(
            verify_refusal_mac(b"s", Role::Initiator, &a, &b, &refusal(), &auth),
            Err(HandshakeError::BadMac)
        );
    }

    #[test]
    fn the_mac_covers_the_fingerprint() {
        let a = cfg("a", b"s").hello([1; NONCE_LEN]);
        let b = cfg("b", b"s").hello([2; NONCE_LEN]);
        let tag = transcript_mac(b"s", Role::Responder, &a, &b);
        let mut a2 = a.clone();
        a2.fingerprint.heartbeat_ms += 1;
        assert_eq!(
            verify_transcript_mac(b"s", Role::Responder, &a2, &b, &tag),
            Err(HandshakeError::BadMac)
        );
        let mut b2 = b.clone();
        b2.fingerprint.voters.pop();
        assert_eq!(
            verify_transcript_mac(b"s", Role::Responder, &a, &b2, &tag),
            Err(HandshakeError::BadMac)
        );
        // A fingerprint rewritten on the path makes the reply fail at the initiator.
        let (mut init, hello) = Initiator::new(cfg("a", b"s"), [1; NONCE_LEN]);
        let mut resp = Responder::new(cfg("b", b"s"), [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!()
        };
        let mut reply: HelloReply = postcard::from_bytes(&reply).unwrap();
        reply.hello.fingerprint.quorum = "none".into();
        assert_eq!(init.on_frame(&reply.encode()), Err(HandshakeError::BadMac));
    }

    #[test]
    fn matching_fingerprints_pass() {
        let mut a = cfg("a", b"s");
        let mut b = cfg("b", b"s");
        a.fingerprint.failure_timeout_ms = 900;
        b.fingerprint.failure_timeout_ms = 900;
        assert!(run(a, b).is_ok());
    }

    #[test]
    fn a_fingerprint_mismatch_on_any_field_fails_on_both_sides_with_both_values() {
        let base = fingerprint();
        let cases: Vec<(&str, Fingerprint, &str, &str)> = vec![
            (
                "voters",
                Fingerprint {
                    voters: vec![NodeId::new("c"), NodeId::new("d"), NodeId::new("e")],
                    ..base.clone()
                },
                "[a, b, c]",
                "[c, d, e]",
            ),
            (
                "quorum",
                Fingerprint {
                    quorum: "none".into(),
                    ..base.clone()
                },
                "majority",
                "none",
            ),
            (
                "heartbeat_ms",
                Fingerprint {
                    heartbeat_ms: 250,
                    ..base.clone()
                },
                "100",
                "250",
            ),
            (
                "failure_timeout_ms",
                Fingerprint {
                    failure_timeout_ms: 5000,
                    ..base.clone()
                },
                "500",
                "5000",
            ),
            (
                "protocol_version",
                Fingerprint {
                    protocol_version: PROTOCOL_VERSION + 1,
                    ..base.clone()
                },
                "2",
                "3",
            ),
        ];
        for (field, other, ours, theirs) in cases {
            // The initiator has `base`, the responder `other`.
            let (at_initiator, at_responder) = mismatched(base.clone(), other.clone());
            let want_i = FingerprintMismatch {
                field: field.into(),
                ours: ours.into(),
                theirs: theirs.into(),
            };
            assert_eq!(at_initiator, HandshakeError::Fingerprint(want_i), "{field}");
            let want_r = FingerprintMismatch {
                field: field.into(),
                ours: theirs.into(),
                theirs: ours.into(),
            };
            assert_eq!(
                at_responder,
                Err(HandshakeError::Fingerprint(want_r)),
                "{field}"
            );
            for (err, here, there) in [
                (at_initiator.to_string(), ours, theirs),
                (at_responder.unwrap_err().to_string(), theirs, ours),
            ] {
                assert!(err.contains(field), "{err}");
                assert!(
                    err.contains(&format!("is {here} here but {there} at the peer")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn a_responder_reports_its_own_mismatch_even_on_an_auth() {
        // An initiator that does not compare (an older build, or a hand-made one) sends Auth:
        // the responder still refuses, once the MAC verified.
        let mut b = cfg("b", b"s");
        b.fingerprint.heartbeat_ms = 250;
        let (mut init, hello) = Initiator::new(cfg("a", b"s"), [1; NONCE_LEN]);
        let mut resp = Responder::new(b, [2; NONCE_LEN]);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!()
        };
        let reply: HelloReply = postcard::from_bytes(&reply).unwrap();
        let initiator_hello: Hello = postcard::from_bytes(&hello).unwrap();
        let mac = transcript_mac(b"s", Role::Initiator, &initiator_hello, &reply.hello);
        let err = resp.on_frame(&Decision::Auth { mac }.encode()).unwrap_err();
        assert!(
            matches!(&err, HandshakeError::Fingerprint(m) if m.field == "heartbeat_ms" && m.ours == "250" && m.theirs == "100"),
            "{err:?}"
        );
        // The authenticated initiator may be told so.
        let refuse = resp.refuse(Refusal::Fingerprint(FingerprintMismatch {
            field: "heartbeat_ms".into(),
            ours: "250".into(),
            theirs: "100".into(),
        }));
        assert!(!refuse.is_empty());
        // (The genuine initiator failed on the reply already, which leaves it over.)
        assert!(matches!(
            init.on_frame(&reply.encode()),
            Err(HandshakeError::Fingerprint(_))
        ));
        assert_eq!(init.on_frame(&refuse), Err(HandshakeError::Finished));
        // A forged Auth with a differing fingerprint is a MAC failure, not a mismatch report.
        let mut b = cfg("b", b"s");
        b.fingerprint.heartbeat_ms = 250;
        let mut resp = Responder::new(b, [2; NONCE_LEN]);
        assert!(resp.on_frame(&hello).is_ok());
        assert_eq!(
            resp.on_frame(&Decision::Auth { mac: [0; MAC_LEN] }.encode()),
            Err(HandshakeError::BadMac)
        );
    }

    #[test]
    fn clients_skip_the_fingerprint_comparison() {
        // A client sends the default fingerprint, which differs from the node's.
        assert_ne!(fingerprint(), Fingerprint::default());
        let (a_sees, b_sees) = run(client("cli", b"s"), cfg("b", b"s")).unwrap();
        assert!(b_sees.client);
        assert_eq!(a_sees.node, NodeId::new("b"));
        // Even a client with some other fingerprint.
        let mut odd = client("cli", b"s");
        odd.fingerprint.quorum = "none".into();
        assert!(run(odd, cfg("b", b"s")).is_ok());
    }

    #[test]
    fn an_abort_reaches_the_responder_with_its_refusal() {
        let (mut init, mut resp, _auth) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        let abort = init.abort(refusal());
        assert!(!abort.is_empty());
        assert_eq!(init.on_frame(&ACCEPT), Err(HandshakeError::Finished));
        assert_eq!(init.abort(refusal()), Vec::<u8>::new(), "ends the machine");
        let err = resp.on_frame(&abort).unwrap_err();
        assert_eq!(err, HandshakeError::Aborted(refusal()));
        assert_eq!(
            err.to_string(),
            "the peer declined the connection: duplicate node name: a is already running at \
             10.0.0.1:7101 (incarnation 5) and connected"
        );
        assert_eq!(resp.on_frame(&abort), Err(HandshakeError::Finished));
        // Nothing to refuse: the initiator never authenticated with an Auth.
        assert!(resp.refuse(Refusal::ShuttingDown).is_empty());
    }

    #[test]
    fn a_fingerprint_refusal_is_shown_in_the_receivers_view() {
        let sent = FingerprintMismatch {
            field: "quorum".into(),
            ours: "majority".into(),
            theirs: "none".into(),
        };
        let (mut init, mut resp, _) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        let abort = init.abort(Refusal::Fingerprint(sent.clone()));
        let err = resp.on_frame(&abort).unwrap_err();
        assert_eq!(
            err,
            HandshakeError::Aborted(Refusal::Fingerprint(FingerprintMismatch {
                field: "quorum".into(),
                ours: "none".into(),
                theirs: "majority".into(),
            }))
        );
        assert!(
            err.to_string()
                .contains("quorum is none here but majority at the peer"),
            "{err}"
        );
    }

    #[test]
    fn abort_before_the_reply_verified_has_nothing_to_send() {
        let (mut init, _) = Initiator::new(cfg("a", b"s"), [1; NONCE_LEN]);
        assert!(init.abort(refusal()).is_empty());
        assert_eq!(init.take_abort(), None);
    }

    #[test]
    fn a_refuse_verdict_reaches_the_initiator() {
        let (mut init, mut resp, auth) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        let Ok(Step::Done { peer, .. }) = resp.on_frame(&auth) else {
            panic!("responder must finish")
        };
        assert_eq!(peer.node, NodeId::new("a"));
        let stale = Refusal::StaleIncarnation {
            node: NodeId::new("a"),
            incarnation: Incarnation(7),
            known: Incarnation(9),
        };
        let refuse = resp.refuse(stale.clone());
        let err = init.on_frame(&refuse).unwrap_err();
        assert_eq!(err, HandshakeError::Refused(stale));
        assert!(
            err.to_string().starts_with(
                "refused by the peer: stale incarnation 7 of a: incarnation 9 is known"
            ),
            "{err}"
        );
        assert_eq!(init.on_frame(&ACCEPT), Err(HandshakeError::Finished));
        // Refusals after Done keep working (the caller decides after `Done`).
        let (mut init, mut resp, auth) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        assert!(resp.on_frame(&auth).is_ok());
        let err = init.on_frame(&resp.refuse(refusal())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "refused by the peer: duplicate node name: a is already running at 10.0.0.1:7101 \
             (incarnation 5) and connected"
        );
    }

    #[test]
    fn long_refusals_are_cut_to_what_the_peer_accepts() {
        let long = FingerprintMismatch {
            field: "voters".into(),
            ours: "é".repeat(MAX_REFUSAL_TEXT),
            theirs: "[a]".into(),
        };
        let (mut init, mut resp, _) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        let Err(HandshakeError::Aborted(Refusal::Fingerprint(m))) =
            resp.on_frame(&init.abort(Refusal::Fingerprint(long)))
        else {
            panic!("the abort must arrive")
        };
        assert!(m.theirs.len() <= MAX_REFUSAL_TEXT && m.theirs.ends_with('…'));
        assert_eq!(m.ours, "[a]");
    }

    #[test]
    fn tampered_and_garbage_decisions_are_errors() {
        let (init, resp, auth) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        let abort = init.clone().abort(refusal());
        let mut frames: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![2],
            vec![0xff; 40],
            ACCEPT.to_vec(),
            b"OK".to_vec(),
        ];
        for good in [&auth, &abort] {
            for i in 0..good.len() {
                let mut f = good.clone();
                f[i] ^= 0x01;
                frames.push(f);
            }
            frames.push(good[..good.len() - 1].to_vec());
            let mut longer = good.clone();
            longer.push(0);
            frames.push(longer);
        }
        // An abort whose refusal was swapped for another, with the old MAC.
        let Ok(Decision::Abort { mac, .. }) = postcard::from_bytes::<Decision>(&abort) else {
            panic!()
        };
        frames.push(
            Decision::Abort {
                refusal: Refusal::ShuttingDown,
                mac,
            }
            .encode(),
        );
        // An Auth's MAC presented as an abort's.
        let Ok(Decision::Auth { mac }) = postcard::from_bytes::<Decision>(&auth) else {
            panic!()
        };
        frames.push(
            Decision::Abort {
                refusal: refusal(),
                mac,
            }
            .encode(),
        );
        assert_each_rejected(&resp, Responder::on_frame, &frames, &auth);
    }

    #[test]
    fn tampered_and_garbage_verdicts_are_errors() {
        let (init, mut resp, auth) = to_decision(cfg("a", b"s"), cfg("b", b"s"));
        assert!(resp.on_frame(&auth).is_ok());
        let refuse = resp.refuse(refusal());
        let mut frames: Vec<Vec<u8>> = vec![
            vec![],
            vec![2],
            vec![0, 0],
            vec![0xff; 40],
            b"OK".to_vec(),
            auth.clone(),
        ];
        for i in 0..refuse.len() {
            let mut f = refuse.clone();
            f[i] ^= 0x01;
            frames.push(f);
        }
        frames.push(refuse[..refuse.len() - 1].to_vec());
        // A refusal MAC'd with another secret, or by the wrong role.
        let a = cfg("a", b"s").hello([1; NONCE_LEN]);
        let b = cfg("b", b"s").hello([2; NONCE_LEN]);
        for mac in [
            refusal_mac(b"t", Role::Responder, &a, &b, &refusal()),
            refusal_mac(b"s", Role::Initiator, &a, &b, &refusal()),
        ] {
            frames.push(
                Verdict::Refuse {
                    refusal: refusal(),
                    mac,
                }
                .encode(),
            );
        }
        // An oversized refusal, even with a valid MAC, is malformed.
        let huge = Refusal::DuplicateName {
            node: NodeId::new("a"),
            addr: "x".repeat(MAX_FIELD_LEN + 1),
            incarnation: Incarnation(1),
        };
        frames.push(
            Verdict::Refuse {
                mac: refusal_mac(b"s", Role::Responder, &a, &b, &huge),
                refusal: huge,
            }
            .encode(),
        );
        assert_each_rejected(&init, Initiator::on_frame, &frames, &ACCEPT);
        // The genuine one still works.
        let mut i = init.clone();
        assert_eq!(i.on_frame(&refuse), Err(HandshakeError::Refused(refusal())));
    }

    #[test]
    fn oversized_and_empty_fields_are_refused() {
        let b = cfg("b", b"s");
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.node = NodeId::new("x".repeat(MAX_FIELD_LEN + 1));
        assert_invalid_field(answer(&b, &hello), "node");
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.addr.clear();
        assert_invalid_field(answer(&b, &hello), "addr");
    }

    #[test]
    fn oversized_fingerprints_are_refused() {
        let b = cfg("b", b"s");
        let mut too_many = fingerprint();
        too_many.voters = (0..=MAX_VOTERS)
            .map(|i| NodeId::new(format!("n{i}")))
            .collect();
        let mut long_name = fingerprint();
        long_name
            .voters
            .push(NodeId::new("v".repeat(MAX_FIELD_LEN + 1)));
        let mut empty_name = fingerprint();
        empty_name.voters.push(NodeId::new(""));
        let mut long_quorum = fingerprint();
        long_quorum.quorum = "q".repeat(MAX_FIELD_LEN + 1);
        for (fp, field) in [
            (too_many, "fingerprint.voters"),
            (long_name, "fingerprint.voters"),
            (empty_name, "fingerprint.voters"),
            (long_quorum, "fingerprint.quorum"),
        ] {
            assert!(check_fingerprint(&fp).is_err());
            // From an initiator (even a client) ...
            for client in [false, true] {
                let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
                hello.client = client;
                hello.fingerprint = fp.clone();
                assert_invalid_field(answer(&b, &hello), field);
            }
            // ... and from a responder.
            let mut rb = b.clone();
            rb.fingerprint = fp;
            assert_invalid_field(run(cfg("a", b"s"), rb), field);
        }
        assert!(check_fingerprint(&fingerprint()).is_ok());
        assert!(check_fingerprint(&Fingerprint::default()).is_ok());
    }

    #[test]
    fn clients_need_no_address_but_cannot_accept() {
        let client = client("cli", b"s");
        let (_, b_sees) = run(client.clone(), cfg("b", b"s")).unwrap();
        assert!(b_sees.client);
        assert_eq!(b_sees.addr, "");
        // A responder pretending to be a client is refused.
        assert_invalid_field(run(cfg("a", b"s"), client), "client");
        // A node must advertise an address.
        let mut node = cfg("a", b"s");
        node.addr.clear();
        assert_invalid_field(run(node, cfg("b", b"s")), "addr");
    }

    #[test]
    fn trailing_bytes_and_extra_frames_are_refused() {
        let b = cfg("b", b"s");
        let mut bytes = cfg("a", b"s").hello([0; NONCE_LEN]).encode();
        bytes.push(0);
        let mut resp = Responder::new(b, [0; NONCE_LEN]);
        assert!(matches!(
            resp.on_frame(&bytes),
            Err(HandshakeError::Malformed { .. })
        ));
        assert_eq!(resp.on_frame(&[]), Err(HandshakeError::Finished));
    }
}
