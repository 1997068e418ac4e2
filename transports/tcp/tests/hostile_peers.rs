//! A 3-node cluster over real sockets keeps its leader while connections send garbage, a 1 MiB
//! frame, or a handshake with the wrong secret or cluster name: each is refused, the node keeps
//! running, and leadership does not move.

mod common;

use baton_core::{Leadership, Node, Service};
use baton_transport_tcp::{TcpClient, TcpConfig, TcpTransport};
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VOTERS: [&str; 3] = ["a", "b", "c"];

async fn node(name: &str, seeds: &[String]) -> (Node, Service) {
    let cfg = node_config(name, seeds, &VOTERS);
    start_node(cfg, Arc::new(TcpTransport::new(config()))).await
}

async fn agreed(nodes: &[&Node]) -> Leadership {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views: Vec<Leadership> = nodes
            .iter()
            .map(|n| n.leadership("g").borrow().clone())
            .collect();
        if let Some(l) = views.first().and_then(|v| v.leader.clone())
            && views
                .iter()
                .all(|v| v.leader.as_ref() == Some(&l) && v.term == views[0].term)
            && views.iter().filter(|v| v.is_me).count() == 1
        {
            let mut out = views[0].clone();
            out.is_me = false;
            return out;
        }
        assert!(Instant::now() < deadline, "no agreement: {views:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until the peer closes the connection (or 3 s pass); true when it was closed.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_frames_and_wrong_secrets_are_refused_while_the_leader_stays() {
    let (a, _sa) = node("a", &[]).await;
    let (b, _sb) = node("b", &[format!("a@{}", a.addr())]).await;
    let (c, _sc) = node("c", &[format!("a@{}", a.addr()), format!("b@{}", b.addr())]).await;
    let nodes = [&a, &b, &c];
    let before = agreed(&nodes).await;
    let leader = nodes
        .iter()
        .find(|n| Some(n.id()) == before.leader.as_ref().map(|m| &m.node))
        .expect("leader is one of the three");
    let target = leader.addr().to_string();

    // 1. Garbage.
    let mut s = TcpStream::connect(&target).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: baton\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_by_peer(&mut s).await,
        "garbage must close the connection"
    );

    // 2. A frame announcing 1 MiB (the limit is 64 KiB), then its bytes.
    let mut s = TcpStream::connect(&target).await.unwrap();
    let len = 1u32 << 20;
    s.write_all(&len.to_be_bytes()).await.unwrap();
    let _ = s.write_all(&vec![0xAB; 64 * 1024]).await;
    assert!(
        closed_by_peer(&mut s).await,
        "an oversized frame must close the connection"
    );

    // 3. A client and a node with the wrong secret, and one from another cluster.
    let wrong_secret = TcpConfig::new(CLUSTER, b"not the secret".to_vec());
    assert!(
        TcpClient::connect(&target, &wrong_secret, "intruder")
            .await
            .is_err()
    );
    let other_cluster = TcpConfig::new("another-cluster", SECRET.to_vec());
    assert!(
        TcpClient::connect(&target, &other_cluster, "intruder")
            .await
            .is_err()
    );
    let intruder_cfg = node_config("d", &[format!("{}@{target}", leader.id())], &VOTERS);
    let (intruder, _intruder_svc) = start_node(
        intruder_cfg,
        Arc::new(TcpTransport::new(wrong_secret.clone())),
    )
    .await;

    // Give every refusal time to matter, then check nothing moved.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = agreed(&nodes).await;
    assert_eq!(after, before, "the cluster keeps its leader and term");
    for n in nodes {
        let status = n.status().await.unwrap();
        assert!(
            status.members.iter().all(|m| m.name.as_str() != "d"),
            "the intruder is not a member"
        );
    }
    assert!(
        intruder
            .leadership("g")
            .borrow()
            .leader
            .as_ref()
            .is_none_or(|l| l.node.as_str() == "d")
    );
    assert!(
        !intruder.leadership("g").borrow().is_me,
        "no majority for the intruder"
    );

    // The node that was attacked still serves good clients.
    let good = TcpClient::connect(&target, &config(), "good").await;
    assert!(good.is_ok(), "good clients are still served");
    intruder.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}
