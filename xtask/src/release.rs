//! The release build of vipcheck (what `cargo xtask dist`, the demo and
//! the bench run): on a glibc host linked statically at a fixed address
//! and optimized with a profile of its own checks (PGO).
//!
//! keepalived starts a one-shot check hundreds of times a second, so what
//! a start costs is what the release build is shaped for:
//! - Static, glibc included: no dynamic loader runs at the start. Loading
//!   and relocating libc.so and binding to it was 0.28 ms of a warm
//!   one-shot check's CPU. rustc links statically only for a crate built
//!   with `crt-static`, which a proc-macro crate cannot be: hence an
//!   explicit `--target` (proc-macros and build scripts stay ordinary host
//!   builds), which puts the binary in `target/TRIPLE/release/`.
//! - PGO: an instrumented build runs checks of every kind in a lab of its
//!   own, and the final build is optimized with their profile; LLVM then
//!   also lays the code that runs out together (rust-lld orders functions
//!   by the profile's call graph), so a check touches fewer pages of
//!   code: 0.3 ms of a one-shot check's CPU, 88 → 73 page faults.
//!
//! `VIPCHECK_PIE=1` builds what a plain `cargo build --release` does: a
//! dynamically linked position independent binary, without a profile.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::lab::{CLOSED_IP, HTTP_PORT, HTTPS_PORT, Host, Lab, OK_IP, Role, VIP, VIP6};

/// How vipcheck's release build is made here.
pub struct Plan {
    host: String,
    target_dir: PathBuf,
    /// Static (a glibc host, not `VIPCHECK_PIE=1`).
    optimized: bool,
    /// And with a profile.
    pgo: bool,
}

impl Plan {
    /// The plan for this host, building in `target_dir`. Without `pgo`
    /// (the bench's dry run, which measures nothing: one build instead of
    /// two), a static build without a profile, in a target directory of
    /// its own (`target_dir/no-pgo`: other flags would make cargo rebuild
    /// everything at each switch).
    pub fn new(target_dir: PathBuf, pgo: bool) -> Result<Plan> {
        let host = host_triple()?;
        let pie = std::env::var("VIPCHECK_PIE").is_ok_and(|v| v == "1");
        let optimized = host.ends_with("-linux-gnu") && !pie;
        Ok(Plan {
            optimized,
            pgo: optimized && pgo,
            target_dir: if optimized && !pgo {
                target_dir.join("no-pgo")
            } else {
                target_dir
            },
            host,
        })
    }

    /// Whether a profile-guided build was made here before (by `cargo
    /// xtask dist` or `demo`): building it again is then at most the
    /// changes since.
    pub fn profiled(&self) -> bool {
        self.pgo && self.profdata().is_file()
    }

    /// Whether the build takes a profile (and so needs [`train`]).
    pub fn pgo(&self) -> bool {
        self.pgo
    }

    fn pgo_dir(&self) -> PathBuf {
        self.target_dir.join("pgo")
    }

    fn profdata(&self) -> PathBuf {
        self.pgo_dir().join("vipcheck.profdata")
    }

    /// `cargo build` of the instrumented binary: the binary in a target
    /// directory of its own (`pgo/build/`, not where the final build puts
    /// the release binary), the crates in the final build's build
    /// directory. cargo keeps the crates of each set of target flags apart
    /// there, and the host's (build scripts, proc-macros), which neither
    /// set of flags reaches, are compiled once for both builds.
    pub fn instrumented_build(&self, root: &Path) -> Command {
        let raw = self.pgo_dir().join("raw");
        let mut cmd = self.cargo(
            root,
            &self.pgo_dir().join("build"),
            &format!("-Cprofile-generate={}", raw.display()),
        );
        cmd.env("CARGO_BUILD_BUILD_DIR", &self.target_dir);
        cmd
    }

    fn instrumented_binary(&self) -> PathBuf {
        self.pgo_dir()
            .join("build")
            .join(&self.host)
            .join("release/vipcheck")
    }

    /// `cargo build` of the release binary.
    pub fn final_build(&self, root: &Path) -> Command {
        if !self.optimized {
            let mut cmd = Command::new("cargo");
            cmd.args(["build", "--release"]).current_dir(root);
            return cmd;
        }
        let profile = if self.pgo {
            format!("-Cprofile-use={}", self.profdata().display())
        } else {
            String::new()
        };
        self.cargo(root, &self.target_dir, &profile)
    }

