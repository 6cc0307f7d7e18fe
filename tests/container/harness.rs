//! Harness: the `docker` CLI, one guarded container per test, the process
//! table inside a container, a load generator, and deadlines instead of sleeps.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::common::wait_for;
use crate::http::{self, Response};

/// How long a container may take to serve its first 2xx.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout of the test client (the proxy may hold requests).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The image under test: `SELFHEAL_IMAGE`, default `selfheal:test`.
pub fn image() -> String {
    std::env::var("SELFHEAL_IMAGE").unwrap_or_else(|_| "selfheal:test".to_owned())
}

/// Runs `docker ARGS`; panics if the CLI cannot be started at all.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `docker {}`: {e}", args.join(" ")))
}

/// Runs `docker ARGS` and returns its trimmed stdout; panics with stderr on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    if !out.status.success() {
        panic!(
            "`docker {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Checks once per test binary that the engine answers and the image exists.
/// Fails loudly otherwise: these tests never skip.
pub fn preflight() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let version = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run the docker CLI: {e}"))?;
        if !version.status.success() {
            return Err(format!(
                "Docker engine unreachable: {}",
                String::from_utf8_lossy(&version.stderr).trim()
            ));
        }
        let inspect = docker(&["image", "inspect", "--format", "{{.Id}}", &image()]);
        if !inspect.status.success() {
            return Err(format!(
                "image {} not found; build it first (ci/container-test.sh, or \
                 `docker build --network host -t {} .`)",
                image(),
                image()
            ));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("container tests cannot run: {e}");
    }
}

fn unique(test: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "selfheal-ct-{}-{}-{}",
        test.replace('_', "-"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container owned by one test: `docker rm -f` and its volume removed on
/// drop; when the test is failing, its logs and state are printed first.
pub struct Container {
    pub name: String,
    pub volume: String,
}

/// Options for [`Container::run`] beyond the defaults (detached, a named
/// volume on /data, port 8080 published on a free loopback port).
#[derive(Default)]
pub struct RunOpts<'a> {
    /// Extra `docker run` arguments, before the image.
    pub args: Vec<String>,
    /// Arguments after the image (the supervisor's command line).
    pub cmd: Vec<&'a str>,
    /// Do not mount the named volume on /data.
    pub no_volume: bool,
}

impl Container {
    /// `docker run -d` of the image under test with a fresh named volume.
    pub fn run(test: &str, opts: RunOpts<'_>) -> Container {
        preflight();
        let name = unique(test);
        let volume = format!("{name}-data");
        let image = image();
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            name.clone(),
            "--label".into(),
            "selfheal-container-test=1".into(),
            "-p".into(),
            "127.0.0.1::8080".into(),
        ];
        if !opts.no_volume {
            args.push("-v".into());
            args.push(format!("{volume}:/data"));
        }
        args.extend(opts.args);
        args.push(image);
        args.extend(opts.cmd.iter().map(|s| s.to_string()));
        // The guard exists before `docker run`, so a half-created container
        // or volume is removed as well.
        let container = Container { name, volume };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        docker_ok(&refs);
        container
    }

    /// The host address Docker published container port 8080 on (it changes
    /// across `docker start`).
    pub fn addr(&self) -> SocketAddr {
        wait_for(
            &format!("a published port for 8080 of {}", self.name),
            Duration::from_secs(10),
            || {
                let out = docker(&["port", &self.name, "8080/tcp"]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let addr = text.lines().find_map(|l| l.trim().parse().ok());
                if addr.is_none() && !self.is_running() {
                    panic!("{} exited (code {})", self.name, self.exit_code());
                }
                addr
            },
        )
    }

    /// `docker inspect -f FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "-f", format, &self.name])
    }

    pub fn is_running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    pub fn exit_code(&self) -> i64 {
        self.inspect("{{.State.ExitCode}}")
            .parse()
            .expect("ExitCode is a number")
    }

    pub fn restart_count(&self) -> u64 {
        self.inspect("{{.RestartCount}}")
            .parse()
            .expect("RestartCount is a number")
    }

    pub fn health(&self) -> String {
        self.inspect("{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}")
    }

    /// Everything the container printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        let out = docker(&["logs", &self.name]);
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    /// `docker exec NAME ARGS`, stdout on success, panics otherwise.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        docker_ok(&full)
    }

    /// Waits until the container has stopped running.
    pub fn wait_exited(&self, timeout: Duration) {
        wait_for(&format!("{} to exit", self.name), timeout, || {
            (!self.is_running()).then_some(())
        });
    }

    /// `GET path` through the published port.
    pub fn get(&self, path: &str) -> Result<Response, String> {
        http::get(self.addr(), path, REQUEST_TIMEOUT)
    }

    /// Waits for the first 2xx on `GET /` and returns it.
    pub fn wait_serving(&self) -> Response {
        let addr = self.addr();
        let what = format!("a 2xx on GET / of {} ({addr})", self.name);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = match http::get(addr, "/", Duration::from_secs(5)) {
                Ok(r) if r.is_success() => return r,
                Ok(r) => format!("status {}", r.status),
                Err(e) => e,
            };
            if !self.is_running() {
                panic!("{what}: the container exited (code {})", self.exit_code());
            }
            if Instant::now() > deadline {
                panic!("timed out after {START_TIMEOUT:?} waiting for {what}; last: {last}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until Docker reports the container `healthy`.
    pub fn wait_healthy(&self) {
        wait_for(
            &format!("{} to be healthy", self.name),
            START_TIMEOUT,
            || (self.health() == "healthy").then_some(()),
        );
    }

    /// The process table inside the container, read from /proc.
    pub fn procs(&self) -> Vec<Proc> {
        // stat and argv (NUL → \x1f) of every process, one line each; a
        // process may vanish between the glob and the read.
        let script = r#"for p in /proc/[0-9]*; do
            s=$(cat "$p/stat" 2>/dev/null) || continue
            c=$(tr '\000' '\037' < "$p/cmdline" 2>/dev/null)
            printf '%s\t%s\n' "$s" "$c"
        done"#;
        self.exec(&["sh", "-c", script])
            .lines()
            .filter_map(Proc::parse)
            .collect()
    }

    /// The direct child of PID 1 that runs `program` ("redis", "app" or "proxy").
    pub fn program_pid(&self, program: &str) -> Option<u32> {
        self.procs()
            .into_iter()
            .find(|p| p.ppid == 1 && p.state != 'Z' && p.is_program(program))
            .map(|p| p.pid)
    }

    /// `redis-cli GET selfheal:visits` inside the container.
    pub fn counter(&self) -> u64 {
        let v = self.exec(&["redis-cli", "--raw", "GET", "selfheal:visits"]);
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("selfheal:visits is not a number: {v:?}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let state = docker(&["inspect", "-f", "{{json .State}}", &self.name]);
            eprintln!(
                "---- {} state: {}",
                self.name,
                String::from_utf8_lossy(&state.stdout).trim()
            );
            eprintln!("---- {} logs:\n{}---- end of logs", self.name, self.logs());
        }
        let _ = docker(&["rm", "-f", "-v", &self.name]);
        let _ = docker(&["volume", "rm", "-f", &self.volume]);
    }
}

/// One line of the container's process table.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub state: char,
    pub comm: String,
    pub argv: Vec<String>,
}

impl Proc {
    fn parse(line: &str) -> Option<Proc> {
        let (stat, cmd) = line.split_once('\t').unwrap_or((line, ""));
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let pid = stat[..open].trim().parse().ok()?;
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next()?.chars().next()?;
        let ppid = rest.next()?.parse().ok()?;
        let argv = cmd
            .split('\x1f')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Some(Proc {
            pid,
            ppid,
            state,
            comm,
            argv,
        })
    }

    /// Whether this is the supervisor's program `program`: "redis" is
    /// redis-server, "app" / "proxy" are `selfheal app` / `selfheal proxy`.
    pub fn is_program(&self, program: &str) -> bool {
        let arg0 = self.argv.first().map(String::as_str).unwrap_or("");
        let arg1 = self.argv.get(1).map(String::as_str).unwrap_or("");
        match program {
            "redis" => arg0.starts_with("redis-server") || self.comm == "redis-server",
            _ => arg0.ends_with("selfheal") && arg1 == program,
        }
    }

    pub fn cmdline(&self) -> String {
        self.argv.join(" ")
    }
}

/// Load: `threads` clients sending `GET /` back to back until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    handles: Vec<JoinHandle<()>>,
}

