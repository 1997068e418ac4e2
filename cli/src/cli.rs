//! Command-line definitions (clap derive).

use baton_core::GroupName;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// baton: leader election for pools of services.
///
/// Every node setting can come from `--config FILE` (TOML, see the README; or `BATON_CONFIG`)
/// or from a flag; flags win over the file. Logs go to stderr; set `BATON_LOG` or `RUST_LOG`
/// (e.g. `RUST_LOG=debug`) to see more.
#[derive(Debug, Parser)]
#[command(
    name = "baton",
    version,
    about,
    long_about = None,
    after_help = "Environment: BATON_CONFIG (the config file, as --config), BATON_LOG_FORMAT (as --log-format), BATON_LOG or else RUST_LOG (the log level, e.g. info or baton_core=debug)."
)]
pub(crate) struct Cli {
    /// Log lines as text (default) or as one JSON object per line, each with the node's name
    /// (`"node"`) once it is known. `RUST_LOG` still sets the level.
    #[arg(long, global = true, value_enum, env = "BATON_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON output plus `"node"`).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node over TCP: join every configured group (or those given with --group), serve
    /// routed work, log leadership changes. SIGTERM / Ctrl-C hands leadership off and exits 0.
    Node(NodeCmd),
    /// Ask a node what it knows: members, and the leader and term of every group.
    Status(StatusCmd),
    /// Route work to a group's leader (or, with --any, to any member) through a node.
    Work(WorkCmd),
    /// Follow a node's leadership changes: one line per change (group, leader, term, reason,
    /// time), like `etcdctl elect --listen`. Reads the node's admin event stream (`[admin]
    /// listen` of its config, or --admin); exits 1 when the node goes away.
    Watch(WatchCmd),
    /// Hand a group's leadership to a named node: asked through any node, decided by the
    /// leader, which stops acting and names the target its successor (as on a kind shutdown).
    /// Waits until the target leads and says after how long. Refused (exit 4) when the target
    /// is unknown, down, no member of the group or unhealthy.
    Transfer(TransferCmd),
    /// Hand a group's leadership to the next member of the leader's ranking (asked through any
    /// node). Waits until the successor leads. Refused (exit 4) without another live candidate.
    StepDown(StepDownCmd),
    /// Run a node that runs CMD only while it leads GROUP.
    ///
    /// CMD starts when this node gains leadership (with BATON_GROUP, BATON_TERM and BATON_NODE
    /// in its environment) and is stopped when it loses it: SIGTERM to CMD's process group, then
    /// SIGKILL after --grace-ms while this node still holds its lease, at most --watchdog-ms
    /// after the lease could have ended otherwise. A watchdog process (a child of `baton exec`,
    /// the parent of CMD) enforces that last bound even when `baton exec` is frozen (SIGSTOP)
    /// or starved: it SIGKILLs CMD's process group when `baton exec` stops confirming the lease
    /// for --watchdog-ms, and at once when `baton exec` dies, even by SIGKILL.
    ///
    /// When CMD exits on its own while this node leads: --on-exit restart (the default) starts
    /// it again after --restart-delay-ms; resign hands leadership to the next in line and joins
    /// again at the back of the line; exit hands leadership off and exits (0 when CMD exited 0).
    /// A CMD that cannot be started (missing, not executable) logs the OS error once and makes
    /// the node resign; it joins again after a growing delay, or exits 1 with --on-exit exit.
    /// SIGTERM / Ctrl-C stops CMD first, then hands leadership off, then exits 0.
    Exec(ExecCmd),
    /// A local 3-node cluster on loopback: elect, kill the leader, restart it, hand off,
    /// route work — with timings. Leaves no process behind.
    Demo(DemoCmd),
    /// Print a completion script for SHELL, generated from these definitions: e.g.
    /// `baton completions bash > /etc/bash_completion.d/baton`.
    Completions(CompletionsCmd),
    /// Print the man page baton(1) (roff), generated from these definitions: `baton man |
    /// man -l -`; with --out-dir, write baton.1 and one page per subcommand (baton-node.1, …).
    Man(ManCmd),
    /// Internal: the lease watchdog that `baton exec` starts for each run of CMD.
    #[command(name = "__watchdog", hide = true)]
    Watchdog(WatchdogCmd),
}

