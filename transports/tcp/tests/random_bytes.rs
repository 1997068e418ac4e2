//! Seeded randomized test: ~20 000 random and mutated byte strings go through the frame decoder,
//! the message decoder and both sides of the handshake. Nothing may panic, and no mutated frame
//! may complete a handshake. (cargo-fuzz targets the same functions; this keeps CI honest.)
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_core::NodeId;
use baton_core::Refusal;
use baton_testkit::fixtures::every_message;
use baton_testkit::{Rng, mutate, random_bytes};
use baton_transport_tcp::handshake::{
    ACCEPT, HandshakeConfig, HandshakeError, Initiator, NONCE_LEN, Responder, Step, decode_hello,
};
use baton_transport_tcp::wire::{DEFAULT_MAX_FRAME, codec, decode_message, encode_message};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

fn cfg(node: &str) -> HandshakeConfig {
    HandshakeConfig {
        cluster: "fuzz".into(),
        secret: b"s3cret".to_vec(),
        node: NodeId::new(node),
        incarnation: baton_core::Incarnation(3),
        addr: "127.0.0.1:9".into(),
        client: false,
        fingerprint: Default::default(),
    }
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
    for m in &every_message() {
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
    let mut rng = Rng::with_seed(0x5eed_ba70_0000_0001);
    let machines = Machines::new();
    let valid = &machines.valid;
    let started = std::time::Instant::now();
    let mut frames_decoded = 0usize;
    for round in 0..20_000 {
        let payload = if round % 4 == 0 {
            let n = rng.usize(..300);
            random_bytes(&mut rng, n)
        } else {
            let base = &valid[rng.usize(..valid.len())];
            mutate(&mut rng, base, &[])
        };
        machines.exercise(&payload);

        // Through the frame decoder: with a true, a random or a hostile length header, fed in
        // random chunks.
        let mut stream = match rng.usize(..3) {
            0 => (payload.len() as u32).to_be_bytes().to_vec(),
            1 => rng.u32(..).to_be_bytes().to_vec(),
            _ => Vec::new(),
        };
        stream.extend_from_slice(&payload);
        let mut codec = codec(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut rest = stream.as_slice();
        'feed: while !rest.is_empty() {
            let take = (rng.usize(..64) + 1).min(rest.len());
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