/// What a load run saw.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// The first failures, for the panic message.
    pub errors: Vec<String>,
}

impl Load {
    pub fn start(addr: SocketAddr, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let handles = (0..threads)
            .map(|_| {
                let (stop, ok, failed, errors) =
                    (stop.clone(), ok.clone(), failed.clone(), errors.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = match http::get(addr, "/", REQUEST_TIMEOUT) {
                            Ok(r) if r.is_success() => Ok(()),
                            Ok(r) => Err(format!("status {}", r.status)),
                            Err(e) => Err(e),
                        };
                        match outcome {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut errors = errors.lock().unwrap();
                                if errors.len() < 20 {
                                    errors.push(e);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            errors,
            handles,
        }
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests have succeeded than now.
    pub fn wait_more_ok(&self, n: u64, timeout: Duration) {
        let target = self.ok() + n;
        wait_for(&format!("{n} more 2xx answers under load"), timeout, || {
            (self.ok() >= target).then_some(())
        });
    }

    /// Stops the clients, waits for their last requests, reports.
    pub fn finish(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            h.join().expect("load thread panicked");
        }
        LoadReport {
            ok: self.ok(),
            failed: self.failed(),
            errors: self.errors.lock().unwrap().clone(),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::Proc;

    #[test]
    fn parses_proc_lines() {
        let p = Proc::parse(
            "17 (selfheal) S 1 17 17 0 -1 4194560 0\t/usr/local/bin/selfheal\x1fapp\x1f--chaos\x1f",
        )
        .unwrap();
        assert_eq!((p.pid, p.ppid, p.state), (17, 1, 'S'));
        assert!(p.is_program("app"));
        assert!(!p.is_program("proxy"));
        let z = Proc::parse("23 (sleep) Z 1 23 23 0 -1\t").unwrap();
        assert_eq!((z.state, z.argv.len()), ('Z', 0));
        let r = Proc::parse("9 (redis-server) S 1 9 9\tredis-server 127.0.0.1:6379\x1f").unwrap();
        assert!(r.is_program("redis"));
        let odd = Proc::parse("5 (a) b) R 1 5 5\tx").unwrap();
        assert_eq!((odd.comm.as_str(), odd.ppid), ("a) b", 1));
    }
}
