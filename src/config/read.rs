//! Reads the spanned TOML tree into a [`Config`], collecting every problem.
//!
//! serde's `deny_unknown_fields` stops at the first error; operators want them all
//! at once. So the document is parsed into toml's spanned tree (`DeTable`) and each
//! table is read through [`Fields`], which records which keys were consumed and
//! reports the rest as unknown.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::Diagnostics;
use super::expand::expand;
use super::model::*;
use super::MAX_REPLICAS;

type Value<'i> = Spanned<DeValue<'i>>;

/// Longest duration accepted anywhere in the config.
/// Largest `log_ring`: a program's ring must never be able to exhaust memory by
/// a typo.
const MAX_LOG_RING: u64 = 1 << 30;

/// Largest `max_memory` (1 PiB): anything above is a typo.
const MAX_MEMORY: u64 = 1 << 50;

const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Reading context: diagnostics plus the variable lookup used for `${VAR}`.
pub struct Reader<'s, 'e> {
    pub diags: Diagnostics<'s>,
    lookup: &'e dyn Fn(&str) -> Option<std::ffi::OsString>,
    /// The program that said `main = true` first.
    seen_main: Option<String>,
}

/// A signal by name, with or without `SIG`, any case, surrounding blanks
/// ignored: `"SIGTERM"`, `"term"`, `" Hup "`. Real-time signals have no name here.
pub fn signal_named(text: &str) -> Option<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Signal::from_str(&format!("SIG{name}")).ok()
}

/// Every key a `[programs.NAME]` table may have.
pub(crate) const PROGRAM_KEYS: &[&str] = &[
    "command",
    "env",
    "workdir",
    "user",
    "group",
    "restart",
    "backoff",
    "restart_limit",
    "stop_signal",
    "stop_timeout",
    "forward_signals",
    "main",
    "replicas",
    "restart_strategy",
    "log_file",
    "depends_on",
    "health",
    "listen",
    "upstreams",
    "max_memory",
    "traffic_health",
    "metrics",
];

/// The keys of one table, with bookkeeping of what was read.
struct Fields<'t, 'i> {
    table: &'t DeTable<'i>,
    path: String,
    allowed: &'static [&'static str],
}

impl<'t, 'i> Fields<'t, 'i> {
    fn new(table: &'t DeTable<'i>, path: &str, allowed: &'static [&'static str]) -> Self {
        Fields {
            table,
            path: path.to_string(),
            allowed,
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key_text(key).into_owned()
        } else {
            format!("{}.{}", self.path, key_text(key))
        }
    }

    fn get(&mut self, key: &str) -> Option<&'t Value<'i>> {
        self.table.get(key)
    }

    /// Reports every key that was not read and is not allowed.
    fn finish(self, r: &mut Reader) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if !self.allowed.contains(&name) {
                let expected = self.allowed.join(", ");
                r.diags.error(
                    key.span(),
                    &self.field(name),
                    format!("unknown field (expected one of: {expected})"),
                );
            }
        }
    }
}

impl<'s, 'e> Reader<'s, 'e> {
    pub fn new(source: &'s str, lookup: &'e dyn Fn(&str) -> Option<std::ffi::OsString>) -> Self {
        Reader {
            diags: Diagnostics::new(source),
            lookup,
            seen_main: None,
        }
    }

