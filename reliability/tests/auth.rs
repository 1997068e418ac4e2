//! Authentication over real TCP: who cannot get in, and what a flood from one address can do.
//!
//! The transport-level versions of some of these (wrong secret, wrong cluster, replay, garbage,
//! pending-handshake cap) are in `transports/tcp/tests/transport.rs`; these run whole nodes.
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

use baton_core::config::{Config, QuorumMode};
use baton_core::engine::StatusSnapshot;
use baton_core::{CallOptions, Message, Node, Service, Work};
use baton_reliability::cluster::{CLUSTER, ClusterOptions, GROUP, SECRET, TcpCluster};
use baton_reliability::run;
use baton_testkit::{Rng, random_bytes};
use baton_transport_tcp::{ClientError, TcpClient, TcpConfig, TcpTransport};
use futures::FutureExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const LIMIT: Duration = Duration::from_secs(10);

/// A node that is not one of the cluster's: its own cluster name and secret, seeds pointing
/// at the cluster. Its handler counts what it serves.
struct Outsider {
    node: Node,
    _service: Service,
    served: Arc<AtomicU64>,
}

async fn outsider(
    name: &str,
    cluster: &str,
    secret: &[u8],
    seeds: Vec<String>,
    voters: &[&str],
    quorum: QuorumMode,
) -> Outsider {
    let mut cfg = Config::new(name);
    cfg.node.listen = "127.0.0.1:0".into();
    cfg.cluster.name = cluster.into();
    cfg.cluster.seeds = seeds;
    cfg.cluster.voters = voters.iter().map(|v| v.to_string()).collect();
    cfg.cluster.quorum = quorum;
    let transport = Arc::new(TcpTransport::new(TcpConfig::new(cluster, secret.to_vec())));
    let node = Node::builder(cfg)
        .transport(transport)
        .start()
        .await
        .expect("outsider starts");
    let service = node.join(GROUP, Default::default()).await.unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let count = served.clone();
    service.serve(move |_w: Work| {
        count.fetch_add(1, Ordering::SeqCst);
        async { Ok(b"outsider".to_vec()) }
    });
    Outsider {
        node,
        _service: service,
        served,
    }
}

/// Asks `addr` for its status as an authenticated client.
async fn status_as_client(addr: &str, cfg: &TcpConfig) -> Result<StatusSnapshot, ClientError> {
    let mut client = TcpClient::connect(addr, cfg, "auditor").await?;
    client.send(&Message::StatusRequest).await?;
    loop {
        if let Message::StatusResponse(s) = client.recv().await? {
            return Ok(s);
        }
    }
}

/// How many of `conns` are still open; forgets the closed ones.
fn still_open(conns: &mut [Option<TcpStream>]) -> usize {
    let mut buf = [0u8; 16];
    for c in conns.iter_mut() {
        if let Some(s) = c {
            // Closed (EOF or error) if a read completes at once; open if it would wait.
            if let Some(Ok(0) | Err(_)) = s.read(&mut buf).now_or_never() {
                *c = None;
            }
        }
    }
    conns.iter().filter(|c| c.is_some()).count()
}

fn names_in(s: &StatusSnapshot) -> BTreeSet<String> {
    s.members.iter().map(|m| m.name.to_string()).collect()
}

fn good_client() -> TcpConfig {
    TcpConfig::new(CLUSTER, SECRET.to_vec())
}

