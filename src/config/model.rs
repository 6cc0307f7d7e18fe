//! The validated configuration: what the rest of the supervisor works with.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A validated `supervisor.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub supervisor: Settings,
    /// Programs in start order (every program after its dependencies).
    pub programs: Vec<Program>,
    /// What the host checks found that does not stop the supervisor from
    /// starting (see [`super::preflight`]); empty from [`super::parse`].
    pub warnings: Vec<super::Diagnostic>,
}

/// The `[supervisor]` table.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bound on the whole ordered shutdown; past it every group is SIGKILLed.
    pub shutdown_timeout: Duration,
    pub on_give_up: GiveUp,
    pub admin_socket: PathBuf,
    /// `admin_listen`: the TCP address the admin API is also served on (`None`:
    /// off, the default). A non-loopback address needs `admin_token_file`.
    pub admin_listen: Option<SocketAddr>,
    /// `admin_token_file`: the file holding the bearer token every TCP request
    /// must carry (`None`: no token, allowed on a loopback address only).
    pub admin_token_file: Option<PathBuf>,
    /// The token read from `admin_token_file` by the host checks ([`super::load`]);
    /// `None` after a pure [`super::parse`], or without a token file.
    pub admin_token: Option<AdminToken>,
    /// `admin_public`: GET routes served over TCP without the token (for
    /// Kubernetes probes and Prometheus). Empty by default.
    pub admin_public: Vec<PublicRoute>,
    /// Bytes of recent output kept in memory per program for `selfheal logs`
    /// (`log_ring = "1MiB"`; 0 keeps none).
    pub log_ring: usize,
}

/// A bearer token (RFC 6750 `b64token` characters), never printed: its `Debug`
/// is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Validates `text` (already trimmed): not empty, and only the characters of
    /// RFC 6750 §2.1's `b64token` (letters, digits, `-._~+/`, then `=` padding),
    /// so that it fits an `Authorization` header and a cookie unchanged.
    pub fn new(text: &str) -> Result<AdminToken, &'static str> {
        if text.is_empty() {
            return Err("the token file is empty");
        }
        let body = text.trim_end_matches('=');
        let ok = !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        if !ok {
            return Err(
                "the token may hold letters, digits and -._~+/ (then = padding) only, \
                        e.g. the output of `openssl rand -hex 32`",
            );
        }
        Ok(AdminToken(text.to_string()))
    }

    /// The token's text (to compare in constant time; never to log).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// An admin GET route that `admin_public` may open without the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicRoute {
    /// `GET /metrics` (Prometheus).
    Metrics,
    /// `GET /livez` (liveness probe).
    Livez,
    /// `GET /readyz` (readiness probe).
    Readyz,
}

impl PublicRoute {
    /// Every route with its `admin_public` name.
    pub const ALL: [(&'static str, PublicRoute); 3] = [
        ("metrics", PublicRoute::Metrics),
        ("livez", PublicRoute::Livez),
        ("readyz", PublicRoute::Readyz),
    ];

    /// The URL path of the route (`/metrics`, …).
    pub fn path(self) -> &'static str {
        match self {
            PublicRoute::Metrics => "/metrics",
            PublicRoute::Livez => "/livez",
            PublicRoute::Readyz => "/readyz",
        }
    }
}

/// What the supervisor does when a program exceeds its restart limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// Stop everything and exit with code 3, so the orchestrator above takes over.
    Exit,
    /// Leave the program `failed` and keep supervising the others.
    Stay,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub name: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub restart: RestartPolicy,
    pub backoff: Backoff,
    pub restart_limit: RestartLimit,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    /// Signals the supervisor passes on to the program's process group.
    pub forward_signals: Vec<Signal>,
    /// The main program (`main = true`, or `selfheal -- CMD`): its stdio is the
    /// supervisor's, every signal goes to it, and its end ends the stack with its code.
    /// Its `restart` defaults to `never` (as `-- CMD`, which always runs once).
    pub main: bool,
    pub depends_on: Vec<Dependency>,
    pub health: Option<Health>,
    pub listen: Vec<SocketAddr>,
    /// Programs this one fronts (`upstreams = ["app"]`): it gets the state
    /// channel (`SELFHEAL_STATE_FD`, see `supervisor::channel`) telling it
    /// their state.
    pub upstreams: Vec<String>,
    /// `max_memory = "256MiB"`: resident bytes of its process group above
    /// which it is replaced (see `supervisor::memory`).
    pub max_memory: Option<u64>,
    /// `traffic_health = { errors, window, ratio }`: replace it when its front
    /// sees that many errors, at least that share of its answers, within the window.
    pub traffic_health: Option<TrafficHealth>,
    /// Processes run at once, each with `SELFHEAL_REPLICA=i` (0-based) and its
    /// own state, health and restart count; they share the `listen` sockets.
    pub replicas: u32,
    /// Also write the program's output to this file, rotated by size.
    pub log_file: Option<LogFile>,
    /// How `restart` (and a reload that changes the program) replaces a
    /// process; `None`: [`RestartStrategy::Surge`] when it has `listen`
    /// sockets, else [`RestartStrategy::StopFirst`].
    pub restart_strategy: Option<RestartStrategy>,
    /// The program's own Prometheus page (`metrics = "http://H:P/path"`),
    /// appended to the supervisor's `/metrics` at each scrape.
    pub metrics: Option<MetricsUrl>,
}