    /// Where [`Plan::final_build`] puts the binary.
    pub fn binary(&self) -> PathBuf {
        if self.optimized {
            self.target_dir.join(&self.host).join("release/vipcheck")
        } else {
            self.target_dir.join("release/vipcheck")
        }
    }

    /// A static build of vipcheck for the host in `target_dir` with
    /// `extra` rustc flags (added to what CARGO_TARGET_<HOST>_RUSTFLAGS
    /// already says).
    fn cargo(&self, root: &Path, target_dir: &Path, extra: &str) -> Command {
        let var = format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            self.host.to_uppercase().replace(['-', '.'], "_")
        );
        let flags = format!(
            "{} -C target-feature=+crt-static -C relocation-model=static {extra}",
            std::env::var(&var).unwrap_or_default()
        );
        let mut cmd = Command::new("cargo");
        cmd.args(["build", "--release", "-p", "checker", "--bin", "vipcheck"])
            .args(["--target", &self.host])
            .env(var, flags.trim_start())
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(root);
        for name in crate_env() {
            cmd.env_remove(name);
        }
        cmd
    }
}

/// What cargo told this xtask about itself (`CARGO_PKG_NAME`,
/// `CARGO_MANIFEST_DIR`, ... when it runs under `cargo run` or `cargo
/// test`). Not passed on to a build: ring's build script asks to run
/// again when they change, and cargo then compiles ring, rustls and the
/// checker again (a build from a shell, then from the .deb test).
fn crate_env() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str().is_some_and(|n| {
                n.starts_with("CARGO_PKG_")
                    || n.starts_with("CARGO_MANIFEST_")
                    || n.starts_with("CARGO_BIN_")
                    || [
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "OUT_DIR",
                    ]
                    .contains(&n)
            })
        })
        .collect()
}

