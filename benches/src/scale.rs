//! The scale benchmark's measuring logic (`src/bin/scale.rs` drives it): when is every group
//! led, judged from every node's own view; what one run measured; medians over runs; the
//! report, as text and as JSON.
//!
//! A group counts as **led** when every observed node answers, all name the same leader
//! member under the same term, and exactly that node reports that it acts as leader (none
//! does when the leader is not among the observed nodes) — the test kit's agreement, applied
//! to whole status snapshots at once.

use crate::stats::{Summary, fmt_duration};
use anyhow::Result;
use baton_core::{Leadership, Term};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// One node's view of every group it knows: leadership by group name.
pub type View = HashMap<String, Leadership>;

/// A view from a node's status snapshot.
pub fn view_of(groups: Vec<Leadership>) -> View {
    groups
        .into_iter()
        .map(|l| (l.group.to_string(), l))
        .collect()
}

/// Where the views come from: status snapshots of processes, or watches in this process.
pub trait Observe {
    /// The current view of each of `which` (node indexes), in that order; `None` for a node
    /// that did not answer this time. An error ends the run (a node died on its own).
    fn views(&mut self, which: &[usize]) -> impl Future<Output = Result<Vec<Option<View>>>>;

    /// After a kill at `since`: waits, asking the nodes nothing (so that the measuring does
    /// not load them), until the survivors `which` themselves said they lead each of `groups`
    /// (processes: their logs), at most `limit`; per group the time since `since`. `None`:
    /// this mode cannot tell (the polled figure stands alone).
    fn leaders_said(
        &mut self,
        which: &[usize],
        groups: &[String],
        since: std::time::SystemTime,
        limit: Duration,
    ) -> impl Future<Output = Result<Option<Vec<Option<Duration>>>>> {
        let _ = (which, groups, since, limit);
        async { Ok(None) }
    }
}

/// The leader of `group` (node index, term) that every view of `views` (of nodes `which`,
/// named by `names`) agrees on, when they do (see the module docs).
pub fn led_by(
    names: &[String],
    which: &[usize],
    views: &[Option<View>],
    group: &str,
) -> Option<(usize, Term)> {
    let mut agreed: Option<(&Leadership, usize)> = None;
    for v in views {
        let l = v.as_ref()?.get(group)?;
        let leader = l.leader.as_ref()?;
        match agreed {
            None => {
                let i = names.iter().position(|n| n == leader.node.as_str())?;
                agreed = Some((l, i));
            }
            Some((first, _)) => {
                if first.leader != l.leader || first.term != l.term {
                    return None;
                }
            }
        }
    }
    let (first, li) = agreed?;
    let acting_ok = which
        .iter()
        .zip(views)
        .all(|(&i, v)| v.as_ref().and_then(|v| v.get(group)).map(|l| l.is_me) == Some(i == li));
    acting_ok.then_some((li, first.term))
}

/// When [`wait`] stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every group is led at the same poll (a cold start: all led).
    AllAtOnce,
    /// Every group has been led (by a leader `ok` accepts) at some poll (a failover: each
    /// group's own re-election time).
    EachOnce,
}

/// What [`wait`] saw.
#[derive(Clone, Debug, Default)]
pub struct Waited {
    /// Per group, from `t0` to the first poll that saw it led.
    pub first: Vec<Option<Duration>>,
    /// From `t0` to the poll that met the [`Until`] condition; `None` when the limit came first.
    pub done: Option<Duration>,
    /// Per group, the leader (node index, term) at the last poll, when it was led.
    pub leaders: Vec<Option<(usize, Term)>>,
    /// Nodes that did not answer at the last poll.
    pub silent: usize,
    /// How many polls.
    pub polls: usize,
}

impl Waited {
    /// Groups not led (by an accepted leader) at the last poll.
    pub fn pending(&self) -> usize {
        self.leaders.iter().filter(|l| l.is_none()).count()
    }
}

