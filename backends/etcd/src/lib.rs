//! baton's elections held in **etcd** (`[cluster] backend = "etcd"`; docs/ETCD.md).
//!
//! [`EtcdElector`] is an [`Elector`]: give it to
//! [`NodeBuilder::elector`](baton_core::NodeBuilder::elector) and the node's groups are led by
//! whoever holds their leader key in etcd, while the `Node` / `Service` API, `baton node` and
//! `baton exec` stay what they are.
//!
//! - **One lease per node**, kept alive by its own task ([`lease`]). The node acts as a leader
//!   only until `sent + ttl − margin` of the last answered keepalive: it stops before the lease
//!   could have expired in etcd.
//! - **One member key per member**, `prefix/members/<group>/<node>#<seq>`, on the lease, holding
//!   the [`MemberRecord`](baton_core::MemberRecord) policies rank by.
//! - **The leader key** `prefix/leader/<group>`, created in a transaction only if absent, on
//!   the lease. **Its mod revision is the fencing token** (`Leadership::term`, `BATON_TERM`):
//!   the key is written only when leadership changes, and etcd's revisions only grow, so every
//!   new leader holds a greater one.
//! - Only the top-ranked live candidate campaigns at once; rank `r` waits `r × backoff`.
//! - **Kind shutdown / leave / preemption** hands the key to the successor in one
//!   transaction conditioned on its revision: the key is replaced by one naming the successor,
//!   on the successor's lease, and the successor acts on the watch event.
//! - **A proof of death** of a peer: its lease is revoked, and the next-ranked member replaces
//!   its leader key by revision at once (a takeover) instead of waiting for the deletion.
//! - **One watch** over the prefix, resumed from the last revision seen after any reconnect
//!   (read again whole, in pages, when etcd compacted past it).

mod elector;
mod keys;
pub mod lease;
pub mod local;

use baton_core::config::{Backend, Config, ConfigError};
use baton_core::runtime::{Candidacy, Elector, HandOff};
use baton_core::{
    ControlError, GroupName, HandedOff, Incarnation, Leadership, NodeId, RegistryError,
};
use elector::{Cmd, Task};
use etcd_client::{Client, ConnectOptions};
use lease::{LeaseState, LeaseTiming};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// What the etcd backend is configured with.
#[derive(Clone, Debug)]
pub struct EtcdSettings {
    /// This node.
    pub node: NodeId,
    /// etcd client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix, ending in `/`.
    pub prefix: String,
    /// The lease TTL (whole seconds; etcd may raise it to its minimum).
    pub lease_ttl: Duration,
    /// Rank `r` waits `r × backoff` before campaigning.
    pub backoff: Duration,
    /// TLS to etcd (`[etcd] ca_file`, `cert_file`, `key_file`), the PEM files read.
    pub tls: Option<EtcdTls>,
    /// etcd authentication (`[etcd] user`, `password_file`, the password read).
    pub auth: Option<EtcdAuth>,
}

/// TLS to etcd: the PEM contents of `[etcd]`'s files.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    /// CA certificate(s) etcd's server certificate must chain to (`ca_file`); `None`: the
    /// client's built-in trust (none without it: give `ca_file` for `https://` endpoints).
    pub ca: Option<Vec<u8>>,
    /// A client certificate chain and its key (`cert_file`, `key_file`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

/// An etcd user and its password.
#[derive(Clone)]
pub struct EtcdAuth {
    /// The user.
    pub user: String,
    /// Its password.
    pub password: String,
}

