//! `cargo xtask setup`: installs what the build, the lab, the tests and the
//! fuzz targets need on a machine that has only rustup's stable and
//! nightly toolchains. Each
//! step checks first, so a second run changes nothing and takes well under
//! a second.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Debian packages: nginx for the lab's real servers, iproute2 for the
/// namespaces, nsenter (util-linux) to run programs in them, the tools
/// tests use to make loss, capture, and inspect interfaces and BPF, and
/// keepalived, which lab tests run on the LB to see how it runs scripts,
/// dpkg-dev for the `Depends` of `cargo xtask dist --deb`
/// (dpkg-shlibdeps), iperf3 for the bench's cost to the LB's traffic and
/// GNU time for its peak RSS of a check; dnsmasq-base (DNS, a binary
/// without a service), socat (UDP services) and exim4-daemon-light (SMTP),
/// which the lab runs per namespace for the dns/udp/smtp checks, and
/// bind9-dnsutils (dig) to ask the DNS servers, and iputils-ping, the
/// bench's kernel baseline of the ping check, and xdp-tools (xdp-filter,
/// xdp-loader: libxdp), whose programs the lab tests attach beside
/// vipcheck's capture as another tool would; mandoc, whose `-Tlint` the
/// man pages' unit test runs; lintian, which the .deb test runs on the
/// package, and systemd for systemd-analyze, which the unit's tests run
/// offline (a container's Debian has no systemd). No service of these may
/// start in the root namespace on install: apt-get runs under a
/// `policy-rc.d` that forbids starting services.
pub const PACKAGES: [&str; 22] = [
    "nginx-light",
    "iproute2",
    "nftables",
    "tcpdump",
    "ethtool",
    "curl",
    "util-linux",
    "procps",
    "bpftool",
    "keepalived",
    "dpkg-dev",
    "iperf3",
    "time",
    "dnsmasq-base",
    "socat",
    "exim4-daemon-light",
    "bind9-dnsutils",
    "iputils-ping",
    "xdp-tools",
    "mandoc",
    "lintian",
    "systemd",
];

/// promtool, which `cargo xtask test` runs on the Prometheus rules
/// (`xtask/dist/share/prometheus`), comes in Debian's `prometheus` package
/// with a Prometheus server and its service. It is installed on its own,
/// without its Recommends (prometheus-node-exporter, one more service), and
/// its service disabled once installed: the `policy-rc.d` keeps a service
/// from starting, not from being enabled for the next boot. Disabled, an
/// upgrade of the package does not enable it again.
pub const PROMETHEUS: &str = "prometheus";

enum Outcome {
    Present,
    Installed,
}

/// cargo-fuzz from crates.io, this version (it builds with the stable
/// toolchain; the fuzz targets are built with nightly).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn run() -> Result<()> {
    crate::require_root("`cargo xtask setup` (apt-get)")?;
    step("Debian packages", ensure_packages)?;
    step(
        "llvm-tools (llvm-profdata, for the release build's profile)",
        ensure_llvm_tools,
    )?;
    fuzz_tools()
}

/// What building the checker with nightly needs (rust-src, bpf-linker)
/// and cargo-fuzz: all that `cargo xtask fuzz` needs, no root required.
pub fn fuzz_tools() -> Result<()> {
    step("rust-src for nightly", ensure_rust_src)?;
    step("bpf-linker", ensure_bpf_linker)?;
    step("cargo-fuzz", ensure_cargo_fuzz)
}

fn step(what: &str, f: impl FnOnce() -> Result<Outcome>) -> Result<()> {
    let outcome = f().with_context(|| format!("setup: {what}"))?;
    let word = match outcome {
        Outcome::Present => "ok",
        Outcome::Installed => "installed",
    };
    println!("setup: {what}: {word}");
    Ok(())
}

fn ensure_packages() -> Result<Outcome> {
    // dpkg-query fails on unknown names but still reports the others.
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\\n"])
        .args(PACKAGES)
        .arg(PROMETHEUS)
        .output()
        .context("cannot run dpkg-query: not a Debian system?")?;
    let status = String::from_utf8_lossy(&out.stdout);
    let missing = missing_packages(&status, &PACKAGES);
    let prometheus = !missing_packages(&status, &[PROMETHEUS]).is_empty();
    if missing.is_empty() && !prometheus {
        return Ok(Outcome::Present);
    }
    println!(
        "setup: installing {}",
        missing
            .iter()
            .chain(prometheus.then_some(&PROMETHEUS))
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    );
    run_ok(Command::new("apt-get").arg("update"))?;
    let no_start = NoServiceStart::new(Path::new(POLICY_RC_D))?;
    let installed = install(&missing, prometheus);
    // Removed also when the install failed.
    let removed = no_start.remove();
    installed?;
    removed?;
    Ok(Outcome::Installed)
}

