//! The per-peer (and per-client) outgoing queue: `send` pushes without waiting, the writer task
//! of the peer's current outbound connection pops.
//!
//! # What it keeps, what it replaces, and when it gives up
//!
//! No message is ever dropped on its own because the queue is full. Instead:
//!
//! - **Heartbeats and their acks are coalesced.** A [`Message::Heartbeat`] replaces the unsent
//!   heartbeat of the same kind queued before it (periodic, `seq > 0`, or greeting, `seq == 0`),
//!   in that one's place in the line; a [`Message::HeartbeatAck`] replaces the unsent ack queued
//!   before it. So at most one periodic heartbeat, one greeting and one ack wait per peer,
//!   however long the peer does not read. Why that loses nothing the engine needs
//!   (`core/src/engine/heartbeat.rs` and `lease.rs`):
//!   - A heartbeat announces the *version* of the sender's whole state (address, hardware,
//!     labels, members, claims) and carries the state itself only when the receiver may lack
//!     it; a receiver ignores a heartbeat older than the newest it saw from that incarnation.
//!     Delivering only the newest is what the receiver would end up with anyway, with two parts
//!     carried over into the newer heartbeat when it lacks them: the older one's state when
//!     both announce the same version (the sender sent the state once, expecting it to arrive),
//!     and the peer list for discovery (every tenth heartbeat and greetings). A state of an
//!     older version is of no use; a receiver that misses one asks for it with its ack.
//!   - A leader counts acks per heartbeat `seq` and renews a lease to *that heartbeat's send
//!     time* + `lease`, never shortening one. The ack to a newer heartbeat renews at least as
//!     far as the ack to an older one, so dropping the older unsent ack while the newer one goes
//!     loses no lease time. A voter's promise runs from when it *received* the heartbeat, which
//!     is no earlier for a heartbeat that waited in this queue, so the leader's lease (counted
//!     from its own send time) still ends before the promise does. The claims an older ack
//!     refused (`rejected`, each with the higher term the voter knows) are merged into the newer
//!     ack, the higher term per group: every refusal still reaches the leader (it steps down if
//!     its term is lower), and a merged refusal can only keep a lease from being renewed, never
//!     renew one.
//!   - Replacing in place moves the newer heartbeat ahead of messages queued after the older
//!     one: a reordering, which the engine tolerates (it runs over reordering test proxies and a
//!     reordering simulator), and which keeps liveness news from waiting behind a backlog.
//!
//!   The merge functions destructure both messages field by field: a field added to
//!   `Heartbeat` or `HeartbeatAck` (a heartbeat that carries only what changed, say) stops this
//!   file from compiling until someone decides whether coalescing still holds.
//! - **Every other message is kept, in order** (votes, pre-votes, step-downs, routed requests
//!   and answers, `Leave`, client answers, and any message added later). A
//!   [`Message::Batch`] is kept whole, even when it carries a heartbeat or an ack among its
//!   parts: the receiver handles its parts in order, so the queue never takes one apart (the
//!   heartbeat inside is not coalesced; the next standalone heartbeat queues beside it),
//!   up to [`Limits`]: generous bounds on messages and on encoded bytes. Pushing past either
//!   empties the whole queue and reports [`Pushed::Overflow`]; the caller then closes the
//!   connection, as a reset would, so the loss is reported to the engine
//!   (`Disconnected { how: Abrupt }`, which it treats as no proof of death: it redials and
//!   retries elections) rather than hidden. A queue is never trimmed from the middle: apart
//!   from superseded heartbeats and acks, what arrives is a prefix of what was sent, as over
//!   any connection that breaks.

use baton_core::Message;
use baton_core::message::{Heartbeat, HeartbeatAck};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::Notify;

/// What a queue holds: a queue's [`Limits`], or what it held when it overflowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Size {
    /// Messages waiting (coalesced heartbeats and acks count once each).
    pub(crate) messages: usize,
    /// Their encoded bytes (postcard, before sealing).
    pub(crate) bytes: usize,
}

