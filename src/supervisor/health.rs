//! Health probes: `http`, `tcp`, `redis`, `exec`. One task per live process
//! probes on a schedule and sends each outcome (pass/fail, reason, latency) to
//! the owner, which feeds it to the state machine.
//!
//! Until the first pass the schedule starts fast (10 ms, doubling up to
//! `interval`) so that readiness — and the dependants waiting on it — follows
//! the program's real start-up time, not the probe interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::spawn::{self, Spec};
use super::state::{Pid, Termination};
use super::Msg;
use crate::config::{Health, Probe};

/// Exec-probe processes waiting for the reaper to deliver their status.
pub type ExecWaiters = Arc<Mutex<HashMap<Pid, oneshot::Sender<Termination>>>>;

const FIRST_PROBE: Duration = Duration::from_millis(10);

/// Starts probing one incarnation (`generation`) of program `index`.
pub fn start(
    index: usize,
    generation: u64,
    health: Health,
    tx: mpsc::UnboundedSender<Msg>,
    waiters: ExecWaiters,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut prober = Prober {
            conn: Conn::None,
            waiters,
        };
        let mut delay = FIRST_PROBE.min(health.interval);
        let mut passed = false;
        loop {
            tokio::time::sleep(delay).await;
            let started = Instant::now();
            let (ok, what) =
                match tokio::time::timeout(health.timeout, prober.probe(&health.probe)).await {
                    Ok(Ok(what)) => (true, what),
                    Ok(Err(why)) => (false, why),
                    Err(_) => {
                        prober.conn = Conn::None;
                        (
                            false,
                            format!("no answer within {}", super::state::human(health.timeout)),
                        )
                    }
                };
            let duration = started.elapsed();
            let reason = format!("{what} ({} ms)", duration.as_millis());
            if tx
                .send(Msg::Probe {
                    index,
                    generation,
                    ok,
                    reason,
                    duration,
                })
                .is_err()
            {
                break;
            }
            passed |= ok;
            delay = if passed {
                health.interval
            } else {
                (delay * 2).min(health.interval)
            };
        }
    })
    .abort_handle()
}

/// A connection kept between probes of the same incarnation.
enum Conn {
    None,
    Http(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Redis(redis::aio::MultiplexedConnection),
}

struct Prober {
    conn: Conn,
    waiters: ExecWaiters,
}

impl Prober {
    /// Ok(what passed) or Err(why it failed).
    async fn probe(&mut self, probe: &Probe) -> Result<String, String> {
        match probe {
            Probe::Tcp(addr) => {
                TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| format!("connect {addr}: {e}"))?;
                Ok(format!("connected to {addr}"))
            }
            Probe::Http { authority, path } => {
                // A kept-alive connection the program closed while idle is not a
                // failure of the program: retry once on a fresh connection.
                let reused = matches!(self.conn, Conn::Http(_));
                let mut result = self.http(authority, path).await;
                if result.is_err() {
                    self.conn = Conn::None;
                    if reused {
                        result = self.http(authority, path).await;
                    }
                }
                result
            }
            Probe::Redis(url) => {
                let result = self.redis(url).await;
                if result.is_err() {
                    self.conn = Conn::None;
                }
                result
            }
            Probe::Exec(argv) => exec(argv, &self.waiters).await,
        }
    }

    async fn http(&mut self, authority: &str, path: &str) -> Result<String, String> {
        let sender = match &mut self.conn {
            Conn::Http(sender) if sender.is_ready() => sender,
            _ => {
                let stream = TcpStream::connect(authority)
                    .await
                    .map_err(|e| format!("connect {authority}: {e}"))?;
                let _ = stream.set_nodelay(true);
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("http handshake: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                self.conn = Conn::Http(sender);
                match &mut self.conn {
                    Conn::Http(sender) => sender,
                    Conn::None | Conn::Redis(_) => return Err("connection lost".into()),
                }
            }
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "selfheal-probe")
            .body(Empty::new())
            .map_err(|e| format!("bad request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        // Drain the (small) body so the connection can be reused.
        let _ = http_body_util::BodyExt::collect(response.into_body()).await;
        if status.is_success() || status.is_redirection() {
            Ok(format!("GET {path}: {status}"))
        } else {
            Err(format!("GET {path}: {status}"))
        }
    }

    async fn redis(&mut self, url: &str) -> Result<String, String> {
        let conn = match &mut self.conn {
            Conn::Redis(conn) => conn,
            _ => {
                let client = redis::Client::open(url).map_err(|e| format!("redis url: {e}"))?;
                let conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| format!("connect {url}: {e}"))?;
                self.conn = Conn::Redis(conn);
                match &mut self.conn {
                    Conn::Redis(conn) => conn,
                    Conn::None | Conn::Http(_) => return Err("connection lost".into()),
                }
            }
        };
        let reply: String = redis::cmd("PING")
            .query_async(conn)
            .await
            .map_err(|e| format!("PING: {e}"))?;
        if reply == "PONG" {
            Ok("PING: PONG".into())
        } else {
            Err(format!("PING: unexpected reply {reply:?}"))
        }
    }
}

/// Kills an exec probe's process group if the probe is abandoned (timeout,
/// program stopped); the reaper still collects its status.
struct KillOnDrop(Pid);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

async fn exec(argv: &[String], waiters: &ExecWaiters) -> Result<String, String> {
    let (tx, rx) = oneshot::channel();
    let pid = {
        // Held across spawn and insert so the reaper cannot see the pid before
        // its waiter is registered.
        let mut map = waiters
            .lock()
            .map_err(|_| "probe table poisoned".to_string())?;
        // No pidfd: reaped by the SIGCHLD drain, which hands the exit to its waiter.
        let spec = Spec::plain(argv);
        let child = spawn::spawn(&spec).map_err(|t| t.to_string())?;
        map.insert(child.pid, tx);
        child.pid
    };
    let guard = KillOnDrop(pid);
    let how = rx.await.map_err(|_| "probe process lost".to_string())?;
    std::mem::forget(guard); // it exited: nothing to kill
    let program = argv.first().map_or("", String::as_str);
    if how.success() {
        Ok(format!("{program} exited 0"))
    } else {
        Err(format!("{program} {how}"))
    }
}
