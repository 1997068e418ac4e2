//! Two leaders at once — availability mode (`quorum = "none"`) with a partition — and one
//! SQLite database: the stale leader's write is refused by the fence, while the same write
//! without the guard lands (so the test really had two writers, and fails if the guard goes).
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_core::config::{GroupConfig, QuorumMode};
use baton_testkit::cluster::Cluster;
use fencing_sqlite::{FencedStore, WriteError};
use std::time::Duration;

const G: &str = "ledger";
const LIMIT: Duration = Duration::from_secs(10);

fn db(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("baton-fencing-{tag}-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_stale_leaders_write_is_refused_while_both_lead() {
    let mut c = Cluster::memory(
        &["a", "b", "c"],
        QuorumMode::None,
        vec![GroupConfig::new(G)],
    );
    for n in ["a", "b", "c"] {
        c.start(n).await;
    }
    let first = c.agreed(G, LIMIT).await;
    assert_eq!(first.leader.as_ref().unwrap().node.as_str(), "a");
    let path = db("split");
    // One connection per node, as separate processes would have.
    let mut at_a = FencedStore::open(&path).unwrap();
    let mut at_b = FencedStore::open(&path).unwrap();
    let a_term = c.service("a", G).fencing_token().expect("a leads");
    at_a.write("owner", "a", a_term).unwrap();

    // Split a from b and c: each side elects its own leader.
    c.memory_net().partition(&[&["a"], &["b", "c"]]);
    let start = tokio::time::Instant::now();
    let b_term = loop {
        if let Some(t) = c.service("b", G).fencing_token() {
            break t;
        }
        assert!(start.elapsed() < LIMIT, "b never led: {:?}", c.views(G));
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Two leaders at once: a still acts under its old term.
    assert_eq!(
        c.service("a", G).fencing_token(),
        Some(a_term),
        "a still leads"
    );
    assert!(b_term > a_term);

    // The new leader writes; then the old one, late.
    at_b.write("owner", "b", b_term).unwrap();
    match at_a.write("owner", "a, stale", a_term) {
        Err(WriteError::Stale(s)) => {
            assert_eq!((s.term, s.highest), (a_term, b_term));
        }
        other => panic!("the stale leader's write landed: {other:?}"),
    }
    assert_eq!(at_a.read("owner").unwrap(), Some(("b".to_string(), b_term)));
    // The new leader keeps writing.
    at_b.write("owner", "b again", b_term).unwrap();

    // The same late write without the guard lands over the new leader's: the scenario really
    // had two writers, and only the fence kept the data right.
    at_a.write_unguarded("owner", "a, stale", a_term).unwrap();
    assert_eq!(
        at_b.read("owner").unwrap(),
        Some(("a, stale".to_string(), a_term))
    );

    // Healed, one leader remains, above both terms.
    c.memory_net().heal();
    let healed = c.agreed(G, LIMIT).await;
    assert!(healed.term >= b_term);
    let _ = std::fs::remove_file(&path);
}
