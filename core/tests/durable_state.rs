//! Term and vote survive a restart through `data_dir`; a damaged state file stops the node with
//! an error naming it, never a silent reset.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_core::config::Config;
use baton_core::engine::{Action, Engine, EngineConfig, Input, PersistedState, Quorum};
use baton_core::message::{VoteRequest, VoteResponse};
use baton_core::{
    ByMemberId, Envelope, Incarnation, Leadership, MemberId, Message, Node, NodeError, NodeId,
    Service, TransportEvent,
};
use baton_transport_memory::MemoryNetwork;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn voter(persisted: Option<PersistedState>, t0: Instant) -> Engine {
    let voters = ["a", "b", "c"].map(NodeId::new).into();
    let cfg = EngineConfig::new("a", 1, Quorum::Majority(voters));
    Engine::new(cfg, Arc::new(ByMemberId), BTreeMap::new(), persisted, t0)
}

fn from(node: &str, inc: u64, message: Message) -> Input {
    Input::Transport(TransportEvent::Message(Envelope {
        from: NodeId::new(node),
        incarnation: Incarnation(inc),
        message,
    }))
}

/// Makes `node`'s member of group g known to the engine (a heartbeat announcing it).
fn announce(e: &mut Engine, now: Instant, node: &str) {
    let hb = baton_core::message::Heartbeat {
        seq: 1,
        version: 1,
        state: Some(baton_core::message::NodeState {
            addr: node.into(),
            members: vec![baton_core::message::MemberAnnounce {
                id: MemberId::new(node, 0),
                group: "g".into(),
                started_at_ms: 1,
                labels: Default::default(),
                healthy: true,
                version: None,
            }],
            ..Default::default()
        }),
        peers: vec![],
    };
    e.handle(now, from(node, 1, Message::Heartbeat(hb)));
}

fn ask(e: &mut Engine, now: Instant, candidate: &str, term: u64) -> (bool, Vec<Action>) {
    let req = VoteRequest {
        group: "g".into(),
        term,
        candidate: MemberId::new(candidate, 0),
        handoff: None,
        pre: false,
        dead: vec![],
    };
    let actions = e.handle(now, from(candidate, 1, Message::VoteRequest(req)));
    // The answer may travel in a batch with the heartbeat due at the same time.
    let granted = actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { message, .. } => Some(message.parts()),
            _ => None,
        })
        .flatten()
        .find_map(|m| match m {
            Message::VoteResponse(VoteResponse { granted, .. }) => Some(*granted),
            _ => None,
        });
    (granted.expect("a vote response"), actions)
}

#[test]
fn a_restarted_voter_cannot_vote_twice_in_one_term() {
    let t0 = Instant::now();
    let mut e = voter(None, t0);
    let now = t0 + Duration::from_secs(2); // past the start-up abstention
    announce(&mut e, now, "b");
    announce(&mut e, now, "c");
    let (granted, actions) = ask(&mut e, now + Duration::from_secs(1), "b", 7);
    assert!(granted, "a fresh voter grants the favourite");
    let state = actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Persist(s) => Some(s.clone()),
            _ => None,
        })
        .expect("the vote is persisted");
    // The persist comes before the response that reveals the vote.
    let persist_at = actions
        .iter()
        .position(|a| matches!(a, Action::Persist(_)))
        .unwrap();
    let reply_at = actions
        .iter()
        .position(|a| {
            matches!(a, Action::Send { message, .. }
                if message.parts().iter().any(|m| matches!(m, Message::VoteResponse(_))))
        })
        .unwrap();
    assert!(persist_at < reply_at, "persist before answering");

    // Crash mid-election, restart with the stored state.
    let t1 = now + Duration::from_secs(5);
    let mut e = voter(Some(state.clone()), t1);
    let later = t1 + Duration::from_secs(2);
    announce(&mut e, later, "b");
    announce(&mut e, later, "c");
    let (granted, _) = ask(&mut e, later + Duration::from_secs(1), "c", 7);
    assert!(!granted, "already voted for b in term 7");
    let (granted, _) = ask(&mut e, later + Duration::from_secs(1), "b", 7);
    assert!(granted, "the same vote may be repeated");

    // Without the state the same restart would vote again: what data_dir is for.
    let mut amnesiac = voter(None, t1);
    announce(&mut amnesiac, later, "b");
    announce(&mut amnesiac, later, "c");
    let (granted, _) = ask(&mut amnesiac, later + Duration::from_secs(3), "c", 7);
    assert!(granted, "control: without state the vote is forgotten");
}

