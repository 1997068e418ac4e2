//! The wire codec: postcard encode and decode of the two messages on the failover path — a
//! heartbeat (here from a leader of a 3-node cluster: one member, one claim, two peers; and
//! from a 33-node cluster: 32 peers) and a vote request (with one proof of death). The same
//! encoding the TCP transport puts in its frames (`postcard::to_allocvec` /
//! `postcard::take_from_bytes`, see `transports/tcp/src/wire.rs`). The `sealed` cases add what
//! the transport does to every frame after the handshake since issue 10: `seal_message`
//! (encode, then sequence number and HMAC-SHA256 tag) and `open_message` (tag and window
//! check, then decode).

use baton_core::message::{Claim, Heartbeat, MemberAnnounce, PeerAddr, VoteRequest};
use baton_core::{Hardware, Labels, MemberId, Message, NodeId};
use baton_transport_tcp::wire::{FrameOpener, FrameSealer, open_message, seal_message};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

fn heartbeat(peers: usize) -> Message {
    let mut labels = Labels::new();
    labels.insert("zone".into(), "eu-1".into());
    Message::Heartbeat(Heartbeat {
        seq: 123_456,
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
        }],
        claims: vec![Claim {
            group: "tracked".into(),
            term: 42,
            member: MemberId::new("a", 0),
        }],
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
            1_760_000_000_000_000,
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
    }
    group.finish();
}

criterion::criterion_group!(benches, wire);
criterion::criterion_main!(benches);
