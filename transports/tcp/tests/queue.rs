//! The outgoing queue over real loopback connections (issue 11): heartbeats are coalesced,
//! everything else arrives in order, and a queue pushed past its limit closes the connection
//! (reported as a reset, then redialed) instead of dropping messages quietly.
//!
//! Each test runs on tokio's current-thread runtime: a loop of `send`s never yields (`send`
//! never waits), so no writer runs while the loop pushes — the peer reads nothing of it until
//! the loop ends, however fast the machine.

mod common;

use baton_core::{CloseKind, Message, NodeId, Transport, TransportError, TransportEvent};
use baton_testkit::fixtures::{bare_heartbeat as heartbeat, numbered_vote as vote};
use baton_transport_tcp::{TcpClient, TcpTransport};
use common::*;
use std::time::Duration;

/// The next `n` messages `t` receives (other events skipped).
async fn messages(t: &TcpTransport, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(SOON, t.recv()).await {
            Ok(Some(TransportEvent::Message(env))) => got.push(env.message),
            Ok(Some(_)) => {}
            other => panic!("expected {n} messages, got {} then {other:?}", got.len()),
        }
    }
    got
}

/// 10 000 heartbeats and 2 000 vote requests queued for a peer before it reads any: every vote
/// request arrives, in order, and of the heartbeats only the newest (in the first one's place).
#[tokio::test]
async fn every_vote_arrives_in_order_and_only_the_newest_heartbeat() {
    let ((a, _), (b, _)) = start_paired((config(), "a", 1), (config(), "b", 1)).await;
    let to_b = NodeId::new("b");
    let mut term = 0;
    for seq in 1..=10_000 {
        a.send(&to_b, heartbeat(seq)).await.unwrap();
        if seq % 5 == 0 {
            term += 1;
            a.send(&to_b, vote(term)).await.unwrap();
        }
    }
    let got = messages(&b, 2_001).await;
    assert_eq!(got[0], heartbeat(10_000));
    let votes: Vec<Message> = (1..=2_000).map(vote).collect();
    assert_eq!(got[1..], votes[..]);
    // Nothing else comes: no older heartbeat, no second copy.
    let rest: Vec<TransportEvent> = drain(&b, Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|e| matches!(e, TransportEvent::Message(_)))
        .collect();
    assert!(rest.is_empty(), "{rest:?}");
    shutdown_all([a, b]).await;
}

/// One message past the limit: the queue is not trimmed quietly; the connection is closed as a
/// reset would close it (`Disconnected { Abrupt }`, never `Dead`), one warning names the peer
/// and the queue's size, the peer is redialed, and what is sent next arrives.
#[tokio::test]
async fn overflow_closes_and_redials_the_connection_instead_of_dropping_quietly() {
    let (logs, _guard) = Logs::capture();
    let mut small = config();
    small.outbound_queue = 100;
    let ((a, _), (b, _)) = start_paired((small, "a", 1), (config(), "b", 1)).await;
    let to_b = NodeId::new("b");
    for term in 1..=101 {
        a.send(&to_b, vote(term)).await.unwrap();
    }
    let mut seen = Vec::new();
    expect(&a, SOON, "a: Disconnected{b, Abrupt}", |e| {
        seen.push(e.clone());
        matches!(e, TransportEvent::Disconnected { node, how: CloseKind::Abrupt } if *node == to_b)
    })
    .await;
    expect(&a, SOON, "a: Connected{b} again", |e| {
        seen.push(e.clone());
        is_connected("b", 1)(e)
    })
    .await;
    assert_no_death(&seen, "a queue overflow proves nothing");
    let text = logs.text();
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("outgoing queue to b full"))
        .collect();
    assert_eq!(warned.len(), 1, "{text}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains("101 messages"),
        "{}",
        warned[0]
    );
    assert!(warned[0].contains("closed the connection"), "{}", warned[0]);

    // The link works on: the next message is the first b gets (the discarded queue never
    // reached it), and it arrives.
    a.send(&to_b, vote(1_000)).await.unwrap();
    assert_eq!(messages(&b, 1).await, vec![vote(1_000)]);
    let seen_by_b = drain(&b, Duration::from_millis(200)).await;
    assert_no_death(&seen_by_b, "b: a lives");
    shutdown_all([a, b]).await;
}

/// A client that does not read its answers: past the limit its connection is closed (its id is
/// unreachable from then on), not trimmed.
#[tokio::test]
async fn a_client_queue_overflow_closes_the_client_connection() {
    let mut small = config();
    small.outbound_queue = 10;
    let (b, b_addr) = start_with(small, "b", 1).await;
    let mut client = TcpClient::connect(&b_addr, &config(), "baton-cli")
        .await
        .unwrap();
    client.send(&Message::StatusRequest).await.unwrap();
    let from = match tokio::time::timeout(SOON, b.recv()).await {
        Ok(Some(TransportEvent::ClientMessage(env))) => env.from,
        other => panic!("expected a client message, got {other:?}"),
    };
    for _ in 0..11 {
        b.send(&from, Message::Leave).await.unwrap();
    }
    assert!(matches!(
        b.send(&from, Message::Leave).await,
        Err(TransportError::Unreachable(_))
    ));
    let read = tokio::time::timeout(SOON, client.recv())
        .await
        .expect("the client's connection closes");
    assert!(read.is_err(), "{read:?}");
    b.shutdown().await;
}
