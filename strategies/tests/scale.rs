//! Ranking many candidates: the chain must stay O(n log n)-ish and give a total order.
//!
//! Speed is measured in the benches; this only checks correctness at scale, with an upper bound
//! generous enough for an unoptimised build on a loaded machine that still catches a quadratic
//! algorithm (10 000² = 10⁸ steps).

use baton_core::config::AntiAffinityConfig;
use baton_core::{Candidate, ElectionInput, GroupName, Hardware, LeaderPolicy, MemberId, NodeId};
use baton_strategies::{AntiAffinity, Chain, HardwareWeight, OldestRunning};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn big_input(n: usize) -> ElectionInput {
    let mut rng = fastrand::Rng::with_seed(42);
    let candidates = (0..n)
        .map(|i| Candidate {
            member: MemberId::new(format!("node-{i:05}"), (i % 3) as u32),
            started_at_ms: 1_000 + rng.u64(..50),
            incarnation: baton_core::Incarnation(1),
            hardware: Hardware {
                cpus: rng.u32(..4),
                memory_bytes: rng.u64(..3) << 30,
                weight: None,
            },
            labels: Default::default(),
            services: [].into(),
            leads: 0,
            version: None,
        })
        .collect();
    ElectionInput {
        group: "g".into(),
        candidates,
        incumbent: None,
        leaders: std::sync::Arc::new(
            (0..100)
                .map(|i| {
                    (
                        GroupName::from(format!("other-{i}")),
                        NodeId::new(format!("node-{:05}", i * 7)),
                    )
                })
                .collect(),
        ),
    }
}

#[test]
fn ten_thousand_candidates_three_policy_chain() {
    let n = 10_000;
    let avoid: Vec<GroupName> = (0..100).map(|i| format!("other-{i}").into()).collect();
    let chain = Chain::new(vec![
        Arc::new(AntiAffinity::new(AntiAffinityConfig {
            avoid_groups: avoid,
            avoid_labels: Default::default(),
        })),
        Arc::new(HardwareWeight),
        Arc::new(OldestRunning),
    ]);
    let input = big_input(n);

    let start = Instant::now();
    let ranking = chain.rank(&input);
    let took = start.elapsed();
    eprintln!("ranked {n} candidates with a 3-policy chain in {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "ranking 10 000 took {took:?}"
    );

    // A permutation of the candidates.
    assert_eq!(ranking.len(), n);
    let distinct: BTreeSet<&MemberId> = ranking.iter().collect();
    assert_eq!(distinct.len(), n);

    // The 100 nodes leading avoided groups rank last.
    let last: BTreeSet<&str> = ranking[n - 100..].iter().map(|m| m.node.as_str()).collect();
    let avoided: BTreeSet<String> = (0..100).map(|i| format!("node-{:05}", i * 7)).collect();
    assert_eq!(
        last,
        avoided.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );

    // Adjacent pairs respect (avoided, heavier, older, member id).
    let by_id: std::collections::HashMap<&MemberId, &Candidate> =
        input.candidates.iter().map(|c| (&c.member, c)).collect();
    let key = |m: &MemberId| {
        let c = by_id[m];
        (
            avoided.contains(c.member.node.as_str()),
            std::cmp::Reverse(HardwareWeight::weight(&c.hardware).to_bits()), // all ≥ 0: bits order = value order
            c.started_at_ms,
            c.member.clone(),
        )
    };
    for pair in ranking.windows(2) {
        assert!(
            key(&pair[0]) < key(&pair[1]),
            "{} before {}",
            pair[0],
            pair[1]
        );
    }

    // Same ranking from a shuffled input.
    let mut shuffled = input.clone();
    fastrand::Rng::with_seed(7).shuffle(&mut shuffled.candidates);
    assert_eq!(chain.rank(&shuffled), ranking);
}