/// apt-get installs `missing`, then (`prometheus`) [`PROMETHEUS`] without
/// its Recommends, whose service it then disables.
fn install(missing: &[&str], prometheus: bool) -> Result<()> {
    let apt_install = || {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y"]);
        cmd
    };
    if !missing.is_empty() {
        run_ok(apt_install().args(missing))?;
    }
    if prometheus {
        run_ok(apt_install().args(["--no-install-recommends", PROMETHEUS]))?;
        // Both init systems' links (update-rc.d runs `systemctl disable`
        // too).
        run_ok(Command::new("update-rc.d").args([PROMETHEUS, "disable"]))?;
    }
    Ok(())
}

/// Where invoke-rc.d (and deb-systemd-invoke) ask whether a package's
/// maintainer scripts may start its service.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// A `policy-rc.d` that exits 101 ("action forbidden") while apt-get
/// installs: packages such as exim4-daemon-light and keepalived would
/// otherwise start their service (an MTA, a VRRP daemon) in the root
/// namespace of the machine. One that was already there (containers
/// often have one) is left as it is; ours is removed by
/// [`NoServiceStart::remove`] or, on an early return, when dropped.
struct NoServiceStart {
    /// Ours to remove: it was not there before.
    made: Option<PathBuf>,
}

impl NoServiceStart {
    fn new(path: &Path) -> Result<NoServiceStart> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(path);
        match file {
            Ok(mut file) => {
                let made = NoServiceStart {
                    made: Some(path.to_owned()),
                };
                std::io::Write::write_all(
                    &mut file,
                    b"#!/bin/sh\n# Written by `cargo xtask setup` while apt-get installs; removed after.\nexit 101\n",
                )
                .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(made)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                println!("setup: {} exists already: left as it is", path.display());
                Ok(NoServiceStart { made: None })
            }
            Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }

    fn remove(mut self) -> Result<()> {
        match self.made.take() {
            Some(path) => std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display())),
            None => Ok(()),
        }
    }
}

