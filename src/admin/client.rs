//! The CLI side of the admin API: `selfheal status | start | stop | restart | health`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::snapshot::Snapshot;
use crate::cli::{HealthArgs, ProgramArg, ScaleArgs, SignalArgs, SocketArg, StatusArgs};
use crate::exit::Exit;

/// The socket: `--socket`, else the config's `admin_socket`, else the default.
fn socket_path(arg: &SocketArg) -> PathBuf {
    if let Some(path) = &arg.socket {
        return path.clone();
    }
    crate::config::load_unchecked(&arg.config.resolve())
        .map(|c| c.supervisor.admin_socket)
        .unwrap_or_else(|_| PathBuf::from("/run/selfheal/admin.sock"))
}

/// One request over the unix socket; returns (status, body).
fn request(socket: &SocketArg, method: hyper::Method, path: &str) -> anyhow::Result<(u16, String)> {
    let socket = socket_path(socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stream = tokio::net::UnixStream::connect(&socket)
            .await
            .with_context(|| {
                format!(
                    "cannot reach the supervisor at {} (is it running?)",
                    socket.display()
                )
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "selfheal")
            .body(Empty::<Bytes>::new())?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sender.send_request(request),
        )
        .await
        .context("the supervisor did not answer within 10s")??;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
}

pub fn status_main(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (code, body) = request(&args.socket, hyper::Method::GET, "/status")?;
    anyhow::ensure!(code == 200, "the supervisor answered {code}: {body}");
    if args.json {
        println!("{body}");
        return Ok(Exit::Clean.into());
    }
    let snapshot: Snapshot = serde_json::from_str(&body).context("unreadable status")?;
    print!("{}", render(&snapshot));
    Ok(Exit::Clean.into())
}

/// The status table, one line per program.
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
    out.push_str(&format!(
        "{:<12} {:<9} {:>7} {:>9} {:>8}  {:<28} {}\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "HEALTH"
    ));
    for p in &s.programs {
        let pid = p.pid.map_or("-".to_string(), |p| p.to_string());
        let up = p.uptime_ms.map_or("-".to_string(), uptime);
        let exit = p
            .last_exit
            .as_ref()
            .map_or("-".to_string(), |e| e.description.clone());
        let health = p.health.as_ref().map_or("-".to_string(), |h| {
            format!("{} {}", if h.ok { "ok" } else { "FAIL" }, h.reason)
        });
        out.push_str(&format!(
            "{:<12} {:<9} {:>7} {:>9} {:>8}  {:<28} {}\n",
            p.name, p.state, pid, up, p.restarts, exit, health
        ));
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

pub fn command_main(verb: &str, args: &ProgramArg) -> anyhow::Result<ExitCode> {
    let (code, body) = request(
        &args.socket,
        hyper::Method::POST,
        &format!("/programs/{}/{verb}", args.name),
    )?;
    if code == 200 {
        print!("{body}");
        Ok(Exit::Clean.into())
    } else {
        eprint!("selfheal: {body}");
        Ok(Exit::Internal.into())
    }
}

/// `selfheal health [--live]`: exit 0 when the stack is ready (alive), else 1.
pub fn health_main(args: &HealthArgs) -> anyhow::Result<ExitCode> {
    let path = match (args.live, args.json) {
        (true, _) => "/livez",
        (false, true) => "/health",
        (false, false) => "/readyz",
    };
    match request(&args.socket, hyper::Method::GET, path) {
        Ok((200, body)) => {
            print!("{body}");
            Ok(Exit::Clean.into())
        }
        Ok((_, body)) => {
            print!("{body}");
            Ok(Exit::Internal.into())
        }
        Err(e) => {
            println!("{e:#}");
            Ok(Exit::Internal.into())
        }
    }
}

/// Prints a 200 answer's body, else the error on stderr; exit 0 / `failed`.
fn report(code: u16, body: &str, failed: Exit) -> ExitCode {
    if code == 200 {
        print!("{body}");
        Exit::Clean.into()
    } else {
        eprint!("selfheal: {body}");
        failed.into()
    }
}

/// `selfheal reload`: one line per program and what happened to it; exit 2
/// with every config error when the config is invalid (nothing changed).
pub fn reload_main(socket: &SocketArg) -> anyhow::Result<ExitCode> {
    let (code, body) = request(socket, hyper::Method::POST, "/reload")?;
    if code == 400 {
        eprint!("{body}");
        return Ok(Exit::Config.into());
    }
    if code != 200 {
        return Ok(report(code, &body, Exit::Internal));
    }
    let answer: serde_json::Value = serde_json::from_str(&body).context("unreadable answer")?;
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
    Ok(Exit::Clean.into())
}

/// `selfheal signal NAME SIG`.
pub fn signal_main(args: &SignalArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/programs/{}/signal?signal={}", args.name, args.signal);
    let (code, body) = request(&args.socket, hyper::Method::POST, &path)?;
    Ok(report(code, &body, Exit::Internal))
}

/// `selfheal scale NAME N`.
pub fn scale_main(args: &ScaleArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/programs/{}/scale?replicas={}", args.name, args.replicas);
    let (code, body) = request(&args.socket, hyper::Method::POST, &path)?;
    Ok(report(code, &body, Exit::Internal))
}
