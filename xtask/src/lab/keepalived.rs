//! A real keepalived (Debian's 2.2.7) in the LB's namespace, to see how it
//! runs scripts: `vrrp_script` entries tracked by one `vrrp_instance` on the
//! LB's [`LB_IFACE`], their results read from its log. The instance can
//! also follow `track_file`s ([`KeepalivedConfig::track_file`]), as with
//! `vipcheck daemon --track-dir`: with weight 0, a file holding non-zero
//! puts it in FAULT, back to 0 takes it out again:
//!
//! ```text
//! Wed Nov 25 15:29:22 2026: (lab): tracked file NAME now FAULT state
//! Wed Nov 25 15:29:22 2026: (lab) Entering FAULT STATE
//! Wed Nov 25 15:29:23 2026: (lab): tracked file NAME leaving FAULT state
//! Wed Nov 25 15:29:23 2026: (lab) Entering BACKUP STATE
//! ```
//!
//! These kernels have no IPVS, so keepalived's healthchecker child cannot
//! run `MISC_CHECK`; `vrrp_script` runs a script the same way (fork, exec,
//! exit status, `timeout`) and logs each change of its result:
//!
//! ```text
//! Wed Nov 25 13:17:52 2026: VRRP_Script(good) succeeded
//! Wed Nov 25 13:17:52 2026: Script `bad` now returning 1
//! Wed Nov 25 13:17:52 2026: VRRP_Script(bad) failed (exited with status 1)
//! Wed Nov 25 13:20:00 2026: VRRP_Script(hang) timed_out
//! ```
//!
//! keepalived logs a result when it changes, not at every run: the first
//! result of each script shows within a few milliseconds of the start,
//! later ones only when they differ. A script whose program does not exist
//! is disabled by keepalived and never gives a result: [`Keepalived::start`]
//! fails then. The script's own output goes nowhere (keepalived sends it to
//! `/dev/null`).
//!
//! ```no_run
//! use std::time::Duration;
//! use xtask::lab::{KeepalivedConfig, Lab, Role, VrrpScript};
//! let lab = Lab::up(Role::Backup)?;
//! let keepalived = lab.keepalived(&KeepalivedConfig::new([
//!     VrrpScript::new("good", "/bin/true", 1),
//!     VrrpScript::new("bad", "/bin/sh -c 'exit 3'", 1),
//! ]))?;
//! let line = keepalived.wait_for("VRRP_Script(bad) failed", Duration::from_secs(3));
//! assert!(line.unwrap().ends_with("failed (exited with status 3)"));
//! drop(keepalived); // stops it, before the lab goes
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! What it does to the lab: the instance has no virtual address (keepalived
//! accepts that with a warning), so the LB's addresses never change. It
//! joins 224.0.0.18 (IGMP reports on the lab's network) and, if every
//! script succeeds, it becomes MASTER after about 3.6 s (no other router
//! on the link) and then multicasts a VRRP advertisement (IP protocol 112)
//! every second. While a script fails, the instance never becomes MASTER
//! and sends nothing but that IGMP join. Nothing else changes (no sysctl),
//! and every file it writes is in the lab's temporary directory.
//!
//! How it ends: keepalived is started in a process group of its own. The
//! guard sends SIGTERM to the parent, which stops its VRRP child and the
//! scripts running (about 1 s), and SIGKILL to the whole group and to every
//! process under the parent after 5 s. The parent is reaped only once
//! nothing of its group is left, so its pid, the group's id, cannot be
//! given to another process meanwhile.

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::{LB_IFACE, Lab, netns, process::signal, warn_on_error};

const KEEPALIVED: &str = "/usr/sbin/keepalived";

/// How long keepalived may take to start (it logs `Startup complete`).
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long keepalived may take to stop after SIGTERM before its whole
/// process group is killed (it takes about 1 s).
const GRACE: Duration = Duration::from_secs(5);
/// How long SIGKILLed processes may take to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the reader may take to see the end of the output once every
/// process has ended.
const EOF_TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(5);

/// The line keepalived's VRRP process logs once it runs.
const READY_LINE: &str = "Startup complete";
/// Lines that mean the configuration does not do what was asked: a script
/// that will never run, or a part keepalived did not understand.
const REFUSALS: [&str; 5] = [
    "Disabling track script",
    "Unknown keyword",
    "(Line ",
    ": Line ",
    "has no configuration to run",
];

/// One `vrrp_script`: keepalived runs `command` every `interval_secs`
/// seconds (`fall 1`, `rise 1`: one run changes the result), kills it after
/// `timeout_secs` (then logs `VRRP_Script(NAME) timed_out`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpScript {
    /// Letters, digits, `_`, `-` and `.`; unique in a configuration.
    pub name: String,
    /// A command line, split by keepalived on blanks; single quotes group
    /// words (`/bin/sh -c 'exit 3'`). A program without a `/` is looked up
    /// in `PATH`. No double quote, backslash or control character.
    pub command: String,
    /// At least 1.
    pub interval_secs: u32,
    /// At least 1; [`VrrpScript::DEFAULT_TIMEOUT_SECS`] unless set.
    pub timeout_secs: u32,
}

