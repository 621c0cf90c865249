//! The C raw socket checkers' command lines: vipcheck invoked as
//! `check_tcp_raw`, `check_http_get_raw` or `check_http_raw` (a link named
//! so) accepts their arguments and options, GNU style, and exits 0
//! (healthy) or 1 (anything else), because keepalived's `misc_dynamic`
//! reads 2-255 as "healthy, with weight status - 2".
//!
//! What stays theirs: `-t` is a timeout for each reply of the real server
//! (0: none), `-r` names the role file, the trace has their format and
//! levels. What is vipcheck's: both roles check through the VIP path while
//! the capture program can be used, at XDP or, beside another XDP program,
//! at TC ingress (their BACKUP path, a kernel connection to the real
//! server's own address, passes a real server that lacks the VIP); when it
//! cannot be used (no BPF, or run with CAP_NET_RAW alone as they were),
//! their behaviour is the fallback.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::check::dispatch::{self, AuditOptions, TlsConfigs};
use crate::check::verdict::Verdict;
use crate::error::Error;
use crate::probe::c_line::{Common, HttpGetRaw, HttpRaw, Invoked, NAMES, Parsed, TcpRaw, command};
use crate::probe::{Capture, Probe};
use crate::{check, note, say};

use crate::exit::of_c_checker;

/// Exit status of a healthy check, and of everything else.
const HEALTHY: bool = true;
const FAILED: bool = false;

/// Runs vipcheck as the C checker `name` with `args` (after argv[0]);
/// returns the exit status, 0 or 1.
pub(crate) fn main(name: &str, args: &[OsString], invoked: Invoked) -> i32 {
    // Who speaks in errors: the C name, or vipcheck saying how it read
    // a line that named no subcommand.
    let speaker = match invoked {
        Invoked::ByName => name.to_string(),
        Invoked::ByShape => format!(
            "vipcheck (no subcommand: read as a {name} command line; 'vipcheck --help' for \
             its own)"
        ),
    };
    let words = std::iter::once(OsString::from(name)).chain(args.iter().cloned());
    // GNU argp answers --usage whatever else the line holds.
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--usage")
    {
        let usage = command(name).render_usage().to_string();
        say!("{}", usage.trim_end());
        return of_c_checker(HEALTHY);
    }
    let parsed = match name {
        "check_http_get_raw" => HttpGetRaw::try_parse_from(words).map(Parsed::HttpGet),
        "check_http_raw" => HttpRaw::try_parse_from(words).map(Parsed::Http),
        _ => TcpRaw::try_parse_from(words).map(Parsed::Tcp),
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return of_c_checker(HEALTHY);
        }
        Err(e) => {
            note!(
                "{speaker}: {} (see '{name} --help')",
                crate::probe::args::usage_message(&e)
            );
            return of_c_checker(FAILED);
        }
    };
    let (probe, common) = match parsed.probe() {
        Ok(probe) => probe,
        Err(message) => {
            note!("{speaker}: {message} (see '{name} --help')");
            return of_c_checker(FAILED);
        }
    };
    common.trace_params(&parsed);
    if common.verbose > 0 {
        // vipcheck's own diagnostics (attach, fallback) go with the trace.
        crate::front::output::log_to_stderr();
    }
    of_c_checker(match run(&probe, common) {
        Ok(verdict) => {
            // `--pcap -`: stdout carries the capture.
            if crate::engine::trace::pcap_to_stdout(probe.pcap.as_deref()) {
                note!("{verdict}");
            } else {
                say!("{verdict}");
            }
            verdict.healthy()
        }
        Err(e) => {
            note!("{speaker}: {e}");
            FAILED
        }
    })
}

/// The role the role file gives this LB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Backup,
}

impl Common {
    /// As the C checkers read it: the first byte `1` is MASTER, anything
    /// else BACKUP; a file that cannot be read is BACKUP (said at -v).
    fn role(&self) -> Option<Role> {
        let path = self.role_file.as_ref()?;
        use std::io::Read;
        let mut first = [0u8; 1];
        let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut first));
        Some(match read {
            Ok(1) if first[0] == b'1' => Role::Master,
            Ok(_) => Role::Backup,
            Err(e) => {
                if self.verbose > 0 {
                    note!(
                        "vipcheck: role file {}: {e}; taken as BACKUP",
                        path.display()
                    );
                }
                Role::Backup
            }
        })
    }

    /// The C checkers' `[PARAMS]` (and `[OPTIONS]`) lines, at -v.
    fn trace_params(&self, parsed: &Parsed) {
        if self.verbose == 0 {
            return;
        }
        let role_file = self
            .role_file
            .as_ref()
            .map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
        let mut params = format!(
            "[PARAMS] iface: {}, real_server: {}, virtual_ip: {}, port: {}",
            self.iface, self.real_server, self.vip, self.port
        );
        match parsed {
            Parsed::HttpGet(a) => {
                params += &format!(", host: {}, path: {}, value: {}", a.host, a.path, a.value);
            }
            Parsed::Http(a) => params += &format!(", host: {}, path: {}", a.host, a.path),
            Parsed::Tcp(_) => {}
        }
        params += &format!(
            ", role_file: {role_file}, timeout: {}ms, verbosity: {}",
            self.timeout, self.verbose
        );
        note!("{params}");
        if let Parsed::Http(a) = parsed {
            note!(
                "[OPTIONS] method: {}, status-code: {}, body: {}, hash: {}, role_file: {role_file}, timeout: {}ms, verbosity: {}",
                a.method.as_str(),
                a.status
                    .map_or_else(|| "(none)".to_string(), |s| s.to_string()),
                a.body.as_deref().unwrap_or("(none)"),
                a.hash.as_deref().unwrap_or("(none)"),
                self.timeout,
                self.verbose
            );
        }
    }
}