impl std::fmt::Debug for EtcdAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdAuth")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Reads a file of `[etcd]`; the error names the field and the path.
fn read_field(field: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::field(
            format!("etcd.{field}"),
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

impl EtcdSettings {
    /// From a validated config with `cluster.backend = "etcd"`; the error names the field.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        config.validate()?;
        if config.cluster.backend != Backend::Etcd {
            return Err(ConfigError::field(
                "cluster.backend",
                "is not \"etcd\"; the etcd backend needs backend = \"etcd\" and an [etcd] section",
            ));
        }
        let etcd = config
            .etcd
            .as_ref()
            .ok_or_else(|| ConfigError::field("etcd.endpoints", "no [etcd] section"))?;
        let ca = etcd
            .ca_file
            .as_deref()
            .map(|p| read_field("ca_file", p))
            .transpose()?;
        let identity = match (&etcd.cert_file, &etcd.key_file) {
            (Some(c), Some(k)) => Some((read_field("cert_file", c)?, read_field("key_file", k)?)),
            _ => None,
        };
        let tls = (ca.is_some() || identity.is_some()).then_some(EtcdTls { ca, identity });
        let auth = match (&etcd.user, &etcd.password_file) {
            (Some(user), Some(p)) => {
                let bytes = read_field("password_file", p)?;
                let password = String::from_utf8(bytes)
                    .map_err(|_| {
                        ConfigError::field(
                            "etcd.password_file",
                            format!("{} is not UTF-8 text", p.display()),
                        )
                    })?
                    .trim()
                    .to_string();
                if password.is_empty() {
                    return Err(ConfigError::field(
                        "etcd.password_file",
                        format!("{} is empty", p.display()),
                    ));
                }
                Some(EtcdAuth {
                    user: user.clone(),
                    password,
                })
            }
            _ => None,
        };
        Ok(EtcdSettings {
            node: NodeId::new(config.node.name.clone()),
            endpoints: etcd.endpoints.clone(),
            prefix: config.etcd_prefix(),
            lease_ttl: Duration::from_secs(etcd.lease_ttl_s),
            backoff: Duration::from_millis(config.timing.election_backoff_ms),
            tls,
            auth,
        })
    }
}

/// Why the etcd backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// etcd could not be reached or refused.
    #[error("etcd at {endpoints}: {what}: {source}")]
    Etcd {
        /// The endpoints tried.
        endpoints: String,
        /// What was being done.
        what: &'static str,
        /// etcd's error.
        source: etcd_client::Error,
    },
}

/// Elections in etcd for one node. Dropping it (with the node that owns it) stops its tasks
/// without any goodbye: the lease then expires after its TTL, as for a crashed process.
pub struct EtcdElector {
    cmds: mpsc::UnboundedSender<Cmd>,
    lease: watch::Receiver<LeaseState>,
    tasks: Vec<JoinHandle<()>>,
    published: Arc<Mutex<Vec<watch::Sender<Leadership>>>>,
    /// Dropped with the elector: the lease thread ([`LeaseThread`]) then stops, and the lease
    /// expires after its TTL.
    _stop_lease: oneshot::Sender<()>,
}

/// The etcd client's options for `settings` (TLS, user, timeouts).
fn connect_options(settings: &EtcdSettings, timing: &LeaseTiming) -> ConnectOptions {
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(timing.request)
        .with_timeout(timing.request * 4)
        .with_keep_alive(timing.period, timing.request);
    if let Some(tls) = &settings.tls {
        let mut t = etcd_client::TlsOptions::new();
        if let Some(ca) = &tls.ca {
            t = t.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(etcd_client::Identity::from_pem(cert, key));
        }
        opts = opts.with_tls(t);
    }
    if let Some(auth) = &settings.auth {
        opts = opts.with_user(auth.user.clone(), auth.password.clone());
    }
    opts
}

