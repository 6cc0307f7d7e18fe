//! The runtime side of programs with several processes: each program's
//! current config and held sockets ([`ServiceConfig`]), the slot of each new
//! instance, reload (re-read the config, apply the difference), `restart`,
//! `scale` and `signal` by name. The policy (what starts, what is retired,
//! surges, rollouts) is the pure stack's (`stack::instances`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use super::stack::{AdminVerb, Change, Service, StackInput};
use super::state::Policy;
use super::{sockets, AdminError, Slot, Supervisor};
use crate::admin::snapshot;
use crate::config::{self, Config, Program, RestartStrategy};

/// Held listen sockets with their addresses (as passed to every incarnation).
pub type Listen = Arc<Vec<(std::os::fd::OwnedFd, String)>>;

/// A program's config as its next process will get it.
#[derive(Clone)]
pub struct ServiceConfig {
    pub program: Arc<Program>,
    pub listen: Listen,
}

/// What a reload did to one program.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Applied {
    pub program: String,
    /// `unchanged`, `added`, `removed`, `restarting`, `scaled`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config has errors (the text lists all, with file:line:column).
    #[error("{0}")]
    Invalid(String),
    /// A new listen address could not be bound.
    #[error("{0}")]
    Bind(String),
    #[error("the supervisor was started without a config file: nothing to reload")]
    NoConfig,
    #[error("the supervisor is shutting down")]
    ShuttingDown,
}

/// The stack's rule for making instances of `p`.
pub fn service_of(p: &Program) -> Service {
    Service {
        name: Arc::from(p.name.as_str()),
        policy: Policy::of(p),
        forward: p.forward_signals.iter().map(|s| *s as i32).collect(),
        deps: p
            .depends_on
            .iter()
            .map(|d| (Arc::from(d.name.as_str()), d.condition))
            .collect(),
        replicas: p.replicas,
        surge: p.strategy() == RestartStrategy::Surge,
    }
}

/// Binds `p`'s listen addresses, reusing the sockets of `old` for addresses
/// it already holds (so a reload never meets its own socket as "in use").
pub fn bind_listen(p: &Program, old: Option<&Listen>) -> Result<Listen, String> {
    let mut out = Vec::with_capacity(p.listen.len());
    for addr in &p.listen {
        let name = addr.to_string();
        let held = old.and_then(|o| o.iter().find(|(_, n)| *n == name));
        let fd = match held {
            Some((fd, _)) => fd.try_clone().map_err(|e| format!("{name}: {e}"))?,
            None => sockets::bind(*addr)
                .map_err(|e| format!("cannot listen on {addr} for program {}: {e}", p.name))?,
        };
        out.push((fd, name));
    }
    Ok(Arc::new(out))
}

/// A fresh slot for an instance of `config`.
pub(crate) fn slot_of(config: &ServiceConfig, replica: u32) -> Slot {
    Slot {
        program: config.program.clone(),
        replica,
        generation: 0,
        probe: None,
        listen: config.listen.clone(),
        started_at_ms: None,
        spawned_at: Instant::now(),
        spawned_boot: std::time::Duration::ZERO,
        last_pgid: None,
        replacements: Default::default(),
        traffic: config
            .program
            .traffic_health
            .map(super::traffic::Window::new),
    }
}

/// What `name` designates: a whole program, or one of its instances
/// (`app#2`, or `app#0` for the first).
enum Named {
    Service(Arc<str>),
    Instance(usize),
}

impl Supervisor {
    fn seed(&self) -> u64 {
        snapshot::now_ms() ^ u64::from(std::process::id()) << 32
    }

    fn named(&self, name: &str) -> Option<Named> {
        if let Some(rule) = self.stack.service(name) {
            return Some(Named::Service(rule.name.clone()));
        }
        let (service, replica) = name.rsplit_once('#')?;
        let replica: u32 = replica.parse().ok()?;
        self.stack
            .live_instances(service)
            .into_iter()
            .find(|i| {
                self.stack
                    .members
                    .get(*i)
                    .is_some_and(|m| m.instance.replica == replica)
            })
            .map(Named::Instance)
    }

    /// An operator verb on a program (every instance; `restart` rolls) or on
    /// one instance.
    pub(super) fn admin(&mut self, verb: AdminVerb, name: &str) -> Result<String, AdminError> {
        if self.stack.is_stopping() {
            return Err(AdminError::ShuttingDown);
        }
        let named = self
            .named(name)
            .ok_or_else(|| AdminError::UnknownProgram(name.to_string()))?;
        let (service, members) = match named {
            Named::Service(s) => {
                let live = self.stack.live_instances(&s);
                (s, live)
            }
            Named::Instance(i) => {
                let s = self
                    .stack
                    .members
                    .get(i)
                    .map(|m| m.instance.service.clone())
                    .unwrap_or_else(|| Arc::from(name));
                (s, vec![i])
            }
        };
        match verb {
            AdminVerb::Restart => self.feed(StackInput::Apply(vec![Change::Roll {
                service: service.clone(),
                members: members.clone(),
            }])),
            _ => {
                for index in &members {
                    self.feed(StackInput::Admin {
                        index: *index,
                        verb,
                    });
                }
            }
        }
        let states: Vec<&str> = members
            .iter()
            .filter_map(|i| self.stack.members.get(*i))
            .map(|m| m.machine.state_name())
            .collect();
        Ok(format!("{name}: {}", states.join(", ")))
    }

