//! The CLI side of the admin API: `selfheal status | start | stop | restart |
//! health | logs | events`. Each command prints its result on stdout, any error
//! on stderr, and exits with a [`CliExit`] code.
//!
//! The socket is found by [`locate`]: `--socket`, env `SELFHEAL_ADMIN_SOCKET`,
//! the config's `admin_socket` (a config given with `--config` /
//! `SELFHEAL_CONFIG`, or `./supervisor.toml` when it exists), the socket the
//! running supervisor advertises ([`super::advertise`]), then
//! `/run/selfheal/admin.sock`.

use std::future::Future;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::advertise;
use super::snapshot::{ProgramStatus, Snapshot};
use super::wait::{self, Goal, Verb, Verdict};
use crate::cli::{
    EventsArgs, HealthArgs, LogsArgs, ProgramArg, ScaleArgs, SignalArgs, SocketArg, StatusArgs,
};
use crate::exit::CliExit;

/// The last resort when nothing names a socket.
pub const DEFAULT_SOCKET: &str = "/run/selfheal/admin.sock";

/// The environment variable naming the socket (after `--socket`).
pub const SOCKET_ENV: &str = "SELFHEAL_ADMIN_SOCKET";

/// How long one answer (its head) may take before the supervisor counts as unreachable.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a client command failed; [`ClientError::exit`] is its exit code.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("permission denied on {path}: {advice}")]
    PermissionDenied { path: String, advice: String },
    #[error("no supervisor is serving {path} (is it running? tried: {tried})")]
    NotServing { path: String, tried: String },
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("the supervisor at {path} did not answer within {}", humantime::format_duration(*.after))]
    NoAnswer { path: String, after: Duration },
    #[error("the connection to the supervisor at {path} failed: {source}")]
    Broken { path: String, source: hyper::Error },
    /// A config that names the socket could not be read.
    #[error("{0}")]
    Config(String),
    /// The supervisor knows no such program (or the request was malformed).
    #[error("{0}")]
    Usage(String),
    /// The action failed, timed out, or the supervisor refused it.
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    /// The exit code of the CLI for this error.
    pub fn exit(&self) -> CliExit {
        match self {
            ClientError::PermissionDenied { .. }
            | ClientError::NotServing { .. }
            | ClientError::Connect { .. }
            | ClientError::NoAnswer { .. }
            | ClientError::Broken { .. } => CliExit::Unreachable,
            ClientError::Config(_) | ClientError::Usage(_) => CliExit::Usage,
            ClientError::Failed(_) => CliExit::Failed,
        }
    }
}

/// The socket to use and the sources consulted to find it (for messages).
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub tried: Vec<String>,
}

/// Finds the admin socket (order in the module doc). Only a config that is
/// given or present but unreadable is an error; an advertisement that cannot
/// be trusted or names a socket that is gone is noted and passed over.
pub fn locate(arg: &SocketArg) -> Result<Located, ClientError> {
    let mut tried = Vec::new();
    let found = |path: PathBuf, mut tried: Vec<String>, how: String| {
        tried.push(how);
        Ok(Located { path, tried })
    };
    if let Some(path) = &arg.socket {
        return found(path.clone(), tried, "--socket".into());
    }
    tried.push("no --socket".into());
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return found(PathBuf::from(path), tried, SOCKET_ENV.into());
    }
    tried.push(format!("no {SOCKET_ENV}"));
    let local = Path::new("supervisor.toml");
    let config = arg
        .config
        .clone()
        .or_else(|| local.exists().then(|| local.to_path_buf()));
    if let Some(config) = config {
        let loaded = crate::config::load_unchecked(&config)
            .map_err(|e| ClientError::Config(e.to_string().trim_end().to_string()))?;
        let how = format!("the admin_socket of {}", config.display());
        return found(loaded.supervisor.admin_socket, tried, how);
    }
    tried.push("no --config, SELFHEAL_CONFIG or ./supervisor.toml".into());
    let file = advertise::current_file();
    match advertise::advertised() {
        Ok(Some(path)) if path.exists() => {
            return found(path, tried, format!("advertised in {}", file.display()));
        }
        Ok(Some(path)) => tried.push(format!(
            "{} named {}, which is gone",
            file.display(),
            path.display()
        )),
        Ok(None) => tried.push(format!("nothing advertised in {}", file.display())),
        Err(why) => tried.push(format!("{} not trusted: {why}", file.display())),
    }
    found(PathBuf::from(DEFAULT_SOCKET), tried, "the default".into())
}

