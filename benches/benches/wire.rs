//! The wire codec: postcard encode and decode of the two messages on the failover path — a
//! heartbeat (here from a leader of a 3-node cluster: one member, one claim, two peers; and
//! from a 33-node cluster: 32 peers) and a vote request (with one proof of death). The same
//! encoding the TCP transport puts in its frames (`postcard::to_allocvec` /
//! `postcard::take_from_bytes`, see `transports/tcp/src/wire.rs`). The `sealed` cases add what
//! the transport does to every frame after the handshake since issue 10: `seal_message`
//! (encode, then sequence number and HMAC-SHA256 tag) and `open_message` (tag and window
//! check, then decode). The `tls` cases add what `[cluster.tls]` puts under each frame: the
//! length-delimited frame written into a TLS 1.3 connection (rustls, `ring`, AES-128-GCM or
//! ChaCha20 as negotiated), encrypted into a record, decrypted by the peer's connection and read
//! back (in memory: no socket). `tls-sealed-round-trip` is what the transport does under TLS
//! (it keeps the frame seal); `tls-round-trip` is what skipping the seal would cost.
#![allow(
    clippy::print_stderr,
    reason = "a benchmark: it reports sizes beside criterion's timings"
)]

use baton_core::message::{Claim, Heartbeat, MemberAnnounce, PeerAddr, VoteRequest};
use baton_core::{Hardware, Labels, MemberId, Message, NodeId};
use baton_transport_tcp::wire::{FrameOpener, FrameSealer, open_message, seal_message};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;

/// A TLS 1.3 client and server connection with their handshake done, in memory.
fn tls_pair() -> (rustls::Connection, rustls::Connection) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["node".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("der");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der.clone()).expect("root");
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![der], key_der)
        .expect("server config");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut c = rustls::Connection::Client(
        rustls::ClientConnection::new(Arc::new(client), "node".try_into().expect("name"))
            .expect("client"),
    );
    let mut s = rustls::Connection::Server(
        rustls::ServerConnection::new(Arc::new(server)).expect("server"),
    );
    let mut buf = Vec::new();
    while c.is_handshaking() || s.is_handshaking() {
        transfer(&mut c, &mut s, &mut buf);
        transfer(&mut s, &mut c, &mut buf);
    }
    (c, s)
}

/// Moves what `from` has to send into `to`, through `buf`.
fn transfer(from: &mut rustls::Connection, to: &mut rustls::Connection, buf: &mut Vec<u8>) {
    buf.clear();
    while from.wants_write() {
        from.write_tls(buf).expect("write_tls");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).expect("read_tls");
    }
    to.process_new_packets().expect("process");
}

/// One frame (4-byte length and `payload`) through the TLS pair; returns what the peer read.
fn through_tls<'a>(
    c: &mut rustls::Connection,
    s: &mut rustls::Connection,
    payload: &[u8],
    buf: &mut Vec<u8>,
    out: &'a mut Vec<u8>,
) -> &'a [u8] {
    let mut w = c.writer();
    w.write_all(&(payload.len() as u32).to_be_bytes())
        .expect("write");
    w.write_all(payload).expect("write");
    transfer(c, s, buf);
    out.resize(payload.len() + 4, 0);
    s.reader().read_exact(out).expect("read");
    &out[4..]
}

fn heartbeat(peers: usize) -> Message {
    let mut labels = Labels::new();
    labels.insert("zone".into(), "eu-1".into());
    Message::Heartbeat(Heartbeat {
        seq: 123_456,
        version: 7,
        state: Some(baton_core::message::NodeState {
            addr: "127.0.0.1:7101".into(),
            hardware: Hardware {
                cpus: 8,
                memory_bytes: 16 << 30,
                weight: Some(2.0),
            },
            labels,
            members: vec![MemberAnnounce {
                id: MemberId::new("a", 0),
                group: "tracked".into(),
                started_at_ms: 1_760_000_000_000,
                labels: Labels::new(),
                healthy: true,
                version: None,
            }],
            claims: vec![Claim {
                group: "tracked".into(),
                term: 42,
                member: MemberId::new("a", 0),
            }],
        }),
        peers: (0..peers)
            .map(|i| PeerAddr {
                node: NodeId::new(format!("n{i:02}")),
                addr: format!("127.0.0.1:{}", 7102 + i),
            })
            .collect(),
    })
}

fn vote_request() -> Message {
    Message::VoteRequest(VoteRequest {
        group: "tracked".into(),
        term: 43,
        candidate: MemberId::new("b", 0),
        handoff: None,
        pre: true,
        dead: vec![(
            NodeId::new("a"),
            baton_core::Incarnation(1_760_000_000_000_000),
            baton_core::DeathProof::RefusedAfterOrderlyClose,
        )],
    })
}

fn decode(bytes: &[u8]) -> Message {
    match postcard::take_from_bytes::<Message>(bytes) {
        Ok((m, [])) => m,
        Ok((_, rest)) => panic!("{} trailing bytes", rest.len()),
        Err(e) => panic!("undecodable: {e}"),
    }
}

fn wire(c: &mut Criterion) {
    let messages = [
        ("heartbeat-3", heartbeat(2)),
        ("heartbeat-33", heartbeat(32)),
        ("vote-request", vote_request()),
    ];
    let mut group = c.benchmark_group("wire");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (name, message) in &messages {
        let bytes = postcard::to_allocvec(message).expect("encodes");
        assert_eq!(&decode(&bytes), message, "round trip");
        eprintln!("{name}: {} bytes", bytes.len());
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), message, |b, m| {
            b.iter(|| postcard::to_allocvec(black_box(m)).expect("encodes"))
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| decode(black_box(bytes)))
        });
        group.bench_with_input(BenchmarkId::new("round-trip", name), message, |b, m| {
            b.iter(|| decode(&postcard::to_allocvec(black_box(m)).expect("encodes")))
        });
        let key = [7u8; 32];
        group.bench_with_input(BenchmarkId::new("sealed-encode", name), message, |b, m| {
            let mut sealer = FrameSealer::new(&key);
            b.iter(|| seal_message(&mut sealer, black_box(m), 1 << 16).expect("seals"))
        });
        group.bench_with_input(
            BenchmarkId::new("sealed-round-trip", name),
            message,
            |b, m| {
                let mut sealer = FrameSealer::new(&key);
                let mut opener = FrameOpener::new(&key);
                b.iter(|| {
                    let frame = seal_message(&mut sealer, black_box(m), 1 << 16).expect("seals");
                    open_message(&mut opener, &frame).expect("opens")
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("tls-round-trip", name), message, |b, m| {
            let (mut c, mut s) = tls_pair();
            let (mut buf, mut out) = (Vec::new(), Vec::new());
            b.iter(|| {
                let frame = postcard::to_allocvec(black_box(m)).expect("encodes");
                decode(through_tls(&mut c, &mut s, &frame, &mut buf, &mut out))
            })
        });
        group.bench_with_input(
            BenchmarkId::new("tls-sealed-round-trip", name),
            message,
            |b, m| {
                let (mut c, mut s) = tls_pair();
                let (mut buf, mut out) = (Vec::new(), Vec::new());
                let mut sealer = FrameSealer::new(&key);
                let mut opener = FrameOpener::new(&key);
                b.iter(|| {
                    let frame = seal_message(&mut sealer, black_box(m), 1 << 16).expect("seals");
                    let read = through_tls(&mut c, &mut s, &frame, &mut buf, &mut out);
                    open_message(&mut opener, read).expect("opens")
                })
            },
        );
    }
    group.finish();
}

criterion::criterion_group!(benches, wire);
criterion::criterion_main!(benches);