impl VrrpScript {
    /// Long enough for a check with vipcheck's default `-t 1000` and a cold
    /// attach; keepalived skips the runs due meanwhile.
    pub const DEFAULT_TIMEOUT_SECS: u32 = 3;

    pub fn new(name: impl Into<String>, command: impl Into<String>, interval_secs: u32) -> Self {
        VrrpScript {
            name: name.into(),
            command: command.into(),
            interval_secs,
            timeout_secs: Self::DEFAULT_TIMEOUT_SECS,
        }
    }

    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = secs;
        self
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            valid_name(&self.name),
            "vrrp_script name {:?}: only letters, digits, '_', '-' and '.'",
            self.name
        );
        ensure!(
            !self.command.trim().is_empty(),
            "vrrp_script {}: empty command",
            self.name
        );
        ensure!(
            !self
                .command
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control()),
            "vrrp_script {}: command {:?} has a double quote, a backslash or a control \
             character (group words with single quotes)",
            self.name,
            self.command
        );
        ensure!(
            self.interval_secs >= 1 && self.timeout_secs >= 1,
            "vrrp_script {}: interval and timeout must be at least 1 s",
            self.name
        );
        Ok(())
    }
}

/// One `track_file`: keepalived watches `path` (inotify on its
/// directory) and reads the number in it. With `weight` 0, non-zero is a
/// failure (the instance tracking it enters FAULT) and 0, or a missing
/// file, is OK; another weight times the value is added to the priority.
///
/// keepalived drops a track file whose directory does not exist when it
/// starts: create the directory first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    /// Letters, digits, `_`, `-` and `.`; unique in a configuration.
    pub name: String,
    /// An absolute path without double quotes, backslashes or control
    /// characters.
    pub path: PathBuf,
    /// -254 to 254 (what a `vrrp_instance` accepts).
    pub weight: i32,
}

impl TrackFile {
    fn validate(&self) -> Result<()> {
        ensure!(
            valid_name(&self.name),
            "track_file name {:?}: only letters, digits, '_', '-' and '.'",
            self.name
        );
        let path_ok = self.path.is_absolute()
            && self
                .path
                .to_str()
                .is_some_and(|p| !p.chars().any(|c| c == '"' || c == '\\' || c.is_control()));
        ensure!(
            path_ok,
            "track_file {}: path {:?} must be absolute, without a double quote, a backslash \
             or a control character",
            self.name,
            self.path
        );
        ensure!(
            (-254..=254).contains(&self.weight),
            "track_file {}: weight {} is not in -254..=254",
            self.name,
            self.weight
        );
        Ok(())
    }
}

/// What keepalived runs: the scripts and track files, tracked by one
/// `vrrp_instance`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepalivedConfig {
    pub scripts: Vec<VrrpScript>,
    pub track_files: Vec<TrackFile>,
    /// Leave `enable_script_security` out of `global_defs` (keepalived
    /// then warns "SECURITY VIOLATION" and runs a symlinked script under
    /// the link's own path; with it, under the path the link resolves to).
    pub without_script_security: bool,
}

impl KeepalivedConfig {
    pub fn new(scripts: impl IntoIterator<Item = VrrpScript>) -> Self {
        KeepalivedConfig {
            scripts: scripts.into_iter().collect(),
            ..KeepalivedConfig::default()
        }
    }

