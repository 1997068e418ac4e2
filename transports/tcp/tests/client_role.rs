//! The client role end to end: real `Node`s over TCP answer a `TcpClient` (status, routed
//! calls) and never count it as a member; a client without the secret learns nothing.

mod common;

use baton_core::{CallError, Message, Node, Service, Work};
use baton_transport_tcp::handshake::{
    Decision, Hello, HelloReply, MAGIC, NONCE_LEN, Role, transcript_mac,
};
use baton_transport_tcp::wire::encode_message;
use baton_transport_tcp::{TcpClient, TcpConfig, TcpTransport};
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Starts node `name` on a free port, seeded with `seeds`, in a cluster whose voters are
/// `voters`; joins group "g" and serves it.
async fn node(name: &str, seeds: &[String], voters: &[&str]) -> (Node, Service) {
    let mut cfg = node_config(name, seeds, voters);
    cfg.timing.heartbeat_ms = 50;
    cfg.timing.failure_timeout_ms = 300;
    cfg.timing.call_timeout_ms = 500;
    let (node, svc) = start_node(cfg, Arc::new(TcpTransport::new(config()))).await;
    let me = name.to_string();
    svc.serve(move |w: Work| {
        let me = me.clone();
        async move {
            Ok(format!(
                "{me} did {} under term {}",
                String::from_utf8_lossy(&w.payload),
                w.term
            )
            .into_bytes())
        }
    });
    (node, svc)
}

async fn two_nodes() -> ((Node, Service), (Node, Service)) {
    let a = node("a", &[], &["a", "b"]).await;
    let b = node("b", &[format!("a@{}", a.0.addr())], &["a", "b"]).await;
    // Wait until both see a leader (the default policy ranks a#0 first).
    let deadline = Instant::now() + Duration::from_secs(10);
    for (n, _) in [&a, &b] {
        let mut rx = n.leadership("g");
        tokio::time::timeout_at(deadline.into(), rx.wait_for(|l| l.leader.is_some()))
            .await
            .expect("a leader within 10 s")
            .expect("watch open");
    }
    (a, b)
}

fn names(s: &baton_core::engine::StatusSnapshot) -> Vec<String> {
    let mut v: Vec<String> = s.members.iter().map(|m| m.name.to_string()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_answered_but_never_becomes_a_member() {
    let ((a, _sa), (b, _sb)) = two_nodes().await;
    let mut client = TcpClient::connect(b.addr(), &config(), "baton-cli")
        .await
        .expect("client connects");

    let status = client.status().await.expect("status");
    assert_eq!(status.node.as_str(), "b");
    assert_eq!(names(&status), vec!["a", "b"]);
    let g = status
        .groups
        .iter()
        .find(|g| g.group == "g")
        .expect("group g");
    let leader = g.leader.clone().expect("a leader");
    assert_eq!(leader.node.as_str(), "a");

    // Routed through b, served by the leader a under its term.
    let served = client
        .call("g", false, b"job".to_vec())
        .await
        .expect("answer")
        .expect("served");
    assert_eq!(served.member, leader);
    assert!(served.leader);
    assert_eq!(served.term, g.term);
    assert_eq!(
        served.payload,
        format!("a did job under term {}", g.term).into_bytes()
    );
    // `any`: served by whichever member the node picks, leader or not.
    let served = client
        .call("g", true, b"naive".to_vec())
        .await
        .expect("answer")
        .expect("served");
    let by = served.member.node.as_str().to_string();
    assert!(by == "a" || by == "b", "{by}");
    assert_eq!(served.leader, by == "a");
    // An unknown group: a typed error, not a hang.
    let err = client
        .call("nope", false, b"x".to_vec())
        .await
        .expect("answer")
        .expect_err("no leader for an unknown group");
    assert!(
        matches!(err, CallError::NoLeader { .. } | CallError::Timeout),
        "{err:?}"
    );
    // The raw request API answers too.
    assert!(matches!(
        client
            .request(&Message::StatusRequest)
            .await
            .expect("answer"),
        Message::StatusResponse(_)
    ));

    // Several heartbeats later, no node lists the client, while it is connected and after.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in [&a, &b] {
        assert_eq!(names(&n.status().await.expect("status")), vec!["a", "b"]);
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in [&a, &b] {
        let s = n.status().await.expect("status");
        assert_eq!(names(&s), vec!["a", "b"]);
        assert!(s.members.iter().all(|m| m.alive));
    }
    b.shutdown().await;
    a.shutdown().await;
}

/// Reads frames until the connection closes; returns how many arrived.
async fn frames_until_close(stream: &mut TcpStream) -> usize {
    let mut n = 0;
    loop {
        match tokio::time::timeout(SOON, read_frame(stream)).await {
            Ok(Ok(_)) => n += 1,
            Ok(Err(_)) => return n,
            Err(_) => panic!("the connection stayed open after a failed handshake"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_wrong_secret_learns_nothing() {
    let ((a, _sa), (b, _sb)) = two_nodes().await;

    // The regular client is refused at the handshake.
    let wrong = TcpConfig::new(CLUSTER, b"not the secret".to_vec());
    let err = TcpClient::connect(b.addr(), &wrong, "intruder")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");

    // A hand-made client that ignores the failed check, answers with a MAC over the wrong
    // secret and asks for the status anyway gets no answer: the connection just closes.
    let mut stream = TcpStream::connect(b.addr()).await.unwrap();
    let hello = Hello {
        magic: MAGIC,
        version: baton_core::PROTOCOL_VERSION,
        cluster: CLUSTER.into(),
        node: baton_core::NodeId::new("intruder"),
        incarnation: baton_core::Incarnation(0),
        addr: String::new(),
        nonce: [7; NONCE_LEN],
        client: true,
        fingerprint: Default::default(),
    };
    write_frame(&mut stream, &hello.encode()).await.unwrap();
    let reply = read_frame(&mut stream).await.expect("hello reply");
    let reply: HelloReply = postcard::from_bytes(&reply).expect("decodes");
    let mac = transcript_mac(b"not the secret", Role::Initiator, &hello, &reply.hello);
    write_frame(&mut stream, &Decision::Auth { mac }.encode())
        .await
        .unwrap();
    let ask = encode_message(&Message::StatusRequest, 64 * 1024).unwrap();
    let _ = write_frame(&mut stream, &ask).await;
    assert_eq!(
        frames_until_close(&mut stream).await,
        0,
        "no accept, no status"
    );

    for n in [&a, &b] {
        assert_eq!(names(&n.status().await.expect("status")), vec!["a", "b"]);
    }
    b.shutdown().await;
    a.shutdown().await;
}
