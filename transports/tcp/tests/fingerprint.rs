//! Two transports whose safety fingerprints differ refuse each other, and *both* log which
//! field differs with both values; neither reports the other connected. (The handshake rules
//! themselves are unit-tested in `src/handshake.rs`.)

mod common;

use baton_core::{Fingerprint, NodeId, Transport, TransportEvent};
use baton_transport_tcp::TcpTransport;
use common::*;
use std::time::Duration;

async fn start_fp(name: &str, fingerprint: Fingerprint) -> (TcpTransport, String) {
    let t = TcpTransport::new(config());
    let mut me = local(name, 1, "127.0.0.1:0");
    me.fingerprint = fingerprint;
    let addr = t.start(&me).await.expect("start");
    (t, addr)
}

fn voters(names: &[&str]) -> Fingerprint {
    Fingerprint {
        voters: names.iter().map(|n| NodeId::new(*n)).collect(),
        ..Fingerprint::default()
    }
}

#[tokio::test]
async fn mismatched_fingerprints_are_refused_and_both_sides_say_why() {
    let (logs, _guard) = Logs::capture();
    let (a, _) = start_fp("a", voters(&["a", "b", "c"])).await;
    let (b, b_addr) = start_fp("b", voters(&["b", "c", "d"])).await;
    a.connect(&b_addr).await;
    let seen = expect(&a, SOON, "ConnectFailed", |e| {
        matches!(e, TransportEvent::ConnectFailed { .. })
    })
    .await;
    let Some(TransportEvent::ConnectFailed { reason, .. }) = seen.last() else {
        unreachable!()
    };
    assert!(
        reason.contains("voters is [a, b, c] here but [b, c, d] at the peer"),
        "{reason}"
    );
    // The engine is given the peer's whole fingerprint, to judge the danger.
    assert!(
        seen.iter()
            .any(|e| matches!(e, TransportEvent::Mismatch { theirs, .. }
            if *theirs == voters(&["b", "c", "d"]))),
        "{seen:?}"
    );
    // The dialer's log, and the listener's: the same field, each in its own view.
    logs.wait_for(&[
        "connect failed",
        "voters is [a, b, c] here but [b, c, d] at the peer",
    ])
    .await;
    let line = logs
        .wait_for(&[
            "handshake refused",
            "voters is [b, c, d] here but [a, b, c] at the peer",
        ])
        .await;
    assert!(!line.contains("wrong cluster secret"), "{line}");
    for t in [&a, &b] {
        assert!(
            !drain(t, Duration::from_millis(50))
                .await
                .iter()
                .any(|e| matches!(e, TransportEvent::Connected { .. })),
            "nobody connected"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn matching_fingerprints_connect() {
    let fp = Fingerprint {
        heartbeat_ms: 50,
        failure_timeout_ms: 300,
        ..voters(&["a", "b"])
    };
    let (a, _) = start_fp("a", fp.clone()).await;
    let (b, b_addr) = start_fp("b", fp).await;
    a.connect(&b_addr).await;
    expect(&a, SOON, "Connected{b}", is_connected("b", 1)).await;
    expect(&b, SOON, "Connected{a}", is_connected("a", 1)).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_out_of_bounds_fingerprint_fails_at_start() {
    let t = TcpTransport::new(config());
    let mut me = local("a", 1, "127.0.0.1:0");
    me.fingerprint.voters = (0..200).map(|i| NodeId::new(format!("n{i}"))).collect();
    let err = t.start(&me).await.unwrap_err();
    assert!(err.to_string().contains("fingerprint.voters"), "{err}");
}
