//! `cargo xtask dist --deb`, run as a whole: the release build, the staged
//! files and the package built from them, inspected with dpkg-deb, checked
//! by lintian (no error, no warning) and the unit with `systemd-analyze
//! verify` (the unit's offline checks without a build are in unit.rs).
//! Needs root (the task's setup step) and takes a release build:
//! `cargo test -p xtask --test dist -- --nocapture` shows the package's
//! listing.

mod common;

use common::TempDir;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use xtask::dist::{DBGSYM_NO_DWARF_TAG, SHARE, debian_version, has_interpreter, share_dir};

const COMPAT_NAMES: [&str; 3] = ["check_tcp_raw", "check_http_get_raw", "check_http_raw"];

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// One line of `dpkg-deb --contents`.
#[derive(Debug)]
struct Entry {
    mode: String,
    owner: String,
    link_to: Option<String>,
}

/// `dpkg-deb --contents` by path (`./usr/bin/vipcheck`).
fn contents(listing: &str) -> BTreeMap<String, Entry> {
    listing
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "unexpected line {line:?}");
            let (path, link_to) = match fields[5..] {
                [ref path @ .., "link", "to", target] => (path.join(" "), Some(target.to_owned())),
                ref path => (path.join(" "), None),
            };
            let entry = Entry {
                mode: fields[0].to_owned(),
                owner: fields[1].to_owned(),
                link_to,
            };
            (path, entry)
        })
        .collect()
}

