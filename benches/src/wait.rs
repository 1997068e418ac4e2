//! Waiting on leadership watches without sleeping: every wait is a `changed()` /
//! `wait_for()` on the nodes' `tokio::sync::watch` receivers, so it wakes the moment the node
//! publishes.

use baton_core::{Leadership, MemberId, Term};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use tokio::sync::watch;

/// Waits until every receiver reports the same leader under the same term, that leader
/// satisfying `ok` (e.g. "not the node just killed, with a higher term"). Returns it.
///
/// Returns `None` when a watch closes (its node is gone).
pub async fn agreement(
    rxs: &mut [watch::Receiver<Leadership>],
    ok: impl Fn(&MemberId, Term) -> bool,
) -> Option<(MemberId, Term)> {
    let fits = |l: &Leadership| l.leader.as_ref().is_some_and(|m| ok(m, l.term));
    loop {
        // Each wait returns at once when its node already agrees, so this costs one pass
        // once everyone has caught up.
        for rx in rxs.iter_mut() {
            rx.wait_for(|l| fits(l)).await.ok()?;
        }
        let first = rxs.first()?.borrow().clone();
        let leader = first.leader.clone()?;
        let same = rxs.iter().all(|rx| {
            let l = rx.borrow();
            l.leader.as_ref() == Some(&leader) && l.term == first.term
        });
        if same {
            return Some((leader, first.term));
        }
        // Views differ (two candidates, or a stale one): wait for anything to move.
        any_changed(rxs).await?;
    }
}

/// Waits until one of the receivers reports `is_me` (this node acts as leader); returns its
/// index.
pub async fn first_acting(rxs: &mut [watch::Receiver<Leadership>]) -> Option<usize> {
    loop {
        if let Some(i) = rxs.iter().position(|rx| rx.borrow().is_me) {
            return Some(i);
        }
        for rx in rxs.iter_mut() {
            rx.borrow_and_update();
        }
        if let Some(i) = rxs.iter().position(|rx| rx.borrow().is_me) {
            return Some(i);
        }
        any_changed(rxs).await?;
    }
}

type Changed<'a> = Pin<Box<dyn Future<Output = Result<(), watch::error::RecvError>> + 'a>>;

/// Waits until any receiver sees a new value; `None` when one is closed.
pub async fn any_changed(rxs: &mut [watch::Receiver<Leadership>]) -> Option<()> {
    let mut futs: Vec<Changed<'_>> = rxs
        .iter_mut()
        .map(|rx| Box::pin(rx.changed()) as _)
        .collect();
    std::future::poll_fn(move |cx| {
        for f in futs.iter_mut() {
            if let Poll::Ready(r) = f.as_mut().poll(cx) {
                return Poll::Ready(r.ok());
            }
        }
        Poll::Pending
    })
    .await
}