/// The lease keeper ([`lease::keep`]) and the acting-deadline [`guard`], on **a thread of their
/// own** with its own current-thread tokio runtime and its own etcd connection.
///
/// Why not on the node's runtime: `baton node` runs everything on one thread (the engine, the
/// transport, status, the elector's task). When that thread is busy — a node leading 1 000
/// groups of 9 nodes at a cold start, a burst of status requests — a keeper sharing it sends
/// its keepalives late and reads their answers late: the acting deadline (`sent + ttl −
/// margin`) passes although etcd answered every keepalive in time, the node stops acting,
/// revokes its lease and every group is elected again (docs/PERFORMANCE.md, "9 nodes × 1 000
/// groups"). The gRPC connection's own I/O is driven by the runtime that opened it, so the
/// thread opens its own. On it the keeper sleeps until its next tick or answer and is woken
/// by the kernel however busy the node's thread is, so the node stops acting when etcd is
/// silent, not when the node is busy. Why not a multi-threaded runtime for the whole node
/// instead: it does not isolate the keeper (a task may wait in a busy worker's local queue),
/// it costs idle CPU on every node (docs/PERFORMANCE.md, "Idle cost"), and `baton exec` must
/// fork from its main thread; and a library user's runtime is not ours to choose.
///
/// The safety rule is unchanged: each deadline counts from the time its keepalive was *sent*.
struct LeaseThread {
    endpoints: Vec<String>,
    opts: ConnectOptions,
    timing: LeaseTiming,
    lease: watch::Sender<LeaseState>,
    published: Arc<Mutex<Vec<watch::Sender<Leadership>>>>,
    auth: Option<EtcdAuth>,
    /// The elector's own re-login, poked as well when etcd refuses the keeper's token.
    poke_also: Option<Arc<tokio::sync::Notify>>,
}

impl LeaseThread {
    /// Starts the thread and waits until its client connected; the returned sender stops it
    /// when dropped.
    async fn spawn(self) -> Result<oneshot::Sender<()>, etcd_client::Error> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("baton-etcd-lease".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(etcd_client::Error::IoError(e)));
                        return;
                    }
                };
                rt.block_on(self.run(ready_tx, stopped));
            });
        if let Err(e) = spawned {
            return Err(etcd_client::Error::IoError(e));
        }
        match ready.await {
            Ok(Ok(())) => Ok(stop),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(etcd_client::Error::IoError(std::io::Error::other(
                "the lease thread ended",
            ))),
        }
    }

    async fn run(
        self,
        ready: oneshot::Sender<Result<(), etcd_client::Error>>,
        stopped: oneshot::Receiver<()>,
    ) {
        let start = tokio::time::Instant::now() + START;
        let client = loop {
            match Client::connect(&self.endpoints, Some(self.opts.clone())).await {
                Err(e) if lease::is_timeout(&e) && tokio::time::Instant::now() < start => {
                    tracing::debug!(error = %e, "etcd: connecting the lease keeper again");
                }
                Err(e) => {
                    let _ = ready.send(Err(e));
                    return;
                }
                Ok(c) => break c,
            }
        };
        if ready.send(Ok(())).is_err() {
            return;
        }
        let mut pokes: Vec<Arc<tokio::sync::Notify>> = self.poke_also.into_iter().collect();
        if let Some(auth) = self.auth {
            let poke = Arc::new(tokio::sync::Notify::new());
            tokio::spawn(reauthenticate(client.clone(), auth, poke.clone()));
            pokes.push(poke);
        }
        let guard_rx = self.lease.subscribe();
        tokio::select! {
            () = lease::keep(client, self.timing, self.lease, pokes) => {}
            () = guard(guard_rx, self.published) => {}
            _ = stopped => {}
        }
    }
}

