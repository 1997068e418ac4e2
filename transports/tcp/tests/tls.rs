//! Mutual TLS (feature `tls`): nodes of one CA connect, baton's handshake runs inside, the
//! close of a TLS peer is classified as over plain TCP (a FIN, sent without `close_notify`
//! when a process is killed, is orderly; a reset is abrupt), and every mismatch — a
//! certificate of another CA, a plaintext dialer at a TLS node and the reverse, an unusable
//! file — is refused or reported with the true reason.
#![cfg(feature = "tls")]
#![allow(
    clippy::unwrap_used,
    reason = "test code, where a panic is the failure report (clippy exempts only #[test] fns)"
)]

mod common;

use baton_core::message::Message;
use baton_core::{CloseKind, NodeId, Transport, TransportEvent};
use baton_transport_tcp::tls::{Tls, TlsError};
use baton_transport_tcp::{TcpClient, TcpConfig, TcpTransport};
use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// A throwaway CA, made at test time (no key is committed).
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A node's PEM files.
struct Identity {
    cert: String,
    key: String,
    ca: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn identity(&self, node: &str) -> Identity {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![node.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert: cert.pem(),
            key: key.serialize_pem(),
            ca: self.issuer.pem(),
        }
    }
}

impl Identity {
    fn tls(&self) -> Tls {
        Tls::from_pem(
            (Path::new("node.pem"), self.cert.as_bytes()),
            (Path::new("node-key.pem"), self.key.as_bytes()),
            (Path::new("ca.pem"), self.ca.as_bytes()),
        )
        .expect("valid PEM")
    }

    fn config(&self) -> TcpConfig {
        let mut cfg = config();
        cfg.tls = Some(self.tls());
        cfg
    }

    /// A rustls client config of this identity, for a hand-driven TLS peer.
    fn client_config(&self) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let chain: Vec<_> = CertificateDer::pem_slice_iter(self.cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes()).unwrap();
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap()
    }
}

/// A cluster CA, and nodes a (incarnation 1) and b (2) under it, connected; b's address.
async fn tls_pair() -> (Ca, (TcpTransport, TcpTransport, String)) {
    let ca = Ca::new("cluster ca");
    let ((a, _), (b, b_addr)) = start_paired(
        (ca.identity("a").config(), "a", 1),
        (ca.identity("b").config(), "b", 2),
    )
    .await;
    (ca, (a, b, b_addr))
}

/// `dialer` dials `addr` and is refused over TLS in use on one side only: the listener's log
/// says `listener_says`, the dialer's `connect failed` and `dialer_says`.
async fn refused_for_tls(
    logs: &Logs,
    dialer: &TcpTransport,
    addr: &str,
    listener_says: &str,
    dialer_says: &str,
) {
    dialer.connect(addr).await;
    logs.wait_for(&[listener_says]).await;
    logs.wait_for(&["connect failed", dialer_says]).await;
}

#[tokio::test]
async fn tls_nodes_connect_and_talk_and_a_client_asks_status() {
    let (ca, (a, b, b_addr)) = tls_pair().await;
    a.send(&NodeId::new("b"), Message::StatusRequest)
        .await
        .unwrap();
    expect(
        &b,
        SOON,
        "a's message",
        |e| matches!(e, TransportEvent::Message(env) if env.from == NodeId::new("a")),
    )
    .await;
    // A client (what `baton status` runs) needs a certificate of the CA too.
    let cli_cfg = ca.identity("cli").config();
    let client = TcpClient::connect(&b_addr, &cli_cfg, "cli");
    let mut client = client.await.expect("a TLS client of the CA is admitted");
    assert_eq!(client.node().node, NodeId::new("b"));
    client.send(&Message::StatusRequest).await.unwrap();
    expect(&b, SOON, "the client's request", |e| {
        matches!(e, TransportEvent::ClientMessage(_))
    })
    .await;
    // Without one (plain text), the client is refused and told why.
    let e = TcpClient::connect(&b_addr, &config(), "cli")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("requires TLS"), "{e}");
    shutdown_all([a, b]).await;
}

