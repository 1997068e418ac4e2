//! `baton transfer` and `baton step-down`: a client asks any node to have the leader of a group
//! hand off (the node routes the request to the leader it knows, like `baton work`), then
//! follows that node's status until the successor leads.

use crate::cli::{ClientOpts, StepDownCmd, TransferCmd};
use crate::client::check_has_members;
use crate::errors::{Kind, fail};
use crate::net::Client;
use crate::settings::{DEFAULT_GROUP, Target, client_target};
use anyhow::Result;
use baton_core::message::{ControlError, ControlOp, HandedOff};
use baton_core::{GroupName, NodeId};
use serde_json::json;
use std::time::{Duration, Instant};

/// `[timing]` of a node whose config we do not have (the defaults).
const DEFAULT_CALL_TIMEOUT_MS: u64 =
    baton_core::engine::defaults::ms(baton_core::engine::defaults::CALL_TIMEOUT);
const DEFAULT_FAILURE_TIMEOUT_MS: u64 =
    baton_core::engine::defaults::ms(baton_core::engine::defaults::FAILURE_TIMEOUT);

/// `baton transfer`.
pub(crate) async fn transfer(cmd: TransferCmd) -> Result<()> {
    let op = ControlOp::Transfer {
        to: NodeId::new(cmd.to.clone()),
    };
    run(&cmd.client, cmd.group, op, cmd.json).await
}

/// `baton step-down`.
pub(crate) async fn step_down(cmd: StepDownCmd) -> Result<()> {
    run(&cmd.client, cmd.group, ControlOp::StepDown, cmd.json).await
}

async fn run(opts: &ClientOpts, group: Option<GroupName>, op: ControlOp, json: bool) -> Result<()> {
    let target = client_target(opts)?;
    let group = group.unwrap_or_else(|| default_group(&target));
    let timeout = Duration::from_millis(opts.timeout_ms);
    let timing = target.config.as_ref().map(|c| &c.timing);
    let call_timeout = timing.map_or(DEFAULT_CALL_TIMEOUT_MS, |t| t.call_timeout_ms);
    let failure_timeout = timing.map_or(DEFAULT_FAILURE_TIMEOUT_MS, |t| t.failure_timeout_ms);
    let mut client = Client::connect(&target, timeout).await?;
    let snap = within(timeout, &target, client.status()).await?;
    check_has_members(&snap, &group)?;
    let t0 = Instant::now();
    let wait = timeout + Duration::from_millis(call_timeout);
    let answer = within(wait, &target, client.control(&group, op)).await?;
    let handed = answer.map_err(|e| refusal(&group, e))?;
    // The successor takes over within one vote round; should it not within one failure
    // timeout, the group elects as usual — report that rather than wait for ever.
    let limit = Duration::from_millis(failure_timeout) + timeout;
    let (term, elapsed) = follow(&mut client, &target, &group, &handed, t0, limit).await?;
    if json {
        println!(
            "{}",
            json!({
                "group": group.as_str(),
                "from": handed.from.node.as_str(),
                "to": handed.to.node.as_str(),
                "resigned_term": handed.term,
                "term": term,
                "ms": elapsed.as_secs_f64() * 1e3,
            })
        );
    } else {
        println!(
            "group {group}: {} handed leadership to {}; {} leads (term {term}) after {:.3} ms",
            handed.from.node,
            handed.to.node,
            handed.to.node,
            elapsed.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The config's only group, else the default one.
fn default_group(target: &Target) -> GroupName {
    match &target.config {
        Some(c) if c.groups.len() == 1 => c.groups[0].name.clone(),
        _ => DEFAULT_GROUP.into(),
    }
}

/// `fut`, or a timeout error naming the node.
async fn within<T>(
    limit: Duration,
    target: &Target,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(fail(
            Kind::Timeout,
            format!("{} did not answer within {limit:?}", target.addr),
        )),
    }
}

/// The leader's refusal (or why the request never reached one), with its kind.
fn refusal(group: &GroupName, e: ControlError) -> anyhow::Error {
    let kind = match &e {
        ControlError::UnknownTarget { .. }
        | ControlError::NotCandidate { .. }
        | ControlError::AlreadyLeads { .. }
        | ControlError::NoOtherCandidate { .. } => Kind::Refused,
        ControlError::NoLeader { .. } => Kind::NoLeader,
        ControlError::Timeout => Kind::Timeout,
        ControlError::NotLeader { .. }
        | ControlError::LeaderChanged { .. }
        | ControlError::ShuttingDown => Kind::Call,
    };
    fail(kind, format!("handing off group {group:?} refused: {e}"))
}

/// Polls the node's status until `handed.to` leads `group` above the resigned term: that term
/// and the time since `t0`; a timeout error after `limit`.
async fn follow(
    client: &mut Client,
    target: &Target,
    group: &GroupName,
    handed: &HandedOff,
    t0: Instant,
    limit: Duration,
) -> Result<(u64, Duration)> {
    let deadline = t0 + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let snap = within(left.max(Duration::from_millis(1)), target, client.status()).await?;
        if let Some(l) = snap.groups.iter().find(|l| l.group == *group)
            && l.leader.as_ref() == Some(&handed.to)
            && l.term > handed.term
        {
            return Ok((l.term, t0.elapsed()));
        }
        if Instant::now() >= deadline {
            return Err(fail(
                Kind::Timeout,
                format!(
                    "{} resigned group {group:?} naming {}, which has not taken over within \
                     {limit:?} (as {} sees it); the group elects as usual",
                    handed.from.node, handed.to.node, target.addr
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
