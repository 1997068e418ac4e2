//! Election inputs for the ranking benches: `n` candidates with varied ages, hardware, zones
//! and loads, and 100 other groups whose leaders anti-affinity avoids. Seeded, so every run
//! ranks the same input.

use baton_core::{
    Candidate, ElectionInput, GroupName, Hardware, Incarnation, Labels, MemberId, NodeId,
};

/// How many other groups have leaders in [`input`] (and are avoided by [`avoid_groups`]).
pub const OTHER_GROUPS: usize = 100;

/// `n` candidates of group `g`, in member-id order as the engine builds them; every candidate
/// carries a `zone` (`eu-1`, `us-1`, `ap-1`) and a `load` label, two services, and hardware
/// with few distinct values (so policies see ties a chain must break).
pub fn input(n: usize) -> ElectionInput {
    let mut rng = baton_testkit::Rng::with_seed(42);
    let zones = ["eu-1", "us-1", "ap-1"];
    let mut candidates: Vec<Candidate> = (0..n)
        .map(|i| {
            let mut labels = Labels::new();
            labels.insert("zone".into(), zones[rng.usize(..3)].into());
            labels.insert(
                "load".into(),
                format!("{:.2}", rng.u32(..100) as f64 / 100.0),
            );
            labels.insert("disk".into(), "ssd".into());
            Candidate {
                member: MemberId::new(format!("node-{i:05}"), (i % 3) as u32),
                started_at_ms: 1_700_000_000_000 + rng.u64(..50),
                incarnation: Incarnation(1_700_000_000_000_000 + i as u64),
                hardware: Hardware {
                    cpus: 1 << rng.u32(..4),
                    memory_bytes: rng.u64(1..=3) << 30,
                    weight: None,
                },
                labels,
                services: ["g".into(), "other".into()].into(),
                leads: 0,
                version: None,
            }
        })
        .collect();
    candidates.sort_by(|a, b| a.member.cmp(&b.member));
    ElectionInput {
        group: "g".into(),
        candidates,
        incumbent: None,
        leaders: std::sync::Arc::new(
            (0..OTHER_GROUPS)
                .map(|i| {
                    (
                        GroupName::from(format!("other-{i}")),
                        NodeId::new(format!("node-{:05}", (i * 7) % n.max(1))),
                    )
                })
                .collect(),
        ),
    }
}

/// The groups [`input`]'s anti-affinity avoids: all of its other groups.
pub fn avoid_groups() -> Vec<GroupName> {
    (0..OTHER_GROUPS)
        .map(|i| GroupName::from(format!("other-{i}")))
        .collect()
}