/// Runs the check through the VIP path; when the capture program cannot be
/// used here (at XDP nor TC), as the C checkers would.
fn run(probe: &Probe, common: &Common) -> Result<Verdict, Error> {
    let http = dispatch::http_check(probe, &TlsConfigs::new(&AuditOptions::default()))?;
    let http = http.as_ref();
    let role = common.role();
    let say_path = |text: String| {
        if common.verbose > 0 {
            note!("vipcheck: {text}");
        }
    };
    if let Some(role) = role {
        say_path(format!(
            "role file says {role:?}; with the capture program both roles check through the VIP path"
        ));
    }
    match dispatch::once(probe, http) {
        // Another XDP program only stops the capture with `--capture xdp`,
        // which the C grammar has no way to ask; a kernel without BPF or
        // tcx, or a process without CAP_SYS_ADMIN (the C checkers needed
        // CAP_NET_RAW alone), do.
        Err(e @ (Error::ForeignXdp { .. } | Error::Bpf { .. } | Error::Privilege { .. })) => {
            if role == Some(Role::Backup) {
                say_path(format!(
                    "the capture program cannot be used ({e}); as a BACKUP per the role file, \
                     checking the real server's own address with a kernel TCP connection"
                ));
                return check::kernel::run(probe, http);
            }
            say_path(format!(
                "the capture program cannot be used ({e}); checking through the VIP path with an \
                 AF_PACKET capture (a backup LB's kernel answers the replies with RSTs)"
            ));
            let probe = Probe {
                capture: Capture::Off,
                ..probe.clone()
            };
            dispatch::once(&probe, http)
        }
        other => other,
    }
}

/// What `vipcheck compat install` did with one C name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Installed {
    Created(PathBuf),
    /// A link to an older vipcheck binary (one a package upgrade left
    /// behind) now links to this one.
    Replaced(PathBuf),
}

/// `vipcheck compat install DIR`: a link to this binary under each C
/// name, idempotent. A link there to an older vipcheck binary (a hard link
/// keeps the old file alive after a package upgrade, and keepalived would
/// go on running it) is replaced, atomically; any other file is never
/// replaced, and then nothing is changed. A hard link where DIR is on
/// vipcheck's file system (keepalived with `enable_script_security` runs a
/// symlinked script under its resolved path, and vipcheck then knows the C
/// line by its shape, see [`by_shape`](crate::probe::c_line::by_shape)); a symlink otherwise, with a
/// warning (the second value).
pub(crate) fn install(dir: &Path) -> Result<(Vec<Installed>, Option<String>), Error> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Error::io("finding the vipcheck binary", e))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    // Every name is judged before anything changes.
    let mut todo = Vec::new();
    for name in NAMES {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(_) if is_link_to(&link, &exe) => {}
            Ok(_) if is_older_vipcheck(&link) => todo.push((link, true)),
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{} exists and is not a link to {} (nor to an older vipcheck); remove it first",
                    link.display(),
                    exe.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => todo.push((link, false)),
            Err(e) => return Err(Error::io(format!("reading {}", link.display()), e)),
        }
    }
    let mut done = Vec::new();
    let mut warning = None;
    for (link, replace) in todo {
        // Made beside it under a temporary name, then renamed over it: the
        // name never goes missing for keepalived.
        let temporary = link.with_file_name(format!(
            ".{}.vipcheck-{}",
            link.file_name().and_then(|n| n.to_str()).unwrap_or("link"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&temporary);
        let made = match std::fs::hard_link(&exe, &temporary) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                warning = Some(format!(
                    "{} is on another file system than {}: made symlinks, which keepalived \
                     with enable_script_security runs under vipcheck's own name (vipcheck \
                     then knows a C command line by its shape); install into a directory of \
                     vipcheck's file system for hard links",
                    dir.display(),
                    exe.display()
                ));
                std::os::unix::fs::symlink(&exe, &temporary)
            }
            other => other,
        };
        made.and_then(|()| std::fs::rename(&temporary, &link))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                Error::io(format!("creating {}", link.display()), e)
            })?;
        done.push(if replace {
            Installed::Replaced(link)
        } else {
            Installed::Created(link)
        });
    }
    Ok((done, warning))
}

/// Whether `path` is `exe` through a symlink or a hard link.
fn is_link_to(path: &Path, exe: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata(exe)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Text that every vipcheck binary holds (its `--help` since the first
/// version), and no other program.
const VIPCHECK_MARK: &[u8] = b"Health checks of LVS-DR real servers through the VIP path";

/// Largest file read to tell whether it is a vipcheck binary.
const MAX_BINARY_BYTES: u64 = 256 << 20;

/// Whether `path` is (or links to) another vipcheck binary: a symlink to a
/// file named `vipcheck` (even one gone), or an ELF file holding
/// [`VIPCHECK_MARK`].
fn is_older_vipcheck(path: &Path) -> bool {
    if let Ok(target) = std::fs::read_link(path)
        && target.file_name() == Some(OsStr::new("vipcheck"))
    {
        return true;
    }
    use std::io::Read;
    let mut data = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_BINARY_BYTES).read_to_end(&mut data));
    read.is_ok()
        && data.starts_with(b"\x7fELF")
        && data
            .windows(VIPCHECK_MARK.len())
            .any(|w| w == VIPCHECK_MARK)
}
