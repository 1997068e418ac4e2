//! Seeded randomized test: ~20 000 random and mutated byte strings go through the frame decoder,
//! the message decoder and both sides of the handshake. Nothing may panic, and no mutated frame
//! may complete a handshake. (cargo-fuzz targets the same functions; this keeps CI honest.)

use baton_core::Refusal;
use baton_core::message::{Request, VoteRequest};
use baton_core::{MemberId, Message, NodeId};
use baton_transport_tcp::handshake::{
    ACCEPT, HandshakeConfig, HandshakeError, Initiator, NONCE_LEN, Responder, Step, decode_hello,
};
use baton_transport_tcp::wire::{DEFAULT_MAX_FRAME, codec, decode_message, encode_message};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn cfg(node: &str) -> HandshakeConfig {
    HandshakeConfig {
        cluster: "fuzz".into(),
        secret: b"s3cret".to_vec(),
        node: NodeId::new(node),
        incarnation: 3,
        addr: "127.0.0.1:9".into(),
        client: false,
        fingerprint: Default::default(),
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 => v.truncate(rng.below(v.len() + 1)),
            3 => {
                let i = rng.below(v.len() + 1);
                let n = rng.below(16) + 1;
                let extra = rng.bytes(n);
                v.splice(i..i, extra);
            }
            4 if !v.is_empty() => {
                // Large varints: length fields claiming huge sizes.
                let i = rng.below(v.len());
                v[i] = 0xff;
            }
            5 if v.len() > 1 => {
                let i = rng.below(v.len());
                let j = rng.below(v.len());
                v.swap(i, j);
            }
            _ => {
                let n = rng.below(8);
                v.extend(rng.bytes(n));
            }
        }
    }
    v
}

/// Valid frames of every kind, to mutate from.
fn corpus() -> Vec<Vec<u8>> {
    let (mut init, hello) = Initiator::new(cfg("a"), [1; NONCE_LEN]);
    let mut resp = Responder::new(cfg("b"), [2; NONCE_LEN]);
    let Ok(Step::Reply { frame: reply, .. }) = resp.on_frame(&hello) else {
        panic!("valid hello refused")
    };
    let Ok(Step::Reply { frame: auth, .. }) = init.on_frame(&reply) else {
        panic!("valid reply refused")
    };
    let refuse = {
        let mut resp = resp.clone();
        assert!(matches!(resp.on_frame(&auth), Ok(Step::Done { .. })));
        resp.refuse(Refusal::ShuttingDown)
    };
    let abort = init.clone().abort(Refusal::ShuttingDown);
    let mut frames = vec![hello, reply, auth, ACCEPT.to_vec(), refuse, abort];
    let messages = [
        Message::Leave,
        Message::Request(Request {
            id: 1,
            group: "g".into(),
            any: true,
            payload: vec![1, 2, 3],
        }),
        Message::VoteRequest(VoteRequest {
            group: "g".into(),
            term: 2,
            candidate: MemberId::new("a", 1),
            handoff: None,
            pre: true,
            dead: vec![(NodeId::new("c"), 1, baton_core::DeathProof::Left)],
        }),
    ];
    for m in &messages {
        frames.push(encode_message(m, DEFAULT_MAX_FRAME).unwrap());
    }
    frames
}

/// Handshake machines at each step, cloned for every input.
struct Machines {
    valid: Vec<Vec<u8>>,
    /// Waiting for a hello.
    responder: Responder,
    /// Got a valid hello, waiting for the auth.
    responder_after_hello: Responder,
    /// Waiting for the reply.
    initiator: Initiator,
    /// Got a valid reply, waiting for the accept.
    initiator_after_reply: Initiator,
}

impl Machines {
    fn new() -> Self {
        let valid = corpus();
        let responder = Responder::new(cfg("b"), [5; NONCE_LEN]);
        let mut responder_after_hello = responder.clone();
        assert!(responder_after_hello.on_frame(&valid[0]).is_ok());
        let (initiator, _) = Initiator::new(cfg("a"), [1; NONCE_LEN]);
        let mut initiator_after_reply = initiator.clone();
        assert!(initiator_after_reply.on_frame(&valid[1]).is_ok());
        Machines {
            valid,
            responder,
            responder_after_hello,
            initiator,
            initiator_after_reply,
        }
    }

    /// Feeds one payload to every decoder and to both handshake sides at every step.
    fn exercise(&self, payload: &[u8]) {
        let _ = decode_message(payload);
        let _ = decode_hello(&cfg("b"), payload);

        let mut resp = self.responder.clone();
        let _ = resp.on_frame(payload);
        let _ = resp.on_frame(payload);
        match self.responder_after_hello.clone().on_frame(payload) {
            Ok(Step::Done { .. }) => panic!("a random auth frame authenticated: {payload:?}"),
            // The only genuine abort was MAC'd over another responder nonce.
            Err(HandshakeError::Aborted(_) | HandshakeError::Fingerprint(_)) => {
                panic!("a random abort frame verified: {payload:?}")
            }
            _ => {}
        }

        let mut init = self.initiator.clone();
        if init.on_frame(payload).is_ok() && payload != self.valid[1].as_slice() {
            panic!("a mutated reply verified: {payload:?}");
        }
        let _ = init.on_frame(payload);
        if let Err(HandshakeError::Refused(_)) =
            self.initiator_after_reply.clone().on_frame(payload)
            && payload != self.valid[4].as_slice()
        {
            panic!("a mutated refusal verified: {payload:?}");
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = Rng(0x5eed_ba70_0000_0001);
    let machines = Machines::new();
    let valid = &machines.valid;
    let started = std::time::Instant::now();
    let mut frames_decoded = 0usize;
    for round in 0..20_000 {
        let payload = if round % 4 == 0 {
            let n = rng.below(300);
            rng.bytes(n)
        } else {
            let base = &valid[rng.below(valid.len())];
            mutate(&mut rng, base)
        };
        machines.exercise(&payload);

        // Through the frame decoder: with a true, a random or a hostile length header, fed in
        // random chunks.
        let mut stream = match rng.below(3) {
            0 => (payload.len() as u32).to_be_bytes().to_vec(),
            1 => (rng.next() as u32).to_be_bytes().to_vec(),
            _ => Vec::new(),
        };
        stream.extend_from_slice(&payload);
        let mut codec = codec(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut rest = stream.as_slice();
        'feed: while !rest.is_empty() {
            let take = (rng.below(64) + 1).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => {
                        frames_decoded += 1;
                        machines.exercise(&frame);
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
        let _ = codec.decode_eof(&mut buf);
    }
    assert!(
        frames_decoded > 1_000,
        "only {frames_decoded} frames decoded"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "too slow: {:?}",
        started.elapsed()
    );
}
