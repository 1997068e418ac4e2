//! The node's one lease, kept alive by its own task, and the **acting deadline** it yields.
//!
//! etcd expires a lease `ttl` after it last *received* a keepalive, so the lease cannot expire
//! before `sent + ttl` for a keepalive sent at `sent` and answered. The node may act as a
//! leader until `sent + ttl − margin` (the margin covers a difference in clock rates between
//! this node and etcd, and the time to stop acting); after that it must have heard a newer
//! answer, or it stops. A keepalive answered with TTL 0 (or "lease not found") means the lease
//! is gone: the keeper grants a new one, and the elector re-registers its members under it.

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, timeout};

/// The lease as the elector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaseState {
    /// The lease id; 0 while the node holds none (lost, not granted again yet).
    pub(crate) id: i64,
    /// Until when this node may act on what it holds under `id`.
    pub(crate) acting_until: Option<Instant>,
}

impl LeaseState {
    pub(crate) fn acting(&self, now: Instant) -> bool {
        self.id != 0 && self.acting_until.is_some_and(|t| now < t)
    }
}

/// Timings of the keeper, derived from the TTL.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeaseTiming {
    /// The TTL asked for (only the grant here reads it; the others are derived from it).
    ttl: Duration,
    /// Keepalive period.
    pub(crate) period: Duration,
    /// Subtracted from `sent + ttl`.
    pub(crate) margin: Duration,
    /// Deadline of one etcd request.
    pub(crate) request: Duration,
}

impl LeaseTiming {
    pub(crate) fn for_ttl(ttl: Duration) -> Self {
        LeaseTiming {
            ttl,
            period: ttl / 5,
            margin: (ttl / 5).max(Duration::from_millis(100)),
            request: (ttl / 4).max(Duration::from_millis(200)),
        }
    }

    /// The acting deadline after a keepalive sent at `sent` was answered with `ttl_s`.
    pub(crate) fn deadline(&self, sent: Instant, ttl_s: i64) -> Instant {
        let ttl = Duration::from_secs(u64::try_from(ttl_s).unwrap_or(0));
        sent + ttl.saturating_sub(self.margin)
    }
}

/// The error of a request that got no answer within its deadline (see [`is_timeout`]).
pub(crate) fn timed_out(what: &str) -> etcd_client::Error {
    etcd_client::Error::IoError(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} timed out"),
    ))
}

/// Whether `e` says etcd did not answer in time or could not be reached (one of [`timed_out`],
/// or gRPC's unavailable / deadline exceeded / cancelled by the client's request timeout),
/// rather than refused the request.
pub(crate) fn is_timeout(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::IoError(io) => io.kind() == std::io::ErrorKind::TimedOut,
        // `Cancelled` ("Timeout expired"): the client's own per-request timeout.
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        _ => false,
    }
}