/// Polls `obs` for nodes `which` every `poll` until every group of `groups` is led by a leader
/// that `ok(group index, leader index, term)` accepts, as `until` says, or until `limit` after
/// `t0` has passed.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per mode; a struct would only rename them"
)]
pub async fn wait<O: Observe>(
    obs: &mut O,
    names: &[String],
    which: &[usize],
    groups: &[String],
    ok: impl Fn(usize, usize, Term) -> bool,
    until: Until,
    t0: Instant,
    limit: Duration,
    poll: Duration,
) -> Result<Waited> {
    let mut w = Waited {
        first: vec![None; groups.len()],
        leaders: vec![None; groups.len()],
        ..Waited::default()
    };
    loop {
        let views = obs.views(which).await?;
        let now = t0.elapsed();
        w.polls += 1;
        w.silent = views.iter().filter(|v| v.is_none()).count();
        for (g, name) in groups.iter().enumerate() {
            w.leaders[g] = led_by(names, which, &views, name).filter(|&(l, t)| ok(g, l, t));
            if w.leaders[g].is_some() && w.first[g].is_none() {
                w.first[g] = Some(now);
            }
        }
        let met = match until {
            Until::AllAtOnce => w.leaders.iter().all(Option::is_some),
            Until::EachOnce => w.first.iter().all(Option::is_some),
        };
        if met {
            w.done = Some(now);
            return Ok(w);
        }
        if now >= limit {
            return Ok(w);
        }
        tokio::time::sleep(poll).await;
    }
}

/// How many groups each node leads, from [`Waited::leaders`].
pub fn leaders(n: usize, led: &[Option<(usize, Term)>]) -> Leaders {
    let mut per_node = vec![0; n];
    for &(i, _) in led.iter().flatten() {
        per_node[i] += 1;
    }
    let max = per_node.iter().copied().max().unwrap_or(0);
    let mean = led.len() as f64 / n.max(1) as f64;
    Leaders {
        per_node,
        max,
        mean,
        max_over_mean: if mean > 0.0 { max as f64 / mean } else { 0.0 },
    }
}

/// The node leading the most groups (the lowest index among equals), and those groups.
pub fn busiest(led: &[Option<(usize, Term)>], n: usize) -> Option<(usize, Vec<usize>)> {
    let counts = leaders(n, led).per_node;
    let max = *counts.iter().max()?;
    if max == 0 {
        return None;
    }
    let victim = counts.iter().position(|&c| c == max)?;
    let groups = (0..led.len())
        .filter(|&g| matches!(led[g], Some((l, _)) if l == victim))
        .collect();
    Some((victim, groups))
}

// ------------------------------------------------------------------------------ the report

/// Leaders per node after the cold start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Leaders {
    /// Groups each node leads, by index.
    pub per_node: Vec<usize>,
    /// The most any node leads.
    pub max: usize,
    /// Groups / nodes.
    pub mean: f64,
    /// `max / mean` (1.0: perfectly spread; `nodes`: one node leads all).
    pub max_over_mean: f64,
}

/// One node over the idle window.
#[derive(Clone, Debug, Serialize)]
pub struct NodeIdle {
    /// `nI`.
    pub name: String,
    /// utime + stime over the window, in percent of one core.
    pub cpu_pct: f64,
    /// VmRSS at the end of the window, MiB.
    pub rss_mib: f64,
    /// TCP payload bytes per second it sent to other nodes (see [`crate::sockets`]).
    pub sent_bytes_per_s: Option<f64>,
}

/// Wire traffic between nodes over the idle window (see [`crate::sockets`]).
#[derive(Clone, Debug, Serialize)]
pub struct Wire {
    /// Node pairs: n (n − 1) / 2.
    pub pairs: usize,
    /// Bytes per second both ways, mean over all pairs.
    pub pair_mean_bytes_per_s: f64,
    /// The busiest pair's bytes per second, both ways.
    pub pair_max_bytes_per_s: f64,
    /// Node sockets that closed during the window (their bytes are not counted).
    pub closed_sockets: usize,
}

