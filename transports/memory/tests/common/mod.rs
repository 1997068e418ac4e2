//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a module shared by several test binaries: each uses part of it, none exports it"
)]

use baton_core::{CloseKind, DeathProof, LocalNode, Message, NodeId, Transport, TransportEvent};
use baton_transport_memory::{MemoryNetwork, MemoryTransport};
use std::time::Duration;

/// Generous bound for "an event that must arrive".
pub const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched.
pub const QUIET: Duration = Duration::from_millis(50);

pub fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

/// A fresh network with node a (incarnation 1) started on it.
pub async fn network_with_a() -> (MemoryNetwork, MemoryTransport) {
    let net = MemoryNetwork::new();
    let a = start(&net, "a", 1).await;
    (net, a)
}

/// Node `name`'s identity, listening at `listen`.
pub fn local(name: &str, incarnation: u64, listen: &str) -> LocalNode {
    LocalNode {
        id: id(name),
        incarnation: baton_core::Incarnation(incarnation),
        listen: listen.to_string(),
        fingerprint: Default::default(),
        death_proof: Default::default(),
    }
}

/// A started endpoint named `name`, listening at `name`.
pub async fn start(net: &MemoryNetwork, name: &str, incarnation: u64) -> MemoryTransport {
    let t = net.transport();
    let addr = t
        .start(&local(name, incarnation, name))
        .await
        .expect("start");
    assert_eq!(addr, name);
    t
}

/// The next event, failing the test if none arrives in time or the transport is closed.
pub async fn next(t: &MemoryTransport) -> TransportEvent {
    match tokio::time::timeout(WAIT, t.recv()).await {
        Ok(Some(ev)) => ev,
        Ok(None) => panic!("transport closed while an event was expected"),
        Err(_) => panic!("no event within {WAIT:?}"),
    }
}

/// The next events of `t` are `want`, in order (each within [`WAIT`]).
pub async fn expect_events(t: &MemoryTransport, want: &[TransportEvent]) {
    for (i, w) in want.iter().enumerate() {
        assert_eq!(&next(t).await, w, "event {i} of {want:?}");
    }
}

/// Fails the test if an event arrives within [`QUIET`].
pub async fn assert_quiet(t: &MemoryTransport) {
    if let Ok(ev) = tokio::time::timeout(QUIET, t.recv()).await {
        panic!("expected no event, got {ev:?}");
    }
}

pub fn connected(name: &str, incarnation: u64) -> TransportEvent {
    TransportEvent::Connected {
        node: id(name),
        incarnation: baton_core::Incarnation(incarnation),
        addr: name.to_string(),
    }
}

/// The connection closed in order (the peer's process went away).
pub fn disconnected(name: &str) -> TransportEvent {
    TransportEvent::Disconnected {
        node: id(name),
        how: CloseKind::Orderly,
    }
}

/// The connection was reset (a link fault, the process may live).
pub fn reset(name: &str) -> TransportEvent {
    TransportEvent::Disconnected {
        node: id(name),
        how: CloseKind::Abrupt,
    }
}

/// Proof of death after an orderly close.
pub fn dead(name: &str, incarnation: u64) -> TransportEvent {
    TransportEvent::Dead {
        node: id(name),
        incarnation: baton_core::Incarnation(incarnation),
        proof: DeathProof::RefusedAfterOrderlyClose,
    }
}

/// A distinguishable message: a `Request` carrying `n`.
pub fn numbered(n: u64) -> Message {
    Message::Request(baton_core::message::Request {
        id: n,
        group: "g".into(),
        any: false,
        payload: vec![],
    })
}

/// The number carried by a [`numbered`] message event, from `from`.
pub fn number_from(ev: &TransportEvent, from: &str) -> u64 {
    match ev {
        TransportEvent::Message(env) if env.from.as_str() == from => match &env.message {
            Message::Request(r) => r.id,
            other => panic!("unexpected message {other:?}"),
        },
        other => panic!("expected a message from {from}, got {other:?}"),
    }
}

/// A fresh network with a and b (incarnation 1 each) started and linked (see [`linked_pair`]).
pub async fn linked_network() -> (MemoryNetwork, MemoryTransport, MemoryTransport) {
    let net = MemoryNetwork::new();
    let (a, b) = linked_pair(&net).await;
    (net, a, b)
}

/// Two started endpoints `a`, `b` with an open link, their `Connected` events consumed.
pub async fn linked_pair(net: &MemoryNetwork) -> (MemoryTransport, MemoryTransport) {
    let a = start(net, "a", 1).await;
    let b = start(net, "b", 1).await;
    a.connect("b").await;
    assert_eq!(next(&a).await, connected("b", 1));
    assert_eq!(next(&b).await, connected("a", 1));
    (a, b)
}
