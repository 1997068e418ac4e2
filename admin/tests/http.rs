//! The admin endpoints of a 5-node in-memory cluster, through the router (tower `oneshot`,
//! no socket) and, for the event stream, over loopback HTTP.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use baton_admin::Admin;
use baton_core::Node;
use baton_core::config::Config;
use baton_transport_memory::MemoryNetwork;
use common::wait_for;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

fn config(name: &str) -> Config {
    let mut c = Config::new(name);
    c.node.listen = name.into();
    c.cluster.seeds = NAMES
        .iter()
        .filter(|n| **n != name)
        .map(|n| format!("{n}@{n}"))
        .collect();
    c.cluster.voters = NAMES.iter().map(|n| n.to_string()).collect();
    c.timing.heartbeat_ms = 50;
    c.timing.failure_timeout_ms = 300;
    c
}

struct Cluster {
    net: MemoryNetwork,
    nodes: BTreeMap<String, (Node, Admin)>,
    /// Each node's member of group `g` (kept: dropping a service leaves its group), then of
    /// the other groups.
    services: BTreeMap<String, Vec<baton_core::Service>>,
}

async fn cluster(token: Option<&str>) -> Cluster {
    cluster_of(token, &["g"]).await
}

/// Five nodes, each a member of every group of `groups`.
async fn cluster_of(token: Option<&str>, groups: &[&str]) -> Cluster {
    let net = MemoryNetwork::new();
    let mut nodes = BTreeMap::new();
    let mut services = BTreeMap::new();
    for n in NAMES {
        let cfg = config(n);
        let node = Node::builder(cfg.clone())
            .transport(Arc::new(net.transport()))
            .start()
            .await
            .unwrap();
        let mut mine = vec![];
        for g in groups {
            mine.push(node.join(*g, Default::default()).await.unwrap());
        }
        services.insert(n.to_string(), mine);
        let admin = Admin::builder(node.clone(), &cfg)
            .token(token.map(String::from))
            .start();
        nodes.insert(n.to_string(), (node, admin));
    }
    Cluster {
        net,
        nodes,
        services,
    }
}

async fn request(
    admin: &Admin,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    send(admin, req.body(Body::empty()).unwrap()).await
}

/// Serves `req` with `admin`'s router: the status and the body as text.
async fn send(admin: &Admin, req: Request<Body>) -> (StatusCode, String) {
    let resp = admin.router().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The node of member `field` (`"from"` or `"to"`) of a handoff action's JSON answer.
/// Waits until the nodes `sure` (the resigning leader and its successor) count `n` changes
/// for the reason `transfer` and none as `handoff`. Another node may read a requested handoff
/// as `handoff`: when the successor's claim reaches it before the old leader's `StepDown`
/// (over another link), the `StepDown` is stale on arrival (docs/OPERATING.md); it counts
/// every change under one of the two.
async fn counted_as_transfers(c: &Cluster, sure: [&str; 2], n: f64) {
    for node in NAMES {
        let m = wait_for("the transfer counted", Duration::from_secs(5), || async {
            let m = metrics(&c.nodes[node].1).await;
            let want = if sure.contains(&node) {
                changes(&m, "transfer") == n && changes(&m, "handoff") == 0.0
            } else {
                changes(&m, "transfer") + changes(&m, "handoff") >= n
            };
            want.then_some(m)
        })
        .await;
        assert!(
            changes(&m, "transfer") >= 1.0 || !sure.contains(&node),
            "{node}: {m:?}"
        );
    }
}

fn handoff_node(answer: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(answer).unwrap();
    let member = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field}: {answer}"));
    member.split('#').next().unwrap_or_default().to_string()
}

async fn post_json(
    admin: &Admin,
    path: &str,
    auth: Option<&str>,
    body: serde_json::Value,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    send(admin, req.body(Body::from(body.to_string())).unwrap()).await
}

async fn get(admin: &Admin, path: &str) -> (StatusCode, String) {
    request(admin, "GET", path, None).await
}

/// `name{k="v",…}` with the labels sorted by key: one spelling per series.
fn series_key(name: &str, mut labels: Vec<(String, String)>) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

