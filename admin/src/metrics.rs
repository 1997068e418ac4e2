//! The Prometheus metrics of one node: counters fed by the observer (from the node's
//! [`NodeEvent`](baton_core::runtime::NodeEvent)s), gauges set from a status snapshot at each
//! scrape.

use crate::status::View;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A metric's labels, `(name, value)` in order.
pub(crate) type Labels = Vec<(String, String)>;

/// `[(k, v), …]` as [`Labels`].
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn election_histogram() -> Histogram {
    // 5 ms … ~41 s: a handoff takes milliseconds, a timeout failover the failure timeout.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

fn call_histogram() -> Histogram {
    // 0.1 ms … ~1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

/// Every metric; see docs/OPERATING.md for what each means.
pub(crate) struct Metrics {
    registry: Registry,
    /// One scrape at a time sets the gauges and encodes (two would interleave clear and set).
    rendering: std::sync::Mutex<()>,
    pub(crate) up: Gauge,
    pub(crate) ready: Gauge,
    pub(crate) start_time: Gauge<f64, AtomicU64>,
    pub(crate) leader: Family<Labels, Gauge>,
    pub(crate) term: Family<Labels, Gauge>,
    pub(crate) changes: Family<Labels, Counter>,
    /// Set from the engine's own count at each scrape (see `render`).
    pub(crate) lease_renewals: Family<Labels, Counter>,
    pub(crate) election: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) peers: Family<Labels, Gauge>,
    pub(crate) peer_events: Family<Labels, Counter>,
    pub(crate) no_leader_reports: Counter,
    pub(crate) voters_reachable: Gauge,
    pub(crate) voters_needed: Gauge,
    pub(crate) votes_granted: Family<Labels, Counter>,
    pub(crate) votes_denied: Family<Labels, Counter>,
    pub(crate) refusals: Family<Labels, Counter>,
    pub(crate) calls: Family<Labels, Counter>,
    pub(crate) call_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) served: Family<Labels, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let m = Metrics {
            up: Gauge::default(),
            ready: Gauge::default(),
            start_time: Gauge::default(),
            leader: Family::default(),
            term: Family::default(),
            changes: Family::default(),
            lease_renewals: Family::default(),
            election: Family::new_with_constructor(election_histogram),
            peers: Family::default(),
            peer_events: Family::default(),
            no_leader_reports: Counter::default(),
            voters_reachable: Gauge::default(),
            voters_needed: Gauge::default(),
            votes_granted: Family::default(),
            votes_denied: Family::default(),
            refusals: Family::default(),
            calls: Family::default(),
            call_seconds: Family::new_with_constructor(call_histogram),
            served: Family::default(),
            registry: Registry::default(),
            rendering: std::sync::Mutex::new(()),
        };
        let r = &mut registry;
        r.register("up", "1 while the node runs", m.up.clone());
        r.register(
            "ready",
            "1 while /readyz answers 200 (joined and, in quorum mode, reaching a majority of voters)",
            m.ready.clone(),
        );
        r.register(
            "start_time_seconds",
            "When this node process started (its incarnation), Unix seconds",
            m.start_time.clone(),
        );
        r.register(
            "leader",
            "1 on the node that acts as the group's leader (holds its lease), else 0",
            m.leader.clone(),
        );
        r.register(
            "term",
            "The group's leadership term as this node knows it",
            m.term.clone(),
        );
        r.register(
            "leadership_changes",
            "New leaders this node saw, by the reason the previous one went (initial, crash_proof, timeout, handoff, transfer, preempt, lease_lost, higher_term, standing_aside)",
            m.changes.clone(),
        );
        r.register(
            "lease_renewals",
            "Times this node, leading the group, extended its lease (a majority acked a heartbeat in time; quorum mode only): grows about once a heartbeat on a healthy leader",
            m.lease_renewals.clone(),
        );
        r.register(
            "election_duration_seconds",
            "How long the group had no leader in this node's view, from losing one to knowing the next",
            m.election.clone(),
        );
        r.register(
            "no_leader_reports",
            "Groups this node reported leaderless for a failure timeout (an election that did not end in time), once per group per report; again when the reason changes",
            m.no_leader_reports.clone(),
        );
        r.register(
            "peers",
            "Other nodes this node knows, by state (alive, down)",
            m.peers.clone(),
        );
        r.register(
            "peer_events",
            "Peer liveness changes this node saw (up, back, taken_back, silent, gone)",
            m.peer_events.clone(),
        );
        r.register(
            "voters_reachable",
            "Voters alive in this node's view (itself included)",
            m.voters_reachable.clone(),
        );
        r.register(
            "voters_needed",
            "Voters a leader needs (0 with quorum = \"none\")",
            m.voters_needed.clone(),
        );
        r.register(
            "votes_granted",
            "(Pre-)votes this node granted",
            m.votes_granted.clone(),
        );
        r.register(
            "votes_denied",
            "(Pre-)votes this node denied, by the rule that denied them",
            m.votes_denied.clone(),
        );
        r.register(
            "handshake_refusals",
            "Peers that refused this node, by reason",
            m.refusals.clone(),
        );
        r.register(
            "calls",
            "Calls routed through this node's API, by outcome",
            m.calls.clone(),
        );
        r.register(
            "call_duration_seconds",
            "Latency of calls routed through this node's API",
            m.call_seconds.clone(),
        );
        r.register(
            "served",
            "Routed calls this node's handler served, by outcome",
            m.served.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the gauges from `view` (None: the node is gone) and encodes everything.
    pub(crate) fn render(&self, view: Option<&View>) -> String {
        // Poisoning leaves nothing inconsistent: the next scrape sets every gauge again.
        let _one = self.rendering.lock().unwrap_or_else(|e| e.into_inner());
        match view {
            None => {
                self.up.set(0);
                self.ready.set(0);
                self.leader.clear();
            }
            Some(v) => {
                self.up.set(1);
                self.ready.set(i64::from(v.ready.is_ok()));
                self.start_time.set(v.incarnation_time_s());
                self.leader.clear();
                self.term.clear();
                for g in &v.snap.groups {
                    let l = labels(&[("group", &g.group)]);
                    self.leader.get_or_create(&l).set(i64::from(g.is_me));
                    self.term
                        .get_or_create(&l)
                        .set(i64::try_from(g.term).unwrap_or(i64::MAX));
                }
                // The engine counts (a field per group, no event per renewal): catch the
                // exported counters up with it. A lower count means the engine forgot the
                // group and started again: the series restarts too (a counter reset).
                for (group, n) in &v.snap.lease_renewals {
                    let l = labels(&[("group", group)]);
                    let c = self.lease_renewals.get_or_create(&l);
                    let seen = c.get();
                    if *n < seen {
                        drop(c);
                        self.lease_renewals.remove(&l);
                        self.lease_renewals.get_or_create(&l).inc_by(*n);
                    } else {
                        c.inc_by(n - seen);
                    }
                }
                self.peers.clear();
                let (mut alive, mut down) = (0, 0);
                for m in v.snap.members.iter().filter(|m| m.name != v.snap.node) {
                    if m.alive {
                        alive += 1;
                    } else {
                        down += 1;
                    }
                }
                self.peers
                    .get_or_create(&labels(&[("state", "alive")]))
                    .set(alive);
                self.peers
                    .get_or_create(&labels(&[("state", "down")]))
                    .set(down);
                self.voters_reachable.set(v.voters_reachable() as i64);
                self.voters_needed.set(v.voters_needed() as i64);
            }
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