/// How much one queue holds at the most before it gives up (see the module docs).
pub(crate) type Limits = Size;

/// What [`Queue::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Appended.
    Queued,
    /// Took the place of an unsent heartbeat or ack it supersedes.
    Coalesced,
    /// The queue would exceed its [`Limits`]: it was emptied (this message too), and this is
    /// the size it had, that message included. The caller must close the connection so that
    /// the loss is reported, never silent.
    Overflow(Size),
}

/// Which coalescing slot a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A periodic heartbeat (`seq > 0`).
    Periodic,
    /// A greeting (`seq == 0`, sent on a new connection; not ordered against periodic ones).
    Greeting,
    Ack,
    /// Kept, in order, whatever comes after it.
    Kept,
}

fn kind(message: &Message) -> Kind {
    match message {
        Message::Heartbeat(h) if h.seq == 0 => Kind::Greeting,
        Message::Heartbeat(_) => Kind::Periodic,
        Message::HeartbeatAck(_) => Kind::Ack,
        // Everything else — election, handoff and routing traffic, a `Batch` whatever it
        // carries, and any message added later — is never coalesced.
        _ => Kind::Kept,
    }
}

/// The encoded size of `message` (postcard, before sealing): what [`Limits::bytes`] counts.
/// Walks the message without allocating.
pub(crate) fn encoded_len(message: &Message) -> usize {
    // Fails only for a message that cannot be encoded at all; the writer then drops it with a
    // warning when sealing it, so it costs the queue nothing but its slot.
    postcard::experimental::serialized_size(message).unwrap_or(0)
}

struct Slot {
    message: Message,
    bytes: usize,
}

#[derive(Default)]
struct Items {
    slots: VecDeque<Slot>,
    /// The position (counted since the queue was made) of `slots[0]`.
    head: u64,
    /// Encoded bytes of every slot.
    bytes: usize,
    /// Positions of the unsent periodic heartbeat, greeting and ack, if any.
    periodic: Option<u64>,
    greeting: Option<u64>,
    ack: Option<u64>,
}

impl Items {
    fn marker(&mut self, kind: Kind) -> Option<&mut Option<u64>> {
        match kind {
            Kind::Periodic => Some(&mut self.periodic),
            Kind::Greeting => Some(&mut self.greeting),
            Kind::Ack => Some(&mut self.ack),
            Kind::Kept => None,
        }
    }

    /// The index in `slots` of the unsent message of `kind`, if one waits.
    fn waiting(&mut self, kind: Kind) -> Option<usize> {
        let head = self.head;
        let len = self.slots.len() as u64;
        let at = (*self.marker(kind)?)?;
        (at >= head && at < head + len).then(|| (at - head) as usize)
    }

    fn clear(&mut self) {
        self.head += self.slots.len() as u64;
        self.slots.clear();
        self.bytes = 0;
        self.periodic = None;
        self.greeting = None;
        self.ack = None;
    }
}

pub(crate) struct Queue {
    items: Mutex<Items>,
    notify: Notify,
    limits: Limits,
}

impl Queue {
    pub(crate) fn new(limits: Limits) -> Self {
        Queue {
            items: Mutex::new(Items::default()),
            notify: Notify::new(),
            limits: Limits {
                messages: limits.messages.max(1),
                bytes: limits.bytes.max(1),
            },
        }
    }