/// Where a node's settings come from: a config file and flags (flags win).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct NodeOpts {
    /// The config file (TOML). Without it: a single node named after the host, listening on
    /// 127.0.0.1:7100, group "tracked".
    #[arg(long, short = 'c', value_name = "FILE", env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// `[node] name`: unique in the cluster.
    #[arg(long)]
    pub name: Option<String>,
    /// `[node] listen`: the address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// `[cluster] seeds`: `addr` or `name@addr`; repeat for several (replaces the file's list).
    #[arg(long = "seed", value_name = "SEED")]
    pub seeds: Vec<String>,
    /// `[cluster] voters`: a voting node's name; repeat for several (replaces the file's list).
    #[arg(long = "voter", value_name = "NAME")]
    pub voters: Vec<String>,
    /// `[cluster] name`.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// `[cluster] secret_file`: the file holding the shared secret (a trailing newline is
    /// ignored).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// `[cluster] quorum`.
    #[arg(long, value_enum)]
    pub quorum: Option<QuorumArg>,
    /// `[node] data_dir`: where term and vote survive restarts.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `[node] labels`: `key=value`; repeat for several (added to the file's labels).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// `[node] hardware.weight`, used by the `hardware-weight` policy.
    #[arg(long)]
    pub weight: Option<f64>,
    /// Run without a cluster secret (an empty, publicly known key): anyone who can reach the
    /// port can join, vote and lead. For local experiments only; without this flag a node with
    /// no `secret_file` refuses to start.
    #[arg(long)]
    pub insecure_no_secret: bool,
}

/// `[cluster] quorum` as a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum QuorumArg {
    /// A leader needs a majority of the voters: never two leaders at once.
    Majority,
    /// Availability mode: each side of a partition elects its own leader.
    None,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// `baton node`.
#[derive(Debug, Args)]
pub(crate) struct NodeCmd {
    /// Settings.
    #[command(flatten)]
    pub opts: NodeOpts,
    /// Join only this group (repeatable). A group missing from the config is joined with the
    /// default policy (oldest-running).
    #[arg(long = "group", short = 'g', value_name = "GROUP")]
    pub groups: Vec<GroupName>,
    /// `[admin] listen`: serve metrics, health, status, events and the live web view on this
    /// `ip:port` (plain HTTP; see docs/OPERATING.md).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
}

