//! Uses the zone-preference policy statically — linked into the program like any other crate,
//! no plugin loading — and ranks a sample group.
//!
//! ```text
//! cargo run -p custom-policy --example static_use
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example program: what it prints is what it shows"
)]

use baton_core::{Candidate, ElectionInput, Hardware, LeaderPolicy, MemberId};
use custom_policy::ZonePreference;

fn member(node: &str, zone: &str, load: Option<&str>, started_at_ms: u64) -> Candidate {
    let mut labels = baton_core::Labels::new();
    labels.insert("zone".into(), zone.into());
    if let Some(load) = load {
        labels.insert("load".into(), load.into());
    }
    Candidate {
        member: MemberId::new(node, 0),
        started_at_ms,
        incarnation: baton_core::Incarnation(1),
        hardware: Hardware {
            cpus: 4,
            memory_bytes: 8 << 30,
            weight: None,
        },
        labels,
        services: ["tracked".into()].into(),
        leads: 0,
        version: None,
    }
}

fn main() {
    let policy = ZonePreference::new("eu-1");
    let input = ElectionInput {
        group: "tracked".into(),
        candidates: vec![
            member("a", "us-1", Some("0.1"), 1_000),
            member("b", "eu-1", Some("0.7"), 2_000),
            member("c", "eu-1", Some("0.2"), 3_000),
            member("d", "eu-1", None, 500),
            member("e", "eu-1", Some("0.2"), 2_500),
        ],
        incumbent: None,
        leaders: Default::default(),
    };

    println!(
        "policy {:?} preferring zone {}",
        policy.name(),
        policy.zone()
    );
    for (rank, id) in policy.rank(&input).iter().enumerate() {
        let c = input
            .candidates
            .iter()
            .find(|c| &c.member == id)
            .expect("a policy ranks only the candidates it is given");
        println!(
            "  {rank}. {id:<4} zone={:<5} load={:<5} started_at_ms={}",
            c.labels["zone"],
            c.labels.get("load").map(String::as_str).unwrap_or("-"),
            c.started_at_ms
        );
    }
    let tiers: Vec<String> = policy
        .tiers(&input)
        .iter()
        .map(|tier| {
            let ids: Vec<String> = tier.iter().map(MemberId::to_string).collect();
            format!("[{}]", ids.join(", "))
        })
        .collect();
    println!(
        "tiers (a chain's next policy breaks ties inside each): {}",
        tiers.join(" ")
    );
    assert_eq!(policy.rank(&input)[0], MemberId::new("e", 0));
}