    fn table<'t, 'i>(&mut self, v: &'t Value<'i>, field: &str) -> Option<&'t DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.diags.error(
                    v.span(),
                    field,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn string(&mut self, v: &Value, field: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => match expand(s, self.lookup) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.diags.error(v.span(), field, e);
                    None
                }
            },
            other => {
                self.diags.error(
                    v.span(),
                    field,
                    format!("expected a string, found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, v: &Value, field: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.diags.error(
                    v.span(),
                    field,
                    format!("expected true or false, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// An array of strings, each with its span.
    fn strings(&mut self, v: &Value, field: &str) -> Option<Vec<(String, Span)>> {
        let DeValue::Array(items) = v.get_ref() else {
            self.diags.error(
                v.span(),
                field,
                format!(
                    "expected an array of strings, found {}",
                    v.get_ref().type_str()
                ),
            );
            return None;
        };
        let out: Vec<Option<(String, Span)>> = items
            .iter()
            .map(|item| self.string(item, field).map(|s| (s, item.span())))
            .collect();
        out.into_iter().collect()
    }

    /// An argv array: not empty, a non-empty first element, no NUL anywhere
    /// (execve takes C strings). Returns the words and the span of the first.
    fn argv(&mut self, v: &Value, field: &str, what: &str) -> Option<(Vec<String>, Span)> {
        let words = self.strings(v, field)?;
        let Some((first, first_span)) = words.first() else {
            self.diags
                .error(v.span(), field, format!("{what} must name a program"));
            return None;
        };
        if first.is_empty() {
            self.diags.error(
                first_span.clone(),
                field,
                format!("{what} must name a program"),
            );
        }
        let first_span = first_span.clone();
        let mut ok = !first.is_empty();
        for (word, span) in &words {
            ok &= self.no_nul(word, span.clone(), field);
        }
        ok.then(|| (words.into_iter().map(|(w, _)| w).collect(), first_span))
    }

    /// Reports a NUL byte in `text`, which cannot pass through execve, chdir or
    /// getpwnam (all take C strings). Returns whether the text is clean.
    fn no_nul(&mut self, text: &str, span: Span, field: &str) -> bool {
        if text.contains('\0') {
            self.diags.error(
                span,
                field,
                "contains a NUL byte (\\u0000), which cannot be passed to a program",
            );
            return false;
        }
        true
    }

    fn duration(&mut self, v: &Value, field: &str) -> Option<Duration> {
        let text = self.string(v, field)?;
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d <= MAX_DURATION => Some(d),
            Ok(_) => {
                // Deadlines are `now + duration`: bounded so they can never overflow.
                self.diags.error(
                    v.span(),
                    field,
                    format!("duration {text:?} is longer than 365 days"),
                );
                None
            }
            Err(e) => {
                self.diags.error(
                    v.span(),
                    field,
                    format!(
                        "invalid duration {text:?}: {e} (write e.g. \"250ms\", \"10s\", \"1m\")"
                    ),
                );
                None
            }
        }
    }

    /// A size in bytes: `"1MiB"`, `"512KiB"`, `"2MB"`, `"0"`, or an integer
    /// of bytes; at most `max`.
    fn size(&mut self, v: &Value, field: &str, max: u64) -> Option<u64> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| "a size cannot be negative".to_string()),
            DeValue::String(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| format!("invalid size {text:?}: {e}")),
            _ => Err("expected a size such as \"1MiB\" or a number of bytes".to_string()),
        };
        match parsed {
            Ok(n) if n <= max => Some(n),
            Ok(_) => {
                let max = bytesize::ByteSize::b(max).display().iec();
                self.diags
                    .error(v.span(), field, format!("larger than the maximum {max}"));
                None
            }
            Err(e) => {
                self.diags.error(
                    v.span(),
                    field,
                    format!("{e} (write e.g. \"1MiB\", \"512KiB\")"),
                );
                None
            }
        }
    }

    /// An integer ≥ `min`, or a string that expands to one (so a count can
    /// come from the environment: `replicas = "${APP_REPLICAS:-1}"`).
    fn count(&mut self, v: &Value, field: &str, min: i64) -> Option<i64> {
        if !matches!(v.get_ref(), DeValue::String(_)) {
            return self.integer(v, field, min);
        }
        let text = self.string(v, field)?;
        match text.trim().parse::<i64>() {
            Ok(n) if n >= min => Some(n),
            _ => {
                self.diags.error(
                    v.span(),
                    field,
                    format!("expected an integer ≥ {min}, found {text:?}"),
                );
                None
            }
        }
    }

    fn integer(&mut self, v: &Value, field: &str, min: i64) -> Option<i64> {
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(n) if n >= min => Some(n),
            _ => {
                self.diags
                    .error(v.span(), field, format!("expected an integer ≥ {min}"));
                None
            }
        }
    }

    fn float(
        &mut self,
        v: &Value,
        field: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => None,
        };
        match parsed {
            Some(x) if range.contains(&x) => Some(x),
            _ => {
                self.diags.error(
                    v.span(),
                    field,
                    format!(
                        "expected a number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, v: &Value, field: &str, choices: &[(&str, T)]) -> Option<T> {
        let text = self.string(v, field)?;
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.diags.error(
            v.span(),
            field,
            format!("invalid value {text:?} (expected {})", names.join(" | ")),
        );
        None
    }

    fn signal(&mut self, v: &Value, field: &str) -> Option<Signal> {
        let text = self.string(v, field)?;
        match signal_named(&text) {
            Some(sig) if sig != Signal::SIGKILL && sig != Signal::SIGSTOP => Some(sig),
            _ => {
                self.diags.error(v.span(), field, format!("invalid stop signal {text:?} (e.g. \"SIGTERM\", \"INT\"; not KILL or STOP)"));
                None
            }
        }
    }

    /// `forward_signals = ["HUP", "USR1"]`: signals the supervisor passes on to
    /// this program's process group. The stop signals (TERM, INT, QUIT) stop the
    /// whole stack instead, and KILL, STOP and CHLD cannot be forwarded.
    fn forward_signals(&mut self, v: &Value, field: &str) -> Vec<Signal> {
        let Some(names) = self.strings(v, field) else {
            return Vec::new();
        };
        let mut signals = Vec::new();
        for (text, span) in names {
            let reserved = [
                Signal::SIGKILL,
                Signal::SIGSTOP,
                Signal::SIGCHLD,
                Signal::SIGTERM,
                Signal::SIGINT,
                Signal::SIGQUIT,
            ];
            match signal_named(&text) {
                Some(sig) if !reserved.contains(&sig) => signals.push(sig),
                _ => self.diags.error(
                    span,
                    field,
                    format!("{text:?} cannot be forwarded (e.g. \"HUP\", \"USR1\", \"WINCH\"; TERM, INT and QUIT stop the stack; not KILL, STOP or CHLD)"),
                ),
            }
        }
        signals
    }

    /// An environment variable name: not empty, no `=` (the separator of
    /// `NAME=value` in the environment block) and no NUL. POSIX allows any other
    /// byte, so nothing else is refused.
    fn env_name(&mut self, name: &str, span: Span, field: &str) -> bool {
        let problem = if name.is_empty() {
            "an environment variable needs a name"
        } else if name.contains('=') {
            "an environment variable name cannot contain '=' (it separates name from value)"
        } else if name.contains('\0') {
            "an environment variable name cannot contain a NUL byte"
        } else {
            return true;
        };
        self.diags.error(span, field, problem);
        false
    }

    /// Reads the whole document: the settings (`None` when that table is not a
    /// table) and every program that could be read, in file order, with the
    /// spans of its fields. Cross-program checks are left to `graph`.
    pub fn document(&mut self, root: &DeTable) -> Document {
        let mut top = Fields::new(root, "", &["supervisor", "programs"]);
        let mut settings_spans = SettingsSpans::default();
        let supervisor = match top.get("supervisor") {
            Some(v) => self
                .table(v, "supervisor")
                .map(|t| self.settings(t, &mut settings_spans)),
            None => Some(self.settings(&DeTable::new(), &mut settings_spans)),
        };
        let mut programs = Vec::new();
        match top.get("programs") {
            Some(v) => {
                if let Some(table) = self.table(v, "programs") {
                    let mut entries: Vec<_> = table.iter().collect();
                    entries.sort_by_key(|(k, _)| k.span().start); // file order
                    for (key, value) in entries {
                        let name: &str = key.get_ref();
                        let field = format!("programs.{}", key_text(name));
                        if !valid_name(name) {
                            self.diags.error(
                                key.span(),
                                &field,
                                "program names use letters, digits, '-' and '_' only",
                            );
                        }
                        if let Some(t) = self.table(value, &field) {
                            let mut spans = Spans {
                                key: key.span(),
                                ..Spans::default()
                            };
                            if let Some(p) = self.program(name, t, &field, &mut spans) {
                                programs.push((p, spans));
                            }
                        }
                    }
                    if table.is_empty() {
                        self.diags
                            .error(v.span(), "programs", "no programs defined");
                    }
                }
            }
            None => self.diags.error(
                0..0,
                "programs",
                "no programs defined (add a [programs.NAME] table)",
            ),
        }
        top.finish(self);
        Document {
            supervisor,
            settings_spans,
            programs,
        }
    }

    fn settings(&mut self, t: &DeTable, spans: &mut SettingsSpans) -> Settings {
        let mut f = Fields::new(
            t,
            "supervisor",
            &[
                "shutdown_timeout",
                "on_give_up",
                "admin_socket",
                "admin_listen",
                "admin_token_file",
                "admin_public",
                "log_ring",
            ],
        );
        let mut settings = Settings::default();
        if let Some(v) = f.get("shutdown_timeout") {
            settings.shutdown_timeout = self
                .duration(v, &f.field("shutdown_timeout"))
                .unwrap_or(settings.shutdown_timeout);
        }
        if let Some(v) = f.get("on_give_up") {
            let choices = [("exit", GiveUp::Exit), ("stay", GiveUp::Stay)];
            settings.on_give_up = self
                .choice(v, &f.field("on_give_up"), &choices)
                .unwrap_or(settings.on_give_up);
        }
        if let Some(v) = f.get("admin_socket") {
            let field = f.field("admin_socket");
            if let Some(s) = self.string(v, &field) {
                if self.no_nul(&s, v.span(), &field) {
                    settings.admin_socket = PathBuf::from(s);
                }
            }
        }
        if let Some(v) = f.get("log_ring") {
            let field = f.field("log_ring");
            if let Some(bytes) = self.size(v, &field, MAX_LOG_RING) {
                settings.log_ring = bytes as usize;
            }
        }
        if let Some(v) = f.get("admin_listen") {
            let field = f.field("admin_listen");
            if let Some(addr) = self.string(v, &field) {
                match parse_addr(&addr) {
                    Some(a) => settings.admin_listen = Some(a),
                    None => self.diags.error(
                        v.span(),
                        &field,
                        format!(
                            "invalid address {addr:?} (expected IP:PORT, e.g. \"127.0.0.1:9100\")"
                        ),
                    ),
                }
            }
        }
        if let Some(v) = f.get("admin_token_file") {
            let field = f.field("admin_token_file");
            if let Some(s) = self.string(v, &field) {
                if s.is_empty() {
                    self.diags.error(v.span(), &field, "names no file");
                } else if self.no_nul(&s, v.span(), &field) {
                    settings.admin_token_file = Some(PathBuf::from(s));
                    spans.admin_token_file = v.span();
                }
            }
        }
        if let Some(v) = f.get("admin_public") {
            let field = f.field("admin_public");
            for (name, span) in self.strings(v, &field).unwrap_or_default() {
                match PublicRoute::ALL.iter().find(|(n, _)| *n == name) {
                    Some((_, route)) if !settings.admin_public.contains(route) => {
                        settings.admin_public.push(*route)
                    }
                    Some(_) => {}
                    None => self.diags.error(
                        span,
                        &field,
                        format!(
                            "unknown route {name:?} (expected \"metrics\" | \"livez\" | \"readyz\")"
                        ),
                    ),
                }
            }
        }
        // Without a token, anyone who can reach the port can stop every program:
        // only a loopback address (this host's users) may go without one.
        if let Some(addr) = settings.admin_listen {
            if !addr.ip().is_loopback() && settings.admin_token_file.is_none() {
                let key = key_span(t, "admin_listen");
                self.diags.error(
                    key,
                    &f.field("admin_listen"),
                    format!(
                        "{addr} is not a loopback address: set admin_token_file (a bearer \
                         token every request must carry), or listen on 127.0.0.1"
                    ),
                );
            }
        }
        f.finish(self);
        settings
    }

    fn program(
        &mut self,
        name: &str,
        t: &DeTable,
        path: &str,
        spans: &mut Spans,
    ) -> Option<Program> {
        let mut f = Fields::new(t, path, PROGRAM_KEYS);
        let command = match f.get("command") {
            Some(v) => match self.argv(v, &f.field("command"), "command") {
                Some((argv, span)) => {
                    spans.command = Some(span);
                    argv
                }
                None => Vec::new(),
            },
            None => {
                self.diags.error(
                    t_span(t),
                    &f.field("command"),
                    "missing (e.g. command = [\"redis-server\"])",
                );
                Vec::new()
            }
        };
        let mut program = Program::new(name, command);
        if let Some(v) = f.get("env") {
            let field = f.field("env");
            if let Some(table) = self.table(v, &field) {
                for (key, value) in table.iter() {
                    let k: &str = key.get_ref();
                    let var_field = format!("{field}.{}", key_text(k));
                    let key_ok = self.env_name(k, key.span(), &var_field);
                    if let Some(val) = self.string(value, &var_field) {
                        if self.no_nul(&val, value.span(), &var_field) && key_ok {
                            program.env.push((k.to_string(), val));
                        }
                    }
                }
            }
        }
        // Whether the directory, user and group exist is the host's business
        // (`preflight`); here only what no host could accept.
        if let Some(v) = f.get("workdir") {
            let field = f.field("workdir");
            program.workdir = self
                .string(v, &field)
                .filter(|s| !s.is_empty() && self.no_nul(s, v.span(), &field))
                .map(PathBuf::from);
            spans.workdir = v.span();
        }
        for key in ["user", "group"] {
            if let Some(v) = f.get(key) {
                let field = f.field(key);
                let value = self
                    .string(v, &field)
                    .filter(|s| !s.is_empty() && self.no_nul(s, v.span(), &field));
                if key == "user" {
                    program.user = value;
                    spans.user = v.span();
                } else {
                    program.group = value;
                    spans.group = v.span();
                }
            }
        }
        if let Some(v) = f.get("restart") {
            let choices = [
                ("always", RestartPolicy::Always),
                ("on-failure", RestartPolicy::OnFailure),
                ("never", RestartPolicy::Never),
            ];
            program.restart = self
                .choice(v, &f.field("restart"), &choices)
                .unwrap_or(program.restart);
        }
        if let Some(v) = f.get("backoff") {
            program.backoff = self.backoff(v, &f.field("backoff"));
        }
        if let Some(v) = f.get("restart_limit") {
            program.restart_limit = self.restart_limit(v, &f.field("restart_limit"));
        }
        if let Some(v) = f.get("stop_signal") {
            program.stop_signal = self
                .signal(v, &f.field("stop_signal"))
                .unwrap_or(program.stop_signal);
        }
        if let Some(v) = f.get("stop_timeout") {
            program.stop_timeout = self
                .duration(v, &f.field("stop_timeout"))
                .unwrap_or(program.stop_timeout);
        }
        if let Some(v) = f.get("main") {
            let field = f.field("main");
            program.main = self.boolean(v, &field).unwrap_or(false);
            if program.main && self.seen_main.replace(name.to_string()).is_some() {
                self.diags
                    .error(v.span(), &field, "only one program can be the main program");
            }
            // Like `-- CMD`, the main program runs once and its end ends the
            // stack with its code; an explicit `restart` still wins.
            if program.main && f.get("restart").is_none() {
                program.restart = RestartPolicy::Never;
            }
        }
        if let Some(v) = f.get("forward_signals") {
            program.forward_signals = self.forward_signals(v, &f.field("forward_signals"));
        }
        if let Some(v) = f.get("replicas") {
            let field = f.field("replicas");
            if let Some(n) = self.count(v, &field, 1) {
                match u32::try_from(n).ok().filter(|n| *n <= MAX_REPLICAS) {
                    Some(n) => program.replicas = n,
                    None => self.diags.error(
                        v.span(),
                        &field,
                        format!("at most {MAX_REPLICAS} replicas"),
                    ),
                }
            }
        }
        if let Some(v) = f.get("log_file") {
            program.log_file = self.log_file(v, &f.field("log_file"));
        }
        if let Some(v) = f.get("restart_strategy") {
            let choices = [
                ("surge", Some(RestartStrategy::Surge)),
                ("stop-first", Some(RestartStrategy::StopFirst)),
            ];
            program.restart_strategy = self
                .choice(v, &f.field("restart_strategy"), &choices)
                .flatten();
        }
        if let Some(v) = f.get("depends_on") {
            program.depends_on = self.depends_on(v, &f.field("depends_on"), name, spans);
        }
        if let Some(v) = f.get("health") {
            program.health = self.health(v, &f.field("health"), spans);
        }
        if let Some(v) = f.get("listen") {
            let field = f.field("listen");
            if let DeValue::Array(items) = v.get_ref() {
                let max = crate::supervisor::sockets::MAX_LISTEN;
                if items.len() > max {
                    // The child gets them as fd 3, 4, …; past the reserved
                    // range they could clobber descriptors std still needs.
                    self.diags.error(
                        v.span(),
                        &field,
                        format!(
                            "{} listen addresses; a program can inherit at most {max} (fd 3 to {})",
                            items.len(),
                            max + 2
                        ),
                    );
                }
                for item in items.iter() {
                    if let Some(addr) = self.string(item, &field) {
                        match parse_addr(&addr) {
                            Some(a) => {
                                program.listen.push(a);
                                spans.listen.push(item.span());
                            }
                            None => self.diags.error(
                                item.span(),
                                &field,
                                format!("invalid listen address {addr:?} (expected IP:PORT)"),
                            ),
                        }
                    }
                }
            } else {
                self.diags.error(
                    v.span(),
                    &field,
                    "expected an array of \"ADDR:PORT\" strings",
                );
            }
        }
        if let Some(v) = f.get("max_memory") {
            let field = f.field("max_memory");
            match self.size(v, &field, MAX_MEMORY) {
                Some(0) => self.diags.error(v.span(), &field, "must be greater than 0"),
                Some(bytes) => program.max_memory = Some(bytes),
                None => {}
            }
        }
        if let Some(v) = f.get("traffic_health") {
            program.traffic_health = self.traffic_health(v, &f.field("traffic_health"));
        }
        if let Some(v) = f.get("upstreams") {
            self.upstreams(v, &f.field("upstreams"), name, &mut program, spans);
        }
        if let Some(v) = f.get("metrics") {
            let field = f.field("metrics");
            if let Some(url) = self.string(v, &field) {
                match parse_http_url(&url) {
                    Some((authority, path)) => {
                        program.metrics = Some(MetricsUrl { authority, path });
                    }
                    None => self.diags.error(
                        v.span(),
                        &field,
                        format!("invalid URL {url:?} (expected http://HOST:PORT/PATH)"),
                    ),
                }
            }
        }
        f.finish(self);
        Some(program)
    }

    fn log_file(&mut self, v: &Value, path: &str) -> Option<LogFile> {
        let t = self.table(v, path)?;
        let mut f = Fields::new(t, path, &["path", "max_size", "keep"]);
        let file = match f.get("path") {
            Some(v) => {
                let field = f.field("path");
                self.string(v, &field)
                    .filter(|s| self.no_nul(s, v.span(), &field))
                    .map(PathBuf::from)
            }
            None => {
                self.diags
                    .error(v.span(), &f.field("path"), "missing: the file to write");
                None
            }
        };
        let mut max_size = 10 * 1024 * 1024;
        if let Some(v) = f.get("max_size") {
            let field = f.field("max_size");
            match self.size(v, &field, u64::MAX) {
                Some(0) => self.diags.error(v.span(), &field, "must be more than 0"),
                Some(n) => max_size = n,
                None => {}
            }
        }
        let mut keep = 5;
        if let Some(v) = f.get("keep") {
            let field = f.field("keep");
            if let Some(n) = self.integer(v, &field, 0) {
                keep = u32::try_from(n.min(1000)).unwrap_or(1000);
            }
        }
        f.finish(self);
        Some(LogFile {
            path: file?,
            max_size,
            keep,
        })
    }

    fn backoff(&mut self, v: &Value, path: &str) -> Backoff {
        let mut b = Backoff::default();
        let Some(t) = self.table(v, path) else {
            return b;
        };
        let mut f = Fields::new(
            t,
            path,
            &["initial", "max", "multiplier", "jitter", "reset_after"],
        );
        if let Some(v) = f.get("initial") {
            b.initial = self.duration(v, &f.field("initial")).unwrap_or(b.initial);
        }
        if let Some(v) = f.get("max") {
            b.max = self.duration(v, &f.field("max")).unwrap_or(b.max);
        }
        if let Some(v) = f.get("multiplier") {
            b.multiplier = self
                .float(v, &f.field("multiplier"), 1.0..=100.0)
                .unwrap_or(b.multiplier);
        }
        if let Some(v) = f.get("jitter") {
            b.jitter = self
                .float(v, &f.field("jitter"), 0.0..=1.0)
                .unwrap_or(b.jitter);
        }
        if let Some(v) = f.get("reset_after") {
            b.reset_after = self
                .duration(v, &f.field("reset_after"))
                .unwrap_or(b.reset_after);
        }
        if b.initial > b.max {
            self.diags.error(
                v.span(),
                path,
                format!("initial ({:?}) is larger than max ({:?})", b.initial, b.max),
            );
        }
        f.finish(self);
        b
    }

    fn traffic_health(&mut self, v: &Value, path: &str) -> Option<TrafficHealth> {
        let t = self.table(v, path)?;
        let mut h = TrafficHealth::default();
        let mut f = Fields::new(t, path, &["errors", "window", "ratio"]);
        if let Some(v) = f.get("errors") {
            h.errors = self
                .integer(v, &f.field("errors"), 1)
                .map_or(h.errors, |n| n as u64);
        }
        if let Some(v) = f.get("window") {
            let field = f.field("window");
            match self.duration(v, &field) {
                Some(d) if d.is_zero() => {
                    self.diags.error(v.span(), &field, "must be greater than 0")
                }
                Some(d) => h.window = d,
                None => {}
            }
        }
        if let Some(v) = f.get("ratio") {
            h.ratio = self
                .float(v, &f.field("ratio"), 0.0..=1.0)
                .unwrap_or(h.ratio);
        }
        f.finish(self);
        Some(h)
    }

    fn restart_limit(&mut self, v: &Value, path: &str) -> RestartLimit {
        let mut l = RestartLimit::default();
        let Some(t) = self.table(v, path) else {
            return l;
        };
        let mut f = Fields::new(t, path, &["max", "window"]);
        if let Some(v) = f.get("max") {
            l.max = self
                .integer(v, &f.field("max"), 0)
                .map_or(l.max, |n| n.min(u32::MAX as i64) as u32);
        }
        if let Some(v) = f.get("window") {
            l.window = self.duration(v, &f.field("window")).unwrap_or(l.window);
        }
        f.finish(self);
        l
    }

    /// `upstreams = ["app", …]`: names only here; whether they exist is
    /// [`super::graph`]'s check.
    fn upstreams(
        &mut self,
        v: &Value,
        field: &str,
        own: &str,
        program: &mut Program,
        spans: &mut Spans,
    ) {
        let DeValue::Array(items) = v.get_ref() else {
            self.diags
                .error(v.span(), field, "expected an array of program names");
            return;
        };
        if program.listen.len() >= crate::supervisor::sockets::MAX_LISTEN {
            self.diags.error(
                v.span(),
                field,
                "the state channel needs a descriptor after the listen sockets: \
                 at most 15 listen addresses with upstreams",
            );
        }
        for item in items.iter() {
            let Some(name) = self.string(item, field) else {
                continue;
            };
            if name == own {
                self.diags
                    .error(item.span(), field, "a program cannot front itself");
            } else if program.upstreams.contains(&name) {
                self.diags
                    .error(item.span(), field, format!("{name:?} is listed twice"));
            } else {
                program.upstreams.push(name);
                spans.upstreams.push(item.span());
            }
        }
    }

    fn depends_on(
        &mut self,
        v: &Value,
        path: &str,
        own: &str,
        spans: &mut Spans,
    ) -> Vec<Dependency> {
        let Some(t) = self.table(v, path) else {
            return Vec::new();
        };
        let mut deps = Vec::new();
        for (key, value) in t.iter() {
            let name: &str = key.get_ref();
            let field = format!("{path}.{}", key_text(name));
            if name == own {
                self.diags
                    .error(key.span(), &field, "a program cannot depend on itself");
                continue;
            }
            let choices = [
                ("started", Condition::Started),
                ("healthy", Condition::Healthy),
            ];
            if let Some(condition) = self.choice(value, &field, &choices) {
                deps.push(Dependency {
                    name: name.to_string(),
                    condition,
                });
                spans.deps.push(key.span());
            }
        }
        deps
    }

    fn health(&mut self, v: &Value, path: &str, spans: &mut Spans) -> Option<Health> {
        let t = self.table(v, path)?;
        let mut f = Fields::new(
            t,
            path,
            &[
                "http",
                "tcp",
                "redis",
                "exec",
                "interval",
                "timeout",
                "failures",
                "start_period",
            ],
        );
        let mut probes = Vec::new();
        if let Some(v) = f.get("http") {
            let field = f.field("http");
            if let Some(url) = self.string(v, &field) {
                match parse_http_url(&url) {
                    Some((authority, path)) => probes.push(Probe::Http { authority, path }),
                    None => self.diags.error(
                        v.span(),
                        &field,
                        format!("invalid URL {url:?} (expected http://HOST:PORT/PATH)"),
                    ),
                }
            }
        }
        if let Some(v) = f.get("tcp") {
            let field = f.field("tcp");
            if let Some(addr) = self.string(v, &field) {
                if addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_none()
                {
                    self.diags.error(
                        v.span(),
                        &field,
                        format!("invalid address {addr:?} (expected HOST:PORT)"),
                    );
                }
                probes.push(Probe::Tcp(addr));
            }
        }
        if let Some(v) = f.get("redis") {
            let field = f.field("redis");
            if let Some(url) = self.string(v, &field) {
                if redis::parse_redis_url(&url).is_none() {
                    self.diags.error(
                        v.span(),
                        &field,
                        format!("invalid Redis URL {url:?} (expected redis://HOST:PORT)"),
                    );
                }
                probes.push(Probe::Redis(url));
            }
        }
        if let Some(v) = f.get("exec") {
            let field = f.field("exec");
            if let Some((argv, span)) = self.argv(v, &field, "exec probe") {
                probes.push(Probe::Exec(argv));
                spans.probe_command = Some(span);
            }
        }
        let mut health = Health {
            probe: Probe::Tcp(String::new()),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            failures: 3,
            start_period: Duration::ZERO,
        };
        if let Some(v) = f.get("interval") {
            health.interval = self
                .duration(v, &f.field("interval"))
                .unwrap_or(health.interval);
        }
        if let Some(v) = f.get("timeout") {
            health.timeout = self
                .duration(v, &f.field("timeout"))
                .unwrap_or(health.timeout);
        }
        if let Some(v) = f.get("failures") {
            health.failures = self
                .integer(v, &f.field("failures"), 1)
                .map_or(health.failures, |n| n.min(1000) as u32);
        }
        if let Some(v) = f.get("start_period") {
            health.start_period = self
                .duration(v, &f.field("start_period"))
                .unwrap_or(health.start_period);
        }
        if health.interval.is_zero() {
            self.diags
                .error(v.span(), &f.field("interval"), "must be greater than 0");
        }
        f.finish(self);
        if probes.len() != 1 {
            self.diags.error(
                v.span(),
                path,
                "needs exactly one probe: http, tcp, redis or exec",
            );
            return None;
        }
        health.probe = probes.pop()?;
        Some(health)
    }
}

/// A byte range of the source text.
pub type Span = std::ops::Range<usize>;

/// What [`Reader::document`] read, before the cross-program checks.
pub struct Document {
    pub supervisor: Option<Settings>,
    pub settings_spans: SettingsSpans,
    pub programs: Vec<(Program, Spans)>,
}

/// Where a program's cross-checked fields stand in the file (empty ranges,
/// `0..0`, for fields that are absent).
#[derive(Debug, Default, Clone)]
pub struct Spans {
    /// The `[programs.NAME]` key.
    pub key: Span,
    /// `command[0]`, when the command was read.
    pub command: Option<Span>,
    /// The exec probe's `exec[0]`, when there is one.
    pub probe_command: Option<Span>,
    pub workdir: Span,
    pub user: Span,
    pub group: Span,
    /// One per entry of `Program::depends_on`, same order.
    pub deps: Vec<Span>,
    /// One per entry of `Program::listen`, same order.
    pub listen: Vec<Span>,
    /// One per entry of `Program::upstreams`, same order.
    pub upstreams: Vec<Span>,
}

/// Where the `[supervisor]` fields that the host checks look at stand in the file.
#[derive(Debug, Default, Clone)]
pub struct SettingsSpans {
    /// The `admin_token_file` value (`0..0` when absent).
    pub admin_token_file: Span,
}

/// The span of `key` itself in `t` (`0..0` when absent).
fn key_span(t: &DeTable, key: &str) -> Span {
    t.iter()
        .find(|(k, _)| {
            let name: &str = k.get_ref();
            name == key
        })
        .map_or(0..0, |(k, _)| k.span())
}

fn t_span(t: &DeTable) -> Span {
    t.iter().next().map_or(0..0, |(k, _)| k.span())
}

/// A key as it may be written in a dotted field path: bare when TOML allows
/// it bare, else quoted with escapes (so a NUL or a newline in a key cannot
/// garble the diagnostic line).
pub fn key_text(key: &str) -> std::borrow::Cow<'_, str> {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.into()
    } else {
        format!("{key:?}").into()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `IP:PORT`, or `localhost:PORT` (resolved once, here).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (host, _) = text.rsplit_once(':')?;
    if host == "localhost" {
        return text.to_socket_addrs().ok()?.next();
    }
    None
}

/// `http://authority/path` → (authority, path).
fn parse_http_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (_, port) = authority.rsplit_once(':').unwrap_or((authority, "80"));
    port.parse::<u16>().ok()?;
    (!authority.is_empty()).then(|| (authority.to_string(), path.to_string()))
}