impl EtcdElector {
    /// Connects, grants the node's lease and reads the prefix; fails when etcd is unreachable.
    pub async fn connect(settings: EtcdSettings) -> Result<Self, EtcdError> {
        let timing = LeaseTiming::for_ttl(settings.lease_ttl.max(Duration::from_secs(1)));
        let endpoints = settings.endpoints.join(",");
        let err = |what: &'static str| {
            let endpoints = endpoints.clone();
            move |source| EtcdError::Etcd {
                endpoints,
                what,
                source,
            }
        };
        let opts = connect_options(&settings, &timing);
        let mut client = Client::connect(&settings.endpoints, Some(opts.clone()))
            .await
            .map_err(err("connecting"))?;
        // A busy etcd (a first fsync, a loaded disk) may miss one request deadline at start;
        // nothing acts yet, so the start retries timeouts, within START, and fails on a refusal.
        let start = tokio::time::Instant::now() + START;
        let first = loop {
            match lease::grant(&mut client, &timing).await {
                Err(e) if lease::is_timeout(&e) && tokio::time::Instant::now() < start => {
                    tracing::debug!(error = %e, "etcd: granting the node's lease again");
                }
                r => break r.map_err(err("granting the node's lease"))?,
            }
        };
        let (lease_tx, lease_rx) = watch::channel(first);
        let mut task = Task::new(client.clone(), &settings, timing, lease_rx.clone());
        loop {
            match task.sync().await {
                Err(e) if lease::is_timeout(&e) && tokio::time::Instant::now() < start => {
                    tracing::debug!(error = %e, "etcd: reading the prefix again");
                }
                r => break r.map_err(err("reading the prefix"))?,
            }
        }
        let (cmds, rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // The elector's own client (its task's requests) logs in again on its own schedule;
        // the lease thread pokes it too when etcd refuses the keeper's token.
        let reauth = settings.auth.clone().map(|auth| {
            let poke = Arc::new(tokio::sync::Notify::new());
            tasks.push(tokio::spawn(reauthenticate(
                client.clone(),
                auth,
                poke.clone(),
            )));
            poke
        });
        let published = Arc::new(Mutex::new(Vec::new()));
        let stop_lease = LeaseThread {
            endpoints: settings.endpoints.clone(),
            opts,
            timing,
            lease: lease_tx,
            published: published.clone(),
            auth: settings.auth.clone(),
            poke_also: reauth,
        }
        .spawn()
        .await
        .map_err(err("connecting the lease keeper"))?;
        let runner = tokio::spawn(task.run(rx));
        tracing::info!(node = %settings.node, lease = first.id, prefix = %settings.prefix, endpoints = %endpoints, "etcd: connected");
        tasks.push(runner);
        Ok(EtcdElector {
            cmds,
            lease: lease_rx,
            tasks,
            published,
            _stop_lease: stop_lease,
        })
    }

    /// The node's current lease id (0 while it holds none).
    pub fn lease_id(&self) -> i64 {
        self.lease.borrow().id
    }

    /// Hands `group`, which this node leads, to node `to`'s member: this node stops acting,
    /// then one transaction replaces the leader key — if still this node's, by revision — by
    /// one naming the successor, on the successor's lease; the successor leads on the watch
    /// event under the key's new mod revision (a greater fencing token). What `baton transfer`
    /// asks of the leader: the node's engine hands a request routed to it here
    /// ([`Elector::hand_off`], which releases the leader work first; docs/ETCD.md, "Transfer
    /// and step-down"). Refused with the engine's [`ControlError`]s: `NotLeader` unless this node
    /// holds the key and may act, `AlreadyLeads` for this node, `NotCandidate` /
    /// `UnknownTarget` for a node with no live member key in the group; `LeaderChanged` when
    /// the key or the successor's member key changed before the transaction.
    pub async fn transfer(&self, group: &GroupName, to: NodeId) -> Result<HandedOff, ControlError> {
        self.hand_off_now(group, Some(to)).await
    }

    /// [`EtcdElector::transfer`] to the best-ranked other live member of `group` (what `baton
    /// step-down` asks); `NoOtherCandidate` when there is none.
    pub async fn step_down(&self, group: &GroupName) -> Result<HandedOff, ControlError> {
        self.hand_off_now(group, None).await
    }

    /// Has the task decide and carry out a handoff ([`Cmd::HandOff`]).
    async fn hand_off_now(
        &self,
        group: &GroupName,
        to: Option<NodeId>,
    ) -> Result<HandedOff, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::HandOff(group.clone(), to, reply))
            .map_err(|_| ControlError::ShuttingDown)?;
        rx.await.unwrap_or(Err(ControlError::ShuttingDown))
    }
}

/// How often the etcd user logs in again ([`reauthenticate`]): well within etcd's default
/// token TTL (`--auth-token-ttl`, 300 s).
const REAUTH: Duration = Duration::from_secs(60);