/// `/metrics` read by two parsers that must agree: the `prometheus-parse` crate (a
/// Prometheus text-format parser that is not ours) and a strict check of the format here
/// (every line a `# HELP`, `# TYPE`, `# UNIT` or `# EOF` comment, the last `# EOF`, or
/// `name{label="v",…} value`, no series twice; prometheus-parse skips what it cannot read).
/// Returns each series (labels sorted) → value; of a histogram's buckets only `le="+Inf"`.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let strict = strict_parse(text);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut parsed = BTreeMap::new();
    for s in &scrape.samples {
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (name, labels, value) = match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => (s.metric.clone(), labels, *v),
            prometheus_parse::Value::Histogram(buckets) => {
                let inf = buckets
                    .iter()
                    .find(|b| b.less_than.is_infinite())
                    .unwrap_or_else(|| panic!("{}: no +Inf bucket", s.metric));
                let mut labels = labels;
                labels.push(("le".into(), "+Inf".into()));
                (format!("{}_bucket", s.metric), labels, inf.count)
            }
            other => panic!("{}: unexpected {other:?}", s.metric),
        };
        assert!(
            parsed.insert(series_key(&name, labels), value).is_none(),
            "duplicate series {}",
            s.metric
        );
    }
    assert_eq!(parsed, strict, "the two parsers disagree on\n{text}");
    parsed
}

/// The strict format check of [`parse_metrics`].
fn strict_parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no # EOF at the end:\n{text}");
    for line in &lines {
        if let Some(c) = line.strip_prefix("# ") {
            let kind = c.split(' ').next().unwrap();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "bad comment {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut labels = vec![];
        if name_end < series.len() {
            let inner = series[name_end..]
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'));
            let inner = inner.unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in inner.split(',') {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {pair:?}"));
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("bad label {pair:?}"));
                assert!(!k.is_empty(), "bad label {pair:?}");
                labels.push((k.to_string(), v.to_string()));
            }
        }
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let key = series_key(name, labels.clone());
        assert!(
            out.insert(key.clone(), v).is_none(),
            "duplicate series {series}"
        );
        // Of the buckets, only +Inf is compared (prometheus-parse folds them into one).
        if name.ends_with("_bucket") && !labels.iter().any(|(k, v)| k == "le" && v == "+Inf") {
            out.remove(&key);
        }
    }
    out
}

