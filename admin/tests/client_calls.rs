//! Calls a client routes through a node (`baton work`: a `ClientCall` over TCP) are counted in
//! that node's `/metrics`, as the node's own calls are: `baton_calls_total{origin="client"}`
//! and the latency histogram, once each, at the node they entered; the node that served them
//! counts them in `baton_served_total` only. A client's control request is no call.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_admin::Admin;
use baton_core::message::ControlOp;
use baton_core::{CallError, Node, Service, Work};
use baton_transport_tcp::{TcpClient, TcpConfig, TcpTransport};
use common::wait_for;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const CLUSTER: &str = "client-calls";
const SECRET: &[u8] = b"correct horse battery staple";

fn tcp() -> TcpConfig {
    TcpConfig::new(CLUSTER, SECRET.to_vec())
}

/// Node `name` on a free loopback port, a member of group "g" serving it, with its admin.
async fn node(name: &str, seeds: &[String]) -> (Node, Service, Admin) {
    let mut cfg = baton_core::config::Config::new(name);
    cfg.node.listen = "127.0.0.1:0".into();
    cfg.cluster.name = CLUSTER.into();
    cfg.cluster.seeds = seeds.to_vec();
    cfg.cluster.voters = vec!["a".into(), "b".into()];
    cfg.timing.heartbeat_ms = 50;
    cfg.timing.failure_timeout_ms = 300;
    cfg.timing.call_timeout_ms = 500;
    let node = Node::builder(cfg.clone())
        .transport(Arc::new(TcpTransport::new(tcp())))
        .start()
        .await
        .unwrap();
    let svc = node.join("g", Default::default()).await.unwrap();
    svc.serve(|w: Work| async move { Ok(w.payload) });
    let admin = Admin::builder(node.clone(), &cfg).start();
    (node, svc, admin)
}

async fn metrics(admin: &Admin) -> String {
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let resp = admin.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of `series` (as rendered: labels in the order the observer gives them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The sum of every `baton_calls_total` series.
fn all_calls(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("baton_calls_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

const OK: &str = "baton_calls_total{group=\"g\",outcome=\"ok\",origin=\"client\"}";
const NO_LEADER: &str =
    "baton_calls_total{group=\"nobody\",outcome=\"no_leader\",origin=\"client\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_calls_are_counted_at_the_node_they_entered() {
    let (a, _sa, a_admin) = node("a", &[]).await;
    let (b, _sb, b_admin) = node("b", &[format!("a@{}", a.addr())]).await;
    // The default policy ranks a#0 first: a leads, b follows.
    for n in [&a, &b] {
        let mut rx = n.leadership("g");
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|l| l.leader.as_ref().is_some_and(|m| m.node.as_str() == "a")),
        )
        .await;
        assert!(matches!(seen, Ok(Ok(_))), "a leads within 10 s");
    }
    let mut client = TcpClient::connect(b.addr(), &tcp(), "baton-cli")
        .await
        .unwrap();
    // Routed through b, served by a.
    for _ in 0..2 {
        let served = client.call("g", false, b"hi".to_vec()).await.unwrap();
        let served = served.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(served.member.node.as_str(), "a");
    }
    // A control request through b: answered, and no call.
    let handed = client.control("g", ControlOp::StepDown).await.unwrap();
    let handed = handed.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(handed.to.node.as_str(), "b");
    // A group nobody joined: no leader by the call timeout.
    let failed = client.call("nobody", false, vec![]).await.unwrap();
    assert_eq!(
        failed.map(|_| ()),
        Err(CallError::NoLeader {
            group: "nobody".into()
        })
    );
    // b's events are counted in order: once the last call is, every earlier one is too.
    let m = wait_for(
        "b counts the failed call",
        Duration::from_secs(5),
        || async {
            let m = metrics(&b_admin).await;
            (sample(&m, NO_LEADER) == Some(1.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(sample(&m, OK), Some(2.0), "{m}");
    assert_eq!(
        all_calls(&m),
        3.0,
        "three calls, each once, no control: {m}"
    );
    assert_eq!(
        sample(&m, "baton_call_duration_seconds_count{group=\"g\"}"),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "baton_served_total{group=\"g\",outcome=\"ok\"}"),
        None,
        "b served none: {m}"
    );
    // a served the two calls and counts them as served, not as its calls.
    let am = wait_for(
        "a counts what it served",
        Duration::from_secs(5),
        || async {
            let m = metrics(&a_admin).await;
            (sample(&m, "baton_served_total{group=\"g\",outcome=\"ok\"}") == Some(2.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(all_calls(&am), 0.0, "no call entered at a: {am}");
    drop(client);
    b.shutdown().await;
    a.shutdown().await;
}
