//! The entry points that take bytes from the network or text from a config file, wrapped so that
//! the cargo-fuzz targets in `fuzz/` and the seeded corpus test (`tests/fuzz_corpus.rs`) drive
//! exactly the same code, with the same checks:
//!
//! - [`frame`]: `wire::decode_message` on the bytes, then the bytes as a TCP stream through the
//!   frame codec in chunks, each frame decoded; a decoded message must re-encode, and decode
//!   to a message with the same encoding (compared as bytes: NaN weights are legal).
//! - [`handshake`]: the handshake machines (`Initiator` / `Responder`) at every step, fed a
//!   sequence of frames; after an error or the end every further frame must be refused with
//!   `Finished`, authentication must succeed only for the genuine peer, and a refusal, an abort
//!   or a fingerprint mismatch must be reported only on the genuine (MAC'd) frame that carries
//!   it.
//! - [`config`]: `Config::from_toml_str`, without and with a file path; an accepted config must
//!   validate again.
//!
//! Each returns normally or panics (which the fuzzer reports as a crash).

use baton_core::config::Config;
use baton_core::{Fingerprint, Incarnation, Message, NodeId, Refusal};
use baton_transport_tcp::handshake::{
    ACCEPT, Decision, HandshakeConfig, HandshakeError, Hello, HelloReply, Initiator, NONCE_LEN,
    PeerInfo, Responder, Role, Step, decode_hello, transcript_mac,
};
use baton_transport_tcp::wire::{DEFAULT_MAX_FRAME, codec, decode_message, encode_message};
use bytes::BytesMut;
use std::path::Path;
use std::sync::OnceLock;
use tokio_util::codec::Decoder;

