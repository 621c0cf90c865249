//! Network namespaces: create and delete them, run code and programs in
//! them, find and kill the processes inside them.
//!
//! Programs run through `nsenter --net`, which changes only the network
//! namespace (`ip netns exec` also gives a new mount namespace with a fresh
//! `/sys`; vipcheck works under both, and the tests use both).

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

const RUN_DIR: &str = "/run/netns";

/// `ip netns add` makes `/run/netns` a shared mount the first time it runs;
/// two doing that at once stack two mounts. Labs of one process (parallel
/// tests) take turns.
static CREATE: Mutex<()> = Mutex::new(());

pub(crate) fn path(ns: &str) -> PathBuf {
    Path::new(RUN_DIR).join(ns)
}

/// Inode of the namespace, the same as `/proc/self/ns/net` inside it.
pub(crate) fn inode(ns: &str) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path(ns))?.ino())
}

/// Names of the existing namespaces.
pub(crate) fn list() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(RUN_DIR) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect()
}

pub(crate) fn create(names: &[String]) -> Result<()> {
    let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
    let _turn = CREATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ip_batch(None, &lines, false)
}

/// Deletes the namespaces that exist among `names`. A namespace stays alive
/// (nameless) while processes are inside: kill them first.
pub(crate) fn delete(names: &[String]) -> Result<()> {
    let lines: Vec<String> = names
        .iter()
        .filter(|n| path(n).exists())
        .map(|n| format!("netns del {n}"))
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    ip_batch(None, &lines, true)
}

/// Runs `ip -batch` (one process for many commands), inside `ns` if given;
/// with `force`, goes on after a failing line.
pub(crate) fn ip_batch(ns: Option<&str>, lines: &[String], force: bool) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    if force {
        cmd.arg("-force");
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run `ip` (package iproute2)")?;
    let script = lines.join("\n") + "\n";
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(script.as_bytes());
    let output = child.wait_with_output()?;
    if !output.status.success() || written.is_err() {
        bail!(
            "`ip{} -batch` failed ({}): {}\ncommands:\n{script}",
            ns.map(|ns| format!(" -n {ns}")).unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A command that runs `program` in namespace `ns`.
pub(crate) fn command(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", path(ns).display()))
        .arg("--")
        .arg(program);
    cmd
}

/// Runs `f` on a thread that has entered namespace `ns`: sockets it opens
/// and the `/proc/sys/net` it sees are that namespace's. Cheaper than a
/// process per action.
pub(crate) fn run_in<T: Send>(
    ns: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> std::io::Result<T> {
    let file = File::open(path(ns))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: plain syscall on a valid fd; it moves only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Sends SIGKILL to every process (other than this one) whose network
/// namespace is one of `inodes`.
pub(crate) fn kill_processes_in(inodes: &[u64]) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if inodes.contains(&meta.ino()) {
            crate::lab::process::signal(pid, libc::SIGKILL);
        }
    }
}