/// A connection to the supervisor: one HTTP/1.1 connection over the unix
/// socket, reused for every request of a command.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    path: String,
}

impl Conn {
    async fn open(socket: &SocketArg) -> Result<Conn, ClientError> {
        let located = locate(socket)?;
        let path = located.path.display().to_string();
        let stream = match tokio::net::UnixStream::connect(&located.path).await {
            Ok(stream) => stream,
            Err(e) => return Err(connect_error(&located, e)),
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ClientError::Broken {
                path: path.clone(),
                source,
            })?;
        tokio::spawn(conn);
        Ok(Conn { sender, path })
    }

    /// Sends one request and returns the response once its head is in.
    async fn send(
        &mut self,
        method: hyper::Method,
        uri: &str,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let path = self.path.clone();
        let broken = |source| ClientError::Broken {
            path: path.clone(),
            source,
        };
        let request = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "selfheal")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ClientError::Usage(format!("bad request {uri:?}: {e}")))?;
        let sender = &mut self.sender;
        tokio::time::timeout(ANSWER_TIMEOUT, async {
            sender.ready().await.map_err(broken)?;
            sender.send_request(request).await.map_err(broken)
        })
        .await
        .map_err(|_| ClientError::NoAnswer {
            path: path.clone(),
            after: ANSWER_TIMEOUT,
        })?
    }

    /// One request; returns (status, body as text).
    async fn text(
        &mut self,
        method: hyper::Method,
        uri: &str,
    ) -> Result<(u16, String), ClientError> {
        let response = self.send(method, uri).await?;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(ANSWER_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| ClientError::NoAnswer {
                path: self.path.clone(),
                after: ANSWER_TIMEOUT,
            })?
            .map_err(|source| ClientError::Broken {
                path: self.path.clone(),
                source,
            })?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    async fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        let (code, body) = self.text(hyper::Method::GET, "/status").await?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        serde_json::from_str(&body)
            .map_err(|e| ClientError::Failed(format!("unreadable status from the supervisor: {e}")))
    }

    /// The status of `name`: during a surge restart two processes go by that
    /// name (the old one retiring); the newest incarnation is the one a wait
    /// is about. `None`: it names no single instance (a program with replicas).
    async fn program(&mut self, name: &str) -> Result<Option<ProgramStatus>, ClientError> {
        let snapshot = self.snapshot().await?;
        let named = snapshot
            .programs
            .iter()
            .filter(|p| p.name == name)
            .max_by_key(|p| (p.incarnation, !p.retiring))
            .cloned();
        if named.is_none() && !snapshot.programs.iter().any(|p| p.program == name) {
            return Err(ClientError::Usage(format!("no program named {name:?}")));
        }
        Ok(named)
    }

    /// Every live instance of program `name` (its replicas), and how its last
    /// rollout stands.
    async fn instances(&mut self, name: &str) -> Result<Vec<ProgramStatus>, ClientError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .programs
            .into_iter()
            .filter(|p| p.program == name && !p.retiring)
            .collect())
    }
}

/// The supervisor answered, but not 200: 404 (unknown program or action) is a
/// usage error, anything else (503: shutting down) a failure.
fn refused(code: u16, body: &str) -> ClientError {
    let body = body.trim_end().to_string();
    match code {
        404 | 400 => ClientError::Usage(body),
        _ => ClientError::Failed(format!("the supervisor answered {code}: {body}")),
    }
}

/// A connect error, in words an operator can act on.
fn connect_error(located: &Located, e: std::io::Error) -> ClientError {
    let path = located.path.display().to_string();
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            advice: permission_advice(&located.path),
            path,
        },
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ClientError::NotServing {
                path,
                tried: located.tried.join(", "),
            }
        }
        _ => ClientError::Connect { path, source: e },
    }
}