/// `baton watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchCmd {
    /// A node's config file: follow the admin listener of its `[admin] listen`.
    #[arg(long, short = 'c', value_name = "FILE", env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The admin address to follow (overrides the config's).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// Only this group's changes.
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: Option<String>,
    /// One JSON object per line: `{"group","leader","member","previous","term","reason","time","time_ms"}`.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the connection.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// How a client finds and authenticates to a node.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ClientOpts {
    /// A node's config file: connect to its `listen` address with its cluster name and secret.
    #[arg(long, short = 'c', value_name = "FILE", env = "BATON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The node's address (overrides the config's `listen`).
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<String>,
    /// The cluster secret file (overrides the config's `secret_file`).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Connect without a secret, to a node started with --insecure-no-secret.
    #[arg(long)]
    pub insecure_no_secret: bool,
    /// The cluster name (overrides the config's; default "baton").
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// How long to wait for the connection and for a status answer (`work` waits this plus
    /// the node's `call_timeout_ms`, after which the node itself answers why it gave up).
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// `baton status`.
#[derive(Debug, Args)]
pub(crate) struct StatusCmd {
    /// The node to ask.
    #[command(flatten)]
    pub client: ClientOpts,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `baton work`.
#[derive(Debug, Args)]
pub(crate) struct WorkCmd {
    /// The node to route through.
    #[command(flatten)]
    pub client: ClientOpts,
    /// The group (default: the config's only group, else "tracked").
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: Option<GroupName>,
    /// Serve at any member, not only the leader (the original demo's naive `simple_work`).
    #[arg(long)]
    pub any: bool,
    /// Send the work this many times.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Print one JSON object per call instead of text.
    #[arg(long)]
    pub json: bool,
    /// The work (sent as UTF-8 bytes to the leader's handler).
    #[arg(value_name = "PAYLOAD")]
    pub payload: String,
}

/// `baton transfer`.
#[derive(Debug, Args)]
pub(crate) struct TransferCmd {
    /// The node to ask (any node: the request is routed to the leader).
    #[command(flatten)]
    pub client: ClientOpts,
    /// The group (default: the config's only group, else "tracked").
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: Option<GroupName>,
    /// The node that should lead.
    #[arg(long, value_name = "NODE")]
    pub to: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `baton step-down`.
#[derive(Debug, Args)]
pub(crate) struct StepDownCmd {
    /// The node to ask (any node: the request is routed to the leader).
    #[command(flatten)]
    pub client: ClientOpts,
    /// The group (default: the config's only group, else "tracked").
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: Option<GroupName>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `baton exec` does when CMD exits on its own while this node leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnExit {
    /// Start CMD again after --restart-delay-ms (still leading, same term).
    Restart,
    /// Resign: leave the group (handing leadership to the next in line) and join again.
    Resign,
    /// Hand leadership off and exit: 0 when CMD exited with 0, else 1 (a supervisor such as
    /// systemd can then decide).
    Exit,
}

/// `baton exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecCmd {
    /// Settings.
    #[command(flatten)]
    pub opts: NodeOpts,
    /// The group whose leadership CMD follows.
    #[arg(long, short = 'g', value_name = "GROUP")]
    pub group: GroupName,
    /// After SIGTERM, how long CMD may take to exit before it is SIGKILLed — while this node
    /// still holds its lease (a kind shutdown, a new term); after the lease, --watchdog-ms.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub grace_ms: u64,
    /// What to do when CMD exits on its own while this node leads (a CMD that cannot be
    /// started always makes the node resign; with `exit` it also exits 1).
    #[arg(long, value_enum, default_value_t = OnExit::Restart)]
    pub on_exit: OnExit,
    /// The pause before CMD starts again (restart), or before the node joins again (resign,
    /// and after a CMD that could not start: doubling each time it fails again, up to 30 s).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub restart_delay_ms: u64,
    /// The watchdog SIGKILLs CMD's process group when `baton exec` has not confirmed the lease
    /// for this long: CMD never outlives this node's lease by more than this (plus ~2 ms),
    /// even when `baton exec` is frozen. Keep it below `heartbeat_ms`, the least time between
    /// the end of a lease and any other node's election. A `baton exec` starved of the CPU for
    /// longer loses CMD (it restarts while still leading).
    #[arg(long, value_name = "MS", default_value_t = 40, value_parser = clap::value_parser!(u64).range(4..=60_000))]
    pub watchdog_ms: u64,
    /// A health check (exit 0 passes), started every --health-interval-ms: plain words
    /// (`test -e /run/ok`) are executed directly, anything else (`$`, quotes, pipes, globs,
    /// builtins such as `exit`) with `sh -c`. After --health-failures failures in a row this
    /// member is unhealthy: CMD is stopped first (drained), then the member is marked
    /// unhealthy — no candidate anywhere, and a leader hands off to the next healthy member.
    /// One pass makes it healthy again. The handoff starts as soon as the K-th failing check
    /// ends; from that check's start to the successor leading takes the check's own run time,
    /// CMD's exit after SIGTERM and a few ms of baton's (measured: docs/PERFORMANCE.md, "Health
    /// handoff"). So a leader whose check starts failing hands off within interval × failures
    /// + that, since the first failing check starts at most one interval later.
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between two health checks (a check still running then fails).
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_interval_ms: u64,
    /// Health-check failures in a row that make this member unhealthy.
    #[arg(long, value_name = "K", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub health_failures: u32,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `baton __watchdog` (internal; see `watchdog.rs`).
#[derive(Debug, Args)]
pub(crate) struct WatchdogCmd {
    /// The group, for log lines.
    #[arg(long)]
    pub group: GroupName,
    /// After SIGTERM, how long CMD may take before its process group is SIGKILLed.
    #[arg(long, value_name = "MS")]
    pub grace_ms: u64,
    /// How long a lease confirmation lasts.
    #[arg(long, value_name = "MS")]
    pub watchdog_ms: u64,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `baton demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoCmd {
    /// Keep the demo's directory (configs, secret, node logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// After the script, start the three nodes again and keep them running (with their live
    /// views) until Ctrl-C / SIGTERM, to explore the cluster.
    #[arg(long)]
    pub explore: bool,
    /// Where the elections are held: `baton` (its own protocol) or `etcd` (a local etcd the
    /// demo starts on loopback: needs Debian's `etcd-server` and `etcd-client` packages).
    #[arg(long, value_enum, default_value_t = DemoBackend::Baton)]
    pub backend: DemoBackend,
}

/// `baton demo --backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DemoBackend {
    /// baton's own protocol.
    Baton,
    /// A local etcd (`[cluster] backend = "etcd"`, docs/ETCD.md).
    Etcd,
}

/// `baton completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsCmd {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `baton man`.
#[derive(Debug, Args)]
pub(crate) struct ManCmd {
    /// Write baton.1 and a page per subcommand into this directory instead of printing
    /// baton.1.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn labels_parse() {
        assert_eq!(parse_label("zone=eu-1"), Ok(("zone".into(), "eu-1".into())));
        assert_eq!(parse_label("k=a=b"), Ok(("k".into(), "a=b".into())));
        assert!(parse_label("zone").is_err());
        assert!(parse_label("=x").is_err());
    }

    #[test]
    fn exec_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from([
            "baton", "exec", "--group", "g", "--name", "a", "--", "sh", "-c", "echo hi",
        ])
        .unwrap();
        match cli.command {
            Command::Exec(e) => {
                assert_eq!(e.command, vec!["sh", "-c", "echo hi"]);
                assert_eq!(e.opts.name.as_deref(), Some("a"));
            }
            other => panic!("{other:?}"),
        }
    }
}
