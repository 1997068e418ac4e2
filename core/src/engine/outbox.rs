//! One message per destination per input. An input can make many messages to one peer — a
//! heartbeat answered for every claimed group, a candidate asking for the votes of hundreds of
//! groups that went leaderless together, a voter answering them — and each message costs a
//! frame, a MAC, a syscall and a wake-up at both ends. [`coalesce`] merges every destination's
//! peer messages of one input into one [`Message::Batch`], which the receiver handles in order,
//! so a cold start or the failover of a node leading many groups costs O(nodes) messages, not
//! O(nodes × groups).
//!
//! **Order.** A batch goes where the *last* of its messages was: a message only ever leaves
//! later than the engine asked, never earlier, so every `Persist` the engine placed before a
//! message (a granted vote is durable before its answer leaves) still comes first. Each
//! destination's messages keep their order. A persist directly followed by another one, with
//! nothing but events in between, is dropped: the later one stores a superset (the whole
//! state), and nothing in between depended on the earlier one. One vote-answer batch of a
//! thousand groups thus costs one disk write, not a thousand.

use super::Engine;
use super::api::Action;
use super::event::Event;
use crate::message::Message;
use crate::transport::Envelope;
use crate::types::{Incarnation, NodeId};
use std::time::Instant;

/// At most this many messages travel in one batch: it must fit a transport frame (the TCP
/// transport's default limit is 64 KiB; a vote request is well under 200 bytes).
pub(crate) const MAX_BATCH: usize = 256;

/// Whether `message` may travel inside a [`Message::Batch`]: every peer message but `Leave`
/// (which ends the peer: it goes alone, after the rest) and a batch itself.
pub(crate) fn batchable(message: &Message) -> bool {
    !message.is_client() && !matches!(message, Message::Leave | Message::Batch(_))
}

impl Engine {
    /// Sends `message` to `to`.
    pub(super) fn send(&mut self, to: &NodeId, message: Message) {
        self.out.push(Action::Send {
            to: to.clone(),
            message,
        });
    }

    /// Sends `message` to every peer not proven dead.
    pub(super) fn broadcast(&mut self, message: Message) {
        let targets: Vec<NodeId> = self.peers.not_dead().cloned().collect();
        for to in targets {
            self.send(&to, message.clone());
        }
    }

    /// Reports `event` to the driver.
    pub(super) fn emit(&mut self, event: Event) {
        self.out.push(Action::Event(event));
    }

    /// A peer's [`Message::Batch`]: each message is handled in order as if it came alone.
    /// Only peer messages, one level deep (what [`coalesce`] makes); anything else is dropped.
    pub(super) fn on_batch(
        &mut self,
        now: Instant,
        from: &NodeId,
        incarnation: Incarnation,
        messages: Vec<Message>,
    ) {
        for message in messages.into_iter().filter(batchable) {
            let from = from.clone();
            self.on_message(
                now,
                Envelope {
                    from,
                    incarnation,
                    message,
                },
            );
        }
    }
}

/// Merges each destination's batchable messages into [`Message::Batch`]es of at most
/// [`MAX_BATCH`], each placed at its last message's position, and drops persists that a later
/// persist supersedes (see the module docs). Only destinations `is_peer` says are peers get
/// batches: a client reads one answer per request.
pub(crate) fn coalesce(actions: Vec<Action>, is_peer: impl Fn(&NodeId) -> bool) -> Vec<Action> {
    // Each destination once, with how many of its messages are left; each action, the index
    // of its destination (`NONE`: not batched). A cluster has few destinations: a linear scan
    // finds one faster than a map, and copies no name per message.
    const NONE: usize = usize::MAX;
    let mut dests: Vec<(&NodeId, usize)> = Vec::new();
    let mut slot = vec![NONE; actions.len()];
    for (i, a) in actions.iter().enumerate() {
        if let Action::Send { to, message } = a
            && batchable(message)
        {
            let d = match dests.iter().position(|(d, _)| *d == to) {
                Some(d) => d,
                None if is_peer(to) => {
                    dests.push((to, 0));
                    dests.len() - 1
                }
                None => continue,
            };
            dests[d].1 += 1;
            slot[i] = d;
        }
    }
    let mut left: Vec<usize> = dests.iter().map(|(_, n)| *n).collect();
    let actions = if left.iter().all(|n| *n <= 1) {
        actions
    } else {
        for s in slot.iter_mut() {
            if *s != NONE && left[*s] <= 1 {
                *s = NONE;
            }
        }
        batch(actions, &slot, &mut left)
    };
    drop_superseded_persists(actions)
}

fn batch(actions: Vec<Action>, slot: &[usize], left: &mut [usize]) -> Vec<Action> {
    let mut pending: Vec<Vec<Message>> = vec![Vec::new(); left.len()];
    let mut out = Vec::with_capacity(actions.len());
    for (a, &d) in actions.into_iter().zip(slot) {
        let Action::Send { to, message } = a else {
            out.push(a);
            continue;
        };
        let (Some(remaining), Some(buf)) = (left.get_mut(d), pending.get_mut(d)) else {
            out.push(Action::Send { to, message });
            continue;
        };
        *remaining -= 1;
        buf.push(message);
        if *remaining == 0 || buf.len() == MAX_BATCH {
            let mut messages = std::mem::take(buf);
            let message = if messages.len() == 1 {
                messages.remove(0)
            } else {
                Message::Batch(messages)
            };
            out.push(Action::Send { to, message });
        }
    }
    out
}