    /// Queues `message`, whose [`encoded_len`] is `bytes` (computed by the caller, outside any
    /// lock): appended, or in the place of the unsent heartbeat or ack it supersedes; or, when
    /// the queue would exceed its limits, the queue is emptied (see [`Pushed::Overflow`]).
    pub(crate) fn push(&self, mut message: Message, mut bytes: usize) -> Pushed {
        let kind = kind(&message);
        let mut items = lock(&self.items);
        let waiting = items.waiting(kind);
        let (messages_after, bytes_after) = match waiting {
            Some(i) => {
                if coalesce(&mut message, &items.slots[i].message) {
                    bytes = encoded_len(&message);
                }
                (
                    items.slots.len(),
                    items.bytes - items.slots[i].bytes + bytes,
                )
            }
            None => (items.slots.len() + 1, items.bytes + bytes),
        };
        if messages_after > self.limits.messages || bytes_after > self.limits.bytes {
            items.clear();
            return Pushed::Overflow(Size {
                messages: messages_after,
                bytes: bytes_after,
            });
        }
        items.bytes = bytes_after;
        if let Some(i) = waiting {
            items.slots[i] = Slot { message, bytes };
            return Pushed::Coalesced;
        }
        let at = items.head + items.slots.len() as u64;
        items.slots.push_back(Slot { message, bytes });
        if let Some(marker) = items.marker(kind) {
            *marker = Some(at);
        }
        drop(items);
        self.notify.notify_one();
        Pushed::Queued
    }

    /// Waits for the next message. Cancel-safe: a message is removed only in the poll that
    /// returns it.
    pub(crate) async fn pop(&self) -> Message {
        loop {
            {
                let mut guard = lock(&self.items);
                let items = &mut *guard;
                if let Some(slot) = items.slots.pop_front() {
                    let at = items.head;
                    items.head += 1;
                    items.bytes -= slot.bytes;
                    for marker in [&mut items.periodic, &mut items.greeting, &mut items.ack] {
                        if *marker == Some(at) {
                            *marker = None;
                        }
                    }
                    return slot.message;
                }
            }
            self.notify.notified().await;
        }
    }

    pub(crate) fn clear(&self) {
        lock(&self.items).clear();
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }
}

/// Carries into `newer` what `older` (the unsent message of the same kind it replaces) had
/// that `newer` lacks; returns whether `newer` changed. See the module docs for why this is all.
fn coalesce(newer: &mut Message, older: &Message) -> bool {
    match (newer, older) {
        (Message::Heartbeat(newer), Message::Heartbeat(older)) => merge_heartbeat(newer, older),
        (Message::HeartbeatAck(newer), Message::HeartbeatAck(older)) => merge_ack(newer, older),
        _ => false,
    }
}

fn merge_heartbeat(newer: &mut Heartbeat, older: &Heartbeat) -> bool {
    // Field by field, no `..`: a new field must be judged here (see the module docs).
    let Heartbeat {
        // The newer one's sequence number and version (never lower) stand.
        seq: _,
        version,
        // The state of the same version, sent once: keep it when the newer has none.
        state,
        // Only on some heartbeats (discovery): keep the older list when the newer has none.
        peers,
    } = older;
    let mut changed = false;
    if newer.state.is_none() && newer.version == *version && state.is_some() {
        newer.state = state.clone();
        changed = true;
    }
    if newer.peers.is_empty() && !peers.is_empty() {
        newer.peers = peers.clone();
        changed = true;
    }
    changed
}