#[test]
fn a_restarted_voter_abstains_for_one_failure_timeout() {
    let t0 = Instant::now();
    let mut e = voter(None, t0);
    announce(&mut e, t0, "b");
    let (granted, _) = ask(&mut e, t0 + Duration::from_millis(100), "b", 1);
    assert!(!granted, "abstains right after start");
    let (granted, _) = ask(&mut e, t0 + Duration::from_millis(600), "b", 1);
    assert!(granted, "votes once the failure timeout has passed");
}

async fn start_with_state(dir: &std::path::Path) -> Result<Node, NodeError> {
    let mut config = Config::new("solo");
    config.node.listen = "solo".into();
    config.node.data_dir = Some(dir.to_path_buf());
    Node::builder(config)
        .transport(Arc::new(MemoryNetwork::new().transport()))
        .start()
        .await
}

/// Starts the solo node on `dir` and joins `g`: the node, its service and the leadership it wins.
async fn lead_with_state(dir: &std::path::Path) -> (Node, Service, Leadership) {
    let node = start_with_state(dir).await.unwrap();
    let svc = node.join("g", Default::default()).await.unwrap();
    let l = svc
        .leadership()
        .wait_for(|l| l.is_me())
        .await
        .unwrap()
        .clone();
    (node, svc, l)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn leading_writes_the_state_file_atomically_and_a_restart_keeps_the_term() {
    let dir = temp_dir("atomic");
    let (node, _svc, l) = lead_with_state(&dir).await;
    node.shutdown().await;
    let text = std::fs::read_to_string(dir.join("state.json")).unwrap();
    let state: PersistedState = serde_json::from_str(&text).unwrap();
    assert_eq!(state.groups["g"].term, l.term);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "state.json")
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temp file left behind: {leftovers:?}"
    );

    // Restart: the next leadership has a greater term than any before it.
    let (node, _svc, l2) = lead_with_state(&dir).await;
    assert!(l2.term > l.term, "{} > {}", l2.term, l.term);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_term_that_cannot_grow_is_an_error_at_start_naming_the_file() {
    for term in [u64::MAX, u64::MAX - 1] {
        let dir = temp_dir("term-max");
        let path = dir.join("state.json");
        let content = format!("{{\"groups\":{{\"g\":{{\"term\":{term},\"vote\":null}}}}}}");
        std::fs::write(&path, &content).unwrap();
        let err = start_with_state(&dir).await.err().expect("must not start");
        let text = err.to_string();
        assert!(matches!(err, NodeError::StateFile { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains("cannot grow") && text.contains("\"g\""),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "left as it was"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_incarnation_is_above_the_stored_one_even_with_the_clock_behind() {
    let dir = temp_dir("incarnation");
    let path = dir.join("state.json");
    // A previous process wrote an incarnation far in the future (its clock was ahead).
    let ahead = 4_000_000_000_000_000u64;
    std::fs::write(
        &path,
        format!("{{\"groups\":{{}},\"incarnation\":{ahead}}}"),
    )
    .unwrap();
    let node = start_with_state(&dir).await.unwrap();
    assert_eq!(node.incarnation(), Incarnation(ahead + 1));
    let stored: PersistedState =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        stored.incarnation,
        Incarnation(ahead + 1),
        "stored before the transport starts"
    );
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_corrupt_or_truncated_state_file_is_an_error_naming_it() {
    for (name, content) in [
        ("corrupt", &b"{ not json"[..]),
        ("truncated", &b"{\"groups\":{\"g\":{\"te"[..]),
    ] {
        let dir = temp_dir(name);
        let path = dir.join("state.json");
        std::fs::write(&path, content).unwrap();
        let err = start_with_state(&dir).await.err().expect("must not start");
        let text = err.to_string();
        assert!(matches!(err, NodeError::StateFile { .. }), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("corrupt or truncated"), "{text}");
        // Never a silent reset: the file is left as it was for inspection.
        assert_eq!(std::fs::read(&path).unwrap(), content);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