async fn metrics(admin: &Admin) -> BTreeMap<String, f64> {
    let (status, body) = get(admin, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    parse_metrics(&body)
}

/// The one node whose `/metrics` says `baton_leader{group="g"} 1`, once every live node
/// agrees on it (the others say 0).
async fn the_leader(c: &Cluster, live: &[&str]) -> String {
    wait_for(
        "exactly one baton_leader 1",
        Duration::from_secs(10),
        || async {
            let mut leaders = vec![];
            for n in live {
                let m = metrics(&c.nodes[*n].1).await;
                match m.get("baton_leader{group=\"g\"}") {
                    Some(v) if *v == 1.0 => leaders.push(n.to_string()),
                    Some(v) if *v == 0.0 => {}
                    _ => return None,
                }
            }
            // Every follower must know that leader too.
            if leaders.len() != 1 {
                return None;
            }
            for n in live {
                let s = c.nodes[*n].0.status().await.ok()?;
                let l = s.groups.iter().find(|g| g.group == "g")?;
                if l.leader_node().map(|x| x.as_str()) != Some(leaders[0].as_str()) {
                    return None;
                }
            }
            Some(leaders[0].clone())
        },
    )
    .await
}

/// Outside a failover, every scrape of every live node agrees: exactly one
/// `baton_leader{group="g"} 1`, on `leader`. Scrapes the live nodes over and over for 1 s.
async fn steady_leader(c: &Cluster, live: &[&str], leader: &str) {
    let t0 = Instant::now();
    let mut rounds = 0;
    while t0.elapsed() < Duration::from_secs(1) || rounds < 5 {
        let mut ones = vec![];
        for n in live {
            let m = metrics(&c.nodes[*n].1).await;
            match m.get("baton_leader{group=\"g\"}") {
                Some(v) if *v == 1.0 => ones.push(n.to_string()),
                Some(v) if *v == 0.0 => {}
                other => panic!("{n}: baton_leader{{group=\"g\"}} is {other:?}: {m:?}"),
            }
        }
        assert_eq!(ones, [leader], "round {rounds}: baton_leader 1 on {ones:?}");
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every leadership change of group `g` `m` counts, whatever the reason.
fn all_changes(m: &BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("baton_leadership_changes_total{group=\"g\","))
        .map(|(_, v)| v)
        .sum()
}

fn changes(m: &BTreeMap<String, f64>, reason: &str) -> f64 {
    m.get(&format!(
        "baton_leadership_changes_total{{group=\"g\",reason=\"{reason}\"}}"
    ))
    .copied()
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_handoff_and_a_kill_with_their_reasons() {
    let c = cluster(None).await;
    let leader = the_leader(&c, &NAMES).await;
    steady_leader(&c, &NAMES, &leader).await;
    let m = metrics(&c.nodes[&leader].1).await;
    assert!(m["baton_term{group=\"g\"}"] >= 1.0, "{m:?}");
    assert_eq!(m["baton_up"], 1.0);
    assert_eq!(m["baton_peers{state=\"alive\"}"], 4.0, "{m:?}");
    assert_eq!(m["baton_voters_reachable"], 5.0);
    assert_eq!(m["baton_voters_needed"], 3.0);

    // A kind shutdown of the leader: every survivor counts one `handoff` change.
    let before: Vec<f64> = futures_of(&c, &NAMES, &leader, "handoff").await;
    let all_before = totals_of(&c, &NAMES, &leader).await;
    c.nodes[&leader].0.shutdown().await;
    let live: Vec<&str> = NAMES.iter().copied().filter(|n| *n != leader).collect();
    let second = the_leader(&c, &live).await;
    steady_leader(&c, &live, &second).await;
    let mut timed = 0;
    for ((n, b), all) in live.iter().zip(&before).zip(&all_before) {
        let m = metrics(&c.nodes[*n].1).await;
        // One change, and for that reason only.
        assert_eq!(changes(&m, "handoff"), b + 1.0, "{n}: {m:?}");
        assert_eq!(all_changes(&m), all + 1.0, "{n}: {m:?}");
        // Only a node that saw the group leaderless (the successor, at least: the StepDown
        // reaches it before its own claim) times the election.
        if let Some(count) = m.get("baton_election_duration_seconds_count{group=\"g\"}") {
            assert_eq!(
                m.get("baton_election_duration_seconds_bucket{group=\"g\",le=\"+Inf\"}"),
                Some(count),
                "{n}: {m:?}"
            );
            timed += 1;
        }
    }
    assert!(timed >= 1, "no survivor timed the handoff");

    // A crash of the new leader: its connections close and reconnects are refused (proof).
    let live2: Vec<&str> = live.iter().copied().filter(|n| *n != second).collect();
    let before: Vec<f64> = futures_of(&c, &live2, "", "crash_proof").await;
    let all_before = totals_of(&c, &live2, "").await;
    c.net.crash(second.as_str());
    c.nodes[&second].0.abort();
    let third = the_leader(&c, &live2).await;
    assert_ne!(third, second);
    steady_leader(&c, &live2, &third).await;
    for ((n, b), all) in live2.iter().zip(&before).zip(&all_before) {
        let m = wait_for("the crash_proof count", Duration::from_secs(5), || async {
            let m = metrics(&c.nodes[*n].1).await;
            (changes(&m, "crash_proof") == b + 1.0).then_some(m)
        })
        .await;
        assert_eq!(all_changes(&m), all + 1.0, "{n}: {m:?}");
        assert_eq!(m["baton_peers{state=\"down\"}"], 2.0, "{n}: {m:?}");
    }
    // The killed node's admin server says it is gone.
    let m = metrics(&c.nodes[&second].1).await;
    assert_eq!(m["baton_up"], 0.0);
    assert_eq!(
        get(&c.nodes[&second].1, "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    for (n, a) in &c.nodes {
        if live2.contains(&n.as_str()) {
            a.0.shutdown().await;
        }
    }
}

/// The change counters of `names` (but `skip`) now, all reasons added.
async fn totals_of(c: &Cluster, names: &[&str], skip: &str) -> Vec<f64> {
    let mut out = vec![];
    for n in names.iter().filter(|n| **n != skip) {
        out.push(all_changes(&metrics(&c.nodes[*n].1).await));
    }
    out
}

/// The `reason` counters of `names` (but `skip`) now.
async fn futures_of(c: &Cluster, names: &[&str], skip: &str, reason: &str) -> Vec<f64> {
    let mut out = vec![];
    for n in names.iter().filter(|n| **n != skip) {
        out.push(changes(&metrics(&c.nodes[*n].1).await, reason));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_503_when_cut_off_from_the_majority_and_200_after_the_heal() {
    let c = cluster(None).await;
    the_leader(&c, &NAMES).await;
    let a = &c.nodes["a"].1;
    wait_for("a ready", Duration::from_secs(5), || async {
        (get(a, "/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(get(a, "/healthz").await, (StatusCode::OK, "ok\n".into()));
    c.net.isolate("a");
    let body = wait_for("a not ready", Duration::from_secs(5), || async {
        let (s, b) = get(a, "/readyz").await;
        // Peers fall silent one by one: wait for the last.
        (s == StatusCode::SERVICE_UNAVAILABLE && b.contains("1 of 5")).then_some(b)
    })
    .await;
    assert!(
        body.contains("reaches 1 of 5 voters (a), 3 needed"),
        "{body}"
    );
    // Still healthy: the process runs.
    assert_eq!(get(a, "/healthz").await.0, StatusCode::OK);
    let (_, status) = get(a, "/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(metrics(a).await["baton_ready"], 0.0);
    c.net.heal();
    wait_for("a ready again", Duration::from_secs(5), || async {
        (get(a, "/readyz").await.0 == StatusCode::OK).then_some(())
    })
    .await;
    assert_eq!(metrics(a).await["baton_ready"], 1.0);
    for (_, (n, _)) in c.nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_the_token_and_a_read_only_server_refuses_them() {
    let c = cluster(Some("tok-123")).await;
    let a = &c.nodes["a"];
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("tok-123"),
        Some("Basic tok-123"),
    ] {
        let (s, body) = request(&a.1, "POST", "/api/actions/kill", auth).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{auth:?}: {body}");
        assert!(body.contains("token"), "{body}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(a.0.is_running(), "a refused action changed nothing");
    // GET is not an action.
    assert_eq!(
        get(&a.1, "/api/actions/kill").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );

    let (s, body) = request(
        &a.1,
        "POST",
        "/api/actions/shutdown",
        Some("Bearer tok-123"),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    wait_for("a to stop", Duration::from_secs(5), || async {
        (!a.0.is_running()).then_some(())
    })
    .await;
    let b = &c.nodes["b"];
    let (s, body) = request(&b.1, "POST", "/api/actions/kill", Some("Bearer wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, body) = request(&b.1, "POST", "/api/actions/kill", Some("Bearer tok-123")).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    wait_for("b killed", Duration::from_secs(5), || async {
        (!b.0.is_running()).then_some(())
    })
    .await;

    // Without a token: read-only, 403 with what to do.
    let ro = Admin::builder(c.nodes["c"].0.clone(), &config("c")).start();
    let (s, body) = request(&ro, "POST", "/api/actions/kill", Some("Bearer tok-123")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        body.contains("read-only") && body.contains("token_file"),
        "{body}"
    );
    assert!(c.nodes["c"].0.is_running());
    for n in ["c", "d", "e"] {
        c.nodes[n].0.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_and_the_status_are_served() {
    let c = cluster(None).await;
    let leader = the_leader(&c, &NAMES).await;
    let a = &c.nodes["a"].1;
    let (s, html) = get(a, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("<script src=\"app.js\""), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched from elsewhere"
    );
    let (s, js) = get(a, "/app.js").await;
    assert_eq!(s, StatusCode::OK);
    assert!(js.contains("EventSource(\"api/events\")"));
    let (_, body) = get(a, "/api/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["node"], "a");
    assert_eq!(v["members"].as_array().unwrap().len(), 5);
    let g = &v["groups"][0];
    assert_eq!(g["name"], "g");
    assert_eq!(g["leader"], leader.as_str());
    // Member-id order (no policies given): a#0 … e#0.
    assert_eq!(g["ranking"][0], "a#0", "{g}");
    assert_eq!(g["ranking"].as_array().unwrap().len(), 5, "{g}");
    let (_, tl) = get(a, "/api/timeline").await;
    let tl: serde_json::Value = serde_json::from_str(&tl).unwrap();
    assert_eq!(tl[0]["reason"], "initial", "{tl}");
    for (_, (n, _)) in c.nodes {
        n.shutdown().await;
    }
}

/// Reads from `stream` until `done` holds for what was read; returns everything read.
async fn read_until(
    stream: &mut tokio::net::TcpStream,
    buf: &mut String,
    needle: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let t0 = Instant::now();
    let mut chunk = [0u8; 4096];
    while !done(buf) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no {needle:?} in:\n{buf}"
        );
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("read timed out")
            .unwrap();
        assert!(n > 0, "stream closed before {needle:?}:\n{buf}");
        buf.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    buf.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_tells_a_kill_with_its_reason_over_loopback_http() {
    let c = cluster(None).await;
    let leader = the_leader(&c, &NAMES).await;
    let watcher = NAMES.iter().find(|n| **n != leader).unwrap();
    let admin = c.nodes[*watcher].1.clone();
    let (addr, _task) = admin.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    let head = read_until(&mut s, &mut buf, "event: hello", |b| {
        b.contains("event: hello")
    })
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    c.net.crash(leader.as_str());
    c.nodes[&leader].0.abort();
    // The new leader's line (a `no leader` line with the same reason may come first).
    let new_leader = |l: &str| {
        l.starts_with("data: ")
            && l.contains("\"type\":\"leadership\"")
            && l.contains("\"leader\":\"")
            && l.contains("crash_proof")
    };
    let text = read_until(&mut s, &mut buf, "the new leader", |b| {
        b.lines().any(new_leader)
    })
    .await;
    let line = text.lines().find(|l| new_leader(l)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line["data: ".len()..]).unwrap();
    assert_eq!(v["type"], "leadership");
    assert_eq!(v["group"], "g");
    assert_eq!(v["previous"], leader.as_str());
    assert_ne!(v["leader"], leader.as_str());
    for (n, (node, _)) in c.nodes {
        if n != leader {
            node.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_and_step_down_need_the_token_and_move_leadership() {
    let c = cluster(Some("tok-123")).await;
    let leader = the_leader(&c, &NAMES).await;
    // The leader renews its lease about once a heartbeat (50 ms); a follower renews nothing.
    let renewals =
        |m: &BTreeMap<String, f64>| m.get("baton_lease_renewals_total{group=\"g\"}").copied();
    let first = renewals(&metrics(&c.nodes[&leader].1).await).unwrap_or(0.0);
    wait_for(
        "the leader's renewals to grow",
        Duration::from_secs(5),
        || async { (renewals(&metrics(&c.nodes[&leader].1).await)? > first).then_some(()) },
    )
    .await;
    let follower = NAMES.iter().find(|n| **n != leader).unwrap();
    // (It may have led briefly while the cluster formed: its count only stops growing.)
    let before = renewals(&metrics(&c.nodes[*follower].1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(renewals(&metrics(&c.nodes[*follower].1).await), before);
    // Asked at a node that neither leads nor is the target: the request is routed.
    let target = NAMES.iter().find(|n| **n != leader).unwrap().to_string();
    let asked = NAMES
        .iter()
        .find(|n| **n != leader && **n != target)
        .unwrap();
    let admin = &c.nodes[*asked].1;
    let body = serde_json::json!({"group": "g", "to": target});
    for auth in [None, Some("Bearer wrong")] {
        for (path, body) in [
            ("/api/actions/transfer", body.clone()),
            ("/api/actions/step-down", serde_json::json!({"group": "g"})),
        ] {
            let (s, text) = post_json(admin, path, auth, body).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} {auth:?}: {text}");
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        the_leader(&c, &NAMES).await,
        leader,
        "a refused action changed nothing"
    );
    // Read-only: 403.
    let ro = Admin::builder(c.nodes[*asked].0.clone(), &config(asked)).start();
    let (s, _) = post_json(
        &ro,
        "/api/actions/transfer",
        Some("Bearer tok-123"),
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Malformed or refused requests say why.
    let auth = Some("Bearer tok-123");
    for (refused, want, says) in [
        (
            serde_json::json!({"group": "g"}),
            StatusCode::BAD_REQUEST,
            "needs",
        ),
        (
            serde_json::json!({"group": "g", "to": "nobody"}),
            StatusCode::CONFLICT,
            "nobody",
        ),
    ] {
        let (s, text) = post_json(admin, "/api/actions/transfer", auth, refused).await;
        assert_eq!(s, want, "{text}");
        assert!(text.contains(says), "{text}");
    }

    // With the token: leadership moves to the chosen member.
    let (s, text) = post_json(admin, "/api/actions/transfer", auth, body).await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(handoff_node(&text, "to"), target);
    assert_eq!(handoff_node(&text, "from"), leader);
    wait_for("the target to lead", Duration::from_secs(10), || async {
        (the_leader(&c, &NAMES).await == target).then_some(())
    })
    .await;
    // The old leader decided the handoff was asked for, and its successor read it in the
    // `StepDown` that named it: `transfer`, not `handoff`.
    counted_as_transfers(&c, [leader.as_str(), target.as_str()], 1.0).await;

    // Step down: the new leader hands off to the next in its ranking.
    let (s, text) = post_json(
        admin,
        "/api/actions/step-down",
        auth,
        serde_json::json!({"group": "g"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let next = wait_for(
        "a leader other than the target",
        Duration::from_secs(10),
        || async {
            let l = the_leader(&c, &NAMES).await;
            (l != target).then_some(l)
        },
    )
    .await;
    assert_eq!(handoff_node(&text, "to"), next);
    counted_as_transfers(&c, [target.as_str(), next.as_str()], 2.0).await;
    for n in NAMES {
        c.nodes[n].0.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_tells_every_leaderless_group_on_the_stream_and_in_metrics() {
    // Two groups with the same members and ranking: cut off from the others, e loses both
    // leaders at once and for the same reason, which the engine reports as one folded
    // `NoLeaders` (g, and 1 more).
    let c = cluster_of(None, &["g", "h"]).await;
    the_leader(&c, &NAMES).await;
    let e = c.nodes["e"].1.clone();
    wait_for("e to know both leaders", Duration::from_secs(5), || async {
        let s = c.nodes["e"].0.status().await.ok()?;
        s.groups.iter().all(|g| g.leader.is_some()).then_some(())
    })
    .await;
    let (addr, _task) = e
        .clone()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let mut buf = String::new();
    read_until(&mut s, &mut buf, "event: hello", |b| {
        b.contains("event: hello")
    })
    .await;
    assert_eq!(metrics(&e).await["baton_no_leader_reports_total"], 0.0);
    c.net.isolate("e");
    let no_leader = |l: &str| l.starts_with("data: ") && l.contains("\"type\":\"no_leader\"");
    let text = read_until(&mut s, &mut buf, "a no_leader event", |b| {
        b.lines().any(no_leader)
    })
    .await;
    let line = text.lines().find(|l| no_leader(l)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line["data: ".len()..]).unwrap();
    assert_eq!(v["group"], "g", "{v}");
    assert_eq!(v["more"], 1, "both groups in one report: {v}");
    assert!(v["reason"].as_str().unwrap().contains("needed"), "{v}");
    assert!(
        text.contains("event: no_leader\n"),
        "the SSE event name: {text}"
    );
    // Counted once per group; both groups say why in the status the view reads.
    let m = metrics(&e).await;
    assert!(m["baton_no_leader_reports_total"] >= 2.0, "{m:?}");
    let (_, status) = get(&e, "/api/status").await;
    let st: serde_json::Value = serde_json::from_str(&status).unwrap();
    for g in st["groups"].as_array().unwrap() {
        assert!(g["no_leader"]["reason"].is_string(), "{g}");
    }
    c.net.heal();
    for (_, (n, _)) in c.nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_by_outcome_and_latency_and_votes_by_round() {
    let c = cluster(None).await;
    for svcs in c.services.values() {
        svcs[0].serve(|w: baton_core::Work| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if w.payload == b"fail" {
                Err("asked to fail".to_string())
            } else {
                Ok(w.payload)
            }
        });
    }
    let leader = the_leader(&c, &NAMES).await;
    // The election that made it: at least a majority's worth of real votes granted (the
    // leader's own aside), each counted by the node that granted it.
    let mut granted = 0.0;
    for n in NAMES {
        let m = metrics(&c.nodes[n].1).await;
        granted += m
            .get("baton_votes_granted_total{group=\"g\",round=\"real\"}")
            .copied()
            .unwrap_or(0.0);
    }
    assert!(granted >= 2.0, "{granted} real votes granted");

    let caller = NAMES.iter().find(|n| **n != leader).unwrap();
    let node = &c.nodes[*caller].0;
    for _ in 0..3 {
        node.call_leader("g", b"hi".to_vec()).await.unwrap();
    }
    let err = node.call_leader("g", b"fail".to_vec()).await.unwrap_err();
    assert!(matches!(err, baton_core::CallError::Handler(_)), "{err:?}");
    // Counted by the observer as the node's events arrive.
    let m = wait_for("the calls counted", Duration::from_secs(5), || async {
        let m = metrics(&c.nodes[*caller].1).await;
        (m.get("baton_call_duration_seconds_count{group=\"g\"}") == Some(&4.0)).then_some(m)
    })
    .await;
    assert_eq!(
        m["baton_calls_total{group=\"g\",origin=\"local\",outcome=\"ok\"}"], 3.0,
        "{m:?}"
    );
    assert_eq!(
        m["baton_calls_total{group=\"g\",origin=\"local\",outcome=\"handler_error\"}"], 1.0,
        "{m:?}"
    );
    // The latency histogram has every call, each at least the handler's 5 ms.
    assert_eq!(m["baton_call_duration_seconds_count{group=\"g\"}"], 4.0);
    assert_eq!(
        m["baton_call_duration_seconds_bucket{group=\"g\",le=\"+Inf\"}"],
        4.0
    );
    let sum = m["baton_call_duration_seconds_sum{group=\"g\"}"];
    assert!((0.02..10.0).contains(&sum), "{sum}");
    // The leader's handler served them.
    let lm = wait_for(
        "the leader's served count",
        Duration::from_secs(5),
        || async {
            let m = metrics(&c.nodes[&leader].1).await;
            (m.get("baton_served_total{group=\"g\",outcome=\"ok\"}") == Some(&3.0)).then_some(m)
        },
    )
    .await;
    assert_eq!(
        lm["baton_served_total{group=\"g\",outcome=\"handler_error\"}"], 1.0,
        "{lm:?}"
    );
    // No leader for a group nobody joined.
    let err = node
        .call(
            "nobody",
            vec![],
            baton_core::CallOptions {
                timeout: Some(Duration::from_millis(200)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let failed = |m: &BTreeMap<String, f64>| -> f64 {
        m.iter()
            .filter(|(k, _)| k.starts_with("baton_calls_total{group=\"nobody\","))
            .map(|(_, v)| v)
            .sum()
    };
    wait_for(
        "the failed call counted",
        Duration::from_secs(5),
        || async { (failed(&metrics(&c.nodes[*caller].1).await) == 1.0).then_some(()) },
    )
    .await;
    let m = metrics(&c.nodes[*caller].1).await;
    let outcome = match err {
        baton_core::CallError::NoLeader { .. } => "no_leader",
        baton_core::CallError::Timeout => "timeout",
        baton_core::CallError::NoHandler { .. } => "no_handler",
        ref other => panic!("{other:?}"),
    };
    assert_eq!(
        m.get(&format!(
            "baton_calls_total{{group=\"nobody\",origin=\"local\",outcome=\"{outcome}\"}}"
        )),
        Some(&1.0),
        "{m:?}"
    );
    for n in NAMES {
        c.nodes[n].0.shutdown().await;
    }
}