/// Feeds `data` to the message decoder, then through the frame codec as a byte stream.
pub fn frame(data: &[u8]) {
    if let Ok(m) = decode_message(data) {
        check_round_trip(&m);
    }
    // As a sealed frame: nothing from the wire opens without the key, and nothing panics;
    // the same bytes sealed under the key open to themselves.
    let key = [0x5a; 32];
    let mut opener = baton_transport_tcp::wire::FrameOpener::new(&key);
    assert!(opener.open(data).is_err() || data.len() >= 24);
    let sealed = baton_transport_tcp::wire::FrameSealer::new(&key).seal(data);
    assert_eq!(
        baton_transport_tcp::wire::FrameOpener::new(&key).open(&sealed),
        Ok(data)
    );
    // As a stream: chunk sizes come from the data itself, so a run is reproducible from the
    // input alone.
    let mut codec = codec(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut rest = data;
    let mut i = 0usize;
    'feed: while !rest.is_empty() {
        let take = (usize::from(data[i % data.len()]) % 61 + 1).min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    if let Ok(m) = decode_message(&f) {
                        check_round_trip(&m);
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
}

fn check_round_trip(m: &Message) {
    // Compared as bytes, not values: a peer may send a NaN weight, and NaN != NaN.
    let bytes = encode_message(m, usize::MAX).expect("a decoded message re-encodes");
    let again = decode_message(&bytes).expect("a re-encoded message decodes");
    let bytes_again = encode_message(&again, usize::MAX).expect("re-encodes");
    assert_eq!(
        bytes, bytes_again,
        "encode(decode(encode(m))) != encode(m): {m:?}"
    );
}

/// Where a [`handshake`] input starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Start {
    /// A responder waiting for a `Hello`.
    Responder = 0,
    /// A responder that answered the genuine initiator's `Hello`, waiting for `Auth`.
    ResponderAfterHello = 1,
    /// A node initiator waiting for the `HelloReply`.
    Initiator = 2,
    /// An initiator that verified the genuine reply, waiting for `Accept`.
    InitiatorAfterReply = 3,
    /// A client initiator waiting for the `HelloReply`.
    ClientInitiator = 4,
    /// A responder with an empty secret (a cluster without one), waiting for a `Hello`.
    OpenResponder = 5,
    /// A responder whose fingerprint differs from the initiator's, that answered the genuine
    /// initiator's `Hello`, waiting for its `Abort` (or an `Auth`).
    MismatchedResponder = 6,
}

/// Every [`Start`], in the order of its byte.
pub const STARTS: [Start; 7] = [
    Start::Responder,
    Start::ResponderAfterHello,
    Start::Initiator,
    Start::InitiatorAfterReply,
    Start::ClientInitiator,
    Start::OpenResponder,
    Start::MismatchedResponder,
];

/// Builds a [`handshake`] input: the start, then each frame with a 2-byte little-endian length.
pub fn handshake_input(start: Start, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![start as u8];
    for f in frames {
        let f = &f[..f.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(f.len() as u16).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Splits a [`handshake`] input into its start and frames (a short last length takes what is
/// left).
pub fn split_handshake_input(data: &[u8]) -> (Start, Vec<&[u8]>) {
    let Some((&first, mut rest)) = data.split_first() else {
        return (Start::Responder, vec![]);
    };
    let start = STARTS[usize::from(first) % STARTS.len()];
    let mut frames = Vec::new();
    while !rest.is_empty() && frames.len() < 8 {
        let len = if rest.len() >= 2 {
            let l = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
            l
        } else {
            let l = rest.len();
            rest = &[];
            l
        };
        let (f, r) = rest.split_at(len.min(rest.len()));
        frames.push(f);
        rest = r;
    }
    (start, frames)
}

/// The fixed identities, nonces and genuine frames the handshake entry point works with.
pub struct Genuine {
    /// The initiating node's config (node "a").
    pub initiator: HandshakeConfig,
    /// The responding node's config (node "b").
    pub responder: HandshakeConfig,
    /// The initiator's nonce.
    pub nonce_i: [u8; NONCE_LEN],
    /// The responder's nonce.
    pub nonce_r: [u8; NONCE_LEN],
    /// a's `Hello`.
    pub hello: Vec<u8>,
    /// b's `HelloReply` to it.
    pub reply: Vec<u8>,
    /// a's `Auth`.
    pub auth: Vec<u8>,
    /// b's `Accept`.
    pub accept: Vec<u8>,
    /// a's `Abort` (declining b, with [`duplicate`]) instead of its `Auth`.
    pub abort: Vec<u8>,
    /// b's `Refuse` (with [`duplicate`]) after a's `Auth`.
    pub refuse: Vec<u8>,
    /// A client's `Hello` (node "cli").
    pub client_hello: Vec<u8>,
    /// Node "b" with a fingerprint that differs from a's (another heartbeat).
    pub mismatched: HandshakeConfig,
    /// The mismatched b's `HelloReply` to a's `Hello`.
    pub mismatched_reply: Vec<u8>,
    /// The `Abort` a leaves after that reply (its fingerprint check failed).
    pub mismatch_abort: Vec<u8>,
    /// An `Auth` over that transcript, as an initiator that does not compare would send it.
    pub mismatch_auth: Vec<u8>,
}

/// The refusal of the genuine `Abort` and `Refuse` frames.
pub fn duplicate() -> Refusal {
    Refusal::DuplicateName {
        node: NodeId::new("b"),
        addr: "127.0.0.1:7001".into(),
        incarnation: Incarnation(41),
    }
}

/// The genuine handshake every [`handshake`] input is measured against.
pub fn genuine() -> &'static Genuine {
    static G: OnceLock<Genuine> = OnceLock::new();
    G.get_or_init(|| {
        let initiator = hs_config("a", false);
        let responder = hs_config("b", false);
        let nonce_i = [0x11; NONCE_LEN];
        let nonce_r = [0x22; NONCE_LEN];
        let (mut init, hello) = Initiator::new(initiator.clone(), nonce_i);
        let mut resp = Responder::new(responder.clone(), nonce_r);
        let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
            panic!("genuine hello refused")
        };
        let Ok(Step::Reply { frame: auth, .. }) = init.on_frame(&reply) else {
            panic!("genuine reply refused")
        };
        let abort = init.clone().abort(duplicate());
        let Ok(Step::Done {
            frame: Some(accept),
            ..
        }) = resp.on_frame(&auth)
        else {
            panic!("genuine auth refused")
        };
        let refuse = resp.refuse(duplicate());
        let (_, client_hello) = Initiator::new(hs_config("cli", true), nonce_i);

        let mut mismatched = responder.clone();
        mismatched.fingerprint.heartbeat_ms += 1;
        let (mut init, _) = Initiator::new(initiator.clone(), nonce_i);
        let Ok(Step::Reply {
            frame: mismatched_reply,
            ..
        }) = Responder::new(mismatched.clone(), nonce_r).on_frame(&hello)
        else {
            panic!("a mismatched responder must reply")
        };
        let Err(HandshakeError::Fingerprint(_)) = init.on_frame(&mismatched_reply) else {
            panic!("the initiator must see the mismatch")
        };
        let mismatch_abort = init.take_abort().expect("an abort frame");
        let (Ok(i_hello), Ok(r_reply)) = (
            postcard::from_bytes::<Hello>(&hello),
            postcard::from_bytes::<HelloReply>(&mismatched_reply),
        ) else {
            panic!("genuine frames decode")
        };
        let mismatch_auth = Decision::Auth {
            mac: transcript_mac(&initiator.secret, Role::Initiator, &i_hello, &r_reply.hello),
        }
        .encode();
        Genuine {
            initiator,
            responder,
            nonce_i,
            nonce_r,
            hello,
            reply,
            auth,
            accept,
            abort,
            refuse,
            client_hello,
            mismatched,
            mismatched_reply,
            mismatch_abort,
            mismatch_auth,
        }
    })
}

fn hs_config(node: &str, client: bool) -> HandshakeConfig {
    HandshakeConfig {
        cluster: "fuzz".into(),
        secret: b"fuzz secret".to_vec(),
        node: NodeId::new(node),
        incarnation: Incarnation(42),
        addr: if client {
            String::new()
        } else {
            format!("127.0.0.1:{}", 7000 + node.len())
        },
        client,
        fingerprint: if client {
            Fingerprint::default()
        } else {
            Fingerprint {
                voters: vec![NodeId::new("a"), NodeId::new("b")],
                ..Fingerprint::default()
            }
        },
    }
}

enum Machine {
    Init(Initiator),
    Resp(Responder),
}

impl Machine {
    fn on_frame(&mut self, f: &[u8]) -> Result<Step, HandshakeError> {
        match self {
            Machine::Init(m) => m.on_frame(f),
            Machine::Resp(m) => m.on_frame(f),
        }
    }

    /// An initiator's abort frame left by the last error.
    fn take_abort(&mut self) -> Option<Vec<u8>> {
        match self {
            Machine::Init(m) => m.take_abort(),
            Machine::Resp(_) => None,
        }
    }
}

/// Feeds the frames of `data` (see [`handshake_input`]) to a handshake machine.
pub fn handshake(data: &[u8]) {
    let g = genuine();
    let (start, frames) = split_handshake_input(data);
    let mut machine = match start {
        Start::Responder => Machine::Resp(Responder::new(g.responder.clone(), g.nonce_r)),
        Start::ResponderAfterHello => {
            let mut r = Responder::new(g.responder.clone(), g.nonce_r);
            r.on_frame(&g.hello).expect("genuine hello");
            Machine::Resp(r)
        }
        Start::Initiator => Machine::Init(Initiator::new(g.initiator.clone(), g.nonce_i).0),
        Start::InitiatorAfterReply => {
            let mut i = Initiator::new(g.initiator.clone(), g.nonce_i).0;
            i.on_frame(&g.reply).expect("genuine reply");
            Machine::Init(i)
        }
        Start::ClientInitiator => {
            Machine::Init(Initiator::new(hs_config("cli", true), g.nonce_i).0)
        }
        Start::OpenResponder => {
            let mut cfg = g.responder.clone();
            cfg.secret.clear();
            Machine::Resp(Responder::new(cfg, g.nonce_r))
        }
        Start::MismatchedResponder => {
            let mut r = Responder::new(g.mismatched.clone(), g.nonce_r);
            r.on_frame(&g.hello).expect("genuine hello");
            Machine::Resp(r)
        }
    };
    let mut over = false;
    let mut step_no = 0usize;
    for f in frames {
        let _ = decode_hello(&g.responder, f);
        let result = machine.on_frame(f);
        if over {
            assert_eq!(
                result,
                Err(HandshakeError::Finished),
                "a finished handshake took another frame"
            );
            continue;
        }
        match &result {
            Err(e) => {
                over = true;
                check_error(start, step_no, f, e);
                // An initiator leaves an abort frame exactly when its fingerprint check failed.
                assert_eq!(
                    machine.take_abort().is_some(),
                    matches!(
                        (&machine, e),
                        (Machine::Init(_), HandshakeError::Fingerprint(_))
                    ),
                    "abort frame after {e:?}"
                );
            }
            Ok(Step::Done { peer, .. }) => {
                over = true;
                check_done(start, step_no, f, peer);
            }
            Ok(Step::Reply {
                peer: Some(peer), ..
            }) => {
                // The initiator authenticated its peer: only the genuine responder proves it.
                assert_eq!(
                    *peer,
                    expected_peer(&g.responder),
                    "an initiator authenticated a forged reply"
                );
            }
            Ok(Step::Reply { peer: None, .. }) => {}
        }
        step_no += 1;
    }
}

fn expected_peer(cfg: &HandshakeConfig) -> PeerInfo {
    PeerInfo {
        node: cfg.node.clone(),
        incarnation: cfg.incarnation,
        addr: cfg.addr.clone(),
        client: cfg.client,
    }
}

/// A refusal, an abort or a fingerprint mismatch is reported only on the genuine frame that
/// carries it: each is MAC'd (or, for a mismatch, reported only once the peer's MAC verified).
fn check_error(start: Start, step_no: usize, frame: &[u8], e: &HandshakeError) {
    let g = genuine();
    // Without a secret anyone can compute the MACs: nothing to check.
    if start == Start::OpenResponder {
        return;
    }
    match e {
        HandshakeError::Refused(r) | HandshakeError::Aborted(r) => {
            // A refusal only right after the genuine reply; an abort only right after the
            // genuine Hello (the responder's nonce is fixed, so the genuine abort is the only
            // one). The step at which each is due, per start.
            let (what, noun, genuine_frame, due) = match e {
                HandshakeError::Refused(_) => (
                    "refused",
                    "refusal",
                    &g.refuse,
                    match start {
                        Start::InitiatorAfterReply => Some(0),
                        Start::Initiator => Some(1),
                        _ => None,
                    },
                ),
                _ => (
                    "aborted",
                    "abort",
                    &g.abort,
                    match start {
                        Start::ResponderAfterHello => Some(0),
                        Start::Responder => Some(1),
                        _ => None,
                    },
                ),
            };
            assert!(due == Some(step_no), "{start:?} step {step_no}: {what}");
            assert_eq!(frame, genuine_frame.as_slice(), "a forged {noun} verified");
            assert_eq!(*r, duplicate());
        }
        HandshakeError::Fingerprint(m) => {
            match start {
                Start::Initiator => {
                    assert_eq!(step_no, 0);
                    assert_eq!(
                        frame,
                        g.mismatched_reply.as_slice(),
                        "a forged reply verified"
                    );
                }
                Start::MismatchedResponder => {
                    assert_eq!(step_no, 0);
                    assert!(
                        frame == g.mismatch_abort.as_slice() || frame == g.mismatch_auth.as_slice(),
                        "a forged decision verified"
                    );
                }
                _ => panic!("{start:?} step {step_no}: fingerprint mismatch {m:?}"),
            }
            assert_eq!(m.field, "heartbeat_ms");
        }
        _ => {}
    }
}

fn check_done(start: Start, step_no: usize, frame: &[u8], peer: &PeerInfo) {
    let g = genuine();
    match start {
        // A responder with the cluster's secret finishes only on the genuine initiator's Auth
        // (its nonce is fixed, so the genuine Auth is the only one).
        Start::ResponderAfterHello if step_no == 0 => {
            assert_eq!(frame, g.auth.as_slice(), "a forged Auth authenticated");
            assert_eq!(*peer, expected_peer(&g.initiator));
        }
        // An initiator finishes on Accept, after it authenticated the genuine responder.
        Start::InitiatorAfterReply | Start::Initiator | Start::ClientInitiator => {
            assert_eq!(frame, ACCEPT.as_slice());
            assert_eq!(*peer, expected_peer(&g.responder));
        }
        // Its fingerprint differs: it never takes the initiator.
        Start::MismatchedResponder => panic!("a responder took a mismatched initiator"),
        // A fresh responder can finish only after two frames: the second one proved the
        // secret over a transcript it produced itself, with its own fixed nonce. Without a
        // secret (OpenResponder) anyone who can compute HMAC with an empty key gets in: that
        // is what an empty secret means.
        Start::Responder | Start::ResponderAfterHello | Start::OpenResponder => {
            assert!(step_no >= 1, "a responder finished on its first frame");
        }
    }
}

/// Feeds `data` as config text (lossy UTF-8) to the config parser.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    config_text(&text);
}

/// Parses `text` as a config, without and with a file path.
pub fn config_text(text: &str) {
    for file in [None, Some(Path::new("/etc/baton/baton.toml"))] {
        match Config::from_toml_str(text, file) {
            Ok(cfg) => {
                cfg.validate().expect("an accepted config validates again");
                let _ = cfg.voter_ids();
                let _ = cfg.seeds();
            }
            Err(e) => {
                // Every error says where it came from.
                let shown = e.to_string();
                assert!(!shown.is_empty());
                if let Some(f) = file {
                    assert!(shown.contains(&f.display().to_string()), "{shown}");
                }
            }
        }
    }
}

pub use baton_testkit::fixtures::every_message;

/// Frame payloads of every message variant.
pub fn message_frames() -> Vec<Vec<u8>> {
    every_message()
        .iter()
        .map(|m| encode_message(m, DEFAULT_MAX_FRAME).expect("encodes"))
        .collect()
}

/// Valid config files, to mutate from.
pub fn config_examples() -> Vec<&'static str> {
    vec![
        "[node]\nname = \"a\"\n",
        r#"[node]
name = "a"
listen = "127.0.0.1:7101"
labels = { zone = "eu-1", disk = "ssd" }
hardware = { weight = 2.0, cpus = 4, memory_bytes = 1073741824 }
data_dir = "state"

[cluster]
quorum = "majority"
secret_file = "cluster.secret"
name = "demo"
voters = ["a", "b", "c"]
seeds = ["b@127.0.0.1:7102", "127.0.0.1:7103"]

[timing]
heartbeat_ms = 100
failure_timeout_ms = 500
election_backoff_ms = 50
call_timeout_ms = 5000

[[group]]
name = "tracked"
policy = ["anti-affinity", "hardware-weight", "oldest-running"]
preempt = false

[group.anti-affinity]
avoid_groups = ["ingest"]
avoid_labels = { zone = "eu-2" }

[[group]]
name = "ingest"
policy = { plugin = "libmy_policy.so", config = { zone = "eu-1" } }
"#,
        r#"[node]
name = "solo"
[cluster]
quorum = "none"
seeds = ["x@10.0.0.1:1"]
[[group]]
name = "g"
policy = "oldest-running"
preempt = true
"#,
    ]
}