/// Grants a lease: `(id, state)`.
pub(crate) async fn grant(
    client: &mut Client,
    timing: &LeaseTiming,
) -> Result<LeaseState, etcd_client::Error> {
    let sent = Instant::now();
    let ttl_s = i64::try_from(timing.ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let r = timeout(timing.request, client.lease_grant(ttl_s, None))
        .await
        .map_err(|_| timed_out("lease grant"))??;
    Ok(LeaseState {
        id: r.id(),
        acting_until: Some(timing.deadline(sent, r.ttl())),
    })
}

/// Keeps the lease of `state` alive (and grants a new one when it is lost), publishing every
/// change on `out`, until `out` has no receivers.
///
/// Keepalives are **pipelined** on one stream: one is sent every `period` whether or not the
/// previous one was answered, and each answer (etcd answers in order) extends the deadline
/// from the time *its* keepalive was sent. A late answer still counts — a loaded etcd or a
/// starved process delays answers without making them wrong — so a slow moment does not
/// lapse the deadline as long as some answer arrives before it. The stream is opened again
/// when it breaks, or when its oldest keepalive has waited `2 × request` unanswered.
/// Every one of `reauth` is poked when etcd refuses a request for its auth token (see
/// `crate::reauthenticate`).
pub(crate) async fn keep(
    mut client: Client,
    timing: LeaseTiming,
    out: watch::Sender<LeaseState>,
    reauth: Vec<Arc<Notify>>,
) {
    let refused = |e: &str| {
        if is_auth_refusal(e) {
            for r in &reauth {
                r.notify_one();
            }
        }
    };
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    // When each keepalive still unanswered on `stream` was sent, oldest first.
    let mut unanswered: VecDeque<Instant> = VecDeque::new();
    let mut tick = tokio::time::interval(timing.period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut now_again = false;
    loop {
        if !std::mem::take(&mut now_again) {
            let answer = tokio::select! {
                _ = tick.tick() => None,
                a = next_answer(&mut stream) => Some(a),
            };
            if let Some(answer) = answer {
                let id = out.borrow().id;
                let Some(sent) = unanswered.pop_front() else {
                    // An answer to nothing sent on this stream: ignored. A broken stream is
                    // dropped though: it would answer again at once, forever (a busy loop
                    // that never yields, so not even the runtime's shutdown could stop it).
                    if let Err(e) = answer {
                        lost(&mut stream, &mut unanswered, id, &e);
                    }
                    continue;
                };
                match answer {
                    Ok(ttl_s) if ttl_s > 0 => extend(&out, &timing, id, sent, ttl_s),
                    Ok(_) => {
                        tracing::warn!(lease = id, "etcd: the lease expired; granting a new one");
                        stream = None;
                        unanswered.clear();
                        out.send_replace(LeaseState {
                            id: 0,
                            acting_until: None,
                        });
                        now_again = true;
                    }
                    Err(e) => {
                        // The deadline runs out on its own; reopen the stream next time.
                        refused(&e);
                        lost(&mut stream, &mut unanswered, id, &e);
                    }
                }
                continue;
            }
        }
        if out.is_closed() {
            return;
        }
        let state = *out.borrow();
        let id = state.id;
        if id == 0 {
            stream = None;
            unanswered.clear();
            match grant(&mut client, &timing).await {
                Ok(s) => {
                    tracing::info!(lease = s.id, "etcd: granted a new lease");
                    out.send_replace(s);
                }
                Err(e) => {
                    refused(&e.to_string());
                    tracing::debug!(error = %e, "etcd: lease grant failed");
                }
            }
            continue;
        }
        if state.acting_until.is_some_and(|t| Instant::now() >= t) {
            // Past the acting deadline this node acts on nothing it holds under the lease.
            // Rather than wait for etcd to expire it (etcd checks every 500 ms, and after a
            // freeze of etcd a keepalive can wait for that check), revoke it and start again
            // under a new one: its keys go at once, and the groups are elected again.
            match timeout(timing.request, client.lease_revoke(id)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if e.to_string().contains("lease not found") => {}
                Ok(Err(e)) => {
                    tracing::debug!(lease = id, error = %e, "etcd: revoking the lapsed lease failed");
                    stream = None;
                    unanswered.clear();
                    continue;
                }
                Err(_) => {
                    tracing::debug!(lease = id, "etcd: revoking the lapsed lease timed out");
                    stream = None;
                    unanswered.clear();
                    continue;
                }
            }
            tracing::warn!(
                lease = id,
                "etcd: no keepalive answered before the acting deadline; revoked the lease, granting a new one"
            );
            stream = None;
            unanswered.clear();
            out.send_replace(LeaseState {
                id: 0,
                acting_until: None,
            });
            now_again = true;
            continue;
        }
        if unanswered
            .front()
            .is_some_and(|t| t.elapsed() >= timing.request * 2)
        {
            tracing::debug!(
                lease = id,
                "etcd: keepalives unanswered; opening the stream again"
            );
            stream = None;
            unanswered.clear();
        }
        let sent = Instant::now();
        match &mut stream {
            None => match timeout(timing.request, client.lease_keep_alive(id)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    // Opening the stream sent one keepalive and read its answer (TTL > 0).
                    extend(&out, &timing, id, sent, timing.ttl.as_secs() as i64);
                }
                Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m == "lease not found" => {
                    tracing::warn!(lease = id, "etcd: the lease expired; granting a new one");
                    out.send_replace(LeaseState {
                        id: 0,
                        acting_until: None,
                    });
                    now_again = true;
                }
                Ok(Err(e)) => {
                    refused(&e.to_string());
                    tracing::debug!(lease = id, error = %e, "etcd: keepalive failed");
                }
                Err(_) => tracing::debug!(lease = id, "etcd: keepalive timed out"),
            },
            Some((keeper, _)) => match keeper.keep_alive().await {
                Ok(()) => unanswered.push_back(sent),
                Err(e) => {
                    tracing::debug!(lease = id, error = %e, "etcd: keepalive not sent");
                    stream = None;
                    unanswered.clear();
                }
            },
        }
    }
}

/// The keepalive stream broke (`error`): dropped — reopened at the next tick — with the
/// keepalives still unanswered on it, which it will never answer now.
fn lost(
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
    unanswered: &mut VecDeque<Instant>,
    id: i64,
    error: &str,
) {
    tracing::debug!(lease = id, error = %error, "etcd: keepalive stream lost");
    *stream = None;
    unanswered.clear();
}

/// Whether etcd refused a request for its auth token (expired, or forgotten by a restart).
pub(crate) fn is_auth_refusal(e: &str) -> bool {
    e.contains("invalid auth token")
}

/// Moves the acting deadline of lease `id` to what an answer (`ttl_s`) to a keepalive sent at
/// `sent` allows, if later.
fn extend(
    out: &watch::Sender<LeaseState>,
    timing: &LeaseTiming,
    id: i64,
    sent: Instant,
    ttl_s: i64,
) {
    let until = timing.deadline(sent, ttl_s);
    out.send_if_modified(|s| {
        if s.id != id {
            return false;
        }
        let moved = s.acting_until.is_none_or(|t| t < until);
        if moved {
            s.acting_until = Some(until);
        }
        moved
    });
}

/// The next answer on the keepalive stream: its TTL, or why the stream ended. Pending forever
/// without a stream.
async fn next_answer(
    stream: &mut Option<(LeaseKeeper, LeaseKeepAliveStream)>,
) -> Result<i64, String> {
    match stream {
        Some((_, s)) => match s.message().await {
            Ok(Some(r)) => Ok(r.ttl()),
            Ok(None) => Err("keepalive stream closed".into()),
            Err(e) => Err(e.to_string()),
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acting_deadline_ends_before_the_lease_can() {
        let t = LeaseTiming::for_ttl(Duration::from_secs(1));
        let sent = Instant::now();
        let d = t.deadline(sent, 1);
        assert!(d < sent + Duration::from_secs(1));
        assert!(d >= sent + Duration::from_millis(700), "{:?}", d - sent);
        // Several keepalives fit before the deadline.
        assert!(t.period * 3 < d - sent);
        assert_eq!(t.deadline(sent, 0), sent);
    }
}
