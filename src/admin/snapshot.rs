//! The status snapshot: what the owner publishes after every change and what the
//! admin API, `selfheal status` and (later) metrics and the live page read.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub supervisor: SupervisorInfo,
    pub programs: Vec<ProgramStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SupervisorInfo {
    pub pid: u32,
    pub version: String,
    pub started_at_ms: u64,
    pub shutting_down: bool,
    /// Filled in when served.
    #[serde(default)]
    pub uptime_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProgramStatus {
    /// The instance's name: the program's (`app`), `app#N` for replica N, and
    /// `app#0` for the first when the program has more than one replica.
    pub name: String,
    /// The program (`[programs.NAME]`) it is a process of.
    #[serde(default)]
    pub program: String,
    /// Its replica number (`SELFHEAL_REPLICA`).
    #[serde(default)]
    pub replica: u32,
    /// Being replaced or removed: it is stopping for good (it drains).
    #[serde(default)]
    pub retiring: bool,
    /// The program's last `restart` (or changing reload): `running`, `done` or
    /// `failed` (a replacement never became ready; the rest were left as they were).
    #[serde(default)]
    pub rollout: Option<String>,
    /// waiting | starting | running | unready | suspended | stopping | backoff |
    /// stopped (by an operator) | exited (ended well, not to be restarted) | failed
    pub state: String,
    pub ready: bool,
    /// Why this program keeps the stack from being ready (`None`: it does not).
    #[serde(default)]
    pub problem: Option<String>,
    pub pid: Option<i32>,
    /// Spawn attempts of this program since the supervisor started (a failed
    /// exec counts: an incarnation that never ran). The CLI waits on it to
    /// tell the incarnation a `start`/`restart` made from the one before.
    #[serde(default)]
    pub incarnation: u64,
    /// Wall-clock start of the live process (ms since the epoch).
    pub started_at_ms: Option<u64>,
    /// Filled in when served.
    #[serde(default)]
    pub uptime_ms: Option<u64>,
    /// Restarts since the supervisor started.
    pub restarts: u64,
    /// Restarts counted in the restart-limit window.
    pub recent_restarts: usize,
    pub last_exit: Option<ExitInfo>,
    pub health: Option<HealthInfo>,
    /// What its last outage cost, for a program a front (`upstreams`) fronts:
    /// `{down_ms, held, replayed, shed}` (see `supervisor::channel`).
    #[serde(default)]
    pub last_restart: Option<crate::supervisor::channel::RestartCost>,
    /// Replacements of unhealthy incarnations by cause (`over_memory`,
    /// `traffic`) since the supervisor started.
    #[serde(default)]
    pub replacements_by_cause: std::collections::BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Shell convention: exit code, 128 + signal, 126/127 for exec failures.
    pub code: i32,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthInfo {
    pub ok: bool,
    pub reason: String,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Snapshot {
    /// Fills in the uptimes as of now.
    pub fn with_uptimes(mut self) -> Snapshot {
        let now = now_ms();
        self.supervisor.uptime_ms = now.saturating_sub(self.supervisor.started_at_ms);
        for p in &mut self.programs {
            p.uptime_ms = p.started_at_ms.map(|t| now.saturating_sub(t));
        }
        self
    }

    /// Every program that should run is running and ready: none has a
    /// [`ProgramStatus::problem`] (an operator stop, a crash, a give-up, a
    /// pending restart all are), and no shutdown is under way.
    pub fn all_ready(&self) -> bool {
        !self.supervisor.shutting_down && self.programs.iter().all(|p| p.problem.is_none())
    }

    /// Why the stack is not ready, one line per reason (empty when it is).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.supervisor.shutting_down {
            out.push("the supervisor is shutting down".to_string());
        }
        for p in &self.programs {
            if let Some(problem) = &p.problem {
                out.push(format!("{}: {problem}", p.name));
            }
        }
        out
    }
}
