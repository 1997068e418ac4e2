//! Fault injection: crash, link reset, restart, partition, drop, delay, duplicate, heal.

mod common;

use baton_core::{Message, Transport, TransportError, TransportEvent};
use baton_transport_memory::{MemoryNetwork, MemoryTransport, NetworkStats};
use common::*;
use std::time::Duration;
use tokio::time::Instant;

// ----- crash ---------------------------------------------------------------------------------

#[tokio::test]
async fn crash_proves_death_to_linked_peers_only() {
    let net = MemoryNetwork::new();
    let a = start(&net, "a", 1).await;
    let b = start(&net, "b", 4).await;
    let c = start(&net, "c", 1).await;
    let d = start(&net, "d", 1).await; // never linked to b
    for peer in [&a, &c] {
        peer.connect("b").await;
        assert_eq!(next(peer).await, connected("b", 4));
        assert!(matches!(next(&b).await, TransportEvent::Connected { .. }));
    }

    assert!(net.crash("b"));
    for peer in [&a, &c] {
        assert_eq!(next(peer).await, disconnected("b"));
        assert_eq!(next(peer).await, dead("b", 4));
    }
    assert_quiet(&d).await;
    assert!(matches!(
        a.send(&id("b"), Message::Leave).await,
        Err(TransportError::Unreachable(_))
    ));
    assert_eq!(net.live_nodes(), vec![id("a"), id("c"), id("d")]);
    assert!(!net.crash("b"), "crashing twice is a no-op");
    assert!(!net.crash("nobody"));
}