#[tokio::test]
async fn a_tls_fin_without_close_notify_is_orderly_and_proves_death_but_a_reset_does_not() {
    let ca = Ca::new("cluster ca");
    let (b, b_addr) = start_with(ca.identity("b").config(), "b", 1).await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(ca.identity("x").client_config()));
    for (inc, reset) in [(5, false), (6, true)] {
        // x advertises an address nobody listens on, so every redial is refused.
        let x_addr = closed_port().await;
        let name = format!("x{inc}");
        let tcp = TcpStream::connect(&b_addr).await.unwrap();
        let server_name = rustls::pki_types::ServerName::try_from("b").unwrap();
        let s = connector.connect(server_name, tcp).await.unwrap();
        // Dropped without `shutdown()`: no close_notify, only the kernel's FIN (or RST).
        handshake_then_drop(&b, s, &name, inc, &x_addr, reset).await;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn a_tls_node_shut_down_is_proven_dead_by_its_tls_peer() {
    let (_, (a, b, _)) = tls_pair().await;
    // Dropped, not shut down: its tasks end and the kernel closes its sockets (FIN, no
    // close_notify), then its port refuses: the proof of death, as over plain TCP.
    drop(b);
    let seen = expect(&a, SOON, "Dead{b}", is_dead("b", 2)).await;
    assert!(
        seen.iter().any(|e| matches!(
            e,
            TransportEvent::Disconnected {
                how: CloseKind::Orderly,
                ..
            }
        )),
        "{seen:?}"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_and_both_sides_say_why() {
    let (logs, _guard) = Logs::capture();
    let ca = Ca::new("cluster ca");
    let other = Ca::new("other ca");
    let (a, a_addr) = start_with(ca.identity("a").config(), "a", 1).await;
    // m's own certificate comes from another CA, but it trusts the cluster's CA: a refuses m.
    let mut m_id = other.identity("m");
    m_id.ca = ca.issuer.pem();
    let (m, _) = start_with(m_id.config(), "m", 1).await;
    m.connect(&a_addr).await;
    let text = logs
        .wait_for(&[
            "handshake refused",
            "not signed by this node's cluster.tls.ca",
        ])
        .await;
    assert!(text.contains("peer="), "{text}");
    logs.wait_for(&[
        "connect failed",
        "the peer refused the handshake (alert UnknownCA)",
    ])
    .await;
    // n trusts only the other CA: n refuses a's certificate, a learns n refused it.
    let (n, _) = start_with(other.identity("n").config(), "n", 1).await;
    n.connect(&a_addr).await;
    logs.wait_for(&[
        "connect failed",
        "the peer's certificate is not signed by this node's cluster.tls.ca",
    ])
    .await;
    logs.wait_for(&[
        "handshake refused",
        "did it refuse this node's certificate?",
    ])
    .await;
    let at_a = drain(&a, Duration::from_millis(300)).await;
    assert_not_connected(&at_a, "no Connected");
    for t in [a, m, n] {
        t.shutdown().await;
    }
}

#[tokio::test]
async fn plaintext_and_tls_nodes_refuse_each_other_and_say_why() {
    let (logs, _guard) = Logs::capture();
    let ca = Ca::new("cluster ca");
    let (t, t_addr) = start_with(ca.identity("t").config(), "t", 1).await;
    let (p, p_addr) = start("p", 1).await;
    // A plaintext node dials the TLS node.
    refused_for_tls(
        &logs,
        &p,
        &t_addr,
        "the dialer speaks plain text and this node requires TLS",
        "the peer requires TLS ([cluster.tls] is set there) and this side has no [cluster.tls]",
    )
    .await;
    // The TLS node dials the plaintext one.
    refused_for_tls(
        &logs,
        &t,
        &p_addr,
        "the dialer speaks TLS and this node has no [cluster.tls]",
        "the peer does not use TLS (no [cluster.tls] there) and this side has [cluster.tls]",
    )
    .await;
    for tr in [&t, &p] {
        let seen = drain(tr, Duration::from_millis(300)).await;
        assert_not_connected(&seen, "no Connected");
    }
    shutdown_all([t, p]).await;
}

#[test]
fn unusable_files_name_the_field_the_file_and_the_problem() {
    let dir = std::env::temp_dir().join(format!("baton-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let id = Ca::new("ca").identity("a");
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("node.pem", &id.cert);
    let key = write("node-key.pem", &id.key);
    let ca = write("ca.pem", &id.ca);
    let junk = write("junk.pem", "not a pem file\n");
    let missing = dir.join("missing.pem");
    Tls::from_files(&cert, &key, &ca).expect("the generated files are valid");
    let check = |result: Result<Tls, TlsError>, field: &str, file: &str, what: &str| {
        let field = format!("cluster.tls.{field}");
        let e = result.expect_err(&field).to_string();
        assert!(
            e.contains(&field) && e.contains(file) && e.contains(what),
            "{field} {file} {what}: {e}"
        );
    };
    // Each of the three files missing, then each one junk.
    let junk_says = [
        "BEGIN CERTIFICATE",
        "BEGIN PRIVATE KEY",
        "BEGIN CERTIFICATE",
    ];
    for (bad, file, says) in [
        (&missing, "missing.pem", ["cannot read"; 3]),
        (&junk, "junk.pem", junk_says),
    ] {
        for (i, field) in ["cert", "key", "ca"].into_iter().enumerate() {
            let mut files = [&cert, &key, &ca];
            files[i] = bad;
            check(
                Tls::from_files(files[0], files[1], files[2]),
                field,
                file,
                says[i],
            );
        }
    }
    // A key and a certificate that do not belong together.
    let swapped = Tls::from_files(&key, &cert, &ca);
    check(swapped, "cert", "node-key.pem", "BEGIN CERTIFICATE");
    let other_key = write(
        "other-key.pem",
        &KeyPair::generate().unwrap().serialize_pem(),
    );
    let e = Tls::from_files(&cert, &other_key, &ca)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cluster.tls.key") && e.contains("does not belong"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts TLS node `name` on a free port in group "g"; returns it and its transport (to kill).
async fn tls_node(
    name: &str,
    id: &Identity,
    seeds: &[String],
) -> (
    baton_core::Node,
    Arc<baton_transport_tcp::TcpTransport>,
    baton_core::Service,
) {
    let mut cfg = node_config(name, seeds, &["a", "b", "c"]);
    cfg.timing.heartbeat_ms = 50;
    cfg.timing.failure_timeout_ms = 300;
    let transport = Arc::new(baton_transport_tcp::TcpTransport::new(id.config()));
    let (node, svc) = start_node(cfg, transport.clone()).await;
    (node, transport, svc)
}

/// The leader every node in `nodes` agrees on, within 10 s.
async fn agreed_leader(nodes: &[&baton_core::Node], not: Option<&str>) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let views: Vec<Option<String>> = nodes
            .iter()
            .map(|n| {
                n.leadership("g")
                    .borrow()
                    .leader
                    .as_ref()
                    .map(|m| m.node.to_string())
            })
            .collect();
        if let Some(Some(first)) = views.first()
            && views.iter().all(|v| v.as_ref() == Some(first))
            && not != Some(first.as_str())
        {
            return first.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no agreed leader within 10 s: {views:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_elects_fails_over_and_keeps_a_foreign_node_out() {
    let ca = Ca::new("cluster ca");
    let (a, ta, _sa) = tls_node("a", &ca.identity("a"), &[]).await;
    let seeds = vec![format!("a@{}", a.addr())];
    let (b, tb, _sb) = tls_node("b", &ca.identity("b"), &seeds).await;
    let (c, tc, _sc) = tls_node("c", &ca.identity("c"), &seeds).await;
    let first = agreed_leader(&[&a, &b, &c], None).await;
    // A node whose certificate comes from another CA (it even claims a voter's name) is kept
    // out: the cluster keeps its one leader and never lists it.
    let other = Ca::new("other ca");
    let mut foreign = other.identity("c");
    foreign.ca = ca.issuer.pem();
    let (m, tm, _sm) = tls_node("m", &foreign, &seeds).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(agreed_leader(&[&a, &b, &c], None).await, first);
    for n in [&a, &b, &c] {
        let status = n.status().await.expect("status");
        assert!(
            status.members.iter().all(|mm| mm.name.as_str() != "m"),
            "{status:?}"
        );
    }
    m.abort();
    tm.shutdown().await;
    // Kill the leader: its node stops, its transport closes (peers' redials are refused).
    let nodes = [(a, ta), (b, tb), (c, tc)];
    let mut survivors = Vec::new();
    for (n, t) in nodes {
        if n.id().as_str() == first {
            n.abort();
            t.shutdown().await;
        } else {
            survivors.push((n, t));
        }
    }
    let refs: Vec<&baton_core::Node> = survivors.iter().map(|(n, _)| n).collect();
    let second = agreed_leader(&refs, Some(&first)).await;
    assert_ne!(second, first);
    for (n, _) in &survivors {
        n.shutdown().await;
    }
}
