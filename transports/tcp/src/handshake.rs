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
//!   Hello{magic, version, cluster, node, incarnation, addr, nonce_i, client}  ──▶
//!                                                     checks magic, version, cluster
//!   ◀── HelloReply{Hello{magic, version, cluster, node, incarnation, addr, nonce_r, false},
//!                  mac_r = HMAC(secret, transcript("responder"))}
//!   checks magic, version, cluster, mac_r
//!   Auth{mac_i = HMAC(secret, transcript("initiator"))}  ──▶
//!                                                     checks mac_i
//!   ◀── Accept ("OK")
//! ```
//!
//! `transcript(role)` is the domain tag `baton-v1`, the role label, the cluster name, the
//! protocol version and both identities (node, incarnation, advertised address, client flag)
//! with both nonces, each field length-prefixed so that no two transcripts encode to the same bytes. Each
//! side's MAC covers the other side's fresh nonce, so a recorded handshake replayed on a new
//! connection fails (the responder picks a new `nonce_r`); the role label keeps one side's MAC
//! from being reflected as the other's. MACs are compared in constant time
//! ([`hmac::Mac::verify_slice`]).
//!
//! A refused peer learns nothing but the closed connection: no frame ever carries the expected
//! cluster name or anything derived from the secret before the peer proved it knows it (the
//! responder's `mac_r` is keyed but bound to the initiator's nonce, so it is useless elsewhere).
//!
//! Every frame's payload is postcard. [`Hello`] starts with the magic bytes and the version, so
//! a peer of another protocol version (whose `Hello` may no longer decode) is still told apart
//! from a stranger. Decoding requires the whole payload to be consumed.

use baton_core::{NodeId, PROTOCOL_VERSION};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The first four bytes of every `Hello` payload.
pub const MAGIC: [u8; 4] = *b"BATN";
/// Length of a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Length of an HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Longest accepted cluster name, node id or advertised address, in bytes.
pub const MAX_FIELD_LEN: usize = 255;
/// Domain-separation tag at the start of every MAC'd transcript.
pub const DOMAIN: &[u8] = b"baton-v1";
/// Payload of the responder's final frame.
pub const ACCEPT: [u8; 2] = *b"OK";

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
    pub incarnation: u64,
    /// The address the sender listens on (where to reconnect to it).
    pub addr: String,
    /// The sender's fresh nonce.
    pub nonce: Nonce,
    /// The sender is a client (a CLI such as `baton status`), not a cluster node: it has no
    /// listen address (`addr` may be empty), is never dialed back and never counts as a peer.
    pub client: bool,
}

/// The responder's answer to a [`Hello`]: its own `Hello` and its proof of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The responder's identity and nonce.
    pub hello: Hello,
    /// `HMAC(secret, transcript("responder"))`.
    pub mac: [u8; MAC_LEN],
}

/// The initiator's proof of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth {
    /// `HMAC(secret, transcript("initiator"))`.
    pub mac: [u8; MAC_LEN],
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
    pub incarnation: u64,
    /// This node's advertised listen address (empty for a client).
    pub addr: String,
    /// This side is a client, not a node (only ever an initiator).
    pub client: bool,
}

impl std::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("cluster", &self.cluster)
            .field("secret", &"<redacted>")
            .field("node", &self.node)
            .field("incarnation", &self.incarnation)
            .field("addr", &self.addr)
            .field("client", &self.client)
            .finish()
    }
}

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
        }
    }
}

/// The authenticated peer a handshake ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its node id.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: u64,
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
/// to the peer.
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