fn drop_superseded_persists(actions: Vec<Action>) -> Vec<Action> {
    let mut keep = vec![true; actions.len()];
    // Scan backwards, remembering whether a persist follows with only events in between.
    let mut superseded = false;
    for (i, a) in actions.iter().enumerate().rev() {
        match a {
            Action::Persist(_) => {
                keep[i] = !superseded;
                superseded = true;
            }
            Action::Event(_) => {}
            _ => superseded = false,
        }
    }
    actions
        .into_iter()
        .zip(keep)
        .filter_map(|(a, k)| k.then_some(a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, PersistedState};
    use crate::message::HeartbeatAck;

    fn send(to: &str, seq: u64) -> Action {
        Action::Send {
            to: NodeId::new(to),
            message: ack(seq),
        }
    }
    fn ack(seq: u64) -> Message {
        Message::HeartbeatAck(HeartbeatAck {
            seq,
            rejected: vec![],
            version: 0,
        })
    }
    fn all_peers(_: &NodeId) -> bool {
        true
    }
    fn persist() -> Action {
        Action::Persist(PersistedState::default())
    }
    fn event() -> Action {
        Action::Event(Event::TermExhausted {
            group: "g".into(),
            term: 1,
        })
    }
    /// A compact picture: `a[1,2]` a batch to a, `b1` one message to b, `P` persist, `E` event.
    fn shape(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Send { to, message } => {
                    let seqs: Vec<String> = message
                        .parts()
                        .iter()
                        .map(|m| match m {
                            Message::HeartbeatAck(a) => a.seq.to_string(),
                            Message::Leave => "L".into(),
                            _ => "?".into(),
                        })
                        .collect();
                    match message {
                        Message::Batch(_) => format!("{to}[{}]", seqs.join(",")),
                        _ => format!("{to}{}", seqs[0]),
                    }
                }
                Action::Persist(_) => "P".into(),
                Action::Event(_) => "E".into(),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn each_destination_gets_one_batch_where_its_last_message_was_in_order() {
        let out = coalesce(
            vec![
                send("a", 1),
                send("b", 2),
                persist(),
                send("a", 3),
                send("c", 4),
                send("a", 5),
            ],
            all_peers,
        );
        assert_eq!(shape(&out), ["b2", "P", "c4", "a[1,3,5]"]);
    }

    #[test]
    fn a_message_never_leaves_before_a_persist_placed_before_it() {
        // The vote answer (a2) follows its persist; a1 moves after it too, never a2 before it.
        let out = coalesce(vec![send("a", 1), persist(), send("a", 2)], all_peers);
        assert_eq!(shape(&out), ["P", "a[1,2]"]);
    }

    #[test]
    fn a_persist_superseded_by_the_next_with_only_events_between_is_dropped() {
        let one_grant_per_group = vec![
            persist(),
            event(),
            send("a", 1),
            persist(),
            event(),
            send("a", 2),
            persist(),
            send("a", 3),
        ];
        assert_eq!(
            shape(&coalesce(one_grant_per_group, all_peers)),
            ["E", "E", "P", "a[1,2,3]"]
        );
        // A message between two persists keeps both: it depends on the first.
        let out = coalesce(
            vec![persist(), send("b", 1), persist(), send("a", 2)],
            all_peers,
        );
        assert_eq!(shape(&out), ["P", "b1", "P", "a2"]);
    }

    #[test]
    fn answers_to_a_client_are_never_batched() {
        // A client reads one answer per request: two answers in one input leave one by one.
        let peers = |to: &NodeId| to.as_str() != "cli";
        let out = coalesce(
            vec![send("cli", 1), send("a", 2), send("cli", 3), send("a", 4)],
            peers,
        );
        assert_eq!(shape(&out), ["cli1", "cli3", "a[2,4]"]);
    }

    #[test]
    fn leave_travels_alone_after_the_batch() {
        let out = coalesce(
            vec![
                send("a", 1),
                send("a", 2),
                Action::Send {
                    to: NodeId::new("a"),
                    message: Message::Leave,
                },
            ],
            all_peers,
        );
        assert_eq!(shape(&out), ["a[1,2]", "aL"]);
    }

    #[test]
    fn batches_are_bounded() {
        let n = MAX_BATCH as u64 * 2 + 3;
        let out = coalesce((0..n).map(|i| send("a", i)).collect(), all_peers);
        let sizes: Vec<usize> = out
            .iter()
            .map(|a| match a {
                Action::Send { message, .. } => message.parts().len(),
                _ => 0,
            })
            .collect();
        assert_eq!(sizes, [MAX_BATCH, MAX_BATCH, 3]);
        let seqs: Vec<u64> = out
            .iter()
            .flat_map(|a| match a {
                Action::Send { message, .. } => message.parts().to_vec(),
                _ => vec![],
            })
            .map(|m| match m {
                Message::HeartbeatAck(a) => a.seq,
                _ => u64::MAX,
            })
            .collect();
        assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "nothing lost, in order");
    }
}