/// The idle window after every group is led.
#[derive(Clone, Debug, Serialize)]
pub struct Idle {
    /// Its length.
    pub secs: f64,
    /// CPU of every node together (or of this process, in process), percent of one core.
    pub cpu_total_pct: f64,
    /// Per node (empty in process).
    pub nodes: Vec<NodeIdle>,
    /// RSS of every node together (or of this process), MiB.
    pub rss_total_mib: f64,
    /// Wire traffic (processes only).
    pub wire: Option<Wire>,
}

/// The kill -9 of the node leading the most groups.
#[derive(Clone, Debug, Serialize)]
pub struct Failover {
    /// The node killed.
    pub victim: String,
    /// The groups it led.
    pub groups: usize,
    /// Those led again (in JSON, its fields stand beside these).
    #[serde(flatten)]
    pub reled: Reled,
    /// The same, timed by the new leaders' own logs (`Leading`), with nothing polled
    /// meanwhile; processes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_logs: Option<Reled>,
}

/// The groups a killed node led that were led again (by a survivor, in a higher term) within
/// the limit: how many, and how long it took, per group from the kill until every survivor
/// agreed on its new leader (`None`: none was).
#[derive(Clone, Debug, Serialize)]
pub struct Reled {
    /// How many (in JSON `reled`).
    #[serde(rename = "reled")]
    pub count: usize,
    /// The median time.
    pub p50_ms: Option<f64>,
    /// The slowest group's: the time until the last one was led again.
    pub max_ms: Option<f64>,
}

/// One run: a fresh cluster, cold start, idle window, failover.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Run {
    /// 1-based.
    pub run: usize,
    /// From the last node started until every group was led; `None` when the limit came first.
    pub led_s: Option<f64>,
    /// Why the run stopped early, or what went wrong.
    pub error: Option<String>,
    /// Leaders per node once all groups were led.
    pub leaders: Option<Leaders>,
    /// The idle window.
    pub idle: Option<Idle>,
    /// The failover.
    pub failover: Option<Failover>,
}

/// One figure of the medians: its key in the JSON report and what one run measured of it
/// (`None`: not measured in that run).
pub struct Figure {
    /// The key in the report's `medians` object.
    pub key: &'static str,
    /// The run's value.
    pub of: fn(&Run) -> Option<f64>,
}

/// The largest of a run's per-node values (`None` in process, where there are no nodes).
fn node_max(r: &Run, f: fn(&NodeIdle) -> f64) -> Option<f64> {
    let i = r.idle.as_ref().filter(|i| !i.nodes.is_empty())?;
    Some(i.nodes.iter().map(f).fold(f64::NEG_INFINITY, f64::max))
}

/// Every figure the medians are taken of, in report order.
pub const FIGURES: &[Figure] = &[
    // [`Run::led_s`].
    Figure {
        key: "led_s",
        of: |r| r.led_s,
    },
    // [`Idle::cpu_total_pct`].
    Figure {
        key: "cpu_total_pct",
        of: |r| Some(r.idle.as_ref()?.cpu_total_pct),
    },
    // The busiest node's CPU (processes only).
    Figure {
        key: "cpu_node_max_pct",
        of: |r| node_max(r, |n| n.cpu_pct),
    },
    // The largest node's RSS (processes only).
    Figure {
        key: "rss_node_max_mib",
        of: |r| node_max(r, |n| n.rss_mib),
    },
    // [`Idle::rss_total_mib`].
    Figure {
        key: "rss_total_mib",
        of: |r| Some(r.idle.as_ref()?.rss_total_mib),
    },
    // [`Wire::pair_mean_bytes_per_s`].
    Figure {
        key: "pair_mean_bytes_per_s",
        of: |r| Some(r.idle.as_ref()?.wire.as_ref()?.pair_mean_bytes_per_s),
    },
    // [`Wire::pair_max_bytes_per_s`].
    Figure {
        key: "pair_max_bytes_per_s",
        of: |r| Some(r.idle.as_ref()?.wire.as_ref()?.pair_max_bytes_per_s),
    },
    // [`Leaders::max_over_mean`].
    Figure {
        key: "leaders_max_over_mean",
        of: |r| Some(r.leaders.as_ref()?.max_over_mean),
    },
    // [`Reled::p50_ms`].
    Figure {
        key: "failover_p50_ms",
        of: |r| r.failover.as_ref()?.reled.p50_ms,
    },
    // [`Reled::max_ms`].
    Figure {
        key: "failover_max_ms",
        of: |r| r.failover.as_ref()?.reled.max_ms,
    },
    // [`Failover::by_logs`].
    Figure {
        key: "failover_logs_p50_ms",
        of: |r| r.failover.as_ref()?.by_logs.as_ref()?.p50_ms,
    },
    Figure {
        key: "failover_logs_max_ms",
        of: |r| r.failover.as_ref()?.by_logs.as_ref()?.max_ms,
    },
];