#[tokio::test]
async fn crashed_endpoint_recv_returns_none_even_with_events_pending() {
    let (net, a, b) = linked_network().await;
    a.send(&id("b"), numbered(1)).await.unwrap(); // pending in b's queue
    net.crash("b");
    assert_eq!(b.recv().await, None);
    assert!(b.is_closed());
    assert!(matches!(
        b.send(&id("a"), Message::Leave).await,
        Err(TransportError::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn crash_loses_the_crashed_nodes_messages_in_flight() {
    let (net, a, b) = linked_network().await;
    net.set_delay(Duration::from_millis(100));
    b.send(&id("a"), numbered(1)).await.unwrap();
    a.send(&id("b"), numbered(2)).await.unwrap();
    assert_eq!(net.in_flight(), 2);
    net.crash("b");
    expect_events(&a, &[disconnected("b"), dead("b", 1)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_quiet(&a).await;
    assert_eq!(net.in_flight(), 0);
    assert_eq!(net.stats().dropped, 2);
}

#[tokio::test]
async fn connecting_to_a_crashed_nodes_address_is_refused_with_proof() {
    let net = MemoryNetwork::new();
    let a = a_after_b_crashed(&net).await;
    // The caller knew a process at that address: the refusal proves it gone (again).
    a.connect("b").await;
    assert_eq!(next(&a).await, dead("b", 1));
}

// ----- reset ---------------------------------------------------------------------------------

#[tokio::test]
async fn reset_link_reconnects_with_the_same_incarnation_and_never_dead() {
    let (net, a, b) = linked_network().await;

    assert!(net.reset_link("a", "b"));
    expect_events(&a, &[reset("b"), connected("b", 1)]).await;
    expect_events(&b, &[reset("a"), connected("a", 1)]).await;
    assert_quiet(&a).await;
    assert_quiet(&b).await;

    a.send(&id("b"), numbered(1)).await.unwrap();
    b.send(&id("a"), numbered(2)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 1);
    assert_eq!(number_from(&next(&a).await, "b"), 2);
}

#[tokio::test]
async fn reset_link_needs_two_live_linked_nodes() {
    let net = MemoryNetwork::new();
    let a = start(&net, "a", 1).await;
    let _b = start(&net, "b", 1).await;
    assert!(!net.reset_link("a", "b"), "no link yet");
    assert!(!net.reset_link("a", "nobody"));
    assert!(!net.reset_link("a", "a"));
    assert_quiet(&a).await;
}

#[tokio::test]
async fn reset_link_across_a_partition_gets_no_reconnect() {
    let (net, a, b) = linked_network().await;
    net.isolate("b");
    assert!(net.reset_link("a", "b"));
    assert_eq!(next(&a).await, reset("b"));
    assert_eq!(next(&b).await, reset("a"));
    assert_quiet(&a).await; // neither Connected nor Dead: wait for the timeout
    net.heal();
    a.connect("b").await;
    assert_eq!(next(&a).await, connected("b", 1));
    assert_eq!(next(&b).await, connected("a", 1));
}

/// a, linked to b, once b crashed and a saw the proof (`Disconnected`, then `Dead{b,1}`).
async fn a_after_b_crashed(net: &MemoryNetwork) -> MemoryTransport {
    let (a, _b) = linked_pair(net).await;
    net.crash("b");
    expect_events(&a, &[disconnected("b"), dead("b", 1)]).await;
    a
}

/// [`a_after_b_crashed`], and b's next process (incarnation 2), started but not linked to a
/// yet.
async fn a_and_b_restarted() -> (MemoryTransport, MemoryTransport) {
    let net = MemoryNetwork::new();
    let a = a_after_b_crashed(&net).await;
    let b2 = start(&net, "b", 2).await;
    (a, b2)
}

// ----- restart -------------------------------------------------------------------------------

#[tokio::test]
async fn restarted_node_connecting_is_seen_with_its_new_incarnation() {
    let (a, b2) = a_and_b_restarted().await;
    b2.connect("a").await;
    assert_eq!(next(&a).await, connected("b", 2));
    assert_eq!(next(&b2).await, connected("a", 1));

    b2.send(&id("a"), numbered(9)).await.unwrap();
    match next(&a).await {
        TransportEvent::Message(env) => assert_eq!(env.incarnation, baton_core::Incarnation(2)),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn old_peer_connecting_to_a_restarted_node_sees_dead_then_connected() {
    let (a, b2) = a_and_b_restarted().await;
    a.connect("b").await;
    expect_events(&a, &[dead("b", 1), connected("b", 2)]).await;
    assert_eq!(next(&b2).await, connected("a", 1));
}

// ----- partition -----------------------------------------------------------------------------

#[tokio::test]
async fn partition_drops_silently_both_ways_and_heal_restores() {
    let (net, a, b) = linked_network().await;
    let c = start(&net, "c", 1).await; // named in no set: joins the rest with b

    net.partition(&[&["a"], &["b"]]);
    assert!(net.is_partitioned("a", "b"));
    assert!(net.is_partitioned("a", "c"));
    assert!(net.is_partitioned("b", "c"));

    a.send(&id("b"), numbered(1)).await.unwrap();
    b.send(&id("a"), numbered(2)).await.unwrap();
    assert_quiet(&a).await;
    assert_quiet(&b).await;
    assert_eq!(net.stats().dropped, 2);

    net.heal();
    assert!(!net.is_partitioned("a", "b"));
    a.send(&id("b"), numbered(3)).await.unwrap();
    b.send(&id("a"), numbered(4)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 3);
    assert_eq!(number_from(&next(&a).await, "b"), 4);
    assert_quiet(&c).await;
}

#[tokio::test]
async fn unnamed_nodes_form_one_set_together() {
    let net = MemoryNetwork::new();
    net.partition(&[&["a"]]);
    assert!(net.is_partitioned("a", "b"));
    assert!(!net.is_partitioned("b", "c"));
    net.isolate(id("c"));
    assert!(
        !net.is_partitioned("a", "b"),
        "isolate replaces the partition"
    );
    assert!(net.is_partitioned("c", "a"));
}

#[tokio::test]
async fn connect_across_a_partition_gets_no_answer() {
    let net = MemoryNetwork::new();
    let a = start(&net, "a", 1).await;
    let b = start(&net, "b", 1).await;
    net.isolate("a");
    a.connect("b").await;
    assert_quiet(&a).await;
    assert_quiet(&b).await;
    a.send(&id("b"), numbered(1)).await.unwrap(); // black hole, not an error
    assert_quiet(&b).await;
}

/// a, linked to b, once b was isolated and then crashed: no proof of it has reached a yet.
async fn a_after_b_crashed_behind_a_cut() -> (MemoryNetwork, MemoryTransport) {
    let (net, a, _b) = linked_network().await;
    net.isolate("b");
    net.crash("b");
    (net, a)
}

#[tokio::test]
async fn crash_behind_a_partition_is_proven_when_it_heals() {
    let (net, a) = a_after_b_crashed_behind_a_cut().await;
    assert_quiet(&a).await; // no proof can cross the cut
    a.connect("b").await;
    assert_quiet(&a).await;

    net.heal();
    expect_events(&a, &[disconnected("b"), dead("b", 1)]).await;
    assert_quiet(&a).await;
}

#[tokio::test]
async fn restart_behind_a_partition_is_seen_when_it_heals() {
    let (net, a) = a_after_b_crashed_behind_a_cut().await;
    let b2 = start(&net, "b", 2).await;
    assert_quiet(&a).await;

    net.heal();
    expect_events(&a, &[disconnected("b"), dead("b", 1), connected("b", 2)]).await;
    assert_eq!(next(&b2).await, connected("a", 1));
}

// ----- drop, duplicate -----------------------------------------------------------------------

#[tokio::test]
async fn drop_rate_one_drops_everything_and_zero_nothing() {
    let (net, a, b) = linked_network().await;

    net.set_drop_rate(1.0);
    for n in 0..50 {
        a.send(&id("b"), numbered(n)).await.unwrap();
    }
    assert_quiet(&b).await;
    assert_eq!(net.stats().dropped, 50);

    net.set_drop_rate(0.0);
    for n in 0..50 {
        a.send(&id("b"), numbered(n)).await.unwrap();
    }
    for n in 0..50 {
        assert_eq!(number_from(&next(&b).await, "a"), n);
    }
    assert_quiet(&b).await;
    assert_eq!(
        net.stats(),
        NetworkStats {
            sent: 100,
            delivered: 50,
            dropped: 50,
            duplicated: 0
        }
    );
}

#[tokio::test]
async fn drop_rate_is_reproducible_from_the_seed() {
    async fn survivors(seed: u64) -> Vec<u64> {
        let net = MemoryNetwork::with_seed(seed);
        let (a, b) = linked_pair(&net).await;
        net.set_drop_rate(0.5);
        for n in 0..200 {
            a.send(&id("b"), numbered(n)).await.unwrap();
        }
        let mut got = Vec::new();
        while let Ok(Some(ev)) = tokio::time::timeout(QUIET, b.recv()).await {
            got.push(number_from(&ev, "a"));
        }
        got
    }
    let first = survivors(42).await;
    assert_eq!(first, survivors(42).await);
    assert!((40..160).contains(&first.len()), "{}", first.len());
    assert_ne!(first, survivors(43).await);
}

#[tokio::test]
async fn out_of_range_rates_are_clamped() {
    let (net, a, b) = linked_network().await;
    net.set_drop_rate(f64::NAN);
    net.set_duplicate_rate(-1.0);
    a.send(&id("b"), numbered(1)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 1);
    assert_quiet(&b).await;
    net.set_drop_rate(17.0);
    a.send(&id("b"), numbered(2)).await.unwrap();
    assert_quiet(&b).await;
}

#[tokio::test]
async fn duplicate_rate_one_delivers_every_message_twice() {
    let (net, a, b) = linked_network().await;
    net.set_duplicate_rate(1.0);
    a.send(&id("b"), numbered(1)).await.unwrap();
    a.send(&id("b"), numbered(2)).await.unwrap();
    for expected in [1, 1, 2, 2] {
        assert_eq!(number_from(&next(&b).await, "a"), expected);
    }
    assert_quiet(&b).await;
    assert_eq!(net.stats().duplicated, 2);
    assert_eq!(net.stats().delivered, 4);
}

// ----- delay ---------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn delay_holds_messages_at_least_the_delay_and_keeps_fifo() {
    let (net, a, b) = linked_network().await;
    let delay = Duration::from_millis(200);
    net.set_delay(delay);

    let t0 = Instant::now();
    for n in 0..20 {
        a.send(&id("b"), numbered(n)).await.unwrap();
    }
    // Shrinking the delay must not let later messages overtake earlier ones.
    net.set_delay(Duration::ZERO);
    for n in 20..40 {
        a.send(&id("b"), numbered(n)).await.unwrap();
    }
    assert_eq!(number_from(&next(&b).await, "a"), 0);
    assert!(t0.elapsed() >= delay, "{:?}", t0.elapsed());
    for n in 1..40 {
        assert_eq!(number_from(&next(&b).await, "a"), n);
    }
    assert_eq!(net.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_on_a_real_clock_keeps_fifo() {
    let (net, a, b) = linked_network().await;
    let delay = Duration::from_millis(30);
    net.set_delay(delay);
    let t0 = std::time::Instant::now();
    for n in 0..200 {
        a.send(&id("b"), numbered(n)).await.unwrap();
    }
    for n in 0..200 {
        assert_eq!(number_from(&next(&b).await, "a"), n);
    }
    assert!(t0.elapsed() >= delay, "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn link_delay_overrides_the_global_delay() {
    let (net, a, b) = linked_network().await;
    let c = start(&net, "c", 1).await;
    net.set_delay(Duration::from_millis(10));
    net.set_link_delay("b", "a", Duration::from_secs(1));

    let t0 = Instant::now();
    a.send(&id("b"), numbered(1)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 1);
    assert!(t0.elapsed() >= Duration::from_secs(1));

    let t1 = Instant::now();
    a.send(&id("c"), numbered(2)).await.unwrap();
    assert_eq!(next(&c).await, connected("a", 1));
    assert_eq!(number_from(&next(&c).await, "a"), 2);
    let took = t1.elapsed();
    assert!(
        took >= Duration::from_millis(10) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_delivers_messages_already_sent_before_the_proof() {
    let (net, a, b) = linked_network().await;
    net.set_delay(Duration::from_millis(100));
    a.send(&id("b"), Message::Leave).await.unwrap();
    a.shutdown().await;
    assert!(
        matches!(next(&b).await, TransportEvent::Message(env) if env.message == Message::Leave)
    );
    expect_events(&b, &[disconnected("a"), dead("a", 1)]).await;
}

#[tokio::test(start_paused = true)]
async fn reset_link_loses_messages_in_flight() {
    let (net, a, b) = linked_network().await;
    net.set_delay(Duration::from_millis(100));
    a.send(&id("b"), numbered(1)).await.unwrap();
    net.reset_link("a", "b");
    expect_events(&b, &[reset("a"), connected("a", 1)]).await;
    a.send(&id("b"), numbered(2)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 2);
    assert_eq!(net.stats().dropped, 1);
}

#[tokio::test(start_paused = true)]
async fn partition_drops_messages_already_in_flight() {
    let (net, a, b) = linked_network().await;
    net.set_delay(Duration::from_millis(100));
    a.send(&id("b"), numbered(1)).await.unwrap();
    net.isolate("a");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_quiet(&b).await;
    assert_eq!(net.stats().dropped, 1);
}

#[tokio::test(start_paused = true)]
async fn an_enormous_delay_does_not_panic() {
    let (net, a, b) = linked_network().await;
    net.set_delay(Duration::MAX);
    a.send(&id("b"), numbered(1)).await.unwrap();
    a.send(&id("b"), numbered(2)).await.unwrap();
    assert_quiet(&b).await;
    assert_eq!(net.in_flight(), 2);
}

// ----- heal ----------------------------------------------------------------------------------

#[tokio::test]
async fn heal_clears_every_fault() {
    let (net, a, b) = linked_network().await;
    net.set_drop_rate(1.0);
    net.set_duplicate_rate(1.0);
    net.set_delay(Duration::from_secs(3600));
    net.set_link_delay("a", "b", Duration::from_secs(3600));
    net.isolate("a");
    net.heal();
    let t0 = std::time::Instant::now();
    a.send(&id("b"), numbered(1)).await.unwrap();
    assert_eq!(number_from(&next(&b).await, "a"), 1);
    assert_quiet(&b).await;
    assert!(t0.elapsed() < WAIT);
    assert_eq!(net.stats().duplicated, 0);
}
