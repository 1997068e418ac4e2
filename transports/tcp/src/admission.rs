//! Admission of accepted connections that have not authenticated yet.
//!
//! Every accepted connection holds a *pending* slot until its handshake ends (either way). The
//! slots are bounded three ways, so that a flood from one address cannot starve real peers and
//! clients:
//!
//! - **per source address**: at most [`TcpConfig::max_pending_per_source`] slots per IP
//!   (more, [`TcpConfig::max_pending_known_source`], for the address of a peer this node has
//!   authenticated before, since on one host every node shares it);
//! - **in all**: at most [`TcpConfig::max_pending_handshakes`] slots, plus a reserve of
//!   [`TcpConfig::reserved_known_handshakes`] that only addresses of known peers may use;
//! - **by stage**: when a limit is reached, the newcomer does not simply lose. The slot held
//!   longest by a connection that has *sent nothing yet* is taken from it (then the oldest one
//!   whose `Hello` is incomplete), from the same address when that address is over its limit,
//!   else from the address holding the most slots. A genuine peer sends its `Hello` the moment
//!   it connects, so idle or trickling connections — what a flood is made of — are the ones
//!   displaced, and a node or client reaches its handshake even from the flooding address.
//!   Only when every slot concerned holds a connection that already sent a valid `Hello` is the
//!   newcomer refused.
//!
//! A refused or displaced connection is told so before it is closed, in a short
//! unauthenticated [`crate::handshake::BUSY_MAGIC`] frame ("rate limited"), so the dialer's log
//! names the reason; the listener's log names it too (rate-limited).
//!
//! [`TcpConfig::max_pending_per_source`]: crate::TcpConfig::max_pending_per_source
//! [`TcpConfig::max_pending_known_source`]: crate::TcpConfig::max_pending_known_source
//! [`TcpConfig::max_pending_handshakes`]: crate::TcpConfig::max_pending_handshakes
//! [`TcpConfig::reserved_known_handshakes`]: crate::TcpConfig::reserved_known_handshakes

use crate::queue::lock;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most addresses remembered as those of known peers.
const MAX_KNOWN: usize = 1024;

/// How far a pending connection got; lower stages are displaced first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Nothing received yet.
    Idle = 0,
    /// Bytes arrived, but no valid `Hello` yet.
    Reading = 1,
    /// A valid `Hello` arrived (the peer knows the cluster name); not authenticated yet.
    Hello = 2,
}

/// Why a connection was not admitted (or lost its slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Its source address holds its share of pending slots.
    Source { ip: IpAddr, cap: usize },
    /// Every pending slot is taken.
    Total { cap: usize },
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Source { ip, cap } => write!(
                f,
                "rate limited: {cap} unauthenticated connections from {ip} already in their handshake"
            ),
            Limit::Total { cap } => write!(
                f,
                "rate limited: {cap} unauthenticated connections already in their handshake"
            ),
        }
    }
}

struct Entry {
    ip: IpAddr,
    since: Instant,
    stage: Stage,
    /// Cancelled when the slot is taken from this connection, with the reason in `why`.
    evict: CancellationToken,
    why: Arc<Mutex<Option<Limit>>>,
}

struct Pool {
    entries: HashMap<u64, Entry>,
    by_ip: HashMap<IpAddr, usize>,
    known: HashSet<IpAddr>,
    next: u64,
}

/// Limits of [`Admission`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) total: usize,
    pub(crate) reserved_known: usize,
    pub(crate) per_source: usize,
    pub(crate) per_known_source: usize,
}

/// The pending-slot table of one listener.
pub(crate) struct Admission {
    limits: Limits,
    pool: Mutex<Pool>,
}

/// A pending slot; released when dropped.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    evict: CancellationToken,
    why: Arc<Mutex<Option<Limit>>>,
}

