//! `baton node`: a node over TCP that joins its groups, serves routed work with the original
//! demo's `TrackedService` behaviour and logs every leadership change.

use crate::cli::NodeCmd;
use crate::net;
use crate::settings::{Loaded, load_node_config, load_secret, select_groups};
use anyhow::{Context, Result};
use baton_core::{GroupName, Labels, Leadership, Node, Service, Work};
use baton_strategies::OldestRunning;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// A started node and its services, one per joined group.
pub(crate) struct Started {
    /// The node.
    pub node: Node,
    /// Its services, in the order of the groups asked for.
    pub services: Vec<Service>,
}

/// [`start`], unless a stop signal comes first: then `None` (and an INFO line saying so).
pub(crate) async fn start_unless_signalled(
    loaded: &Loaded,
    secret: Vec<u8>,
    groups: &[GroupName],
    signals: &mut Signals,
) -> Result<Option<Started>> {
    tokio::select! {
        s = start(loaded, secret, groups) => s.map(Some),
        sig = signals.recv() => {
            tracing::info!("{sig}: stopping before the node started");
            Ok(None)
        }
    }
}

/// Builds the policies, starts the node over TCP and joins `groups` (which must be in
/// `loaded.config.groups`; see [`select_groups`]).
pub(crate) async fn start(
    loaded: &Loaded,
    secret: Vec<u8>,
    groups: &[GroupName],
) -> Result<Started> {
    let config = loaded.config.clone();
    let policies = baton_strategies::policies_for(&config).map_err(|e| loaded.err(e.into()))?;
    let transport = net::transport(&config, secret)?;
    let name = config.node.name.clone();
    crate::logging::set_node_name(&name);
    let cluster = config.cluster.name.clone();
    let mut builder = Node::builder(config.clone())
        .transport(transport)
        .policies(policies)
        .policy(Arc::new(OldestRunning));
    if config.cluster.backend == baton_core::config::Backend::Etcd {
        // Elections in etcd (docs/ETCD.md): the same node, API and commands on top.
        let settings =
            baton_backend_etcd::EtcdSettings::from_config(&config).map_err(|e| loaded.err(e))?;
        let elector = baton_backend_etcd::EtcdElector::connect(settings)
            .await
            .with_context(|| format!("node {name} could not start"))?;
        builder = builder.elector(Arc::new(elector));
    }
    let node = builder
        .start()
        .await
        .map_err(|e| match e {
            baton_core::NodeError::Config(c) => anyhow::Error::new(loaded.err(c)),
            other => anyhow::Error::new(other),
        })
        .with_context(|| format!("node {name} could not start"))?;
    tracing::info!(
        "node {name} listening on {} (cluster {cluster}, incarnation {})",
        node.addr(),
        node.incarnation()
    );
    // One join for all groups: the engine ranks and announces them once.
    let joined = node
        .join_all(groups.iter().map(|g| (g.clone(), Labels::default())))
        .await
        .with_context(|| format!("node {name} cannot join its {} groups", groups.len()))?;
    let mut services = Vec::new();
    for svc in joined {
        let group = svc.group().clone();
        serve(&svc, &name);
        let me = name.clone();
        let last = std::sync::Mutex::new(String::new());
        svc.on_change(move |l| {
            // Leadership can change in ways this line does not show (a lease renewed): log
            // only what reads differently.
            let line = describe_leadership(l, &me);
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if *last != line {
                tracing::info!("{line}");
                *last = line;
            }
        });
        tracing::info!("joined group {group} as {}", svc.member());
        services.push(svc);
    }
    Ok(Started { node, services })
}