/// Keeps the client's auth token fresh. etcd-client logs in once, at connect; a token expires
/// (its TTL, or an etcd restart that forgets simple tokens), after which every request is
/// refused. This task logs in again every [`REAUTH`], and at once when poked (the keeper saw
/// a request refused for its token). The token is shared by every clone of the client.
async fn reauthenticate(mut client: Client, auth: EtcdAuth, poke: Arc<tokio::sync::Notify>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(REAUTH) => {}
            _ = poke.notified() => {}
        }
        match client
            .set_client_auth(auth.user.clone(), auth.password.clone())
            .await
        {
            Ok(()) => tracing::debug!(user = %auth.user, "etcd: logged in again"),
            Err(e) => {
                tracing::warn!(user = %auth.user, error = %e, "etcd: cannot log in again");
                // Not a tight loop while etcd is away.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// How long [`EtcdElector::connect`] retries requests that timed out before it gives up.
const START: Duration = Duration::from_secs(10);

/// The acting deadline, enforced on its own: whatever the elector's task is waiting for (an
/// etcd request that hangs while etcd is unreachable), `is_me` goes false when the deadline of
/// the last answered keepalive passes.
async fn guard(
    mut lease: watch::Receiver<LeaseState>,
    published: Arc<Mutex<Vec<watch::Sender<Leadership>>>>,
) {
    loop {
        let state = *lease.borrow_and_update();
        let expired = async {
            match state.acting_until {
                Some(t) if state.id != 0 => tokio::time::sleep_until(t).await,
                _ => {}
            }
        };
        tokio::select! {
            changed = lease.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            _ = expired => {}
        }
        let mut cleared = 0;
        for w in published.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if w.send_if_modified(|l| std::mem::replace(&mut l.is_me, false)) {
                cleared += 1;
            }
        }
        if cleared > 0 {
            tracing::warn!(
                groups = cleared,
                "etcd: no keepalive answered in time; stopped acting as leader"
            );
        }
        if lease.changed().await.is_err() {
            return;
        }
    }
}

impl Drop for EtcdElector {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        for w in published.iter() {
            w.send_if_modified(|l| std::mem::replace(&mut l.is_me, false));
        }
    }
}

#[async_trait::async_trait]
impl Elector for EtcdElector {
    async fn stand(&self, candidacy: Candidacy) -> Result<(), RegistryError> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(candidacy.leadership.clone());
        if self.lease.borrow().id == 0 {
            return Err(RegistryError::Refused(
                "etcd: this node holds no lease yet (is etcd reachable?)".into(),
            ));
        }
        // Not awaited: the task writes the member keys of every candidacy queued meanwhile
        // together (and again until they are written), so that joining many groups costs
        // concurrent writes, not one round trip each.
        self.cmds
            .send(Cmd::Stand(candidacy))
            .map_err(|_| RegistryError::Closed)
    }

    async fn withdraw(&self, group: &GroupName) {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Withdraw(group.clone(), reply)).is_ok() {
            let _ = rx.await;
        }
    }

    async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
    }

    fn peer_gone(&self, node: &NodeId, incarnation: Incarnation) {
        // A closed channel: the elector is stopping; the lease expires on its own.
        let _ = self.cmds.send(Cmd::PeerGone(node.clone(), incarnation));
    }

    /// A routed transfer / step-down: decided on the elector's view first, changing nothing
    /// (so a refused request — an unknown target, a follower — leaves the leader work
    /// running); then the node's leader work is released; then decided again on the view after
    /// the release (the key or the target may have gone meanwhile) and carried out as
    /// [`EtcdElector::transfer`] / [`EtcdElector::step_down`].
    async fn hand_off(&self, request: &mut HandOff) -> Result<HandedOff, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::CheckHandOff(
                request.group.clone(),
                request.to.clone(),
                reply,
            ))
            .map_err(|_| ControlError::ShuttingDown)?;
        rx.await.unwrap_or(Err(ControlError::ShuttingDown))?;
        request.release().await;
        self.hand_off_now(&request.group, request.to.clone()).await
    }
}