/// Mallory knows the cluster name and the node names, is even listed as a voter, but not the
/// secret. It runs in availability mode, so in its own view it leads at once.
///
/// - It cannot vote: a alone with voters [a, b, m] elects nobody while m is up;
/// - it cannot join: no node lists it in `status` (asked through `Node::status` and through an
///   authenticated `TcpClient`), and it sees none of them;
/// - it cannot lead: its claim never reaches anyone; a and b elect one of themselves;
/// - no work is routed to it, neither to the leader nor to "any member";
/// - as a client without the secret it cannot even ask for the status.
#[test]
fn peer_without_the_secret_cannot_join_vote_lead_be_listed_or_serve() {
    run(async {
        let voters = ["a", "b", "m"];
        let mut c = TcpCluster::new(ClusterOptions::new(&voters)).await;
        c.start_node("a").await;
        let a_addr = c.advertised("a");
        let m = outsider(
            "m",
            CLUSTER,
            b"a guess at the secret",
            vec![format!("a@{a_addr}")],
            &voters,
            QuorumMode::None,
        )
        .await;
        let m_leads = m.node.leadership(GROUP);

        // Three failure timeouts: a would have been elected with m's vote long ago.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let a_view = c.node("a").leadership(GROUP).borrow().clone();
        assert_eq!(
            a_view.leader, None,
            "a elected without a majority: {a_view:?}"
        );
        assert!(m_leads.borrow().is_me, "m leads only in its own view");
        assert_eq!(
            names_in(&c.node("a").status().await.unwrap()),
            ["a".into()].into()
        );
        assert_eq!(
            names_in(&m.node.status().await.unwrap()),
            ["m".into()].into()
        );

        // b (with the secret) arrives: a and b elect one of themselves.
        c.start_node("b").await;
        let l = c.agreed_among(&["a", "b"], LIMIT).await;
        let leader = l.leader.clone().unwrap().node.to_string();
        assert!(leader == "a" || leader == "b", "{l:?}");
        for n in ["a", "b"] {
            let via_node = c.node(n).status().await.unwrap();
            let via_client = status_as_client(&c.advertised(n), &good_client())
                .await
                .unwrap();
            for s in [&via_node, &via_client] {
                assert_eq!(names_in(s), ["a".into(), "b".into()].into(), "{s:#?}");
                assert!(
                    s.groups
                        .iter()
                        .all(|g| g.leader.as_ref().is_none_or(|m| m.node.as_str() != "m")),
                    "{s:#?}"
                );
            }
        }
        assert!(
            c.log
                .terms()
                .values()
                .flatten()
                .all(|m| m.node.as_str() != "m"),
            "{:?}",
            c.log.terms()
        );

        // Work goes to the cluster's leader, never to m.
        let mut served_by = BTreeSet::new();
        for i in 0..40 {
            let from = if i % 2 == 0 { "a" } else { "b" };
            let opts = CallOptions {
                any: i % 4 == 3,
                timeout: Some(Duration::from_secs(2)),
                ..Default::default()
            };
            let s = c
                .node(from)
                .call(GROUP, vec![i], opts)
                .await
                .expect("served");
            served_by.insert(s.member.node.to_string());
        }
        assert!(served_by.is_subset(&["a".into(), "b".into()].into()));
        assert_eq!(
            m.served.load(Ordering::SeqCst),
            0,
            "work reached the outsider"
        );

        // Without the secret, not even a status request gets through.
        let wrong = TcpConfig::new(CLUSTER, b"a guess at the secret".to_vec());
        let err = status_as_client(&a_addr, &wrong).await.unwrap_err();
        assert!(matches!(err, ClientError::Handshake { .. }), "{err}");

        m.node.shutdown().await;
        c.shutdown().await;
    });
}

/// A node with the right secret but another cluster name is refused both ways; so is a client.
#[test]
fn different_cluster_name_is_refused() {
    run(async {
        let c = TcpCluster::start(ClusterOptions::new(&["a", "b"])).await;
        let before = c.agreed(LIMIT).await;
        let seeds = c
            .live()
            .iter()
            .map(|n| format!("{n}@{}", c.advertised(n)))
            .collect();
        let x = outsider(
            "x",
            "other-cluster",
            SECRET,
            seeds,
            &["x"],
            QuorumMode::Majority,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        for n in ["a", "b"] {
            let s = c.node(n).status().await.unwrap();
            assert_eq!(names_in(&s), ["a".into(), "b".into()].into(), "{s:#?}");
        }
        assert_eq!(
            names_in(&x.node.status().await.unwrap()),
            ["x".into()].into()
        );
        let other = TcpConfig::new("other-cluster", SECRET.to_vec());
        let err = status_as_client(&c.advertised("a"), &other)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Handshake { .. }), "{err}");
        assert_eq!(c.agreement(&["a", "b"]), Some(before));
        assert_eq!(x.served.load(Ordering::SeqCst), 0);
        x.node.shutdown().await;
    });
}