    /// `selfheal scale NAME N`.
    pub(super) fn scale(&mut self, name: &str, replicas: u32) -> Result<String, AdminError> {
        if self.stack.is_stopping() {
            return Err(AdminError::ShuttingDown);
        }
        let service = match self.named(name) {
            Some(Named::Service(s)) => s,
            _ => return Err(AdminError::UnknownProgram(name.to_string())),
        };
        let before = self.stack.live_instances(&service).len();
        let seed = self.seed();
        self.feed(StackInput::Apply(vec![Change::Scale {
            service: service.clone(),
            replicas,
            seed,
        }]));
        Ok(format!("{name}: {before} → {replicas} replicas"))
    }

    /// Re-reads the config and applies the difference; an invalid config (or
    /// a new address that cannot be bound) changes nothing.
    pub(super) fn reload(&mut self) -> Result<Vec<Applied>, ReloadError> {
        if self.stack.is_stopping() {
            return Err(ReloadError::ShuttingDown);
        }
        let path = self.config_path.clone().ok_or(ReloadError::NoConfig)?;
        let new = config::load(&path).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let plan = self.plan(&new)?;
        let applied = plan.applied.clone();
        for (name, config) in plan.configs {
            self.configs.insert(name, config);
        }
        self.reloaded = true;
        // A removed program is forgotten: its held sockets close once its last
        // process (which holds them through its slot) is gone.
        for a in applied.iter().filter(|a| a.change == "removed") {
            self.configs.remove(a.program.as_str());
        }
        // Before the changes: new and restarted processes of a front get its channel.
        if let Err(e) = self.configure_channels() {
            let text = format!("reload: cannot open a state channel: {e}");
            self.publish(super::events::Record::text(None, text));
        }
        self.feed(StackInput::Apply(plan.changes));
        self.metrics.reloaded(&new.programs);
        // One line per program that changed, and one summary line (a reload of
        // 1000 unchanged programs is one line, not 1000).
        for a in applied.iter().filter(|a| a.change != "unchanged") {
            let text = match &a.detail {
                Some(d) => format!("{} by the reload ({d})", a.change),
                None => format!("{} by the reload", a.change),
            };
            self.publish(super::events::Record::text(
                Some(Arc::from(a.program.as_str())),
                text,
            ));
        }
        let unchanged = applied.iter().filter(|a| a.change == "unchanged").count();
        let changed = applied.len() - unchanged;
        let summary = format!("reload applied: {changed} changed, {unchanged} unchanged");
        self.publish(super::events::Record::text(None, summary));
        Ok(applied)
    }

    /// The changes `new` makes, with the sockets it needs already bound.
    fn plan(&self, new: &Config) -> Result<Plan, ReloadError> {
        let mut plan = Plan::default();
        let seed = self.seed();
        for p in &new.programs {
            let name: Arc<str> = Arc::from(p.name.as_str());
            let old = self.configs.get(&name);
            let same = |o: &ServiceConfig| {
                Program {
                    replicas: p.replicas,
                    ..(*o.program).clone()
                } == *p
            };
            let (change, detail) = match old {
                Some(o) if *o.program == *p => ("unchanged", None),
                Some(o) if same(o) => ("scaled", Some(format!("{} replicas", p.replicas))),
                Some(_) => ("restarting", None),
                None => ("added", None),
            };
            plan.applied.push(Applied {
                program: p.name.clone(),
                change,
                detail,
            });
            if change == "unchanged" {
                continue;
            }
            let listen = bind_listen(p, old.map(|o| &o.listen)).map_err(ReloadError::Bind)?;
            let config = ServiceConfig {
                program: Arc::new(p.clone()),
                listen,
            };
            plan.configs.push((name.clone(), config));
            let service = service_of(p);
            match change {
                "added" => plan.changes.push(Change::Add { service, seed }),
                "scaled" => plan.changes.push(Change::Update(service)),
                _ => {
                    plan.changes.push(Change::Update(service));
                    let members = self.stack.live_instances(&name);
                    plan.changes.push(Change::Roll {
                        service: name.clone(),
                        members,
                    });
                }
            }
            if change != "added" {
                plan.changes.push(Change::Scale {
                    service: name,
                    replicas: p.replicas,
                    seed,
                });
            }
        }
        for name in self.configs.keys() {
            let kept = new.programs.iter().any(|p| *p.name == **name);
            let main = self.configs.get(name).is_some_and(|c| c.program.main);
            if !kept && !main {
                plan.changes.push(Change::Remove(name.clone()));
                plan.applied.push(Applied {
                    program: name.to_string(),
                    change: "removed",
                    detail: None,
                });
            }
        }
        let s = &new.supervisor;
        plan.changes.push(Change::Settings {
            on_give_up: s.on_give_up,
            shutdown_timeout: s.shutdown_timeout,
        });
        Ok(plan)
    }
}

#[derive(Default)]
struct Plan {
    changes: Vec<Change>,
    configs: Vec<(Arc<str>, ServiceConfig)>,
    applied: Vec<Applied>,
}

/// The config file a reload reads, if the supervisor has one.
pub fn reload_path(config: &Config) -> Option<PathBuf> {
    (!config.path.as_os_str().is_empty()).then(|| config.path.clone())
}

/// Every program's config and sockets, bound once at start.
pub fn bind_all(config: &Config) -> Result<HashMap<Arc<str>, ServiceConfig>, String> {
    let mut out = HashMap::with_capacity(config.programs.len());
    for p in &config.programs {
        let listen = bind_listen(p, None)?;
        let program = Arc::new(p.clone());
        out.insert(
            Arc::from(p.name.as_str()),
            ServiceConfig { program, listen },
        );
    }
    Ok(out)
}