impl Auth {
    /// Encodes this `Auth` as a frame payload.
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

fn check_field(field: &'static str, value: &str) -> Result<(), HandshakeError> {
    if value.is_empty() {
        return Err(HandshakeError::InvalidField {
            field,
            reason: "empty".into(),
        });
    }
    if value.len() > MAX_FIELD_LEN {
        return Err(HandshakeError::InvalidField {
            field,
            reason: format!("{} bytes, at most {MAX_FIELD_LEN} allowed", value.len()),
        });
    }
    Ok(())
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
}

fn put(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    // Every field is length-prefixed: the transcript is injective.
    mac.update(&(bytes.len() as u64).to_be_bytes());
    mac.update(bytes);
}

fn keyed_transcript(
    secret: &[u8],
    role: Role,
    initiator: &Hello,
    responder: &Hello,
) -> Hmac<Sha256> {
    // HMAC takes keys of any length (long ones are hashed, short ones padded), so
    // `new_from_slice` cannot fail; the fallback keeps this function total all the same.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    put(&mut mac, DOMAIN);
    put(&mut mac, role.label());
    put(&mut mac, initiator.cluster.as_bytes());
    mac.update(&initiator.version.to_be_bytes());
    for hello in [initiator, responder] {
        put(&mut mac, hello.node.as_str().as_bytes());
        mac.update(&hello.incarnation.to_be_bytes());
        put(&mut mac, hello.addr.as_bytes());
        put(&mut mac, &hello.nonce);
        mac.update(&[u8::from(hello.client)]);
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
    keyed_transcript(secret, role, initiator, responder)
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
    keyed_transcript(secret, role, initiator, responder)
        .verify_slice(tag)
        .map_err(|_| HandshakeError::BadMac)
}

/// What to do after feeding a frame to a handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Send `frame` and wait for the peer's next one. `peer` is set once the peer's identity is
    /// authenticated (the initiator knows it after verifying the reply, before sending `Auth`:
    /// it may still decide to drop the connection, e.g. when it is redundant).
    Reply {
        /// The frame to send.
        frame: Vec<u8>,
        /// The authenticated peer, when known.
        peer: Option<PeerInfo>,
    },
    /// The handshake is complete. Send `frame` (if any) *after* accepting the peer, then the
    /// connection carries messages.
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
    AwaitAccept(PeerInfo),
    Over,
}

/// The dialing side of the handshake.
#[derive(Clone)]
pub struct Initiator {
    cfg: HandshakeConfig,
    hello: Hello,
    state: InitiatorState,
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
            },
            frame,
        )
    }

    /// Feeds the payload of the next frame received. After an error the machine is over and
    /// refuses every further frame.
    pub fn on_frame(&mut self, frame: &[u8]) -> Result<Step, HandshakeError> {
        let state = std::mem::replace(&mut self.state, InitiatorState::Over);
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
                let mac =
                    transcript_mac(&self.cfg.secret, Role::Initiator, &self.hello, &reply.hello);
                let peer = PeerInfo::of(&reply.hello);
                self.state = InitiatorState::AwaitAccept(peer.clone());
                Ok(Step::Reply {
                    frame: Auth { mac }.encode(),
                    peer: Some(peer),
                })
            }
            InitiatorState::AwaitAccept(peer) => {
                if frame != ACCEPT {
                    return Err(HandshakeError::Malformed {
                        expected: "accept",
                        reason: format!("{} bytes that are not the accept marker", frame.len()),
                    });
                }
                Ok(Step::Done { frame: None, peer })
            }
            InitiatorState::Over => Err(HandshakeError::Finished),
        }
    }
}

#[derive(Clone)]
enum ResponderState {
    AwaitHello,
    AwaitAuth {
        theirs: Box<Hello>,
        ours: Box<Hello>,
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
}

impl Responder {
    /// Waits for a peer's `Hello`; `nonce` must be fresh random bytes.
    pub fn new(cfg: HandshakeConfig, nonce: Nonce) -> Self {
        Responder {
            cfg,
            nonce,
            state: ResponderState::AwaitHello,
            claims_our_identity: false,
        }
    }