/// Runs checks of every kind (tcp to a healthy, a closed and an IPv6 real
/// server, http, https, the C checkers' names, an audit) with the instrumented
/// binary in a lab of its own, and merges their profile for the final
/// build. Nothing to do when the profile was made from this instrumented
/// binary (cargo did not rebuild it since) and this training.
pub fn train(plan: &Plan) -> Result<()> {
    let binary = plan.instrumented_binary();
    let inputs = profile_inputs(&binary)?;
    let stamp = plan.pgo_dir().join("vipcheck.profdata.inputs");
    if plan.profdata().is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == inputs) {
        println!("pgo: the profile of {} is current", binary.display());
        return Ok(());
    }
    let _ = std::fs::remove_file(&stamp);
    let raw = plan.pgo_dir().join("raw");
    let _ = std::fs::remove_dir_all(&raw);
    std::fs::create_dir_all(&raw)?;
    // The C checkers' names: the program's name selects the command line.
    let names = plan.pgo_dir().join("names");
    let _ = std::fs::remove_dir_all(&names);
    std::fs::create_dir_all(&names)?;
    for name in ["check_tcp_raw", "check_http_raw"] {
        std::os::unix::fs::symlink(&binary, names.join(name))?;
    }
    // An audit's targets: the engine's many-flow path, the config reader
    // and the table.
    let targets = plan.pgo_dir().join("targets.toml");
    std::fs::write(
        &targets,
        format!(
            "[defaults]\niface = \"{}\"\ncheck = \"tcp\"\n\
             [[vip]]\naddress = \"{VIP}\"\nport = {HTTP_PORT}\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n\
             [[vip]]\naddress = \"{VIP}\"\nport = {HTTPS_PORT}\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n",
            crate::lab::LB_IFACE
        ),
    )?;
    let targets = targets.display().to_string();
    let lab = Lab::up(Role::Backup)?;
    let (rs, closed, vip) = (OK_IP.to_string(), CLOSED_IP.to_string(), VIP.to_string());
    let (rs6, vip6) = (Host::Ok.ip6().to_string(), VIP6.to_string());
    let (http, https) = (HTTP_PORT.to_string(), HTTPS_PORT.to_string());
    let ca = lab.ca_pem().display().to_string();
    let iface = crate::lab::LB_IFACE;
    let tcp = ["tcp", iface, &rs, &vip, &http];
    // (program, arguments, runs, the exit status each must end with)
    let runs: Vec<(PathBuf, Vec<&str>, usize, i32)> = vec![
        (binary.clone(), tcp.to_vec(), 30, 0),
        (
            binary.clone(),
            vec!["tcp", iface, &closed, &vip, &http],
            5,
            1,
        ),
        (binary.clone(), vec!["tcp", iface, &rs6, &vip6, &http], 5, 0),
        (
            binary.clone(),
            vec!["http", iface, &rs, &vip, &http, "lab.example", "/"],
            10,
            0,
        ),
        (
            binary.clone(),
            vec![
                "https",
                "--ca",
                &ca,
                iface,
                &rs,
                &vip,
                &https,
                "lab.example",
                "/",
            ],
            5,
            0,
        ),
        (names.join("check_tcp_raw"), tcp[1..].to_vec(), 10, 0),
        (binary.clone(), vec!["audit", "--targets", &targets], 5, 0),
        (
            names.join("check_http_raw"),
            vec!["-S", "200", iface, &rs, &vip, &http, "lab.example", "/"],
            5,
            0,
        ),
    ];
    let mut failed = Vec::new();
    for (program, args, times, exit) in &runs {
        for _ in 0..*times {
            let out = lab
                .command(lab.lb_ns(), program)
                .args(args)
                .env("LLVM_PROFILE_FILE", raw.join("vipcheck-%m.profraw"))
                .output()
                .with_context(|| format!("cannot run {}", program.display()))?;
            if out.status.code() != Some(*exit) {
                failed.push(format!(
                    "{} {} ({}, not exit {exit}): {}{}",
                    program.display(),
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    drop(lab);
    // Each check above ends as it does in the lab's tests: another end
    // means the profile is not that of the checks' usual path.
    if !failed.is_empty() {
        bail!("pgo: training checks failed:\n{}", failed.join("\n"));
    }
    let profiles: Vec<PathBuf> = std::fs::read_dir(&raw)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    if profiles.is_empty() {
        bail!(
            "pgo: the instrumented checks wrote no profile in {}",
            raw.display()
        );
    }
    let status = Command::new(llvm_profdata(&plan.host)?)
        .arg("merge")
        .arg("-o")
        .arg(plan.profdata())
        .args(&profiles)
        .status()
        .context("cannot run llvm-profdata")?;
    if !status.success() {
        bail!("llvm-profdata merge failed ({status})");
    }
    std::fs::write(&stamp, inputs)?;
    println!(
        "pgo: profile of {} checks in {}",
        runs.iter().map(|(_, _, n, _)| n).sum::<usize>(),
        plan.profdata().display()
    );
    Ok(())
}

/// The sources of the training: the checks above and the lab they run in.
const TRAINING: [&str; 2] = [include_str!("release.rs"), include_str!("lab.rs")];

/// What a profile is made from, as [`train`] records it beside the
/// profile: the instrumented binary (cargo rebuilt it or not: its size and
/// time of change) and the training's sources. Not this xtask's binary:
/// cargo builds xtask again whenever the features of its dependencies
/// differ (`cargo test --workspace` unifies them with the checker's,
/// `cargo xtask` does not), the same training each time; in `cargo xtask
/// test`, the bench would train again after the .deb test.
fn profile_inputs(binary: &Path) -> Result<String> {
    let meta =
        std::fs::metadata(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let changed = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let training = TRAINING
        .iter()
        .flat_map(|source| source.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    Ok(format!(
        "binary {} {} bytes, changed {}.{:09}\ntraining {training:016x}\n",
        binary.display(),
        meta.len(),
        changed.as_secs(),
        changed.subsec_nanos()
    ))
}

/// The llvm-profdata of the rustc that builds (rustup's `llvm-tools`
/// component, which `cargo xtask setup` adds).
fn llvm_profdata(host: &str) -> Result<PathBuf> {
    let sysroot = crate::setup::stdout_of(Command::new("rustc").args(["--print", "sysroot"]))?;
    let path = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-profdata");
    if !path.is_file() {
        bail!(
            "{} is missing: `rustup component add llvm-tools` (cargo xtask setup does)",
            path.display()
        );
    }
    Ok(path)
}

/// The triple rustc builds for by default (`host:` of `rustc -vV`).
fn host_triple() -> Result<String> {
    let out = crate::setup::stdout_of(Command::new("rustc").arg("-vV"))?;
    out.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_owned())
        .context("rustc -vV names no host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_inputs_follow_the_instrumented_binary() {
        let dir = std::env::temp_dir().join(format!("xtask-pgo-inputs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("vipcheck");
        std::fs::write(&binary, "instrumented").unwrap();
        let made = profile_inputs(&binary).unwrap();
        assert_eq!(profile_inputs(&binary).unwrap(), made, "nothing changed");
        assert!(made.contains("\ntraining "), "{made}");
        std::fs::write(&binary, "built again").unwrap();
        let rebuilt = profile_inputs(&binary).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(rebuilt, made);
    }
}
