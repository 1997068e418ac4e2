//! The transport conformance suite: what every [`Transport`] must do, checked the same way
//! for each implementation (the in-memory and the TCP transport run it from their tests).
//!
//! An implementation supplies a [`Subject`]: how to make a fresh transport and where a new
//! node listens. [`transport_conformance!`](crate::transport_conformance) then declares one
//! test per rule of the contract in `baton_core::transport`:
//!
//! - `Connected` carries the peer's incarnation and advertised address, on both sides;
//! - every message arrives as sent, from the sender the connection authenticated, with its
//!   incarnation, in order;
//! - an orderly shutdown is proven: `Dead` with the incarnation that ended, after a
//!   `Disconnected`, and the shut-down transport's `recv` ends and `send` fails;
//! - a restart with a higher incarnation on the same address is seen as `Dead` of the old
//!   incarnation, then `Connected` of the new one, once each, and messages reach the new one;
//! - dead only on proof: a live, idle peer is never reported dead;
//! - sending to a node that was never connected is `Unreachable`.
//!
//! Bounds are generous ([`SOON`]): the suite checks behaviour, not speed.

use crate::fixtures::every_message;
use baton_core::{
    Envelope, Incarnation, LocalNode, Message, NodeId, Transport, TransportError, TransportEvent,
};
use std::sync::Arc;
use std::time::Duration;

/// Generous bound for anything that should take milliseconds.
pub const SOON: Duration = Duration::from_secs(2);

/// A transport implementation under test.
pub trait Subject {
    /// A fresh transport, not started.
    fn transport(&self) -> Arc<dyn Transport>;
    /// Where a first node `name` listens (a restart reuses the address its start returned).
    fn listen(&self, name: &str) -> String;
}

/// Declares one `#[tokio::test]` per rule of the suite, each running it on `$subject` (an
/// expression of a type that implements [`Subject`], evaluated once per test).
#[macro_export]
macro_rules! transport_conformance {
    ($subject:expr) => {
        $crate::transport_conformance!(@tests $subject;
            connected_carries_both_incarnations,
            messages_arrive_from_the_authenticated_sender_in_order,
            shutdown_is_proven_dead_with_the_ended_incarnation,
            restart_is_dead_old_then_connected_new,
            a_live_idle_peer_is_never_reported_dead,
            send_to_a_never_connected_node_is_unreachable
        );
    };
    (@tests $subject:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::conformance::$name(&$subject).await;
            }
        )*
    };
}

/// Starts a fresh transport of `s` as `name` of `incarnation` on `listen`; returns it and
/// the address it advertises.
pub async fn start_on(
    s: &impl Subject,
    name: &str,
    incarnation: u64,
    listen: &str,
) -> (Arc<dyn Transport>, String) {
    let t = s.transport();
    let me = LocalNode::new(name, incarnation, listen);
    let addr = t.start(&me).await.expect("the transport starts");
    (t, addr)
}

/// Starts `name` of `incarnation` where [`Subject::listen`] says.
pub async fn start(s: &impl Subject, name: &str, incarnation: u64) -> (Arc<dyn Transport>, String) {
    start_on(s, name, incarnation, &s.listen(name)).await
}

/// Receives events until one matches `pred`; returns every event seen, the match last.
/// Panics (listing what was seen) if none matches within `within`.
pub async fn expect<T: Transport + ?Sized>(
    t: &T,
    within: Duration,
    what: &str,
    mut pred: impl FnMut(&TransportEvent) -> bool,
) -> Vec<TransportEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, t.recv()).await {
            Ok(Some(e)) => {
                let hit = pred(&e);
                seen.push(e);
                if hit {
                    return seen;
                }
            }
            Ok(None) => panic!("transport closed while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("no {what} within {within:?}; saw {seen:#?}"),
        }
    }
}

/// Receives events for `during`; returns them all.
pub async fn drain<T: Transport + ?Sized>(t: &T, during: Duration) -> Vec<TransportEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + during;
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, t.recv()).await {
        seen.push(e);
    }
    seen
}

/// `Connected` of `node` with incarnation `inc`.
pub fn is_connected(node: &str, inc: u64) -> impl FnMut(&TransportEvent) -> bool {
    let node = NodeId::new(node);
    move |e| matches!(e, TransportEvent::Connected { node: n, incarnation, .. } if *n == node && incarnation.get() == inc)
}

/// `Dead` of `node` with incarnation `inc`.
pub fn is_dead(node: &str, inc: u64) -> impl FnMut(&TransportEvent) -> bool {
    let node = NodeId::new(node);
    move |e| matches!(e, TransportEvent::Dead { node: n, incarnation, .. } if *n == node && incarnation.get() == inc)
}

/// `Disconnected` of `node`.
pub fn is_disconnected(node: &str) -> impl FnMut(&TransportEvent) -> bool {
    let node = NodeId::new(node);
    move |e| matches!(e, TransportEvent::Disconnected { node: n, .. } if *n == node)
}

/// Asserts that no event of `seen` is a `Dead` (dead only on proof); `what` says why none may
/// be.
pub fn assert_no_death(seen: &[TransportEvent], what: &str) {
    let dead: Vec<&TransportEvent> = seen
        .iter()
        .filter(|e| matches!(e, TransportEvent::Dead { .. }))
        .collect();
    assert!(dead.is_empty(), "{what}: {dead:?} among {seen:?}");
}

/// The next `n` messages `t` receives (other events skipped).
pub async fn messages<T: Transport + ?Sized>(t: &T, n: usize) -> Vec<Envelope> {
    let mut got = Vec::new();
    while got.len() < n {
        let seen = expect(t, SOON, "a message", |e| {
            matches!(e, TransportEvent::Message(_))
        })
        .await;
        if let Some(TransportEvent::Message(env)) = seen.into_iter().last() {
            got.push(env);
        }
    }
    got
}

