//! # baton-sim
//!
//! A deterministic simulator for baton's election protocol. It runs N real
//! [`baton_core::engine::Engine`]s — the same sans-IO state machine the tokio `Node` drives —
//! against a simulated clock and network, injects faults from a seeded schedule, and checks
//! the protocol's invariants after **every** step. A failing seed prints itself with the
//! command that replays it, and replays exactly: there is no real time, no thread, no
//! `HashMap` iteration and no randomness but the seeded [`rng::Rng`] in the loop.
//!
//! ## The simulation ([`Sim`])
//!
//! - **Time**: one true virtual time in microseconds. Events are processed in true-time order
//!   (ties in a fixed order).
//! - **Clocks** ([`clock`]): each node's engine reads its own monotonic clock,
//!   `base + offset_i + ∫ rate_i dt` — an offset (0–5 s apart in random schedules) and a
//!   **rate** in parts per million of true time, which may change mid-run (re-anchored, so the
//!   reading stays continuous). Every `now` an engine is given, and every check of whether it
//!   acts as leader, uses its own clock's reading at the current true instant; each
//!   `next_deadline()` is converted back to the first true microsecond at which that clock
//!   reaches it (exact integer arithmetic), so every engine is ticked exactly when its own
//!   clock says so. A node keeps its clock across restarts (same machine); `started_at_ms`
//!   (wall clock) is read from it too.
//! - **Network**: in-flight messages in a queue ordered by delivery time. Each message gets a
//!   latency drawn from a range ([`NetConfig`]), so a wide range **reorders** — per message,
//!   also within one link (stronger than TCP); it may be **dropped** or **duplicated** (the
//!   copy gets its own latency) or be a **straggler** delivered up to seconds late.
//!   [`SimStats::reordered`] counts deliveries overtaken by a later message on their link. **Partitions** (also one-way cuts) lose packets silently,
//!   with no transport events. An [interceptor](Sim::intercept) lets a targeted test drop,
//!   hold back or duplicate particular messages.
//! - **Transport events**, modelled on TCP with the proof of death of issue 9 (a refused
//!   reconnect proves death only after an *orderly* close of the live connection):
//!   `Action::Connect{addr}` (addr = node name) gives both sides `Connected` (with the
//!   peer's incarnation) when the target runs and is reachable, `ConnectFailed` otherwise.
//!   When a node **crashes** (or shuts down), every live peer connected to it and not cut off
//!   sees `Disconnected{how: Orderly}` — after the bytes already in flight from it, as TCP
//!   delivers buffered data before the FIN — and then `Dead{node, incarnation, proof:
//!   RefusedAfterOrderlyClose}` (the refused reconnect), unless [`SimConfig::death_proof`] is
//!   `Timeout`: such a transport never reports that proof, and a crashed peer is found by its
//!   silence. Peers cut off see nothing and must time out.
//! - **Middlebox resets** ([`Sim::middlebox_reset`], [`Sim::reset_links`],
//!   [`Sim::end_resets`]): directed rules like `REJECT --reject-with tcp-reset` — around a node
//!   both ways, in its own OUTPUT chain, in its peers' OUTPUT chains ([`ResetWay`]), or on one
//!   link. The processes live on. Their connections are reset: each end a rule answers gets
//!   `Disconnected{how: Abrupt}` about one latency plus up to a heartbeat later (its next
//!   packet), an end no rule answers is not told and just hears nothing; everything sent
//!   between them is lost both ways, bytes in flight and half-done handshakes are void, and
//!   redials are refused (`ConnectFailed`) or, on the side no rule answers, time out. **No
//!   `Dead` is ever reported for a live process.** When the resets end (or a later heal of a
//!   partition lets the link through), every link they broke between live nodes gets a fresh
//!   handshake — `Connected` at both ends, same incarnations — as the transports kept
//!   redialing; a broken link to a stopped node heals when it restarts and dials.
//! - The model checks itself: a `Dead` for an incarnation that still runs, or a
//!   refused-after-orderly-close proof in timeout mode, is reported as a violation ("network
//!   model error"). [`SimConfig::legacy_reset_proofs`] turns on the pre-issue-9 transport
//!   (a refused redial after a reset reported as `Dead`) only to show that invariant (b)
//!   catches it.
//! - **Restart**: a new incarnation; with persistence (`data_dir`) the engine gets back the
//!   last `Action::Persist` it emitted, without it a blank state. It dials its seeds (every
//!   other node) and rejoins its groups.
//! - **Kind shutdown**: `Input::Shutdown`; its actions (hand-off, `Leave`) are performed, then
//!   the process is gone like a crash.
//! - **Membership**: every node joins every group at start; [`Sim::leave`] / [`Sim::join`]
//!   make members leave and come back (with new member ids).
//! - **Quorum modes**: `Quorum::Majority(voters)` over any subset of the nodes, and
//!   `Quorum::None` (availability).
//!
//! ## Invariants
//!
//! Checked after every step (safety, (a)–(c), by the simulation's oracle), on every live
//! node, for every group:
//!
//! - **(a)** quorum mode: at most one member ever acts as leader per (group, term), and each
//!   new leadership's term is above every earlier one — the fencing token only grows. Not
//!   checked once a node has restarted *without* persistence: if no one remembers a term,
//!   nothing can stop it being reused (term and vote survive a restart only with a
//!   `data_dir`, docs/RELIABILITY.md).
//! - **(b)** quorum mode: no two nodes act as leader (`is_acting_leader`, each judged by its
//!   own clock) at the same **true** instant. (Between steps the set of acting nodes can only
//!   shrink, as leases run out, so checking after every step is exhaustive.) Guaranteed only
//!   while clock rates stay within the bound of [`clock::drift_bound`]; the random schedules
//!   stay within it, and `clock_drift_far_beyond_the_bound_breaks_invariant_b` shows this
//!   check catching a drift beyond it.
//! - **(c)** a node's `term(group)` never decreases within an incarnation, nor across restarts
//!   with persistence.
//! - **(d)** liveness, after the last fault heals (every node restarted, every partition and
//!   middlebox reset healed, drops/duplicates/delays off — messages already in flight keep their delivery
//!   time, so stragglers still arrive — every member rejoined): every live node agrees on
//!   one leader per group — the same member and term, and that member's node is live and
//!   acting — within the bound [`liveness_bound`] = **3 × failure_timeout + 10 × backoff**
//!   (2 s at the default 500 ms / 50 ms) divided by the slowest clock rate (the engines'
//!   timeouts run on their own clocks; drift does not heal). After a stability window of
//!   4 × failure_timeout (also divided by the slowest rate) the
//!   agreement must still hold, unchanged over its second half (the first agreement may
//!   change once, legitimately: a leader whose lease ran out during a partition is
//!   re-elected, or a preempting member takes over). At its end, every live node counts
//!   every other live node (its current incarnation) alive: a node cut off by a reset or a
//!   partition is back without a restart.
//!
//!   Why that bound: a restarted node abstains from voting for one failure timeout; stale
//!   leader views and vote promises lapse within one failure timeout; a split vote is given up
//!   after half a failure timeout and retried after `rank × backoff` plus jitter; a leader
//!   elected on a view that still missed a node may be superseded once more. Over the long run
//!   (10 000 seeds × 3, 5 and 7 nodes × both modes) the slowest convergence seen was under a
//!   third of the bound (docs/RELIABILITY.md, "Simulation").
//!
//! ## Random schedules ([`Scenario`])
//!
//! Per seed: 3–7 nodes (or a fixed size, [`Params::nodes`]); 1–3 groups with random policies
//! (member id, oldest running, most CPUs) and `preempt`; in quorum mode all nodes or a random
//! subset as voters; persistence on (70 %) or off; `death_proof` orderly-close (75 %) or
//! timeout (25 %); heartbeat 50–150 ms, failure timeout 4–6 heartbeats (lease = failure
//! timeout − heartbeat).
//!
//! - **Clock drift**, in nine seeds of ten: rates spread over `[1 − ρ/2, 1 + ρ/2]` with
//!   `ρ = 0.9 × β`, `β = (ft − lease)/(ft + lease)` the seed's safe bound (9.1–14.3 %; 11.1 %
//!   at the defaults, where the rates run 0.95–1.05). One node runs at each end, the others
//!   at either end or in between; offsets 0–5 s. The stricter reading of the bound ("any two
//!   rates differ by at most β") therefore holds with a 10 % margin ([`Params::drift`]; the
//!   bound is in fact sharp at `ρ = 2β`, see [`clock::drift_bound`]).
//! - **Reordering**, always: the starting network gives each message its own latency in
//!   0.1–(1–20) ms and makes 1–5 % of them straggle up to 1 s, so heartbeats overtake
//!   heartbeats too.
//!
//! Then 2–12 faults over 1–4 virtual seconds (one seed in five: a storm of 10–30 faults with
//! latencies up to 300 ms): crash (often of the leader), restart, kind shutdown of the
//! leader, random two-sided partition, isolating the leader, one-way cut, heal, lossy /
//! duplicating / reordering / straggling network, a clock changing rate (within the same
//! spread), member leave and rejoin, a middlebox reset (around the leader both ways or
//! one-sided, around any node, or on one link, one way or both; most ended again 1 ms–1.5 s
//! later) and the end of the resets. Then everything heals (clocks keep drifting) and (d) is
//! checked. About 40 % of the seeds reset some connection.
//!
//! ## Running
//!
//! ```text
//! cargo test -p baton-sim                        # 300 seeds per mode (3–7 nodes) + scenarios
//! cargo test -p baton-sim --release -- --ignored --nocapture
//!                                                 # 10 000 seeds × 3, 5, 7 nodes per mode
//! BATON_SIM_SEEDS=100000 BATON_SIM_SEED_START=5000 BATON_SIM_SIZES=4,9 \
//!     cargo test -p baton-sim --release -- --ignored --nocapture   # any range and sizes
//! BATON_SIM_DRIFT=1.8 cargo test …                # drift at 1.8 × β (default 0.9)
//! ```
//!
//! A failure panics with the seed, the violated invariant, every node's view, the whole
//! schedule and the replay command:
//!
//! ```text
//! BATON_SIM_NODES=5 BATON_SIM_SEED=1234 BATON_SIM_MODE=quorum cargo test -p baton-sim --test sim replay -- --nocapture
//! ```
//!
//! (`BATON_SIM_NODES` only for a fixed-size run, `BATON_SIM_DRIFT` only when not the
//! default: the printed command has exactly what the seed needs.)
//!
//! Add `BATON_SIM_TRACE=1` for an event trace (faults, votes, step-downs, leadership changes,
//! engine log lines), `BATON_SIM_TRACE=2` to include heartbeats and acks.
//!
//! ## Using it directly
//!
//! ```
//! use baton_sim::{Sim, SimConfig};
//! use std::time::Duration;
//!
//! // Seed 7, three voters, group "g0"; clock rates 0.95–1.05 and offsets from the seed.
//! let mut sim = Sim::new(SimConfig::new(7, 3).with_drift(0.1));
//! let (_, agreed) = sim.run_until_agreed(Duration::from_secs(3)).unwrap().unwrap();
//! let (leader, term) = agreed["g0"].clone();
//! let old = sim.index_of(leader.node.as_str()).unwrap();
//! sim.crash(old);
//! let (took, agreed) = sim.run_until_agreed(Duration::from_secs(3)).unwrap().unwrap();
//! assert!(agreed["g0"].1 > term);
//! assert!(took < Duration::from_millis(50)); // the refused reconnect proves the death
//!
//! // A middlebox resets the new leader's connections for a second: no death is proven, the
//! // others elect after the failure timeout, and after the heal the old one is back.
//! let (leader, _) = agreed["g0"].clone();
//! let l = sim.index_of(leader.node.as_str()).unwrap();
//! sim.middlebox_reset(l, baton_sim::ResetWay::Both);
//! sim.run_for(Duration::from_secs(1)).unwrap();
//! sim.end_resets();
//! sim.run_until_pred(Duration::from_secs(2), |s| {
//!     s.agreement().is_some() && s.not_seen_alive().is_empty()
//! })
//! .unwrap()
//! .unwrap();
//! assert_eq!(sim.stats().proofs, 2); // the crash's two refusals, nothing more
//! ```
#![warn(missing_docs)]

pub mod clock;
mod config;
mod faults;
mod network;
mod oracle;
mod policies;
pub mod rng;
pub mod scenario;
pub mod sim;

pub use clock::Clock;
pub use scenario::{
    BatchReport, Fault, Mode, Outcome, Params, Pick, Scenario, check_seed, liveness_bound,
    replay_command, run_seeds,
};
pub use sim::{
    Agreed, Agreement, Interceptor, NetConfig, NodeIdx, PolicyKind, ResetWay, Sim, SimConfig,
    SimGroup, SimQuorum, SimStats, Verdict, Violation,
};