    /// Without `enable_script_security` (see
    /// [`KeepalivedConfig::without_script_security`]).
    pub fn without_script_security(mut self) -> Self {
        self.without_script_security = true;
        self
    }

    /// Adds a `track_file NAME { file PATH weight WEIGHT }` block, tracked
    /// by the instance (see [`TrackFile`]).
    pub fn track_file(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        weight: i32,
    ) -> Self {
        self.track_files.push(TrackFile {
            name: name.into(),
            path: path.into(),
            weight,
        });
        self
    }

    /// The text of `keepalived.conf`, with router id `router_id` and VRRP
    /// router id `vrid` (1-255). Fails on an invalid or duplicate script
    /// or track file.
    pub fn text(&self, router_id: &str, vrid: u8) -> Result<String> {
        ensure!(vrid >= 1, "virtual_router_id must be 1-255");
        for (i, script) in self.scripts.iter().enumerate() {
            script.validate()?;
            ensure!(
                !self.scripts[..i].iter().any(|s| s.name == script.name),
                "two vrrp_scripts named {}",
                script.name
            );
        }
        for (i, file) in self.track_files.iter().enumerate() {
            file.validate()?;
            ensure!(
                !self.track_files[..i].iter().any(|f| f.name == file.name),
                "two track_files named {}",
                file.name
            );
        }
        // No SNMP or DBus: keepalived enables them only when asked to.
        // Script security on, scripts run as root: keepalived then runs
        // them without complaint (it refuses only scripts that a non-root
        // user could replace).
        let security = if self.without_script_security {
            ""
        } else {
            "    enable_script_security\n"
        };
        let mut text = format!(
            "global_defs {{\n    router_id {router_id}\n{security}    script_user root\n}}\n"
        );
        for s in &self.scripts {
            text += &format!(
                "vrrp_script {} {{\n    script \"{}\"\n    interval {}\n    timeout {}\n    \
                 fall 1\n    rise 1\n}}\n",
                s.name, s.command, s.interval_secs, s.timeout_secs
            );
        }
        for f in &self.track_files {
            text += &format!(
                "track_file {} {{\n    file \"{}\"\n    weight {}\n}}\n",
                f.name,
                f.path.display(),
                f.weight
            );
        }
        // No virtual_ipaddress: the LB's addresses never change.
        text += &format!(
            "vrrp_instance lab {{\n    state BACKUP\n    interface {LB_IFACE}\n    \
             virtual_router_id {vrid}\n    priority 100\n    advert_int 1\n"
        );
        if !self.scripts.is_empty() {
            text += "    track_script {\n";
            for s in &self.scripts {
                text += &format!("        {}\n", s.name);
            }
            text += "    }\n";
        }
        if !self.track_files.is_empty() {
            text += "    track_file {\n";
            for f in &self.track_files {
                text += &format!("        {}\n", f.name);
            }
            text += "    }\n";
        }
        text += "}\n";
        Ok(text)
    }

