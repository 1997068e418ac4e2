//! # baton-admin
//!
//! An HTTP admin server for a [`baton_core::Node`]: what `baton node --admin ADDR` serves, as a
//! library, so that an application mounts the same endpoints on its own node.
//!
//! | path | what |
//! | --- | --- |
//! | `GET /metrics` | Prometheus text: `baton_leader`, `baton_term`, `baton_leadership_changes_total{reason}`, `baton_lease_renewals_total`, `baton_election_duration_seconds`, `baton_peers{state}`, `baton_voters_reachable`, votes granted and denied, refusals, calls (docs/OPERATING.md lists them all) |
//! | `GET /healthz` | 200 while the node runs, else 503 |
//! | `GET /readyz` | 200 when the node has joined (met a peer, when it has seeds) and, with `quorum = "majority"`, reaches a majority of the voters; else 503 with the reason |
//! | `GET /api/status` | the status snapshot as JSON (the shape of `baton status --json`, plus readiness and each group's ranking) |
//! | `GET /api/timeline` | the recent leadership changes, oldest first, as JSON |
//! | `GET /api/events` | a server-sent-event stream: `hello` (the node and its groups, first), then `leadership`, `peer`, `no_leader`, `notice` (see [`Change`]) |
//! | `POST /api/actions/shutdown` | shut the node down kindly (hand off, leave); needs the token |
//! | `POST /api/actions/kill` | kill the node (no handoff, no goodbye); needs the token |
//! | `POST /api/actions/step-down` | body `{"group": G}`: the leader of `G`, wherever it runs, hands off to the next in its ranking ([`Node::step_down`]); needs the token |
//! | `POST /api/actions/transfer` | body `{"group": G, "to": NODE}`: the leader of `G` hands off to `NODE`'s member ([`Node::transfer`]); needs the token |
//! | `GET /` | the live web view (files embedded in the binary; nothing fetched) |
//!
//! Actions need `Authorization: Bearer <token>`; without a token ([`AdminBuilder::token`]) the
//! server is read-only and refuses them with 403. Read-only endpoints need no token.
//!
//! ```no_run
//! # async fn run(node: baton_core::Node, config: baton_core::config::Config) -> std::io::Result<()> {
//! let admin = baton_admin::Admin::builder(node, &config).token(Some("s3cret".into())).start();
//! // Serve it alone…
//! let (addr, _task) = admin.clone().serve("127.0.0.1:7180".parse().unwrap()).await?;
//! // …or mount it in an axum app of your own.
//! let app = axum::Router::new().nest("/baton", admin.router());
//! # let _ = (addr, app); Ok(()) }
//! ```

mod metrics;
mod observer;
mod status;

pub use observer::Change;
pub use status::{no_leader_json, status_json, unhealthy_in};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use baton_core::Node;
use baton_core::config::{Config, QuorumMode};
use futures::Stream;
use metrics::Metrics;
use observer::Tracker;
use serde_json::json;
use status::{Cluster, View};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

/// What an action does; see [`AdminBuilder::on_shutdown`] and [`AdminBuilder::on_kill`].
pub type ActionHook = Arc<dyn Fn() + Send + Sync>;

/// How often the SSE stream sends a keep-alive comment (so a client notices a dead node).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long `/metrics`, `/readyz` and `/api/status` wait for the node's status.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

struct Inner {
    node: Node,
    cluster: Cluster,
    token: Option<String>,
    on_shutdown: ActionHook,
    on_kill: ActionHook,
    metrics: Metrics,
    tracker: Mutex<Tracker>,
    changes: broadcast::Sender<Arc<Change>>,
    /// Set to true once the node stopped: event streams end.
    stopped: watch::Sender<bool>,
}

/// The admin server of one node. Cheap to clone.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

/// Builds an [`Admin`].
pub struct AdminBuilder {
    node: Node,
    cluster: Cluster,
    token: Option<String>,
    on_shutdown: Option<ActionHook>,
    on_kill: Option<ActionHook>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The tracker stays consistent even if a holder panicked mid-update (counters only).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admin {
    /// Starts building the admin server of `node`, which runs with `config` (its quorum mode,
    /// voters and seeds decide readiness).
    pub fn builder(node: Node, config: &Config) -> AdminBuilder {
        AdminBuilder {
            node,
            cluster: Cluster {
                majority: config.cluster.quorum == QuorumMode::Majority,
                voters: config.voter_ids(),
                has_seeds: !config.cluster.seeds.is_empty(),
            },
            token: None,
            on_shutdown: None,
            on_kill: None,
        }
    }

    /// The routes, to serve or to mount ([`Router::nest`]) in an application's own server.
    pub fn router(&self) -> Router {
        // `POST /api/actions/…`: each needs the token (see `authorize`).
        let actions = Router::new()
            .route("/shutdown", post(action_shutdown))
            .route("/kill", post(action_kill))
            .route("/step-down", control_route("step-down"))
            .route("/transfer", control_route("transfer"));
        // `GET /api/…`: what the live view reads.
        let api = Router::new()
            .route("/status", get(api_status))
            .route("/timeline", get(api_timeline))
            .route("/events", get(api_events))
            .nest("/actions", actions);
        Router::new()
            .route("/", get(index))
            .route("/app.js", get(app_js))
            .route("/style.css", get(style_css))
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .nest("/api", api)
            .with_state(self.clone())
    }

    /// Binds `addr` and serves [`Admin::router`] on it; returns the bound address (port 0
    /// picks one) and the server task.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::warn!(error = %e, "admin server stopped");
            }
        });
        Ok((local, task))
    }

    /// Whether actions are enabled (a token was given).
    pub fn actions_enabled(&self) -> bool {
        self.inner.token.is_some()
    }

    async fn view(&self) -> Option<View> {
        let node = &self.inner.node;
        if !node.is_running() {
            return None;
        }
        let snap = tokio::time::timeout(STATUS_TIMEOUT, node.status())
            .await
            .ok()?
            .ok()?;
        Some(View::new(
            snap,
            node.incarnation().get(),
            self.inner.cluster.clone(),
        ))
    }
}