/// Starts the admin server of `started` when `[admin]` is set (`--admin` sets it too).
/// `shutdown` is told when an admin asks for a kind shutdown; a kill kills this process
/// (SIGKILL), which is what the peers then see.
pub(crate) async fn start_admin(
    loaded: &Loaded,
    started: &Started,
    shutdown: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<()> {
    let Some(admin) = &loaded.config.admin else {
        return Ok(());
    };
    let addr = admin.listen_addr().map_err(|e| loaded.err(e))?;
    let token = admin.load_token().map_err(|e| loaded.err(e))?;
    let read_only = token.is_none();
    let server = baton_admin::Admin::builder(started.node.clone(), &loaded.config)
        .token(token)
        .on_shutdown(move || {
            let _ = shutdown.send(());
        })
        .on_kill(|| {
            tracing::warn!("admin action: killing this process (SIGKILL)");
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        })
        .start();
    let (bound, _task) = server
        .serve(addr)
        .await
        .with_context(|| format!("admin.listen: cannot listen on {addr}"))?;
    tracing::info!(
        "admin listening on http://{bound}/ ({})",
        if read_only {
            "read-only: no admin.token_file"
        } else {
            "actions need the admin token"
        }
    );
    Ok(())
}

/// Installs the default handler: the original demo's `TrackedService`, which answers
/// `"<node> did <payload> under term <term>"` and logs it.
pub(crate) fn serve(svc: &Service, name: &str) {
    let me = name.to_string();
    svc.serve(move |work: Work| {
        let me = me.clone();
        async move {
            let reply = work_reply(&me, &work);
            tracing::info!("{}: {reply}", work.group);
            Ok(reply.into_bytes())
        }
    });
}

/// The default handler's answer.
pub(crate) fn work_reply(me: &str, work: &Work) -> String {
    let payload = String::from_utf8_lossy(&work.payload);
    if work.leader {
        format!("{me} did {payload} under term {}", work.term)
    } else {
        format!(
            "{me} did {payload} under term {} (not the leader)",
            work.term
        )
    }
}

/// `tracked: leader is b (term 3)`, `tracked: I lead (term 3)`, `tracked: no leader (term 3)`.
pub(crate) fn describe_leadership(l: &Leadership, me: &str) -> String {
    match &l.leader {
        _ if l.is_me() => format!("{}: I lead (term {})", l.group, l.term),
        Some(m) if m.node.as_str() == me => {
            format!(
                "{}: I am the leader but hold no lease (term {})",
                l.group, l.term
            )
        }
        Some(m) => format!("{}: leader is {} (term {})", l.group, m.node, l.term),
        None => format!("{}: no leader (term {})", l.group, l.term),
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened for from the start so that neither kills the process
/// before it can shut down kindly.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Starts listening (needs a tokio runtime).
    pub(crate) fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// The next SIGTERM or SIGINT; returns the signal's name.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Waits until the node stops on its own; the error says why (for example another live process
/// holds this node's name), naming this node and its address.
pub(crate) async fn stopped(node: &Node) -> anyhow::Error {
    match node.stopped().await {
        Err(e) => anyhow::anyhow!("node {} at {}: {e}", node.id(), node.addr()),
        Ok(()) => anyhow::anyhow!("node {} stopped on its own (see the log above)", node.id()),
    }
}

/// `baton node`.
pub(crate) async fn run(cmd: NodeCmd) -> Result<()> {
    let mut signals = Signals::new()?;
    let mut loaded = load_node_config(&cmd.opts)?;
    if let Some(listen) = &cmd.admin {
        let token_file = loaded.config.admin.take().and_then(|a| a.token_file);
        let admin = baton_core::config::AdminConfig {
            listen: listen.clone(),
            token_file,
        };
        admin.listen_addr().map_err(|mut e| {
            e.field = Some("--admin".into());
            e
        })?;
        loaded.config.admin = Some(admin);
    }
    let secret = load_secret(&loaded, cmd.opts.insecure_no_secret)?;
    warn_if_insecure(&loaded, &secret);
    let groups = select_groups(&mut loaded.config, &cmd.groups);
    let Some(started) = start_unless_signalled(&loaded, secret, &groups, &mut signals).await?
    else {
        return Ok(());
    };
    let (admin_tx, mut admin_shutdown) = tokio::sync::mpsc::unbounded_channel();
    if let Err(e) = start_admin(&loaded, &started, admin_tx).await {
        started.node.shutdown().await;
        return Err(e);
    }
    let node = started.node;
    tokio::select! {
        sig = signals.recv() => {
            tracing::info!("{sig}: shutting down (handing off leadership)");
            node.shutdown().await;
            tracing::info!("node {} stopped", node.id());
            Ok(())
        }
        Some(()) = admin_shutdown.recv() => {
            tracing::info!("admin action: shutting down (handing off leadership)");
            node.shutdown().await;
            tracing::info!("node {} stopped", node.id());
            Ok(())
        }
        e = stopped(&node) => Err(e),
    }
}

/// Warns loudly about a node running without a secret.
pub(crate) fn warn_if_insecure(loaded: &Loaded, secret: &[u8]) {
    if secret.is_empty() {
        tracing::warn!(
            "running WITHOUT a cluster secret (--insecure-no-secret): anyone who reaches {} can join, vote and lead",
            loaded.config.node.listen
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::MemberId;

    #[test]
    fn leadership_lines_read_well() {
        let mut l = Leadership::none("tracked");
        assert_eq!(describe_leadership(&l, "a"), "tracked: no leader (term 0)");
        l.leader = Some(MemberId::new("b", 0));
        l.term = 3;
        assert_eq!(
            describe_leadership(&l, "a"),
            "tracked: leader is b (term 3)"
        );
        l.leader = Some(MemberId::new("a", 0));
        l.is_me = true;
        assert_eq!(describe_leadership(&l, "a"), "tracked: I lead (term 3)");
    }

    #[test]
    fn work_replies_name_node_and_term() {
        let w = Work {
            group: "tracked".into(),
            term: 4,
            leader: true,
            payload: b"job".to_vec(),
        };
        assert_eq!(work_reply("b", &w), "b did job under term 4");
    }
}
