//! Connecting, sending, receiving, starting and shutting down, without faults.

mod common;

use baton_core::{LocalNode, Message, Transport, TransportError, TransportEvent};
use baton_transport_memory::MemoryNetwork;
use common::*;
use std::sync::Arc;

#[tokio::test]
async fn connect_reports_connected_on_both_sides_once() {
    let (net, a) = network_with_a().await;
    let b = start(&net, "b", 7).await;

    a.connect("b").await;
    assert_eq!(next(&a).await, connected("b", 7));
    assert_eq!(next(&b).await, connected("a", 1));

    // The link is open: connecting again, from either side, is a no-op.
    a.connect("b").await;
    b.connect("a").await;
    assert_quiet(&a).await;
    assert_quiet(&b).await;
}

#[tokio::test]
async fn send_delivers_the_envelope_with_sender_and_incarnation() {
    let (net, a, b) = linked_network().await;

    a.send(&id("b"), Message::Leave).await.unwrap();
    match next(&b).await {
        TransportEvent::Message(env) => {
            assert_eq!(env.from, id("a"));
            assert_eq!(env.incarnation, baton_core::Incarnation(1));
            assert_eq!(env.message, Message::Leave);
        }
        other => panic!("unexpected {other:?}"),
    }
    b.send(&id("a"), numbered(3)).await.unwrap();
    assert_eq!(number_from(&next(&a).await, "b"), 3);
    assert_eq!(net.stats().delivered, 2);
}

#[tokio::test]
async fn send_opens_the_link_implicitly() {
    let (net, a) = network_with_a().await;
    let b = start(&net, "b", 2).await;

    a.send(&id("b"), numbered(1)).await.unwrap();
    assert_eq!(next(&a).await, connected("b", 2));
    assert_eq!(next(&b).await, connected("a", 1));
    assert_eq!(number_from(&next(&b).await, "a"), 1);

    // Later sends reuse the link: no further Connected.
    a.send(&id("b"), numbered(2)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 2);
    assert_quiet(&a).await;
}

#[tokio::test]
async fn send_to_a_node_without_endpoint_is_unreachable() {
    let (net, a) = network_with_a().await;
    let err = a.send(&id("nobody"), Message::Leave).await.unwrap_err();
    assert!(matches!(err, TransportError::Unreachable(n) if n == id("nobody")));
    // An endpoint that was made but never started is no node either.
    let _unstarted = net.transport();
    assert!(a.send(&id("b"), Message::Leave).await.is_err());
    assert_eq!(net.stats().sent, 0);
}

#[tokio::test]
async fn send_and_connect_before_start_do_nothing_harmful() {
    let net = MemoryNetwork::new();
    let _b = start(&net, "b", 1).await;
    let t = net.transport();
    let err = t.send(&id("b"), Message::Leave).await.unwrap_err();
    assert!(matches!(err, TransportError::Closed));
    t.connect("b").await;
    assert_quiet(&t).await;
}

