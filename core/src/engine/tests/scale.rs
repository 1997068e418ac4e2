//! Many groups at once: what a cold start of many groups costs in messages, and that every
//! group gets its leader.

use super::harness::{Setup, ms};
use crate::engine::Input;
use crate::message::Message;
use crate::types::Labels;

const GROUPS: usize = 40;

fn group(k: usize) -> String {
    format!("h{k:02}")
}

#[test]
fn a_cold_start_of_many_groups_batches_its_votes_one_message_per_destination() {
    let mut c = Setup::new(3).build();
    for i in 0..3 {
        for k in 0..GROUPS {
            c.input(
                i,
                Input::Join {
                    group: group(k).into(),
                    labels: Labels::new(),
                    started_at_ms: 1_000 + i as u64,
                },
            );
        }
    }
    let all_led = c.run_until_true(ms(3_000), |c| {
        (0..GROUPS).all(|k| {
            (0..3)
                .filter(|i| c.engines[*i].is_acting_leader(&group(k), c.now))
                .count()
                == 1
        })
    });
    assert!(all_led, "not every group has one acting leader");
    let (mut frames, mut requests) = (0, 0);
    for i in 0..3 {
        for a in &c.log[i] {
            if let crate::engine::Action::Send { message, .. } = a {
                let n = message
                    .parts()
                    .iter()
                    .filter(|m| matches!(m, Message::VoteRequest(_)))
                    .count();
                requests += n;
                frames += usize::from(n > 0);
            }
        }
    }
    assert!(requests >= GROUPS * 2, "{requests} vote requests");
    assert!(
        frames * 10 <= requests,
        "{requests} vote requests travelled in {frames} messages: not batched"
    );
}

#[test]
fn a_batch_is_handled_part_by_part_in_order_but_never_carries_a_leave() {
    use super::probe::Probe;
    use crate::message::StepDown;
    use crate::types::MemberId;
    let mut p = Probe::following("n0", 2);
    p.claim("n0", None);
    let sd = StepDown {
        group: super::harness::G.into(),
        term: 2,
        from: MemberId::new("n0", 0),
        successor: None,
    };
    p.from(
        "n0",
        Message::Batch(vec![Message::StepDown(sd), Message::Leave]),
    );
    assert_eq!(p.leader(), None, "the step-down inside the batch was taken");
    let n0_alive = p
        .engine
        .status(p.now)
        .members
        .iter()
        .any(|m| m.name.as_str() == "n0" && m.alive);
    assert!(
        n0_alive,
        "a Leave inside a batch is ignored: it travels alone"
    );
}