impl AdminBuilder {
    /// The admin token (`None`: read-only). Actions need `Authorization: Bearer <token>`.
    pub fn token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    /// What `POST /api/actions/shutdown` does (default: `Node::shutdown` in a task). A binary
    /// that exits after a shutdown hooks its own path here.
    pub fn on_shutdown(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_shutdown = Some(Arc::new(f));
        self
    }

    /// What `POST /api/actions/kill` does (default: `Node::abort`). A binary may kill its
    /// process instead (as `baton node` does), which is what the peers then see.
    pub fn on_kill(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_kill = Some(Arc::new(f));
        self
    }

    /// Starts following the node (a tokio task) and returns the server.
    pub fn start(self) -> Admin {
        let node = self.node;
        let on_shutdown = self.on_shutdown.unwrap_or_else(|| {
            let node = node.clone();
            Arc::new(move || {
                let node = node.clone();
                tokio::spawn(async move { node.shutdown().await });
            })
        });
        let on_kill = self.on_kill.unwrap_or_else(|| {
            let node = node.clone();
            Arc::new(move || node.abort())
        });
        let events = node.subscribe();
        let admin = Admin {
            inner: Arc::new(Inner {
                node,
                cluster: self.cluster,
                token: self.token,
                on_shutdown,
                on_kill,
                metrics: Metrics::new(),
                tracker: Mutex::new(Tracker::default()),
                changes: broadcast::channel(256).0,
                stopped: watch::channel(false).0,
            }),
        };
        tokio::spawn(follow(Arc::downgrade(&admin.inner), events));
        admin
    }
}

/// The observer task: feeds node events to the tracker until the node stops (or the admin
/// server is dropped).
async fn follow(
    inner: std::sync::Weak<Inner>,
    mut events: broadcast::Receiver<baton_core::runtime::NodeEvent>,
) {
    // The node's own channel never closes while the node handle lives (the admin server holds
    // one): check once a second whether it still runs.
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = check.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                if !inner.node.is_running() {
                    inner.stopped.send_replace(true);
                    return;
                }
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        match ev {
            Ok(ev) => {
                let change = lock(&inner.tracker).on(&inner.metrics, ev, Instant::now());
                if let Some(c) = change {
                    let _ = inner.changes.send(Arc::new(c));
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "admin server fell behind the node's events");
            }
            Err(broadcast::error::RecvError::Closed) => {
                inner.stopped.send_replace(true);
                return;
            }
        }
    }
}

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX_HTML);
    // Nothing from elsewhere: scripts, styles and connections to this server only.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn metrics_text(State(a): State<Admin>) -> Response {
    let view = a.view().await;
    let body = a.inner.metrics.render(view.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn healthz(State(a): State<Admin>) -> Response {
    if a.inner.node.is_running() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("node {} is not running\n", a.inner.node.id()),
        )
            .into_response()
    }
}

async fn readyz(State(a): State<Admin>) -> Response {
    match a.view().await {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("node {} is not running\n", a.inner.node.id()),
        )
            .into_response(),
        Some(v) => match v.ready {
            Ok(()) => (StatusCode::OK, "ready\n").into_response(),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            )
                .into_response(),
        },
    }
}

async fn api_status(State(a): State<Admin>) -> Response {
    match a.view().await {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": format!("node {} is not running", a.inner.node.id())})),
        )
            .into_response(),
        Some(v) => {
            let mut body = v.json();
            body["actions"] = json!(a.actions_enabled());
            axum::Json(body).into_response()
        }
    }
}

async fn api_timeline(State(a): State<Admin>) -> Response {
    let timeline: Vec<Change> = lock(&a.inner.tracker).timeline.iter().cloned().collect();
    axum::Json(timeline).into_response()
}