impl Ticket {
    /// Records how far the handshake got.
    pub(crate) fn reached(&self, stage: Stage) {
        let mut pool = lock(&self.admission.pool);
        if let Some(e) = pool.entries.get_mut(&self.id) {
            e.stage = e.stage.max(stage);
        }
    }

    /// Completes when the slot is taken from this connection.
    pub(crate) fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }

    /// Why the slot was taken, once it was.
    pub(crate) fn why(&self) -> Option<Limit> {
        *lock(&self.why)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut pool = lock(&self.admission.pool);
        pool.remove(self.id);
    }
}

impl Pool {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.entries.remove(&id)?;
        if let Some(n) = self.by_ip.get_mut(&e.ip) {
            *n -= 1;
            if *n == 0 {
                self.by_ip.remove(&e.ip);
            }
        }
        Some(e)
    }

    /// The connection to displace: the lowest stage below `Hello`, then the oldest; only from
    /// `ip` when given, else preferring the address with the most slots.
    fn victim(&self, ip: Option<IpAddr>) -> Option<u64> {
        self.entries
            .iter()
            .filter(|(_, e)| e.stage < Stage::Hello && ip.is_none_or(|ip| e.ip == ip))
            .min_by_key(|(_, e)| {
                let load = self.by_ip.get(&e.ip).copied().unwrap_or(0);
                (e.stage, std::cmp::Reverse(load), e.since)
            })
            .map(|(id, _)| *id)
    }

    fn evict(&mut self, id: u64, why: Limit) {
        if let Some(e) = self.remove(id) {
            *lock(&e.why) = Some(why);
            e.evict.cancel();
        }
    }
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            limits: Limits {
                total: limits.total.max(1),
                reserved_known: limits.reserved_known,
                per_source: limits.per_source.max(1),
                per_known_source: limits.per_known_source.max(limits.per_source).max(1),
            },
            pool: Mutex::new(Pool {
                entries: HashMap::new(),
                by_ip: HashMap::new(),
                known: HashSet::new(),
                next: 0,
            }),
        })
    }

    /// Remembers `ip` as the address of an authenticated peer (a node, not a client).
    pub(crate) fn know(&self, ip: IpAddr) {
        let mut pool = lock(&self.pool);
        if pool.known.len() < MAX_KNOWN {
            pool.known.insert(ip);
        }
    }

    #[cfg(test)]
    /// Slots held now.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.pool).entries.len()
    }

    /// Admits a connection from `ip`, displacing a lesser one if a limit is reached; returns
    /// its ticket and the connections displaced, or the limit that refuses it.
    /// `stage` is how far it got already (bytes may be waiting when it is accepted).
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        stage: Stage,
    ) -> Result<(Ticket, usize), Limit> {
        let mut pool = lock(&self.pool);
        let known = pool.known.contains(&ip);
        let per_source = if known {
            self.limits.per_known_source
        } else {
            self.limits.per_source
        };
        let total = if known {
            self.limits.total + self.limits.reserved_known
        } else {
            self.limits.total
        };
        let mut displaced = 0;
        if pool.by_ip.get(&ip).copied().unwrap_or(0) >= per_source {
            let why = Limit::Source {
                ip,
                cap: per_source,
            };
            match pool.victim(Some(ip)) {
                Some(id) => {
                    pool.evict(id, why);
                    displaced += 1;
                }
                None => return Err(why),
            }
        }
        // An unknown address may not use the reserve: count only what it may use.
        if pool.entries.len() >= total {
            let why = Limit::Total { cap: total };
            match pool.victim(None) {
                Some(id) => {
                    pool.evict(id, why);
                    displaced += 1;
                }
                None => return Err(why),
            }
        }
        pool.next += 1;
        let id = pool.next;
        let evict = CancellationToken::new();
        let why = Arc::new(Mutex::new(None));
        pool.entries.insert(
            id,
            Entry {
                ip,
                since: Instant::now(),
                stage,
                evict: evict.clone(),
                why: why.clone(),
            },
        );
        *pool.by_ip.entry(ip).or_insert(0) += 1;
        Ok((
            Ticket {
                admission: self.clone(),
                id,
                evict,
                why,
            },
            displaced,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            total: 6,
            reserved_known: 2,
            per_source: 2,
            per_known_source: 3,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let a = Admission::new(limits());
        let (t1, _) = a.admit(ip(2), Stage::Idle).unwrap();
        let (t2, _) = a.admit(ip(2), Stage::Idle).unwrap();
        // The third from the same address displaces the oldest idle one.
        let (t3, displaced) = a.admit(ip(2), Stage::Idle).unwrap();
        assert_eq!(displaced, 1);
        assert!(t1.evict.is_cancelled());
        assert!(matches!(t1.why(), Some(Limit::Source { cap: 2, .. })));
        assert!(!t2.evict.is_cancelled());
        assert_eq!(a.pending(), 2);
        // Once both sent a valid Hello, a newcomer from there is refused.
        t2.reached(Stage::Hello);
        t3.reached(Stage::Hello);
        assert!(matches!(
            a.admit(ip(2), Stage::Idle),
            Err(Limit::Source { cap: 2, .. })
        ));
        // Another address is not affected.
        assert!(a.admit(ip(3), Stage::Idle).is_ok());
        drop((t2, t3));
        assert_eq!(a.pending(), 0);
    }

    #[test]
    fn idle_connections_are_displaced_before_those_that_spoke() {
        let a = Admission::new(limits());
        let mut held = Vec::new();
        for n in 2..5 {
            let (t, _) = a.admit(ip(n), Stage::Idle).unwrap();
            t.reached(Stage::Hello);
            held.push(t);
        }
        let (reading, _) = a.admit(ip(5), Stage::Idle).unwrap();
        reading.reached(Stage::Reading);
        let (idle1, _) = a.admit(ip(6), Stage::Idle).unwrap();
        let (idle2, _) = a.admit(ip(6), Stage::Idle).unwrap();
        assert_eq!(a.pending(), 6);
        // Full: the oldest idle one of the heaviest address goes first, then the other idle,
        // then the one that sent bytes; never those with a Hello.
        let (n1, d) = a.admit(ip(7), Stage::Idle).unwrap();
        assert_eq!(d, 1);
        assert!(idle1.evict.is_cancelled() && !idle2.evict.is_cancelled());
        let n2 = a.admit(ip(8), Stage::Idle).unwrap();
        assert!(idle2.evict.is_cancelled());
        n2.0.reached(Stage::Hello);
        n1.reached(Stage::Hello);
        let _n3 = a.admit(ip(9), Stage::Idle).unwrap();
        assert!(reading.evict.is_cancelled());
        assert!(matches!(reading.why(), Some(Limit::Total { cap: 6 })));
        drop(n2);
        // A slot is free again: nobody is displaced.
        let (_n4, d) = a.admit(ip(10), Stage::Idle).unwrap();
        assert_eq!(d, 0);
    }

    #[test]
    fn known_addresses_have_a_reserve() {
        let a = Admission::new(limits());
        a.know(ip(1));
        let mut held = Vec::new();
        for n in 2..8 {
            let (t, _) = a.admit(ip(n), Stage::Idle).unwrap();
            t.reached(Stage::Hello);
            held.push(t);
        }
        // Full for strangers.
        assert!(matches!(
            a.admit(ip(9), Stage::Idle),
            Err(Limit::Total { cap: 6 })
        ));
        // A known peer's address gets the reserve, up to its own share.
        let k1 = a.admit(ip(1), Stage::Idle).unwrap();
        let k2 = a.admit(ip(1), Stage::Idle).unwrap();
        k1.0.reached(Stage::Hello);
        k2.0.reached(Stage::Hello);
        assert!(matches!(
            a.admit(ip(1), Stage::Idle),
            Err(Limit::Total { cap: 8 })
        ));
    }
}