/// Medians over the runs that measured each figure: in JSON `runs_led` and one key per
/// [`FIGURES`] entry (`null` where no run measured it).
#[derive(Clone, Debug, Default)]
pub struct Medians {
    /// Runs in which every group was led.
    pub runs_led: usize,
    /// The median of each of [`FIGURES`], in that order.
    pub figures: Vec<Option<f64>>,
}

impl Serialize for Medians {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1 + FIGURES.len()))?;
        m.serialize_entry("runs_led", &self.runs_led)?;
        for f in FIGURES {
            m.serialize_entry(f.key, &self.get(f.key))?;
        }
        m.end()
    }
}

/// The whole report (`--json` prints it).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What every run ran (in JSON, its fields stand beside these).
    #[serde(flatten)]
    pub setup: Setup,
    /// Every run.
    pub runs: Vec<Run>,
    /// Medians over them.
    pub medians: Medians,
}

/// What a report's runs ran: the same in every run.
#[derive(Clone, Debug, Serialize)]
pub struct Setup {
    /// `processes`, `in-process memory` or `in-process tcp`.
    pub mode: String,
    /// Nodes.
    pub nodes: usize,
    /// Groups.
    pub groups: usize,
    /// The policy chain of every group.
    pub policy: Vec<String>,
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl Medians {
    /// The medians of `runs`.
    pub fn of(runs: &[Run]) -> Medians {
        Medians {
            runs_led: runs.iter().filter(|r| r.led_s.is_some()).count(),
            figures: FIGURES
                .iter()
                .map(|f| median(runs.iter().filter_map(f.of)))
                .collect(),
        }
    }

    /// The median of the figure `key` of [`FIGURES`] (`None`: no run measured it, or no such
    /// figure).
    pub fn get(&self, key: &str) -> Option<f64> {
        let i = FIGURES.iter().position(|f| f.key == key)?;
        self.figures.get(i).copied().flatten()
    }
}

/// The failover figures from each group's re-election time (`None`: not within the limit).
pub fn failover_of(victim: &str, first: &[Option<Duration>]) -> Failover {
    Failover {
        victim: victim.to_string(),
        groups: first.len(),
        reled: reled_of(first),
        by_logs: None,
    }
}

/// How many of the groups were led again, and the p50 and max of their times.
pub fn reled_of(first: &[Option<Duration>]) -> Reled {
    let times: Vec<Duration> = first.iter().flatten().copied().collect();
    let s = Summary::of(&times);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Reled {
        count: times.len(),
        p50_ms: s.map(|s| ms(s.p50)),
        max_ms: s.map(|s| ms(s.max)),
    }
}

/// `12.3 KB/s`-style bytes per second.
pub fn fmt_rate(bps: f64) -> String {
    if bps < 1e3 {
        format!("{bps:.0} B/s")
    } else if bps < 1e6 {
        format!("{:.1} KB/s", bps / 1e3)
    } else {
        format!("{:.2} MB/s", bps / 1e6)
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map(|m| fmt_duration(Duration::from_secs_f64(m / 1e3)))
        .unwrap_or_else(|| "–".into())
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map(|v| format!("{v:.2}{unit}"))
        .unwrap_or_else(|| "–".into())
}

impl Run {
    /// The run's lines of the text report.
    pub fn text(&self, runs: usize, groups: usize) -> String {
        let mut out = format!("run {}/{runs}:", self.run);
        match self.led_s {
            Some(s) => out.push_str(&format!(
                " all {groups} groups led {} after the last node started\n",
                fmt_duration(Duration::from_secs_f64(s))
            )),
            None => out.push('\n'),
        }
        if let Some(l) = &self.leaders {
            let per: Vec<String> = l
                .per_node
                .iter()
                .enumerate()
                .map(|(i, c)| format!("n{i} {c}"))
                .collect();
            out.push_str(&format!(
                "  leaders per node: max {}, mean {:.1}, max/mean {:.2}  ({})\n",
                l.max,
                l.mean,
                l.max_over_mean,
                per.join(", ")
            ));
        }
        if let Some(i) = &self.idle {
            out.push_str(&format!(
                "  idle {:.1} s: CPU {:.2} % of one core in total, RSS {:.1} MiB in total\n",
                i.secs, i.cpu_total_pct, i.rss_total_mib
            ));
            if !i.nodes.is_empty() {
                out.push_str(&format!(
                    "    {:<6} {:>8} {:>10} {:>12}\n",
                    "node", "CPU %", "RSS MiB", "sent"
                ));
                for n in &i.nodes {
                    out.push_str(&format!(
                        "    {:<6} {:>8.2} {:>10.1} {:>12}\n",
                        n.name,
                        n.cpu_pct,
                        n.rss_mib,
                        n.sent_bytes_per_s
                            .map(fmt_rate)
                            .unwrap_or_else(|| "–".into())
                    ));
                }
            }
            if let Some(w) = &i.wire {
                out.push_str(&format!(
                    "  wire per node pair (TCP payload, both ways): mean {}, max {} over {} pairs; {} node sockets closed in the window\n",
                    fmt_rate(w.pair_mean_bytes_per_s),
                    fmt_rate(w.pair_max_bytes_per_s),
                    w.pairs,
                    w.closed_sockets
                ));
            }
        }
        if let Some(f) = &self.failover {
            out.push_str(&format!(
                "  killed {} (led {} groups): {} of them led again; per group p50 {}, max (the last) {}\n",
                f.victim,
                f.groups,
                f.reled.count,
                fmt_ms(f.reled.p50_ms),
                fmt_ms(f.reled.max_ms)
            ));
            if let Some(l) = &f.by_logs {
                out.push_str(&format!(
                    "    by the new leaders' logs (nothing polled): {} led again, p50 {}, max {}\n",
                    l.count,
                    fmt_ms(l.p50_ms),
                    fmt_ms(l.max_ms)
                ));
            }
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("  FAILED: {e}\n"));
        }
        out
    }
}

impl Report {
    /// The medians' lines of the text report.
    pub fn medians_text(&self) -> String {
        let m = &self.medians;
        let mut out = format!(
            "medians over {} runs ({} with every group led): {} nodes × {} groups, {}, policy {:?}\n",
            self.runs.len(),
            m.runs_led,
            self.setup.nodes,
            self.setup.groups,
            self.setup.mode,
            self.setup.policy
        );
        let ms = |key| fmt_ms(m.get(key));
        let opt = |key, unit| fmt_opt(m.get(key), unit);
        let rate = |key| m.get(key).map(fmt_rate).unwrap_or_else(|| "–".into());
        let lines = [
            (
                "all groups led after",
                fmt_ms(m.get("led_s").map(|s| s * 1e3)),
            ),
            ("leaders max/mean", opt("leaders_max_over_mean", "")),
            ("idle CPU total", opt("cpu_total_pct", " % of one core")),
            (
                "idle CPU, busiest node",
                opt("cpu_node_max_pct", " % of one core"),
            ),
            ("RSS, largest node", opt("rss_node_max_mib", " MiB")),
            ("RSS total", opt("rss_total_mib", " MiB")),
            (
                "wire per pair, mean / max",
                format!(
                    "{} / {}",
                    rate("pair_mean_bytes_per_s"),
                    rate("pair_max_bytes_per_s")
                ),
            ),
            (
                "failover p50 / max",
                format!("{} / {}", ms("failover_p50_ms"), ms("failover_max_ms")),
            ),
            (
                "failover by logs p50/max",
                format!(
                    "{} / {}",
                    ms("failover_logs_p50_ms"),
                    ms("failover_logs_max_ms")
                ),
            ),
        ];
        for (label, value) in lines {
            out.push_str(&format!("  {label:<25} {value}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::MemberId;

    fn view(entries: &[(&str, Option<&str>, Term, bool)]) -> Option<View> {
        Some(view_of(
            entries
                .iter()
                .map(|(g, l, t, me)| Leadership {
                    group: (*g).into(),
                    leader: l.map(|l| MemberId::new(l, 0)),
                    term: *t,
                    is_me: *me,
                })
                .collect(),
        ))
    }

    #[test]
    fn a_group_is_led_when_all_agree_and_exactly_the_leader_acts() {
        let names: Vec<String> = ["n0", "n1", "n2"].map(String::from).to_vec();
        let all = [0, 1, 2];
        let ok = vec![
            view(&[("g", Some("n1"), 3, false)]),
            view(&[("g", Some("n1"), 3, true)]),
            view(&[("g", Some("n1"), 3, false)]),
        ];
        assert_eq!(led_by(&names, &all, &ok, "g"), Some((1, 3)));
        // The leader does not act yet.
        let mut v = ok.clone();
        v[1] = view(&[("g", Some("n1"), 3, false)]);
        assert_eq!(led_by(&names, &all, &v, "g"), None);
        // Another term somewhere.
        let mut v = ok.clone();
        v[2] = view(&[("g", Some("n1"), 2, false)]);
        assert_eq!(led_by(&names, &all, &v, "g"), None);
        // A node that does not answer, or does not know the group.
        let mut v = ok.clone();
        v[0] = None;
        assert_eq!(led_by(&names, &all, &v, "g"), None);
        assert_eq!(led_by(&names, &all, &ok, "h"), None);
        // Survivors only (n1 killed): n1 is not observed, so nobody may act.
        let survivors = [0, 2];
        let old = vec![ok[0].clone(), ok[2].clone()];
        assert_eq!(led_by(&names, &survivors, &old, "g"), Some((1, 3)));
        let new = vec![
            view(&[("g", Some("n0"), 4, true)]),
            view(&[("g", Some("n0"), 4, false)]),
        ];
        assert_eq!(led_by(&names, &survivors, &new, "g"), Some((0, 4)));
    }

    #[test]
    fn leaders_and_the_busiest_node() {
        let led = vec![Some((1, 2)), Some((1, 2)), Some((0, 2)), None];
        let l = leaders(3, &led);
        assert_eq!(l.per_node, vec![1, 2, 0]);
        assert_eq!(l.max, 2);
        assert!((l.mean - 4.0 / 3.0).abs() < 1e-9);
        assert!((l.max_over_mean - 1.5).abs() < 1e-9);
        assert_eq!(busiest(&led, 3), Some((1, vec![0, 1])));
        assert_eq!(busiest(&[None, None], 3), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([]), None);
        let ms = Duration::from_millis;
        let f = failover_of("n1", &[Some(ms(30)), None, Some(ms(10)), Some(ms(20))]);
        assert_eq!((f.groups, f.reled.count), (4, 3));
        assert_eq!(f.reled.p50_ms, Some(20.0));
        assert_eq!(f.reled.max_ms, Some(30.0));
    }

    #[test]
    fn medians_take_each_figure_over_the_runs_that_measured_it() {
        let run = |led_s: Option<f64>, p50: Option<f64>| Run {
            led_s,
            failover: p50.map(|p| Failover {
                victim: "n0".into(),
                groups: 1,
                reled: Reled {
                    count: 1,
                    p50_ms: Some(p),
                    max_ms: Some(p),
                },
                by_logs: None,
            }),
            ..Default::default()
        };
        let runs = [
            run(Some(1.0), Some(10.0)),
            run(Some(3.0), None),
            run(None, Some(30.0)),
        ];
        let m = Medians::of(&runs);
        assert_eq!(m.runs_led, 2);
        assert_eq!(m.get("led_s"), Some(2.0));
        assert_eq!(m.get("failover_p50_ms"), Some(20.0));
        assert_eq!(m.get("cpu_total_pct"), None);
        assert_eq!(m.get("no such figure"), None);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["runs_led"], 2);
        assert_eq!(json["led_s"], 2.0);
        assert!(json["rss_total_mib"].is_null());
        assert_eq!(json.as_object().map(|o| o.len()), Some(1 + FIGURES.len()));
        let report = Report {
            setup: Setup {
                mode: "in-process memory".into(),
                nodes: 3,
                groups: 2,
                policy: vec![],
            },
            runs: runs.to_vec(),
            medians: m,
        };
        let text = report.medians_text();
        assert!(
            text.contains("\n  all groups led after      2.000 s\n"),
            "{text}"
        );
        assert!(text.contains("\n  RSS total                 –\n"), "{text}");
    }

    /// Views that change over polls: `wait` records each group's first led poll and stops
    /// when the condition is met.
    struct Script(Vec<Vec<Option<View>>>);
    impl Observe for Script {
        fn views(&mut self, _: &[usize]) -> impl Future<Output = Result<Vec<Option<View>>>> {
            let next = if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0].clone()
            };
            std::future::ready(Ok(next))
        }
    }
    impl Script {
        /// [`wait`] on nodes `n0`, `n1` for groups `a`, `b`, any leader accepted, polling every
        /// millisecond.
        async fn wait(&mut self, until: Until, t0: Instant, limit: Duration) -> Waited {
            let names = ["n0", "n1"].map(String::from);
            let groups = ["a", "b"].map(String::from);
            let poll = Duration::from_millis(1);
            wait(
                self,
                &names,
                &[0, 1],
                &groups,
                |_, _, _| true,
                until,
                t0,
                limit,
                poll,
            )
            .await
            .unwrap()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn wait_stops_when_each_group_was_led_once_or_at_the_limit() {
        let none = || view(&[("a", None, 1, false), ("b", None, 1, false)]);
        let a_led = |me: bool| view(&[("a", Some("n0"), 2, me), ("b", None, 1, false)]);
        let b_led = |me: bool| view(&[("a", None, 2, false), ("b", Some("n1"), 2, !me)]);
        let mut obs = Script(vec![
            vec![none(), none()],
            vec![a_led(true), a_led(false)],
            vec![b_led(true), b_led(false)],
        ]);
        let t0 = Instant::now();
        let w = obs.wait(Until::EachOnce, t0, Duration::from_secs(5)).await;
        assert!(w.done.is_some());
        assert_eq!(w.polls, 3);
        assert!(w.first.iter().all(Option::is_some));
        assert!(w.first[0] < w.first[1]);
        // Never all at once: the limit ends the wait, with what was led at the last poll.
        let limit = t0.elapsed() + Duration::from_millis(20);
        let w = obs.wait(Until::AllAtOnce, t0, limit).await;
        assert!(w.done.is_none());
        assert_eq!(w.pending(), 1);
        assert_eq!(w.leaders[1], Some((1, 2)));
    }
}