/// `http://HOST:PORT/PATH` of a program's metrics page (OpenMetrics text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsUrl {
    /// `HOST:PORT` (port 80 when absent from the URL).
    pub authority: String,
    /// Path and query, `/` when absent.
    pub path: String,
}

/// When the errors a front sees make a program unhealthy: at least `errors`
/// `5xx` answers and upstream timeouts within `window`, and at least `ratio`
/// of the requests in that window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrafficHealth {
    pub errors: u64,
    pub window: Duration,
    /// 0.0–1.0.
    pub ratio: f64,
}

impl Default for TrafficHealth {
    fn default() -> Self {
        TrafficHealth {
            errors: 20,
            window: Duration::from_secs(10),
            ratio: 0.5,
        }
    }
}

/// `log_file = { path, max_size = "10MiB", keep = 5 }`: the program's output
/// lines (as printed, without the `name |` prefix) appended to `path`; past
/// `max_size` bytes the file is renamed `path.1` (older ones shifted, at most
/// `keep` kept) and a new one begun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    pub path: PathBuf,
    pub max_size: u64,
    pub keep: u32,
}

/// Most replicas of one program (`replicas`, `selfheal scale`).
pub const MAX_REPLICAS: u32 = 1000;

/// How a running process is replaced by the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartStrategy {
    /// Start the next one on the same held sockets while the old one serves;
    /// once it is ready, stop the old one (it drains). Zero downtime.
    Surge,
    /// Stop the old one (and its group), then start the next.
    StopFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Delay before restart attempt `n` (1-based, counted since the last stable run):
/// attempt 1 waits `initial`; attempt n ≥ 2 waits
/// `min(max, max(initial, 100ms) × multiplier^(n−2))`, then ± `jitter` × delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of the delay, 0.0–1.0.
    pub jitter: f64,
    /// A run at least this long resets the attempt count (next restart is `initial`).
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::ZERO,
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.1,
            reset_after: Duration::from_secs(10),
        }
    }
}

/// More than `max` restarts within `window` marks the program failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartLimit {
    pub max: u32,
    pub window: Duration,
}

impl Default for RestartLimit {
    fn default() -> Self {
        RestartLimit {
            max: 10,
            window: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The dependency's process has been spawned.
    Started,
    /// The dependency passed its first probe (or has none and was spawned).
    Healthy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failures of a running program that make it restart.
    pub failures: u32,
    /// Grace after each start during which failures are not counted.
    pub start_period: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `http://host:port/path`: 2xx or 3xx within the timeout.
    Http { authority: String, path: String },
    /// `host:port`: a TCP connect.
    Tcp(String),
    /// `redis://host:port[/db]`: PING answered PONG.
    Redis(String),
    /// argv: exit code 0.
    Exec(Vec<String>),
}

impl Config {
    /// No programs and default settings (`selfheal -- CMD` without `--config`).
    pub fn empty() -> Config {
        Config {
            path: PathBuf::new(),
            supervisor: Settings::default(),
            programs: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shutdown_timeout: Duration::from_secs(20),
            on_give_up: GiveUp::Exit,
            admin_socket: PathBuf::from("/run/selfheal/admin.sock"),
            admin_listen: None,
            admin_token_file: None,
            admin_token: None,
            admin_public: Vec::new(),
            log_ring: 1024 * 1024,
        }
    }
}

impl Program {
    /// `command` with every other key at its documented default.
    pub fn new(name: &str, command: Vec<String>) -> Program {
        Program {
            name: name.to_string(),
            command,
            env: Vec::new(),
            workdir: None,
            user: None,
            group: None,
            restart: RestartPolicy::OnFailure,
            backoff: Backoff::default(),
            restart_limit: RestartLimit::default(),
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            forward_signals: Vec::new(),
            main: false,
            depends_on: Vec::new(),
            health: None,
            listen: Vec::new(),
            upstreams: Vec::new(),
            max_memory: None,
            traffic_health: None,
            replicas: 1,
            restart_strategy: None,
            log_file: None,
            metrics: None,
        }
    }

    /// The restart strategy in effect (see [`Program::restart_strategy`]).
    pub fn strategy(&self) -> RestartStrategy {
        self.restart_strategy.unwrap_or(if self.listen.is_empty() {
            RestartStrategy::StopFirst
        } else {
            RestartStrategy::Surge
        })
    }

    /// Whether this program waits for `other` in any way.
    pub fn depends_on(&self, other: &str) -> bool {
        self.depends_on.iter().any(|d| d.name == other)
    }
}