#[test]
fn dist_deb_builds_the_package() {
    let started = Instant::now();
    let tmp = TempDir::new("dist-test");
    let dist = tmp.0.join("dist");
    let out = run(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["dist", "--deb", "--out"])
        .arg(&dist)
        .stderr(std::process::Stdio::inherit()));
    let built = started.elapsed();
    let printed = String::from_utf8(out.stdout).unwrap();
    let arch = stdout(Command::new("dpkg").arg("--print-architecture"));
    let arch = arch.trim();
    let version = debian_version(env!("CARGO_PKG_VERSION"));
    let deb = dist.join(format!("vipcheck_{version}_{arch}.deb"));
    assert_eq!(printed.lines().last(), Some(deb.to_str().unwrap()));
    assert!(!dist.join("deb").exists(), "the package tree is left");

    let listing = stdout(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    println!("{listing}");
    let entries = contents(&listing);
    for (path, entry) in &entries {
        assert_eq!(entry.owner, "root/root", "{path}");
    }
    let mut expected: Vec<String> = [
        "usr/share/bash-completion/completions/vipcheck",
        "usr/share/zsh/vendor-completions/_vipcheck",
        "usr/share/fish/vendor_completions.d/vipcheck.fish",
        "lib/systemd/system/vipcheck.service",
        "etc/default/vipcheck",
        "usr/share/doc/vipcheck/copyright",
        "usr/share/doc/vipcheck/changelog.gz",
        "usr/share/doc/vipcheck/README.md.gz",
        "usr/share/lintian/overrides/vipcheck",
        "usr/share/vipcheck/examples/targets.toml",
        "usr/share/vipcheck/examples/keepalived-track-files.conf",
    ]
    .map(String::from)
    .into();
    // Every file of xtask/dist/share/, under /usr/share/vipcheck/.
    let mut dirs = vec![share_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(share_dir()).unwrap();
                expected.push(format!("{SHARE}/{}", relative.display()));
            }
        }
    }
    // Every page `vipcheck man` wrote, compressed; at least these.
    for page in std::fs::read_dir(dist.join("man/man1")).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        expected.push(format!("usr/share/man/man1/{name}.gz"));
    }
    for name in ["vipcheck"].iter().chain(&COMPAT_NAMES) {
        expected.push(format!("usr/share/man/man1/{name}.1.gz"));
    }
    for path in &expected {
        let entry = entries
            .get(&format!("./{path}"))
            .unwrap_or_else(|| panic!("{path} is not in the package"));
        assert_eq!(entry.mode, "-rw-r--r--", "{path}");
    }
    // vipcheck and the C names are one file: tar stores the first of them
    // as a file and the others as hard links to it.
    let names: Vec<String> = ["vipcheck"]
        .iter()
        .chain(&COMPAT_NAMES)
        .map(|name| format!("./usr/bin/{name}"))
        .collect();
    let files: Vec<&String> = names
        .iter()
        .filter(|name| entries[name.as_str()].link_to.is_none())
        .collect();
    assert_eq!(files.len(), 1, "not one file: {names:?}");
    for name in &names {
        let entry = &entries[name.as_str()];
        assert_eq!(&entry.mode[1..], "rwxr-xr-x", "{name}");
        match &entry.link_to {
            Some(target) => {
                assert!(entry.mode.starts_with('h'), "{name} is not a hard link");
                assert_eq!(target, files[0], "{name}");
            }
            None => assert!(entry.mode.starts_with('-'), "{name}"),
        }
    }

    let field = |name: &str| {
        stdout(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(name))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), "vipcheck");
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), arch);
    // The release build links glibc in: no dynamic loader at each start,
    // no shared library to depend on; it still runs.
    let binary = dist.join("bin/vipcheck");
    assert!(
        !has_interpreter(&binary).unwrap(),
        "{} is dynamically linked",
        binary.display()
    );
    assert_eq!(field("Depends"), "", "a static binary depends on nothing");
    assert!(stdout(Command::new(&binary).arg("--version")).starts_with("vipcheck "));
    assert_eq!(field("Section"), "net");

    let control = tmp.0.join("DEBIAN");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    assert_eq!(
        std::fs::read_to_string(control.join("conffiles")).unwrap(),
        "/etc/default/vipcheck\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        assert_eq!(
            std::fs::metadata(&path).unwrap().mode() & 0o777,
            0o755,
            "{script}"
        );
        run(Command::new("sh").arg("-n").arg(&path));
        // debhelper's pattern: systemctl only for daemon-reload, the rest
        // through deb-systemd-invoke (which honours policy-rc.d): stop on
        // removal, restart on upgrade if running; never enable or start
        // (deb-systemd-helper enable only re-creates the links of a unit
        // that was enabled).
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            let verb = |command: &str| {
                let mut words = line.split_whitespace().skip_while(|w| *w != command);
                words.next()?;
                words.find(|w| !w.starts_with("--")).map(str::to_owned)
            };
            if let Some(verb) = verb("systemctl") {
                assert_eq!(verb, "daemon-reload", "{script}: systemctl {verb}");
            }
            if let Some(verb) = verb("deb-systemd-invoke") {
                assert!(
                    ["try-restart", "stop"].contains(&verb.as_str()),
                    "{script}: deb-systemd-invoke {verb}"
                );
            }
            if verb("deb-systemd-helper").as_deref() == Some("enable") {
                assert!(lines[i - 1].contains("was-enabled"), "{script}: {line}");
            }
            // /run/vipcheck holds the lock of every vipcheck process and
            // keepalived's track files: never removed.
            assert!(!line.contains("/run/vipcheck"), "{script}: {line}");
        }
    }

    // Both packages in one run (lintian's start is most of its time); the
    // tag suppressed can only be the -dbgsym package's.
    let dbgsym = dist.join(format!("vipcheck-dbgsym_{version}_{arch}.deb"));
    lintian(&[&deb, &dbgsym], &[DBGSYM_NO_DWARF_TAG]);

    let root = tmp.0.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let bin = root.join("usr/bin");
    let vipcheck = std::fs::metadata(bin.join("vipcheck")).unwrap();
    assert_eq!(vipcheck.nlink(), 1 + COMPAT_NAMES.len() as u64);
    for name in COMPAT_NAMES {
        let meta = std::fs::symlink_metadata(bin.join(name)).unwrap();
        assert!(meta.is_file(), "{name}");
        assert_eq!(meta.ino(), vipcheck.ino(), "{name} is not vipcheck");
    }
    let said = stdout(Command::new(bin.join("vipcheck")).arg("--version"));
    assert_eq!(
        said.trim(),
        format!("vipcheck {}", env!("CARGO_PKG_VERSION"))
    );

    // Stripped, its debug information (the symbol table) in the -dbgsym
    // package under the build id, linked by .gnu_debuglink.
    let sections = stdout(Command::new("objdump").arg("-h").arg(bin.join("vipcheck")));
    assert!(sections.contains(".gnu_debuglink"), "{sections}");
    let symbols = Command::new("nm")
        .arg(bin.join("vipcheck"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&symbols.stderr).contains("no symbols"),
        "/usr/bin/vipcheck is not stripped"
    );
    let build_id = stdout(
        Command::new("dpkg-deb")
            .arg("--field")
            .arg(&dbgsym)
            .arg("Build-Ids"),
    );
    let build_id = build_id.trim();
    assert!(build_id.len() > 2, "no Build-Ids");
    let debug_file = format!(
        "./usr/lib/debug/.build-id/{}/{}.debug",
        &build_id[..2],
        &build_id[2..]
    );
    let dbgsym_listing = stdout(Command::new("dpkg-deb").arg("--contents").arg(&dbgsym));
    assert!(
        contents(&dbgsym_listing).contains_key(&debug_file),
        "{dbgsym_listing}"
    );
    let notes = stdout(Command::new("readelf").arg("-n").arg(bin.join("vipcheck")));
    assert!(notes.contains(&format!("Build ID: {build_id}")), "{notes}");

    // The example snippet is what the packaged vipcheck prints for the
    // example targets file.
    let examples = root.join(SHARE).join("examples");
    let snippet = stdout(
        Command::new(bin.join("vipcheck"))
            .args(["keepalived", "snippet", "--targets"])
            .arg(examples.join("targets.toml"))
            .args(["--track-dir", "/run/vipcheck/track"]),
    );
    let example = std::fs::read_to_string(examples.join("keepalived-track-files.conf")).unwrap();
    assert!(
        example.ends_with(&snippet),
        "keepalived-track-files.conf is not what `vipcheck keepalived snippet` prints for targets.toml"
    );

    // The paths the README's install section names are in the package.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("\n## Install from the .deb\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    for word in section.split(|c: char| c.is_whitespace() || "`(),;:".contains(c)) {
        for prefix in [
            "/usr/share/vipcheck/",
            "/usr/share/doc/vipcheck/",
            "/usr/bin/",
        ] {
            if word.starts_with(prefix) && !word.ends_with('/') {
                let path = format!(".{word}");
                assert!(entries.contains_key(&path), "the README names {word}");
            }
        }
    }

    verify_unit(&root, &tmp.0);
    println!(
        "cargo xtask dist --deb: {:.1} s; the whole test: {:.1} s",
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// lintian on the packages (`cargo xtask setup` installs it): no error,
/// no warning, but for the tags in `suppressed`; what it says is printed.
fn lintian(debs: &[&Path], suppressed: &[&str]) {
    let started = Instant::now();
    let mut cmd = Command::new("lintian");
    cmd.args(["--fail-on", "error,warning", "--tag-display-limit", "0"]);
    if !suppressed.is_empty() {
        cmd.arg("--suppress-tags").arg(suppressed.join(","));
    }
    let out = cmd
        .args(debs)
        .output()
        .expect("lintian (`cargo xtask setup`)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tags: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian {debs:?} ({}): {said}",
        out.status
    );
    println!(
        "lintian {debs:?}: no error, no warning ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// `systemd-analyze verify` on the package's unit, with ExecStart's binary
/// and the man page of its Documentation= taken from the extracted package.
fn verify_unit(root: &Path, tmp: &Path) {
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/vipcheck.service")).unwrap();
    let exec_start = "\nExecStart=/usr/bin/vipcheck daemon $VIPCHECK_ARGS\n";
    assert!(unit.contains(exec_start));
    let binary = root.join("usr/bin/vipcheck");
    let unit = unit.replace(
        exec_start,
        &format!("\nExecStart={} daemon $VIPCHECK_ARGS\n", binary.display()),
    );
    let dir = tmp.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vipcheck.service"), unit).unwrap();
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("vipcheck.service"))
        .env("MANPATH", root.join("usr/share/man")));
    // Unknown keys and values that do not parse are only warnings.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("vipcheck.service"))
        .collect();
    assert!(about_unit.is_empty(), "systemd-analyze verify: {said}");
    println!("systemd-analyze verify: ok");
}