    /// Writes `keepalived.conf` (see [`KeepalivedConfig::text`]) to `path`.
    pub fn write(&self, path: &Path, router_id: &str, vrid: u8) -> Result<()> {
        fs::write(path, self.text(router_id, vrid)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A name keepalived reads as one word: letters, digits, `_`, `-`, `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

/// keepalived's log line without its timestamp:
/// `Wed Nov 25 13:17:52 2026: VRRP_Script(good) succeeded` →
/// `VRRP_Script(good) succeeded`.
pub fn log_message(line: &str) -> &str {
    // `%a %b %e %T %Y: `, 26 bytes.
    match (line.get(..26), line.get(26..)) {
        (Some(stamp), Some(message)) if stamp.ends_with(": ") && stamp.as_bytes()[19] == b' ' => {
            message
        }
        _ => line,
    }
}

/// What [`Keepalived::wait_for`] looks for: a substring (`&str`, `String`)
/// or a predicate on the whole line (`Fn(&str) -> bool`).
pub trait LinePattern {
    fn matches_line(&self, line: &str) -> bool;
}

impl LinePattern for &str {
    fn matches_line(&self, line: &str) -> bool {
        line.contains(*self)
    }
}

impl LinePattern for String {
    fn matches_line(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
}

impl<F: Fn(&str) -> bool> LinePattern for F {
    fn matches_line(&self, line: &str) -> bool {
        self(line)
    }
}

/// The output of keepalived, read line by line.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    /// End of output: every writer has closed it.
    ended: bool,
}

impl Log {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self, pipe: std::io::PipeReader) {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    self.lock().lines.push(line);
                    self.changed.notify_all();
                }
            }
        }
        self.lock().ended = true;
        self.changed.notify_all();
    }

    /// The first line that matches, waiting for new lines until `deadline`
    /// or the end of the output.
    fn wait_for(&self, pattern: &dyn LinePattern, deadline: Instant) -> Option<String> {
        let mut state = self.lock();
        let mut seen = 0;
        loop {
            if let Some(line) = state.lines[seen..].iter().find(|l| pattern.matches_line(l)) {
                return Some(line.clone());
            }
            seen = state.lines.len();
            let now = Instant::now();
            if state.ended || now >= deadline {
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the output ended, at most `timeout`; whether it did.
    fn wait_ended(&self, timeout: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |s| !s.ended)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.ended
    }
}

/// A keepalived running in a lab's LB namespace, started by
/// [`Keepalived::start`] or [`Lab::keepalived`]. Dropping it (at the
/// latest when the test ends or panics, always before its lab) stops it
/// and every process it started.
pub struct Keepalived<'lab> {
    child: Child,
    log: Arc<Log>,
    reader: Option<JoinHandle<()>>,
    dir: PathBuf,
    /// Set once stopped and reaped.
    status: Option<ExitStatus>,
    _lab: std::marker::PhantomData<&'lab Lab>,
}

/// How a keepalived ended ([`Keepalived::stop`]).
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// Its whole output, down to `Stopped Keepalived v2.2.7 (...)` when it
    /// ended by itself.
    pub lines: Vec<String>,
}

impl<'lab> Keepalived<'lab> {
    /// Writes the configuration and starts `keepalived -n -l -D -G -P` in the
    /// LB's namespace (through `nsenter --net`), with its configuration, pid
    /// files and working directory in `<lab dir>/keepalived-<n>/`, its
    /// stdout and stderr read line by line. Returns once keepalived logs
    /// `Startup complete`; fails, with its output, if it exits, refuses part
    /// of the configuration (a script it disables) or does not start within
    /// 5 s.
    pub fn start(lab: &'lab Lab, config: &KeepalivedConfig) -> Result<Keepalived<'lab>> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        ensure!(
            Path::new(KEEPALIVED).exists(),
            "no {KEEPALIVED}: `cargo xtask setup` installs keepalived"
        );
        let dir = lab.dir.join(format!("keepalived-{n}"));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let conf = dir.join("keepalived.conf");
        // Distinct ids, so that two keepalived of one lab do not take each
        // other's advertisements for their own router's.
        let vrid = u8::try_from(n % 255 + 1).expect("1-255");
        config.write(&conf, &format!("vck-{}-{n}", lab.id), vrid)?;

        let (reader, writer) = std::io::pipe().context("cannot make a pipe")?;
        let mut cmd = netns::command(lab.lb_ns(), KEEPALIVED);
        // -n: no fork (the process we start is keepalived's parent), -l:
        // log to stdout, -D: detailed, -G: not to syslog, -P: VRRP only.
        cmd.args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        let spawned = cmd.spawn();
        // The command holds our copies of the pipe's write end: without
        // them, the reader sees the end once keepalived's processes end.
        drop(cmd);
        let child = spawned.with_context(|| format!("cannot start {KEEPALIVED}"))?;
        let log = Arc::new(Log::default());
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || log.read(reader))
        };
        // From here on, dropping `keepalived` on an error stops it.
        let mut keepalived = Keepalived {
            child,
            log,
            reader: Some(reader),
            dir,
            status: None,
            _lab: std::marker::PhantomData,
        };
        keepalived.wait_ready(&conf)?;
        Ok(keepalived)
    }

    fn wait_ready(&mut self, conf: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let lines = self.lines();
            if let Some(refusal) = lines
                .iter()
                .find(|l| REFUSALS.iter().any(|r| l.contains(r)))
            {
                bail!(
                    "keepalived refused part of {}: {}\n{}\nits output:\n{}",
                    conf.display(),
                    log_message(refusal),
                    fs::read_to_string(conf).unwrap_or_default(),
                    messages(&lines)
                );
            }
            if lines.iter().any(|l| log_message(l) == READY_LINE) {
                return Ok(());
            }
            if exited(self.child.id())? {
                let status = self.stop_now()?;
                bail!(
                    "keepalived exited at once ({status}); its output:\n{}",
                    messages(&self.lines())
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "keepalived did not log `{READY_LINE}` within {READY_TIMEOUT:?}; its output:\n{}",
                    messages(&lines)
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Pid of keepalived's parent process (the one started).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Pid of its VRRP child, which runs the scripts, as its pid file says.
    pub fn vrrp_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join("vrrp.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The processes running now: the parent, its VRRP child and the
    /// scripts running at the moment.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid()];
        pids.extend(descendants(self.pid()).into_iter().map(|(pid, _)| pid));
        pids
    }

    /// Everything keepalived wrote so far (stdout and stderr), one entry a
    /// line, timestamps included (see [`log_message`]).
    pub fn lines(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// The first line so far or to come that contains `pattern` (a `&str`)
    /// or for which it is true (a closure), waiting at most `timeout`.
    /// `None` once the timeout has passed, or at once when keepalived's
    /// output has ended.
    pub fn wait_for(&self, pattern: impl LinePattern, timeout: Duration) -> Option<String> {
        self.log.wait_for(&pattern, Instant::now() + timeout)
    }

    /// Stops keepalived now (as the drop does) and returns how it ended
    /// with its whole output.
    pub fn stop(mut self) -> std::io::Result<Stopped> {
        let status = self.stop_now()?;
        Ok(Stopped {
            status,
            lines: self.lines(),
        })
    }

    /// SIGTERM to the parent; after [`GRACE`], SIGKILL to its group and to
    /// every process under it. Then SIGKILL to whatever is left of the
    /// group or of the processes that ran at the start (scripts are in
    /// process groups of their own); then reaps the parent. Idempotent.
    fn stop_now(&mut self) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let leader = self.child.id();
        // The parent is not reaped before the end of this function, so its
        // pid (and so the group's id) is still ours.
        let before = descendants(leader);
        if !exited(leader)? {
            signal(leader, libc::SIGTERM);
        }
        let deadline = Instant::now() + GRACE;
        while !exited(leader)? && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if !exited(leader)? {
            for (pid, _) in descendants(leader) {
                signal(pid, libc::SIGKILL);
            }
            kill_group(leader);
        }
        let deadline = Instant::now() + KILL_TIMEOUT;
        loop {
            let group = group_members(leader);
            let left: Vec<u32> = before
                .iter()
                .filter(|&&(pid, start)| stat(pid).is_some_and(|s| s.live() && s.start == start))
                .map(|&(pid, _)| pid)
                .collect();
            if exited(leader)? && group.is_empty() && left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "keepalived {leader}: processes {group:?} {left:?} survive SIGKILL"
                )));
            }
            if !group.is_empty() {
                kill_group(leader);
            }
            for pid in left {
                signal(pid, libc::SIGKILL);
            }
            std::thread::sleep(POLL);
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        if self.log.wait_ended(EOF_TIMEOUT)
            && let Some(reader) = self.reader.take()
        {
            let _ = reader.join();
        }
        Ok(status)
    }
}

impl Drop for Keepalived<'_> {
    fn drop(&mut self) {
        warn_on_error(self.stop_now().map(drop).context("cannot stop keepalived"));
    }
}

/// The lines without their timestamps, indented, for an error message;
/// without the banner (version, kernel, command line and its
/// continuations).
fn messages(lines: &[String]) -> String {
    const BANNER: [&str; 3] = ["Starting Keepalived", "Running on", "Command line"];
    lines
        .iter()
        .map(|l| log_message(l))
        .filter(|m| !m.starts_with(' ') && !BANNER.iter().any(|b| m.starts_with(b)))
        .map(|m| format!("    {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the child `pid` has exited, without reaping it.
fn exited(pid: u32) -> std::io::Result<bool> {
    // SAFETY: waitid fills the zeroed siginfo; WNOWAIT leaves the child
    // waitable, so that std's Child reaps it later.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_PID, pid, &mut info, flags) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(info.si_pid() != 0)
    }
}

/// SIGKILL to process group `pgid`; callers hold its leader unreaped.
fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: plain syscall; the group id is the pid of our unreaped
        // child, which no other process or group can have.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
}

/// What `/proc/PID/stat` tells of a process.
struct Stat {
    state: u8,
    ppid: u32,
    pgrp: u32,
    /// Start time, in clock ticks after boot: with the pid, names a
    /// process for good.
    start: u64,
}

impl Stat {
    /// Neither a zombie nor dead: still running its program.
    fn live(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may hold anything, `)` included: the fields start
    // after the last one.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 3 (state), 4 (ppid), 5 (pgrp) and 22 (starttime) of proc(5).
    Some(Stat {
        state: *fields.first()?.as_bytes().first()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Every process (pid and stat) of this machine.
fn all_processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            Some((pid, stat(pid)?))
        })
        .collect()
}

/// The live processes under `root` (children, their children...), with
/// their start times.
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let all = all_processes();
    let mut found: Vec<(u32, u64)> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, stat) in &all {
            if stat.ppid == parent && stat.live() && !found.iter().any(|(p, _)| p == pid) {
                found.push((*pid, stat.start));
                parents.push(*pid);
            }
        }
    }
    found
}

/// The live processes of group `pgid` other than its leader.
fn group_members(pgid: u32) -> Vec<u32> {
    all_processes()
        .into_iter()
        .filter(|(pid, stat)| *pid != pgid && stat.pgrp == pgid && stat.live())
        .map(|(pid, _)| pid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_scripts() -> KeepalivedConfig {
        KeepalivedConfig::new([
            VrrpScript::new("good", "/bin/true", 1),
            VrrpScript::new("bad", "/bin/sh -c 'exit 3'", 2).timeout(5),
        ])
    }

    #[test]
    fn config_has_a_script_block_each_tracked_by_the_instance() {
        let text = two_scripts().text("vck-1-0-0", 7).unwrap();
        assert!(text.starts_with(
            "global_defs {\n    router_id vck-1-0-0\n    enable_script_security\n    \
             script_user root\n}\n"
        ));
        assert!(text.contains(
            "vrrp_script good {\n    script \"/bin/true\"\n    interval 1\n    timeout 3\n    \
             fall 1\n    rise 1\n}\n"
        ));
        assert!(text.contains(
            "vrrp_script bad {\n    script \"/bin/sh -c 'exit 3'\"\n    interval 2\n    \
             timeout 5\n"
        ));
        assert!(text.ends_with(
            "vrrp_instance lab {\n    state BACKUP\n    interface eth0\n    \
             virtual_router_id 7\n    priority 100\n    advert_int 1\n    \
             track_script {\n        good\n        bad\n    }\n}\n"
        ));
        assert!(!text.contains("virtual_ipaddress"));
        let none = KeepalivedConfig::default().text("r", 1).unwrap();
        assert!(!none.contains("track_script"));
    }

    #[test]
    fn config_has_a_track_file_block_each_tracked_by_the_instance() {
        let text = KeepalivedConfig::new([VrrpScript::new("good", "/bin/true", 1)])
            .track_file("t1", "/run/x/t1", 0)
            .track_file("t2", "/run/x/t 2", -10)
            .text("r", 3)
            .unwrap();
        assert!(text.contains("track_file t1 {\n    file \"/run/x/t1\"\n    weight 0\n}\n"));
        assert!(text.contains("track_file t2 {\n    file \"/run/x/t 2\"\n    weight -10\n}\n"));
        assert!(text.ends_with(
            "    track_script {\n        good\n    }\n    \
             track_file {\n        t1\n        t2\n    }\n}\n"
        ));
        // Blocks before the instance that names them.
        assert!(text.find("track_file t2 {").unwrap() < text.find("vrrp_instance").unwrap());
        let files_only = KeepalivedConfig::default()
            .track_file("t", "/run/x/t", 0)
            .text("r", 1)
            .unwrap();
        assert!(!files_only.contains("track_script"));
        assert!(files_only.contains("    track_file {\n        t\n    }\n"));
    }

    #[test]
    fn config_refuses_track_files_keepalived_would_misread() {
        let refused = |config: KeepalivedConfig| config.text("r", 1).unwrap_err().to_string();
        let one = |name: &str, path: &str, weight| {
            refused(KeepalivedConfig::default().track_file(name, path, weight))
        };
        assert!(one("a b", "/x", 0).contains("name \"a b\""));
        assert!(one("rel", "x/y", 0).contains("absolute"));
        assert!(one("q", "/x\"y", 0).contains("double quote"));
        assert!(one("n", "/x\n}", 0).contains("control"));
        assert!(one("w", "/x", 255).contains("-254..=254"));
        let twice = KeepalivedConfig::default()
            .track_file("x", "/a", 0)
            .track_file("x", "/b", 0);
        assert!(refused(twice).contains("two track_files named x"));
    }

    #[test]
    fn config_refuses_what_keepalived_would_misread() {
        let refused = |script: VrrpScript| {
            KeepalivedConfig::new([script])
                .text("r", 1)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(VrrpScript::new("a b", "/bin/true", 1)).contains("name \"a b\""));
        assert!(refused(VrrpScript::new("", "/bin/true", 1)).contains("name"));
        assert!(refused(VrrpScript::new("q", "/bin/sh -c \"x\"", 1)).contains("double quote"));
        assert!(refused(VrrpScript::new("n", "/bin/true\n}", 1)).contains("control"));
        assert!(refused(VrrpScript::new("e", "  ", 1)).contains("empty command"));
        assert!(refused(VrrpScript::new("i", "/bin/true", 0)).contains("at least 1 s"));
        assert!(refused(VrrpScript::new("t", "/bin/true", 1).timeout(0)).contains("at least 1 s"));
        let twice = KeepalivedConfig::new([
            VrrpScript::new("x", "/bin/true", 1),
            VrrpScript::new("x", "/bin/false", 1),
        ]);
        assert!(twice.text("r", 1).is_err());
        assert!(two_scripts().text("r", 0).is_err());
    }

    #[test]
    fn log_message_strips_the_timestamp() {
        assert_eq!(
            log_message("Wed Nov 25 13:17:52 2026: VRRP_Script(good) succeeded"),
            "VRRP_Script(good) succeeded"
        );
        assert_eq!(
            log_message("Sun Dec  1 03:04:05 2024: Startup complete"),
            "Startup complete"
        );
        assert_eq!(log_message("short"), "short");
        assert_eq!(
            log_message("              '/tmp/v.pid'"),
            "              '/tmp/v.pid'"
        );
    }

    #[test]
    fn patterns_are_substrings_or_predicates() {
        let line = "Wed Nov 25 13:17:52 2026: VRRP_Script(bad) failed (exited with status 1)";
        assert!("VRRP_Script(bad) failed".matches_line(line));
        assert!(String::from("status 1").matches_line(line));
        assert!(!"VRRP_Script(good)".matches_line(line));
        assert!((|l: &str| log_message(l).starts_with("VRRP_Script(bad)")).matches_line(line));
    }

    #[test]
    fn log_wait_for_sees_old_and_new_lines_and_the_end() {
        let log = Arc::new(Log::default());
        log.lock().lines.push("first".into());
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(log.wait_for(&"first", soon).as_deref(), Some("first"));
        assert_eq!(log.wait_for(&"second", soon), None);
        let writer = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                log.lock().lines.push("second".into());
                log.changed.notify_all();
            })
        };
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(log.wait_for(&"second", later).as_deref(), Some("second"));
        writer.join().unwrap();
        log.lock().ended = true;
        let start = Instant::now();
        assert_eq!(log.wait_for(&"third", later), None);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the end ends the wait"
        );
    }

    #[test]
    fn stat_fields_after_the_last_parenthesis() {
        let text = "1234 (keep (a)lived) S 1200 1234 1100 0 -1 4194560 100 0 0 0 1 2 0 0 \
                    20 0 1 0 98765 1000 100";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            (s.state, s.ppid, s.pgrp, s.start),
            (b'S', 1200, 1234, 98765)
        );
        assert!(s.live());
        assert!(
            !parse_stat("1 (z) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5")
                .unwrap()
                .live()
        );
    }
}