fn merge_ack(newer: &mut HeartbeatAck, older: &HeartbeatAck) -> bool {
    // Field by field, no `..`: a new field must be judged here (see the module docs).
    let HeartbeatAck {
        // The newer heartbeat's ack renews at least as far as the older one's would, and the
        // version the acker holds only grows.
        seq: _,
        version: _,
        // Every refusal must still reach the leader: merged, the higher term per group.
        rejected,
    } = older;
    if rejected.is_empty() {
        return false;
    }
    let mut merged: BTreeMap<baton_core::GroupName, u64> = BTreeMap::new();
    for (group, term) in rejected.iter().chain(newer.rejected.iter()) {
        let t = merged.entry(group.clone()).or_insert(*term);
        *t = (*t).max(*term);
    }
    newer.rejected = merged.into_iter().collect();
    true
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it (every critical
/// section in this crate leaves the data consistent at each step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::NodeId;
    use baton_core::message::PeerAddr;
    use futures::FutureExt;

    const GENEROUS: Limits = Limits {
        messages: 65_536,
        bytes: 16 << 20,
    };

    use baton_testkit::fixtures::{bare_heartbeat as heartbeat, numbered_vote as vote};

    fn ack(seq: u64, rejected: &[(&str, u64)]) -> Message {
        Message::HeartbeatAck(HeartbeatAck {
            seq,
            rejected: rejected
                .iter()
                .map(|(g, t)| (baton_core::GroupName::from(*g), *t))
                .collect(),
            version: seq,
        })
    }

    fn push(q: &Queue, m: Message) -> Pushed {
        let bytes = encoded_len(&m);
        q.push(m, bytes)
    }

    /// Everything waiting, without blocking (the peer reads at last).
    fn drain(q: &Queue) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = q.pop().now_or_never() {
            out.push(m);
        }
        out
    }

    /// A peer that does not read while 10 000 heartbeats and 2 000 vote requests are queued
    /// for it: every vote request arrives, in order, and of the heartbeats only the newest.
    #[test]
    fn votes_survive_a_heartbeat_flood_in_order_and_only_the_newest_heartbeat_is_kept() {
        let q = Queue::new(GENEROUS);
        let mut votes = 0;
        for seq in 1..=10_000u64 {
            let pushed = push(&q, heartbeat(seq));
            assert_eq!(pushed == Pushed::Queued, seq == 1, "{seq}: {pushed:?}");
            if seq % 5 == 0 {
                votes += 1;
                assert_eq!(push(&q, vote(votes)), Pushed::Queued);
            }
        }
        assert_eq!(votes, 2_000);
        let got = drain(&q);
        assert_eq!(got.len(), 2_001, "one heartbeat and every vote");
        // The heartbeat kept its place at the head of the line, with the newest content.
        assert_eq!(got[0], heartbeat(10_000));
        let expected: Vec<Message> = (1..=2_000).map(vote).collect();
        assert_eq!(got[1..], expected[..]);
        // The queue works on after a drain.
        assert_eq!(push(&q, heartbeat(10_001)), Pushed::Queued);
        assert_eq!(drain(&q), vec![heartbeat(10_001)]);
    }

    /// A batch is kept whole and in its place, even with a heartbeat and an ack inside: a
    /// standalone heartbeat or ack after it neither replaces its parts nor is absorbed.
    #[test]
    fn a_batch_is_never_taken_apart_or_coalesced() {
        let q = Queue::new(GENEROUS);
        let batch = Message::Batch(vec![heartbeat(1), vote(1), ack(1, &[]), vote(2)]);
        assert_eq!(push(&q, batch.clone()), Pushed::Queued);
        assert_eq!(push(&q, batch.clone()), Pushed::Queued);
        assert_eq!(push(&q, heartbeat(2)), Pushed::Queued);
        assert_eq!(push(&q, ack(2, &[])), Pushed::Queued);
        assert_eq!(push(&q, heartbeat(3)), Pushed::Coalesced);
        assert_eq!(
            drain(&q),
            vec![batch.clone(), batch, heartbeat(3), ack(2, &[])]
        );
    }

    /// A heartbeat already taken by the writer is not replaced: the next one queues anew.
    #[test]
    fn a_sent_heartbeat_is_not_replaced() {
        let q = Queue::new(GENEROUS);
        push(&q, heartbeat(1));
        push(&q, vote(1));
        assert_eq!(q.pop().now_or_never(), Some(heartbeat(1)));
        assert_eq!(push(&q, heartbeat(2)), Pushed::Queued);
        assert_eq!(push(&q, heartbeat(3)), Pushed::Coalesced);
        assert_eq!(drain(&q), vec![vote(1), heartbeat(3)]);
    }

    /// Greetings (seq 0) and periodic heartbeats are not ordered against each other by the
    /// receiver: each coalesces only with its own kind. Acks coalesce with acks.
    #[test]
    fn greetings_periodic_heartbeats_and_acks_coalesce_each_with_their_own_kind() {
        let q = Queue::new(GENEROUS);
        push(&q, heartbeat(0));
        push(&q, heartbeat(7));
        push(&q, ack(3, &[]));
        assert_eq!(push(&q, heartbeat(8)), Pushed::Coalesced);
        assert_eq!(push(&q, heartbeat(0)), Pushed::Coalesced);
        assert_eq!(push(&q, ack(4, &[])), Pushed::Coalesced);
        assert_eq!(drain(&q), vec![heartbeat(0), heartbeat(8), ack(4, &[])]);
    }

    /// A newer ack keeps every refusal of the older one it replaces (the higher term per
    /// group), and a newer heartbeat without a peer list keeps the older one's.
    #[test]
    fn coalescing_keeps_refusals_and_the_discovery_list() {
        let q = Queue::new(GENEROUS);
        push(&q, ack(5, &[("a", 3), ("b", 9)]));
        push(&q, ack(6, &[("b", 4), ("c", 2)]));
        assert_eq!(drain(&q), vec![ack(6, &[("a", 3), ("b", 9), ("c", 2)])]);

        let with_peers = |seq| {
            let Message::Heartbeat(mut h) = heartbeat(seq) else {
                unreachable!()
            };
            h.peers = vec![PeerAddr {
                node: NodeId::new("c"),
                addr: "127.0.0.1:7003".into(),
            }];
            Message::Heartbeat(h)
        };
        push(&q, with_peers(10));
        push(&q, heartbeat(11));
        let got = drain(&q);
        let Message::Heartbeat(h) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((got.len(), h.seq, h.peers.len()), (1, 11, 1));
    }

    /// Past its limit the queue is emptied and says so (the caller closes the connection);
    /// it is never left half full and never drops a message quietly.
    #[test]
    fn overflow_empties_the_queue_and_reports_its_size() {
        let q = Queue::new(Limits {
            messages: 100,
            bytes: 1 << 20,
        });
        assert_eq!(push(&q, heartbeat(1)), Pushed::Queued);
        for i in 1..=99 {
            assert_eq!(push(&q, vote(i)), Pushed::Queued);
        }
        // Full: a heartbeat replacing the waiting one adds nothing, so it still fits.
        assert_eq!(push(&q, heartbeat(2)), Pushed::Coalesced);
        let Pushed::Overflow(o) = push(&q, vote(101)) else {
            panic!("no overflow")
        };
        assert_eq!(o.messages, 101);
        assert!(o.bytes > 0);
        assert_eq!(drain(&q), vec![]);
        // It works on, from empty.
        assert_eq!(push(&q, vote(102)), Pushed::Queued);
        assert_eq!(drain(&q), vec![vote(102)]);
    }

    #[test]
    fn the_byte_limit_counts_encoded_bytes() {
        let one = encoded_len(&vote(1));
        assert!(one > 10, "{one}");
        let q = Queue::new(Limits {
            messages: 1_000,
            bytes: one * 10,
        });
        for i in 1..=10 {
            assert_eq!(push(&q, vote(i % 2 + 1)), Pushed::Queued, "{i}");
        }
        assert!(matches!(push(&q, vote(1)), Pushed::Overflow(o) if o.bytes == one * 11));
    }

    #[test]
    fn a_coalesced_heartbeat_keeps_the_state_of_its_version_sent_once() {
        use baton_core::message::{Heartbeat, NodeState};
        let hb = |seq, version, state: Option<NodeState>| {
            Message::Heartbeat(Heartbeat {
                seq,
                version,
                state,
                peers: vec![],
            })
        };
        let state = NodeState {
            addr: "127.0.0.1:7101".into(),
            ..NodeState::default()
        };
        let q = Queue::new(GENEROUS);
        push(&q, hb(1, 5, Some(state.clone())));
        assert_eq!(push(&q, hb(2, 5, None)), Pushed::Coalesced);
        assert_eq!(drain(&q), vec![hb(2, 5, Some(state.clone()))]);
        // A state of an older version is of no use to the newer heartbeat.
        push(&q, hb(3, 5, Some(state)));
        push(&q, hb(4, 6, None));
        assert_eq!(drain(&q), vec![hb(4, 6, None)]);
    }
}