#[tokio::test]
async fn connect_to_an_empty_address_fails() {
    let (_net, a) = network_with_a().await;
    a.connect("nowhere").await;
    match next(&a).await {
        TransportEvent::ConnectFailed { addr, reason } => {
            assert_eq!(addr, "nowhere");
            assert!(!reason.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_own_address_is_ignored() {
    let (_net, a) = network_with_a().await;
    a.connect("a").await;
    assert_quiet(&a).await;
}

#[tokio::test]
async fn send_to_self_is_delivered_without_link_events() {
    let (_net, a) = network_with_a().await;
    a.send(&id("a"), numbered(5)).await.unwrap();
    assert_eq!(number_from(&next(&a).await, "a"), 5);
    assert_quiet(&a).await;
}

#[tokio::test]
async fn start_twice_on_the_same_address_is_refused() {
    let net = MemoryNetwork::new();
    let first = start(&net, "a", 1).await;

    let second = net.transport();
    let err = second.start(&local("other", 1, "a")).await.unwrap_err();
    assert!(
        matches!(err, TransportError::Start { ref addr, .. } if addr == "a"),
        "{err}"
    );

    // A second live endpoint for the same node, elsewhere, is refused too.
    let err = second.start(&local("a", 2, "a-2")).await.unwrap_err();
    assert!(matches!(err, TransportError::Start { .. }), "{err}");

    // Starting the same endpoint twice is refused.
    let err = first.start(&local("a", 1, "a-again")).await.unwrap_err();
    assert!(matches!(err, TransportError::Start { .. }), "{err}");
    assert_eq!(net.live_nodes(), vec![id("a")]);

    // Once the holder is gone the refused endpoint can still start there.
    first.shutdown().await;
    let addr = second.start(&local("a", 2, "a")).await.unwrap();
    assert_eq!(addr, "a");
    assert_eq!(net.incarnation("a"), Some(baton_core::Incarnation(2)));
}

#[tokio::test]
async fn shutdown_proves_death_to_peers_and_closes_recv() {
    let (net, a, b) = linked_network().await;
    let c = start(&net, "c", 1).await; // no link to a

    a.shutdown().await;
    expect_events(&b, &[disconnected("a"), dead("a", 1)]).await;
    assert_quiet(&c).await;
    assert_eq!(a.recv().await, None);
    assert!(a.is_closed());

    assert!(matches!(
        b.send(&id("a"), Message::Leave).await,
        Err(TransportError::Unreachable(_))
    ));
    assert!(matches!(
        a.send(&id("b"), Message::Leave).await,
        Err(TransportError::Closed)
    ));
    assert!(a.start(&LocalNode::new("a", 2, "a")).await.is_err());
    assert_eq!(net.live_nodes(), vec![id("b"), id("c")]);
}

#[tokio::test]
async fn shutdown_wakes_a_pending_recv() {
    let net = MemoryNetwork::new();
    let a = Arc::new(start(&net, "a", 1).await);
    let waiter = tokio::spawn({
        let a = a.clone();
        async move { a.recv().await }
    });
    tokio::task::yield_now().await;
    a.shutdown().await;
    let got = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert_eq!(got, None);
}

#[tokio::test]
async fn shutdown_of_an_unstarted_endpoint_closes_it() {
    let net = MemoryNetwork::new();
    let t = net.transport();
    t.shutdown().await;
    assert_eq!(t.recv().await, None);
}

#[tokio::test]
async fn dropping_a_started_endpoint_is_a_kind_shutdown() {
    let (net, a, b) = linked_network().await;
    drop(a);
    expect_events(&b, &[disconnected("a"), dead("a", 1)]).await;
    let _a2 = start(&net, "a", 2).await; // the address is free again
}

#[tokio::test]
async fn works_as_a_trait_object() {
    let net = MemoryNetwork::new();
    let a: Arc<dyn Transport> = Arc::new(net.transport());
    let b: Arc<dyn Transport> = Arc::new(net.transport());
    for (t, name) in [(&a, "a"), (&b, "b")] {
        t.start(&local(name, 1, name)).await.unwrap();
    }
    a.send(&id("b"), Message::Leave).await.unwrap();
    assert_eq!(b.recv().await, Some(connected("a", 1)));
    assert!(matches!(b.recv().await, Some(TransportEvent::Message(_))));
}

/// Issue 11: the in-memory transport has no queue bound, so it never drops (nor coalesces) a
/// message for a peer that does not read: 10 000 heartbeats and 2 000 vote requests queued
/// before the peer reads all arrive, in the order sent.
#[tokio::test]
async fn a_peer_that_does_not_read_loses_nothing() {
    use baton_testkit::fixtures::{bare_heartbeat as heartbeat, numbered_vote as vote};
    let (net, a, b) = linked_network().await;
    let mut sent = Vec::new();
    for seq in 1..=10_000 {
        sent.push(heartbeat(seq));
        if seq % 5 == 0 {
            sent.push(vote(seq / 5));
        }
    }
    for m in &sent {
        a.send(&id("b"), m.clone()).await.unwrap();
    }
    for (i, want) in sent.iter().enumerate() {
        match next(&b).await {
            TransportEvent::Message(env) => assert_eq!(&env.message, want, "message {i}"),
            other => panic!("message {i}: unexpected {other:?}"),
        }
    }
    assert_quiet(&b).await;
    assert_eq!(net.stats().dropped, 0);
}

#[test]
fn member_config_listens_at_the_name_seeds_the_others_and_counts_every_voter() {
    let c = MemoryNetwork::member_config("b", &["a", "b", "c"]);
    assert_eq!(c.node.name, "b");
    assert_eq!(c.node.listen, "b");
    assert_eq!(c.cluster.seeds, vec!["a".to_string(), "c".to_string()]);
    assert_eq!(c.cluster.voters, vec!["a", "b", "c"]);
}