/// Who may connect to `socket`: root, its owner, and its group when the mode
/// lets the group write (the supervisor creates it 0600).
fn permission_advice(socket: &Path) -> String {
    let Ok(meta) = std::fs::metadata(socket) else {
        return "a directory on the way to it cannot be searched: run as root or as its owner"
            .to_string();
    };
    let group = nix::unistd::Group::from_gid(meta.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| format!("gid {}", meta.gid()), |g| g.name);
    if meta.mode() & 0o060 == 0o060 {
        return format!("run as root or as a member of the socket's group ({group})");
    }
    let owner = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", meta.uid()), |u| u.name);
    format!(
        "run as root or as the socket's owner ({owner}); its group ({group}) may not connect \
         (mode {:04o})",
        meta.mode() & 0o7777
    )
}

/// Runs one client command on a fresh current-thread runtime; an error goes
/// to stderr and becomes its exit code.
fn run(command: impl Future<Output = Result<CliExit, ClientError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("selfheal: cannot start a runtime: {e}");
            return CliExit::Failed.into();
        }
    };
    match runtime.block_on(command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("selfheal: {e}");
            e.exit().into()
        }
    }
}

/// `selfheal status [--json]`: the table (or the snapshot as JSON); exit 3
/// when not every program is running and ready (or `exited`).
pub fn status_main(args: &StatusArgs) -> ExitCode {
    run(async {
        let mut conn = Conn::open(&args.socket).await?;
        let (code, body) = conn.text(hyper::Method::GET, "/status").await?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        let snapshot: Snapshot = serde_json::from_str(&body)
            .map_err(|e| ClientError::Failed(format!("unreadable status: {e}")))?;
        if args.json {
            println!("{}", body.trim_end());
        } else {
            print!("{}", render(&snapshot));
        }
        Ok(if snapshot.all_ready() {
            CliExit::Ok
        } else {
            CliExit::NotAllRunning
        })
    })
}

