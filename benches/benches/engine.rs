//! The sans-IO engine alone: what one `Engine::handle` costs a node of an n-node cluster
//! (n = 3, 9, 33), without any runtime, transport or clock.
//!
//! - `heartbeat/n`: a follower takes a periodic heartbeat from a peer (no claims) — the input
//!   every node handles (n − 1) × 10 times a second, and the bulk of its idle cost;
//! - `pre-vote/n`: a voter answers a pre-vote request from the best-ranked candidate of a
//!   leaderless group — the input every voter handles on the crash failover path.
//!
//! Each engine knows n − 1 live peers with one member each in group `g` (policy
//! oldest-running), and has joined `g` itself. This is where the in-process failover at
//! n = 33 spends its time (see docs/PERFORMANCE.md): the per-input cost grows with n because
//! every input rebuilds the candidate list.

use baton_core::engine::{Action, Engine, EngineConfig, Input, Quorum};
use baton_core::message::{Heartbeat, MemberAnnounce, PeerAddr, VoteRequest};
use baton_core::{Envelope, Hardware, Labels, MemberId, Message, NodeId, TransportEvent};
use baton_strategies::OldestRunning;
use criterion::{BatchSize, BenchmarkId, Criterion};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GROUP: &str = "g";

fn name(i: usize) -> String {
    format!("n{i:02}")
}

fn heartbeat(i: usize, n: usize, seq: u64) -> Input {
    Input::Transport(TransportEvent::Message(Envelope {
        from: NodeId::new(name(i)),
        incarnation: baton_core::Incarnation(1),
        message: Message::Heartbeat(Heartbeat {
            seq,
            version: 1,
            state: Some(baton_core::message::NodeState {
                addr: name(i),
                hardware: Hardware {
                    cpus: 2,
                    memory_bytes: 1 << 30,
                    weight: None,
                },
                labels: Labels::new(),
                members: vec![MemberAnnounce {
                    id: MemberId::new(name(i), 0),
                    group: GROUP.into(),
                    started_at_ms: 1_000 + i as u64,
                    labels: Labels::new(),
                    healthy: true,
                    version: None,
                }],
                claims: vec![],
            }),
            peers: (0..n)
                .filter(|&j| j != i)
                .map(|j| PeerAddr {
                    node: NodeId::new(name(j)),
                    addr: name(j),
                })
                .collect(),
        }),
    }))
}

/// Node `n00` of an n-node cluster that has met every peer, at time `now` (past its start-up
/// abstention), with no leader in `g`.
fn engine(n: usize, start: Instant, now: Instant) -> Engine {
    let voters = (0..n).map(|i| NodeId::new(name(i))).collect();
    let mut cfg = EngineConfig::new(name(0), 1, Quorum::Majority(voters));
    // Campaigning would wait for rank × backoff; keep n00 (ranked last, see below) a follower.
    cfg.backoff = Duration::from_secs(3600);
    let mut e = Engine::new(cfg, Arc::new(OldestRunning), BTreeMap::new(), None, start);
    // n00 joins last (youngest), so it never is the favourite and stays a follower.
    e.handle(
        start,
        Input::Join {
            group: GROUP.into(),
            labels: Labels::new(),
            started_at_ms: 10_000,
        },
    );
    for i in 1..n {
        e.handle(
            start,
            Input::Transport(TransportEvent::Connected {
                node: NodeId::new(name(i)),
                incarnation: baton_core::Incarnation(1),
                addr: name(i),
            }),
        );
    }
    for i in 1..n {
        e.handle(now, heartbeat(i, n, 1));
    }
    e
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in [3usize, 9, 33] {
        let start = Instant::now();
        // Past the abstention (one failure timeout); peers heard at `now` stay alive.
        let now = start + Duration::from_secs(1);
        let mut e = engine(n, start, now);
        let mut seq = 1;
        group.bench_function(BenchmarkId::new("heartbeat", n), |b| {
            b.iter_batched(
                || {
                    seq += 1;
                    heartbeat(1 + (seq as usize % (n - 1)), n, seq)
                },
                |input| e.handle(now, input),
                BatchSize::SmallInput,
            )
        });
        let mut e = engine(n, start, now);
        let request = Input::Transport(TransportEvent::Message(Envelope {
            from: NodeId::new(name(1)),
            incarnation: baton_core::Incarnation(1),
            message: Message::VoteRequest(VoteRequest {
                group: GROUP.into(),
                term: 1,
                // The oldest member: ranked first by every node.
                candidate: MemberId::new(name(1), 0),
                handoff: None,
                pre: true,
                dead: vec![],
            }),
        }));
        let answer = e.handle(now, request.clone());
        assert!(
            answer.iter().any(|a| matches!(
                a,
                Action::Send { message: Message::VoteResponse(r), .. } if r.granted
            )),
            "the pre-vote is granted: {answer:?}"
        );
        group.bench_function(BenchmarkId::new("pre-vote", n), |b| {
            b.iter_batched(
                || request.clone(),
                |input| e.handle(now, input),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion::criterion_group!(benches, bench);
criterion::criterion_main!(benches);