async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    s.write_u32(payload.len() as u32).await?;
    s.write_all(payload).await
}

/// The next frame, or `None` once the connection is closed.
async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let len = s.read_u32().await.ok()?;
    let mut buf = vec![0; len as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// An eavesdropper on the proxy records a node's handshake with another node, and a client's;
/// replaying either on a new connection fails (the listener's nonce is new), and the cluster
/// is unchanged. (Transport level: `transports/tcp/tests/transport.rs`
/// `replayed_handshake_is_refused`.)
#[test]
fn replayed_handshakes_are_refused_end_to_end() {
    run(async {
        let names = ["a", "b", "c"];
        let c = TcpCluster::start(ClusterOptions::new(&names).proxied()).await;
        let before = c.agreed(LIMIT).await;
        let status_before = c.node("a").status().await.unwrap();
        // A client's session, through a's proxy.
        status_as_client(c.ports["a"].addr(), &good_client())
            .await
            .unwrap();
        let captured = c.net.captured();
        let t0 = Instant::now();
        for from in ["b", "auditor"] {
            let rec = captured
                .iter()
                .find(|r| r.from == from && r.to == "a" && r.up.len() >= 2 && !r.down.is_empty())
                .unwrap_or_else(|| panic!("no recorded handshake from {from}: {captured:#?}"));
            let mut s = TcpStream::connect(c.bound("a")).await.unwrap();
            write_frame(&mut s, &rec.up[0]).await.unwrap();
            let reply = read_frame(&mut s).await.expect("a answers the hello");
            assert_ne!(reply, rec.down[0], "a answers with a fresh nonce");
            write_frame(&mut s, &rec.up[1]).await.unwrap();
            let rest = timeout(Duration::from_secs(3), read_frame(&mut s))
                .await
                .expect("a closes the connection");
            assert_eq!(rest, None, "a replayed Auth got an answer");
        }
        // Nothing changed: the same members and incarnations, the same leader.
        let status_after = c.node("a").status().await.unwrap();
        assert_eq!(status_after.members, status_before.members);
        assert_eq!(c.agreed(LIMIT).await, before);
        assert!(c.log.changes_since(t0).is_empty());
    });
}

/// Floods against the leader's own listener, from one address:
///
/// 1. 500 connections at once that never speak: at most `max_pending_known_source` (16, the
///    address is that of the peers) are kept, each newcomer displacing the oldest idle one, the
///    rest are closed at once (told "rate limited"); the kept ones are closed at the handshake
///    deadline (500 ms). Meanwhile a genuine client gets in (its `Hello` is not idle);
///    established connections carry on;
/// 2. 500 connections each sending a garbage frame, and 100 announcing a 4 GiB frame: each is
///    closed at the first frame, nothing is allocated for the announced size;
/// 3. an authenticated client sending 20 000 requests without reading the answers: reading
///    pauses at the inbound queue, answers beyond the outbound queue are dropped; the node
///    keeps answering others.
///
/// Throughout, the cluster keeps its leader and term: no leadership change at all.
#[test]
fn floods_from_one_address_are_bounded_and_the_leader_stays() {
    run(async {
        let names = ["a", "b", "c"];
        let c = TcpCluster::start(ClusterOptions::new(&names)).await;
        let before = c.agreed(LIMIT).await;
        let leader = before.leader.clone().unwrap().node.to_string();
        let target = c.bound(&leader);
        let t0 = Instant::now();

        // 1. Idle connections: 500 opened back to back, none ever speaks.
        let first = Instant::now();
        let mut idle = Vec::new();
        let mut refused = 0;
        for _ in 0..500 {
            match TcpStream::connect(target).await {
                Ok(s) => idle.push(Some(s)),
                Err(_) => refused += 1,
            }
        }
        let connected = first.elapsed();
        // The node closes everything beyond the 16 pending slots of this address at once, long
        // before the handshake deadline (500 ms) could.
        let capped_at = loop {
            let open = still_open(&mut idle);
            if open <= 16 {
                break first.elapsed();
            }
            assert!(
                first.elapsed() < connected + Duration::from_millis(250),
                "{open} connections still open {:?} after the last was opened",
                first.elapsed() - connected
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let kept = still_open(&mut idle);
        // While they hold every slot of this address, a genuine client still gets in: it
        // displaces an idle one. Established connections carry on.
        let newcomer = status_as_client(&target.to_string(), &good_client()).await;
        assert!(
            newcomer.is_ok(),
            "a genuine client was starved: {newcomer:?}"
        );
        let all_closed_at = loop {
            if still_open(&mut idle) == 0 {
                break first.elapsed();
            }
            assert!(
                first.elapsed() < Duration::from_secs(3),
                "idle connections left open"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        println!(
            "500 idle connections (opened in {connected:.1?}, {refused} refused by the kernel): \
             {} closed at once (all but {kept} by {capped_at:.1?}), the {kept} kept closed at the \
             handshake deadline (all by {all_closed_at:.1?})",
            500 - refused - kept
        );
        assert!(
            all_closed_at >= Duration::from_millis(400),
            "{all_closed_at:?}"
        );

        // 2. Garbage frames and hostile length headers.
        let mut rng = Rng::with_seed(7);
        let mut garbage = Vec::new();
        for i in 0..600 {
            let n = 1 + rng.usize(..200);
            let payload = random_bytes(&mut rng, n);
            garbage.push(tokio::spawn(async move {
                // Refused, reset or closed all count as closed; only a connection still open
                // after 5 s does not.
                let Ok(mut s) = TcpStream::connect(target).await else {
                    return true;
                };
                let written = if i < 500 {
                    write_frame(&mut s, &payload).await
                } else {
                    match s.write_all(&u32::MAX.to_be_bytes()).await {
                        Ok(()) => s.write_all(&payload).await,
                        Err(e) => Err(e),
                    }
                };
                if written.is_err() {
                    return true;
                }
                // Closed, possibly after a busy notice (rate limited).
                let closed = timeout(Duration::from_secs(5), async {
                    loop {
                        match read_frame(&mut s).await {
                            None => return true,
                            Some(f) if f.starts_with(b"BUSY") => continue,
                            Some(_) => return false,
                        }
                    }
                })
                .await;
                matches!(closed, Ok(true))
            }));
            if i % 50 == 49 {
                // Stay under the pending-handshake cap so each frame is actually read.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let mut closed = 0;
        for g in garbage {
            if g.await.unwrap() {
                closed += 1;
            }
        }
        println!("600 garbage / oversized frames: {closed} connections closed");
        assert_eq!(closed, 600);

        // 3. An authenticated client that never reads.
        let mut flooder = TcpClient::connect(&target.to_string(), &good_client(), "flooder")
            .await
            .unwrap();
        let sent = timeout(Duration::from_secs(30), async {
            for _ in 0..20_000 {
                flooder.send(&Message::StatusRequest).await?;
            }
            Ok::<_, ClientError>(())
        })
        .await;
        println!("20 000 unread requests from one client: {sent:?}");
        let answered = timeout(
            Duration::from_secs(2),
            status_as_client(&target.to_string(), &good_client()),
        )
        .await
        .expect("the node answers others during the flood")
        .unwrap();
        assert_eq!(answered.node.as_str(), leader);
        drop(flooder);

        let changes = c.log.changes_since(t0);
        println!("leadership changes during the floods: {}", changes.len());
        assert!(changes.is_empty(), "{changes:#?}");
        assert_eq!(c.agreed(LIMIT).await, before);
    });
}