/// a (incarnation 11) and b (22), connected; returns (a, b, b's address).
async fn linked(s: &impl Subject) -> (Arc<dyn Transport>, Arc<dyn Transport>, String) {
    let (a, _) = start(s, "a", 11).await;
    let (b, b_addr) = start(s, "b", 22).await;
    a.connect(&b_addr).await;
    expect(&*a, SOON, "a: Connected{b,22}", is_connected("b", 22)).await;
    expect(&*b, SOON, "b: Connected{a,11}", is_connected("a", 11)).await;
    (a, b, b_addr)
}

/// `Connected` carries the peer's incarnation on both sides, and the advertised address of
/// the node dialled.
pub async fn connected_carries_both_incarnations(s: &impl Subject) {
    let (a, _) = start(s, "a", 11).await;
    let (b, b_addr) = start(s, "b", 22).await;
    a.connect(&b_addr).await;
    let seen = expect(&*a, SOON, "a: Connected{b,22}", is_connected("b", 22)).await;
    assert!(
        seen.iter().any(|e| matches!(e,
            TransportEvent::Connected { addr, .. } if *addr == b_addr)),
        "Connected carries the advertised address: {seen:?}"
    );
    expect(&*b, SOON, "b: Connected{a,11}", is_connected("a", 11)).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Every message variant arrives as sent, in order, from the sender and incarnation the
/// connection belongs to, both ways.
pub async fn messages_arrive_from_the_authenticated_sender_in_order(s: &impl Subject) {
    let (a, b, _) = linked(s).await;
    let all = every_message();
    for (from, to, inc) in [(&a, &b, 11), (&b, &a, 22)] {
        let peer = if inc == 11 { "b" } else { "a" };
        for m in &all {
            from.send(&NodeId::new(peer), m.clone())
                .await
                .expect("send to a linked peer");
        }
        let got = messages(&**to, all.len()).await;
        let sender = if inc == 11 { "a" } else { "b" };
        for (env, sent) in got.iter().zip(&all) {
            assert_eq!(env.from, NodeId::new(sender));
            assert_eq!(env.incarnation.get(), inc);
            assert_eq!(&env.message, sent);
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// An orderly shutdown is proven: the peer sees `Disconnected`, then `Dead` of the incarnation
/// that ended (never a `Connected`); the shut-down transport's `recv` ends and `send` fails.
pub async fn shutdown_is_proven_dead_with_the_ended_incarnation(s: &impl Subject) {
    let (a, b, _) = linked(s).await;
    b.shutdown().await;
    let seen = expect(&*a, SOON, "Dead{b,22}", is_dead("b", 22)).await;
    assert!(
        matches!(seen[0], TransportEvent::Disconnected { .. }),
        "{seen:?}"
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, TransportEvent::Connected { .. })),
        "{seen:?}"
    );
    assert!(b.recv().await.is_none(), "recv ends after shutdown");
    assert!(matches!(
        b.send(&NodeId::new("a"), Message::Leave).await,
        Err(TransportError::Closed)
    ));
    a.shutdown().await;
}

/// A node restarted on its address with a higher incarnation is seen as `Dead` of the old
/// incarnation, then `Connected` of the new one (each once, the old one never connected
/// again), and messages reach the new one.
pub async fn restart_is_dead_old_then_connected_new(s: &impl Subject) {
    let (a, a_addr) = start(s, "a", 11).await;
    let (b, b_addr) = start(s, "b", 22).await;
    a.connect(&b_addr).await;
    expect(&*a, SOON, "a: Connected{b,22}", is_connected("b", 22)).await;
    expect(&*b, SOON, "b: Connected{a,11}", is_connected("a", 11)).await;

    b.shutdown().await;
    let (b2, b2_addr) = start_on(s, "b", 23, &b_addr).await;
    assert_eq!(b2_addr, b_addr);
    b2.connect(&a_addr).await;
    expect(&*b2, SOON, "b2: Connected{a,11}", is_connected("a", 11)).await;

    let seen = expect(&*a, SOON, "Connected{b,23}", is_connected("b", 23)).await;
    let dead = seen
        .iter()
        .position(is_dead("b", 22))
        .unwrap_or_else(|| panic!("Dead{{b,22}} before Connected{{b,23}}: {seen:?}"));
    assert!(dead < seen.len() - 1);
    assert!(!seen.iter().any(is_connected("b", 22)), "{seen:?}");
    let later = drain(&*a, Duration::from_millis(100)).await;
    assert_no_death(&later, "a second death");
    a.send(&NodeId::new("b"), Message::Leave)
        .await
        .expect("send to the reconnected peer");
    let got = messages(&*b2, 1).await;
    assert_eq!(
        (got[0].from.as_str(), got[0].incarnation),
        ("a", Incarnation(11))
    );
    a.shutdown().await;
    b2.shutdown().await;
}

/// Dead only on proof: two live, linked, idle peers never report each other dead.
pub async fn a_live_idle_peer_is_never_reported_dead(s: &impl Subject) {
    let (a, b, _) = linked(s).await;
    let (on_a, on_b) = tokio::join!(
        drain(&*a, Duration::from_millis(500)),
        drain(&*b, Duration::from_millis(500))
    );
    for seen in [&on_a, &on_b] {
        assert_no_death(seen, "a live idle peer");
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Sending to a node that was never connected is `Unreachable`.
pub async fn send_to_a_never_connected_node_is_unreachable(s: &impl Subject) {
    let (a, _) = start(s, "a", 11).await;
    assert!(matches!(
        a.send(&NodeId::new("nobody"), Message::Leave).await,
        Err(TransportError::Unreachable(_))
    ));
    a.shutdown().await;
}