impl Drop for NoServiceStart {
    fn drop(&mut self) {
        if let Some(path) = self.made.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The `wanted` packages that `dpkg-query -f '${Package} ${Status}\n'`
/// output does not show as installed.
fn missing_packages(dpkg_output: &str, wanted: &[&'static str]) -> Vec<&'static str> {
    let installed: Vec<&str> = dpkg_output
        .lines()
        .filter_map(|line| line.strip_suffix(" install ok installed"))
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// The XDP program is built with `-Z build-std`, which needs the sources.
fn ensure_rust_src() -> Result<Outcome> {
    let installed = stdout_of(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    if installed.lines().any(|l| l.trim() == "rust-src") {
        return Ok(Outcome::Present);
    }
    run_ok(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    Ok(Outcome::Installed)
}

/// rustup's llvm-tools of the toolchain that builds: its llvm-profdata
/// merges the profile of the release build's training checks.
fn ensure_llvm_tools() -> Result<Outcome> {
    let installed = stdout_of(Command::new("rustup").args(["component", "list", "--installed"]))?;
    if installed
        .lines()
        .any(|l| l.trim().starts_with("llvm-tools"))
    {
        return Ok(Outcome::Present);
    }
    run_ok(Command::new("rustup").args(["component", "add", "llvm-tools"]))?;
    Ok(Outcome::Installed)
}

/// bpf-linker must link the same LLVM as the nightly rustc that emits the
/// bitcode; no LLVM package is needed: it links the nightly's own
/// `libLLVM.so`.
fn ensure_bpf_linker() -> Result<Outcome> {
    let works = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Ok(Outcome::Present);
    }
    let sysroot = PathBuf::from(
        stdout_of(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?
            .trim(),
    );
    let sysroot_lib = sysroot.join("lib");
    let (library, feature) = nightly_llvm(&sysroot_lib)?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = Path::new(&home).join(".local/nightly-llvm");
    let link = prefix.join("lib/libLLVM.so");
    std::fs::create_dir_all(prefix.join("lib"))?;
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    std::os::unix::fs::symlink(&library, &link)
        .with_context(|| format!("cannot link {}", link.display()))?;
    println!("setup: building bpf-linker with {feature} (takes minutes)");
    run_ok(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", sysroot_lib.display()),
            )
            .args([
                "install",
                "bpf-linker",
                "--no-default-features",
                "--features",
            ])
            .arg(&feature),
    )?;
    Ok(Outcome::Installed)
}

/// `cargo fuzz` (any version that runs: a newer one installed by hand is
/// kept).
fn ensure_cargo_fuzz() -> Result<Outcome> {
    let works = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Ok(Outcome::Present);
    }
    println!("setup: building cargo-fuzz {CARGO_FUZZ_VERSION} (takes a minute or two)");
    run_ok(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))?;
    Ok(Outcome::Installed)
}

/// The nightly's LLVM library and the bpf-linker feature for its version.
fn nightly_llvm(sysroot_lib: &Path) -> Result<(PathBuf, String)> {
    let entries = std::fs::read_dir(sysroot_lib)
        .with_context(|| format!("cannot read {}", sysroot_lib.display()))?;
    for entry in entries.flatten() {
        if let Some(feature) = entry.file_name().to_str().and_then(llvm_feature) {
            return Ok((entry.path(), feature));
        }
    }
    bail!("no libLLVM.so.*-rust-* in {}", sysroot_lib.display())
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` → `llvm-22`.
fn llvm_feature(file_name: &str) -> Option<String> {
    let version = file_name.strip_prefix("libLLVM.so.")?;
    if !version.contains("-rust-") {
        return None;
    }
    let major = version.split(['.', '-']).next()?;
    (!major.is_empty() && major.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("llvm-{major}"))
}

/// Runs `cmd`; an error if it cannot start or exits unsuccessfully.
pub fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

pub(crate) fn stdout_of(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_feature_from_library_name() {
        assert_eq!(
            llvm_feature("libLLVM.so.22.1-rust-1.97.0-nightly").as_deref(),
            Some("llvm-22")
        );
        assert_eq!(
            llvm_feature("libLLVM.so.21-rust-1.90.0-nightly").as_deref(),
            Some("llvm-21")
        );
        assert_eq!(llvm_feature("libLLVM-22-rust-1.97.0-nightly.so"), None);
        assert_eq!(llvm_feature("libLLVM.so.22.1"), None);
        assert_eq!(llvm_feature("libLLVM.so.x-rust-1"), None);
        assert_eq!(llvm_feature("librustc_driver-b5a965480ee51f9a.so"), None);
    }

    #[test]
    fn finds_llvm_library_in_sysroot() {
        let dir = std::env::temp_dir().join(format!("xtask-setup-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let found = nightly_llvm(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        let (library, feature) = found.unwrap();
        assert_eq!(
            library.file_name().unwrap(),
            "libLLVM.so.22.1-rust-1.97.0-nightly"
        );
        assert_eq!(feature, "llvm-22");
    }

    #[test]
    fn policy_rc_d_is_removed_and_an_existing_one_kept() {
        let dir = std::env::temp_dir().join(format!("xtask-policy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy-rc.d");
        let ours = NoServiceStart::new(&path).unwrap();
        let script = std::fs::read_to_string(&path).unwrap();
        assert!(script.starts_with("#!/bin/sh\n") && script.ends_with("exit 101\n"));
        ours.remove().unwrap();
        assert!(!path.exists());
        // Dropped on an error path: removed too.
        drop(NoServiceStart::new(&path).unwrap());
        assert!(!path.exists());
        // One there before is neither overwritten nor removed.
        std::fs::write(&path, "theirs").unwrap();
        NoServiceStart::new(&path).unwrap().remove().unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(kept, "theirs");
    }

    #[test]
    fn missing_packages_from_dpkg_output() {
        let output = "nginx-light install ok installed\n\
                      iproute2 install ok installed\n\
                      nftables deinstall ok config-files\n\
                      curl install ok installed\n";
        assert_eq!(
            missing_packages(output, &PACKAGES),
            [
                "nftables",
                "tcpdump",
                "ethtool",
                "util-linux",
                "procps",
                "bpftool",
                "keepalived",
                "dpkg-dev",
                "iperf3",
                "time",
                "dnsmasq-base",
                "socat",
                "exim4-daemon-light",
                "bind9-dnsutils",
                "iputils-ping",
                "xdp-tools",
                "mandoc",
                "lintian",
                "systemd"
            ]
        );
        let all: String = PACKAGES
            .iter()
            .map(|p| format!("{p} install ok installed\n"))
            .collect();
        assert!(missing_packages(&all, &PACKAGES).is_empty());
        // promtool's package is asked for apart, and not in the list.
        assert!(!PACKAGES.contains(&PROMETHEUS));
        assert_eq!(missing_packages(&all, &[PROMETHEUS]), [PROMETHEUS]);
        let with = format!("{all}{PROMETHEUS} install ok installed\n");
        assert!(missing_packages(&with, &[PROMETHEUS]).is_empty());
    }
}