async fn api_events(
    State(a): State<Admin>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = a.inner.changes.subscribe();
    let stopped = a.inner.stopped.subscribe();
    let hello = match a.view().await {
        Some(v) => json!({
            "node": v.snap.node.as_str(),
            "incarnation": v.incarnation,
            "groups": v.snap.groups.iter().map(|g| json!({
                "group": g.group,
                "leader": g.leader.as_ref().map(|m| m.node.as_str()),
                "member": g.leader.as_ref().map(|m| m.to_string()),
                "term": g.term,
            })).collect::<Vec<_>>(),
        }),
        None => json!({"node": a.inner.node.id().as_str(), "stopped": true}),
    };
    let first = SseEvent::default().event("hello").data(hello.to_string());
    let running = a.inner.node.is_running();
    let stream = futures::stream::unfold(
        (Some(first), rx, stopped, running),
        |(first, mut rx, mut stopped, running)| async move {
            if let Some(ev) = first {
                return Some((Ok(ev), (None, rx, stopped, running)));
            }
            if !running {
                return None;
            }
            let next = tokio::select! {
                r = rx.recv() => match r {
                    Ok(c) => {
                        let data = serde_json::to_string(&*c).unwrap_or_default();
                        Some(SseEvent::default().event(c.kind()).data(data))
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => Some(
                        SseEvent::default()
                            .event("lagged")
                            .data(json!({"missed": n}).to_string()),
                    ),
                    Err(broadcast::error::RecvError::Closed) => None,
                },
                _ = stopped.wait_for(|s| *s) => None,
            };
            next.map(|ev| (Ok(ev), (None, rx, stopped, running)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// `Ok` when the request carries the admin token; else the response refusing it.
fn authorize(a: &Admin, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &a.inner.token else {
        return Err(Box::new((
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "this admin listener is read-only: set [admin] token_file in the node's config to enable actions"})),
        )
            .into_response()));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Box::new(unauthorized("the admin token is wrong"))),
        None => Err(Box::new(unauthorized(
            "actions need the admin token: send `Authorization: Bearer <token>` (the content of [admin] token_file)",
        ))),
    }
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        axum::Json(json!({"error": message})),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers at once, then runs the action (after a moment, so the answer leaves first).
fn act(a: &Admin, headers: &HeaderMap, action: &'static str, hook: ActionHook) -> Response {
    if let Err(r) = authorize(a, headers) {
        tracing::warn!(action, "admin action refused (no valid token)");
        return *r;
    }
    tracing::info!(action, "admin action");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        hook();
    });
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"action": action, "node": a.inner.node.id().as_str()})),
    )
        .into_response()
}

async fn action_shutdown(State(a): State<Admin>, headers: HeaderMap) -> Response {
    let hook = a.inner.on_shutdown.clone();
    act(&a, &headers, "shutdown", hook)
}

async fn action_kill(State(a): State<Admin>, headers: HeaderMap) -> Response {
    let hook = a.inner.on_kill.clone();
    act(&a, &headers, "kill", hook)
}

/// The body of `POST /api/actions/step-down` and `/api/actions/transfer`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ControlBody {
    group: String,
    #[serde(default)]
    to: Option<String>,
}

/// Step down or transfer: authorized first (so a request without the token learns nothing and
/// changes nothing), then the body, then the leader's answer — `200` with the handoff, `409`
/// with the leader's refusal, `503` when no leader answered.
async fn control(a: &Admin, headers: &HeaderMap, action: &'static str, body: &[u8]) -> Response {
    if let Err(r) = authorize(a, headers) {
        tracing::warn!(action, "admin action refused (no valid token)");
        return *r;
    }
    let bad =
        |msg: String| (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response();
    let req: ControlBody = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return bad(format!(
                "{action}: the body must be JSON {{\"group\": …{}}}: {e}",
                if action == "transfer" {
                    ", \"to\": …"
                } else {
                    ""
                }
            ));
        }
    };
    let node = &a.inner.node;
    let result = match (action, req.to) {
        ("transfer", Some(to)) => node.transfer(req.group.clone(), to.as_str()).await,
        ("transfer", None) => {
            return bad("transfer: the body needs \"to\", the node to hand leadership to".into());
        }
        (_, Some(_)) => return bad("step-down: \"to\" is for a transfer".into()),
        (_, None) => node.step_down(req.group.clone()).await,
    };
    tracing::info!(action, group = %req.group, ok = result.is_ok(), "admin action");
    match result {
        Ok(h) => (
            StatusCode::OK,
            axum::Json(json!({
                "action": action,
                "group": req.group,
                "from": h.from.to_string(),
                "to": h.to.to_string(),
                "term": h.term,
            })),
        )
            .into_response(),
        Err(e) => {
            use baton_core::ControlError as E;
            let status = match e {
                E::NoLeader { .. } | E::LeaderChanged { .. } | E::Timeout | E::ShuttingDown => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                axum::Json(json!({"action": action, "group": req.group, "error": e.to_string()})),
            )
                .into_response()
        }
    }
}

/// The `POST` handler of the leadership control `action` (`step-down` or `transfer`): see
/// [`control`].
fn control_route(action: &'static str) -> MethodRouter<Admin> {
    post(
        move |State(a): State<Admin>, headers: HeaderMap, body: axum::body::Bytes| async move {
            control(&a, &headers, action, &body).await
        },
    )
}