/// The status table, one line per program, columns as wide as their widest cell.
pub fn render(s: &Snapshot) -> String {
    let mut out = format!(
        "supervisor pid {}  up {}{}\n",
        s.supervisor.pid,
        uptime(s.supervisor.uptime_ms),
        if s.supervisor.shutting_down {
            "  SHUTTING DOWN"
        } else {
            ""
        }
    );
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "LAST EXIT",
        "HEALTH",
    ];
    let mut rows = vec![header.map(String::from)];
    for p in &s.programs {
        rows.push([
            p.name.clone(),
            p.state.clone(),
            p.pid.map_or("-".to_string(), |p| p.to_string()),
            p.uptime_ms.map_or("-".to_string(), uptime),
            p.restarts.to_string(),
            p.last_exit
                .as_ref()
                .map_or("-".to_string(), |e| e.description.clone()),
            p.health.as_ref().map_or("-".to_string(), |h| {
                format!("{} {}", if h.ok { "ok" } else { "FAIL" }, h.reason)
            }),
        ]);
    }
    // Numbers are right-aligned; the last column is not padded.
    let right = [false, false, true, true, true, false, false];
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in &rows {
        let mut line = String::new();
        for (column, ((cell, width), right)) in row.iter().zip(widths).zip(right).enumerate() {
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            if column > 0 {
                line.push_str(if column == 5 { "  " } else { " " });
            }
            if right {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                if column + 1 < row.len() {
                    line.push_str(&pad);
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    // What each program's last restart cost its clients (when a front said).
    for p in s.programs.iter().filter(|p| !p.retiring) {
        if let Some(c) = &p.last_restart {
            out.push_str(&format!(
                "last restart of {}: down {}; requests held {}, replayed {}, shed {}\n",
                p.name,
                crate::supervisor::state::human(std::time::Duration::from_millis(c.down_ms)),
                c.held,
                c.replayed,
                c.shed
            ));
        }
    }
    out
}

fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        _ => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

/// `selfheal start|stop|restart NAME`: send the verb, then (unless
/// `--no-wait`) poll the status until [`Goal::judge`] says done or failed, or
/// `--timeout` passes.
pub fn command_main(verb: Verb, args: &ProgramArg) -> ExitCode {
    run(async {
        let mut conn = Conn::open(&args.socket).await?;
        let before = match args.no_wait {
            true => None,
            false => Some(conn.program(&args.name).await?),
        };
        let uri = format!("/programs/{}/{}", encode(&args.name), verb.as_str());
        let (code, body) = conn.text(hyper::Method::POST, &uri).await?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        let before = match before {
            None => {
                print!("{body}");
                return Ok(CliExit::Ok);
            }
            Some(None) => return wait_all(&mut conn, verb, args).await,
            Some(Some(before)) => before,
        };
        let goal = Goal::new(verb, &before);
        let deadline = tokio::time::Instant::now() + args.timeout;
        loop {
            let Some(now) = conn.program(&args.name).await? else {
                return Err(ClientError::Failed(format!("{}: gone", args.name)));
            };
            // A surge whose new process never became ready: the old one serves
            // on, and its replacement may already be gone from the status.
            if verb == Verb::Restart && now.rollout.as_deref() == Some("failed") {
                return Err(ClientError::Failed(format!(
                    "{}: failed: the new process never became ready; the old one keeps serving",
                    args.name
                )));
            }
            match goal.judge(&now) {
                Verdict::Done(text) => {
                    println!("{text}");
                    return Ok(CliExit::Ok);
                }
                Verdict::Failed(text) => return Err(ClientError::Failed(text)),
                Verdict::Wait if tokio::time::Instant::now() >= deadline => {
                    return Err(ClientError::Failed(wait::timeout_message(
                        args.timeout,
                        &now,
                    )));
                }
                Verdict::Wait => tokio::time::sleep(wait::POLL).await,
            }
        }
    })
}

/// The wait for a program with several instances: `restart` is done when its
/// rollout is (failed: one replacement never became ready); `start`/`stop`
/// when every instance is ready / has no process.
async fn wait_all(conn: &mut Conn, verb: Verb, args: &ProgramArg) -> Result<CliExit, ClientError> {
    let deadline = tokio::time::Instant::now() + args.timeout;
    loop {
        let all = conn.instances(&args.name).await?;
        let verdict = wait::judge_all(verb, &all);
        match verdict {
            Verdict::Done(text) => {
                println!("{text}");
                return Ok(CliExit::Ok);
            }
            Verdict::Failed(text) => return Err(ClientError::Failed(text)),
            Verdict::Wait if tokio::time::Instant::now() >= deadline => {
                return Err(ClientError::Failed(format!(
                    "timed out after {}: {} not all {}",
                    humantime::format_duration(args.timeout),
                    args.name,
                    if verb == Verb::Stop {
                        "stopped"
                    } else {
                        "ready"
                    }
                )));
            }
            Verdict::Wait => tokio::time::sleep(wait::POLL).await,
        }
    }
}

/// `selfheal health [--live] [--json]`: exit 0 when the stack is ready (the
/// supervisor alive), 1 when not, 4 when the supervisor cannot be reached.
pub fn health_main(args: &HealthArgs) -> ExitCode {
    let path = match (args.live, args.json) {
        (true, _) => "/livez",
        (false, true) => "/health",
        (false, false) => "/readyz",
    };
    run(async {
        let mut conn = Conn::open(&args.socket).await?;
        let (code, body) = conn.text(hyper::Method::GET, path).await?;
        print!("{body}");
        Ok(if code == 200 {
            CliExit::Ok
        } else {
            CliExit::Failed
        })
    })
}

/// One line of program output as `GET /logs` sends it (one JSON object a line).
#[derive(Debug, serde::Deserialize)]
struct LogLine {
    #[serde(default)]
    ts: String,
    program: String,
    line: String,
}

/// `selfheal logs [NAME…] [-f] [-n N] [--since WHEN] [--timestamps] [--json]`:
/// a client of `GET /logs`, printing `name | line` with names aligned.
pub fn logs_main(args: &LogsArgs) -> ExitCode {
    run(async {
        let mut conn = Conn::open(&args.socket).await?;
        let names = match args.names.is_empty() {
            true => conn
                .snapshot()
                .await?
                .programs
                .into_iter()
                .map(|p| p.name)
                .collect(),
            false => args.names.clone(),
        };
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let mut query: Vec<String> = args
            .names
            .iter()
            .map(|n| format!("program={}", encode(n)))
            .collect();
        if let Some(n) = args.lines {
            query.push(format!("n={n}"));
        }
        if let Some(since) = args.since {
            let ms = since
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            query.push(format!("since_ms={ms}"));
        }
        if args.follow {
            query.push("follow=true".into());
        }
        let uri = match query.is_empty() {
            true => "/logs".to_string(),
            false => format!("/logs?{}", query.join("&")),
        };
        let response = conn.send(hyper::Method::GET, &uri).await?;
        if response.status() != hyper::StatusCode::OK {
            let code = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_or_else(|_| Bytes::new(), http_body_util::Collected::to_bytes);
            return Err(refused(code, &String::from_utf8_lossy(&body)));
        }
        let path = conn.path.clone();
        each_line(response.into_body(), &path, |raw| {
            if args.json {
                return Some(format!("{raw}\n"));
            }
            if let Some(n) = skipped(raw) {
                eprintln!("selfheal: {n} lines skipped (this reader fell behind)");
                return None;
            }
            let line: LogLine = serde_json::from_str(raw).ok()?;
            let name = pad(&line.program, width);
            Some(match args.timestamps {
                true => format!("{} {name} | {}\n", line.ts, line.line),
                false => format!("{name} | {}\n", line.line),
            })
        })
        .await?;
        Ok(CliExit::Ok)
    })
}

/// One supervisor event as `GET /events` sends it (the fields the CLI prints).
#[derive(Debug, serde::Deserialize)]
struct EventLine {
    #[serde(default)]
    ts: String,
    #[serde(default)]
    program: Option<String>,
    #[serde(default)]
    message: String,
}

/// `selfheal events [--json] [--recent N]`: a client of `GET /events` (SSE),
/// printing `TIME program | message` (`selfheal` for the supervisor's own
/// events; names aligned), or each event's JSON, until the supervisor exits.
pub fn events_main(args: &EventsArgs) -> ExitCode {
    run(async {
        let mut conn = Conn::open(&args.socket).await?;
        let width = conn
            .snapshot()
            .await?
            .programs
            .iter()
            .map(|p| p.name.chars().count())
            .chain(["selfheal".len()])
            .max()
            .unwrap_or(0);
        let uri = match args.recent {
            Some(n) => format!("/events?recent={n}"),
            None => "/events".to_string(),
        };
        let response = conn.send(hyper::Method::GET, &uri).await?;
        if response.status() != hyper::StatusCode::OK {
            let code = response.status().as_u16();
            return Err(refused(code, ""));
        }
        let path = conn.path.clone();
        let mut data = String::new();
        each_line(response.into_body(), &path, |line| {
            // Server-Sent Events: `data:` lines make up the event, a blank
            // line ends it; `id:`, `event:` and `:` comments are not needed.
            if let Some(rest) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
                return None;
            }
            if !line.is_empty() || data.is_empty() {
                return None;
            }
            let raw = std::mem::take(&mut data);
            if args.json {
                return Some(format!("{raw}\n"));
            }
            if let Some(n) = skipped(&raw) {
                eprintln!("selfheal: {n} events skipped (this reader fell behind)");
                return None;
            }
            let event: EventLine = serde_json::from_str(&raw).ok()?;
            let who = pad(event.program.as_deref().unwrap_or("selfheal"), width);
            Some(format!("{} {who} | {}\n", event.ts, event.message))
        })
        .await?;
        Ok(CliExit::Ok)
    })
}

/// Reads a streamed body line by line (`\n`-terminated, `\r` stripped) and
/// writes what `print` makes of each line to stdout, as it arrives. A closed
/// stdout (`| head`) ends the command quietly.
async fn each_line(
    mut body: Incoming,
    path: &str,
    mut print: impl FnMut(&str) -> Option<String>,
) -> Result<(), ClientError> {
    // Blocking writes: the command has nothing else to do meanwhile.
    let mut stdout = std::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(source)) => {
                return Err(ClientError::Broken {
                    path: path.to_string(),
                    source,
                })
            }
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        let mut out = String::new();
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\n').trim_end_matches('\r');
            if let Some(printed) = print(text) {
                out.push_str(&printed);
            }
        }
        if !out.is_empty() {
            let written = stdout.write_all(out.as_bytes());
            if written.and_then(|()| stdout.flush()).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// `{"skipped": N}`: the supervisor's note that a slow reader lost N items.
fn skipped(raw: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Skipped {
        skipped: u64,
    }
    serde_json::from_str::<Skipped>(raw).ok().map(|s| s.skipped)
}

fn pad(name: &str, width: usize) -> String {
    format!(
        "{name}{}",
        " ".repeat(width.saturating_sub(name.chars().count()))
    )
}

/// Percent-encodes a query value (program names are `[A-Za-z0-9_-]`, but a
/// mistyped name must still reach the supervisor intact, to be refused there).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `selfheal reload`: one line per program and what happened to it; exit 2
/// with every config error when the config is invalid (nothing changed).
pub fn reload_main(socket: &SocketArg) -> ExitCode {
    run(async {
        let mut conn = Conn::open(socket).await?;
        let (code, body) = conn.text(hyper::Method::POST, "/reload").await?;
        if code == 400 {
            eprint!("{body}");
            return Ok(CliExit::Usage);
        }
        if code != 200 {
            return Err(refused(code, &body));
        }
        let answer: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| ClientError::Failed(format!("unreadable answer: {e}")))?;
        let changes = answer.get("changes").and_then(|c| c.as_array());
        for change in changes.into_iter().flatten() {
            let field = |k: &str| change.get(k).and_then(|v| v.as_str());
            let program = field("program").unwrap_or("?");
            let what = field("change").unwrap_or("?");
            match field("detail") {
                Some(detail) => println!("{program}: {what} ({detail})"),
                None => println!("{program}: {what}"),
            }
        }
        Ok(CliExit::Ok)
    })
}

/// `selfheal signal NAME SIG`.
pub fn signal_main(args: &SignalArgs) -> ExitCode {
    let uri = format!(
        "/programs/{}/signal?signal={}",
        encode(&args.name),
        args.signal
    );
    post_and_print(&args.socket, uri)
}

/// `selfheal scale NAME N`.
pub fn scale_main(args: &ScaleArgs) -> ExitCode {
    let uri = format!(
        "/programs/{}/scale?replicas={}",
        encode(&args.name),
        args.replicas
    );
    post_and_print(&args.socket, uri)
}

/// POSTs `uri` and prints the answer; a refusal is an error.
fn post_and_print(socket: &SocketArg, uri: String) -> ExitCode {
    run(async move {
        let mut conn = Conn::open(socket).await?;
        let (code, body) = conn.text(hyper::Method::POST, &uri).await?;
        if code != 200 {
            return Err(refused(code, &body));
        }
        print!("{body}");
        Ok(CliExit::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::snapshot::SupervisorInfo;

    #[test]
    fn status_columns_align_for_long_names_and_states() {
        let long = "a".repeat(40);
        let snapshot = Snapshot {
            supervisor: SupervisorInfo::default(),
            programs: vec![
                ProgramStatus {
                    name: long.clone(),
                    state: "running".into(),
                    pid: Some(1234567),
                    restarts: 12345,
                    ..ProgramStatus::default()
                },
                ProgramStatus {
                    name: "b".into(),
                    state: "suspended".into(),
                    pid: Some(7),
                    ..ProgramStatus::default()
                },
            ],
        };
        let text = render(&snapshot);
        let a = long;
        let want = format!(
            "supervisor pid 0  up 0s
NAME{s36} STATE         PID UPTIME RESTARTS  LAST EXIT HEALTH
{a} running   1234567      -    12345  -         -
b{s39} suspended       7      -        0  -         -
",
            s36 = " ".repeat(36),
            s39 = " ".repeat(39)
        );
        assert_eq!(text, want);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("app_1-x"), "app_1-x");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