    /// Whether the peer's `Hello` named this very node and incarnation: most likely this node
    /// dialed itself, and the other side will drop the connection quietly.
    pub fn claims_our_identity(&self) -> bool {
        self.claims_our_identity
    }

    /// Feeds the payload of the next frame received. After an error the machine is over and
    /// refuses every further frame.
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
                self.state = ResponderState::AwaitAuth {
                    theirs: Box::new(theirs),
                    ours: Box::new(ours),
                };
                Ok(Step::Reply {
                    frame: reply,
                    peer: None,
                })
            }
            ResponderState::AwaitAuth { theirs, ours } => {
                let auth: Auth = decode_exact(frame, "auth")?;
                verify_transcript_mac(
                    &self.cfg.secret,
                    Role::Initiator,
                    &theirs,
                    &ours,
                    &auth.mac,
                )?;
                Ok(Step::Done {
                    frame: Some(ACCEPT.to_vec()),
                    peer: PeerInfo::of(&theirs),
                })
            }
            ResponderState::Over => Err(HandshakeError::Finished),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(node: &str, secret: &[u8]) -> HandshakeConfig {
        HandshakeConfig {
            cluster: "demo".into(),
            secret: secret.to_vec(),
            node: NodeId::new(node),
            incarnation: 7,
            addr: format!("{node}.local:1"),
            client: false,
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

    #[test]
    fn good_handshake_authenticates_both_sides() {
        let (a_sees, b_sees) = run(cfg("a", b"s"), cfg("b", b"s")).unwrap();
        assert_eq!(a_sees.node, NodeId::new("b"));
        assert_eq!(b_sees.node, NodeId::new("a"));
        assert_eq!(b_sees.incarnation, 7);
        assert_eq!(b_sees.addr, "a.local:1");
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
        assert_eq!(
            Responder::new(b.clone(), [0; NONCE_LEN])
                .on_frame(&hello.encode())
                .unwrap_err(),
            HandshakeError::BadMagic
        );
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            Responder::new(b, [0; NONCE_LEN])
                .on_frame(&hello.encode())
                .unwrap_err(),
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
    fn reflected_responder_mac_is_not_an_initiator_mac() {
        let a = cfg("a", b"s").hello([1; NONCE_LEN]);
        let b = cfg("b", b"s").hello([2; NONCE_LEN]);
        let r = transcript_mac(b"s", Role::Responder, &a, &b);
        assert_eq!(
            verify_transcript_mac(b"s", Role::Initiator, &a, &b, &r),
            Err(HandshakeError::BadMac)
        );
    }

    #[test]
    fn oversized_and_empty_fields_are_refused() {
        let b = cfg("b", b"s");
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.node = NodeId::new("x".repeat(MAX_FIELD_LEN + 1));
        let err = Responder::new(b.clone(), [0; NONCE_LEN])
            .on_frame(&hello.encode())
            .unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::InvalidField { field: "node", .. }
        ));
        let mut hello = cfg("a", b"s").hello([0; NONCE_LEN]);
        hello.addr.clear();
        let err = Responder::new(b, [0; NONCE_LEN])
            .on_frame(&hello.encode())
            .unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::InvalidField { field: "addr", .. }
        ));
    }

    #[test]
    fn clients_need_no_address_but_cannot_accept() {
        let mut client = cfg("cli", b"s");
        client.client = true;
        client.addr.clear();
        let (_, b_sees) = run(client.clone(), cfg("b", b"s")).unwrap();
        assert!(b_sees.client);
        assert_eq!(b_sees.addr, "");
        // A responder pretending to be a client is refused.
        let err = run(cfg("a", b"s"), client).unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::InvalidField {
                field: "client",
                ..
            }
        ));
        // A node must advertise an address.
        let mut node = cfg("a", b"s");
        node.addr.clear();
        let err = run(node, cfg("b", b"s")).unwrap_err();
        assert!(matches!(
            err,
            HandshakeError::InvalidField { field: "addr", .. }
        ));
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
