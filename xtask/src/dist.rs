//! `cargo xtask dist [--deb]`: the release binary, its C names, man pages and
//! completions staged in one directory, and from them a Debian package
//! built with `dpkg-deb` (the unit, the default file, the control file
//! and the maintainer scripts are the files of `xtask/dist/`).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::setup::{run_ok, stdout_of};

/// The systemd unit, installed as /lib/systemd/system/vipcheck.service.
pub const UNIT: &str = include_str!("../dist/vipcheck.service");
/// The daemon's command line, installed as the conffile /etc/default/vipcheck.
pub const DEFAULT: &str = include_str!("../dist/vipcheck.default");
const CONTROL: &str = include_str!("../dist/control");
const COPYRIGHT: &str = include_str!("../dist/copyright");
const SCRIPTS: [(&str, &str); 3] = [
    ("postinst", include_str!("../dist/postinst")),
    ("prerm", include_str!("../dist/prerm")),
    ("postrm", include_str!("../dist/postrm")),
];
const CONFFILES: [&str; 1] = ["/etc/default/vipcheck"];

/// Where [`stage`] puts the three shells' completions in `dist`, and where
/// the package installs them.
const COMPLETIONS: [(&str, &str, &str); 3] = [
    (
        "bash",
        "vipcheck.bash",
        "usr/share/bash-completion/completions/vipcheck",
    ),
    (
        "zsh",
        "_vipcheck",
        "usr/share/zsh/vendor-completions/_vipcheck",
    ),
    (
        "fish",
        "vipcheck.fish",
        "usr/share/fish/vendor_completions.d/vipcheck.fish",
    ),
];

/// Stages in `dist` (which must not exist, or be empty): `bin/vipcheck`
/// (a copy of `vipcheck`) and the C names hard-linked to it, `man/man1/*.1`
/// and `completions/`.
pub fn stage(vipcheck: &Path, dist: &Path) -> Result<()> {
    let bin = dist.join("bin");
    let man = dist.join("man/man1");
    let completions = dist.join("completions");
    for dir in [&bin, &man, &completions] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let installed = bin.join("vipcheck");
    fs::copy(vipcheck, &installed)
        .with_context(|| format!("cannot copy {}", vipcheck.display()))?;
    let run = |args: &[&OsStr], stdout: Option<&Path>| -> Result<()> {
        let mut cmd = Command::new(&installed);
        cmd.args(args);
        if let Some(path) = stdout {
            cmd.stdout(File::create(path)?);
        }
        run_ok(&mut cmd)
    };
    run(
        &["compat".as_ref(), "install".as_ref(), bin.as_os_str()],
        None,
    )?;
    run(&["man".as_ref(), man.as_os_str()], None)?;
    for (shell, file, _) in COMPLETIONS {
        run(
            &["completions".as_ref(), shell.as_ref()],
            Some(&completions.join(file)),
        )?;
    }
    Ok(())
}

/// Builds `dist/vipcheck_VERSION_ARCH.deb` from what [`stage`] put in
/// `dist` and returns its path. The package tree is made in `dist/deb/`
/// and removed once the package is built.
pub fn deb(dist: &Path) -> Result<PathBuf> {
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let version = debian_version(env!("CARGO_PKG_VERSION"));
    let work = dist.join("deb");
    remove_if_present(&work)?;
    // dpkg-shlibdeps wants a source tree: debian/control, and the
    // package's files in debian/PACKAGE.
    let root = work.join("debian/vipcheck");
    fill_tree(dist, &root)?;
    fs::write(
        work.join("debian/control"),
        "Source: vipcheck\n\nPackage: vipcheck\nArchitecture: any\n",
    )?;
    // A statically linked vipcheck (the release build on a glibc host)
    // depends on no shared library, and dpkg-shlibdeps finds nothing.
    let binary = "debian/vipcheck/usr/bin/vipcheck";
    let depends = if has_interpreter(&work.join(binary))? {
        format!("Depends: {}\n", shlibs_depends(&work, binary)?)
    } else {
        String::new()
    };
    let files = walk(&root)?;
    let control_dir = root.join("DEBIAN");
    create_dir(&control_dir)?;
    let control = CONTROL
        .replace("@VERSION@", &version)
        .replace("@ARCH@", &arch)
        .replace("@INSTALLED_SIZE@", &installed_size(&files).to_string())
        .replace("Depends: @DEPENDS@\n", &depends);
    write(&control_dir.join("control"), &control, 0o644)?;
    write(
        &control_dir.join("conffiles"),
        &CONFFILES.map(|f| format!("{f}\n")).concat(),
        0o644,
    )?;
    write(
        &control_dir.join("md5sums"),
        &md5sums(&root, &files)?,
        0o644,
    )?;
    for (name, text) in SCRIPTS {
        write(&control_dir.join(name), text, 0o755)?;
    }
    let deb = dist.join(format!("vipcheck_{version}_{arch}.deb"));
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&root)
            .arg(&deb),
    )?;
    fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    Ok(deb)
}

/// The package's files under `root`, modes set, owners left to
/// `dpkg-deb --root-owner-group`.
fn fill_tree(dist: &Path, root: &Path) -> Result<()> {
    let usr_bin = root.join("usr/bin");
    create_dir(&usr_bin)?;
    let vipcheck = usr_bin.join("vipcheck");
    copy(&dist.join("bin/vipcheck"), &vipcheck, 0o755)?;
    // The C names: hard links, since keepalived's enable_script_security
    // runs a symlink under its target's name.
    for name in sorted_names(&dist.join("bin"))? {
        if name != "vipcheck" {
            fs::hard_link(&vipcheck, usr_bin.join(&name))
                .with_context(|| format!("cannot link {name} to {}", vipcheck.display()))?;
        }
    }
    let man = root.join("usr/share/man/man1");
    create_dir(&man)?;
    let mut pages = Vec::new();
    for name in sorted_names(&dist.join("man/man1"))? {
        if name.ends_with(".1") {
            copy(&dist.join("man/man1").join(&name), &man.join(&name), 0o644)?;
            pages.push(man.join(&name));
        }
    }
    if pages.is_empty() {
        bail!("no man page in {}", dist.join("man/man1").display());
    }
    run_ok(Command::new("gzip").arg("-9n").args(&pages))?;
    for (_, staged, installed) in COMPLETIONS {
        let to = root.join(installed);
        create_dir(to.parent().expect("a completion path has a directory"))?;
        copy(&dist.join("completions").join(staged), &to, 0o644)?;
    }
    let units = root.join("lib/systemd/system");
    create_dir(&units)?;
    write(&units.join("vipcheck.service"), UNIT, 0o644)?;
    create_dir(&root.join("etc/default"))?;
    write(&root.join("etc/default/vipcheck"), DEFAULT, 0o644)?;
    let doc = root.join("usr/share/doc/vipcheck");
    create_dir(&doc)?;
    write(&doc.join("copyright"), COPYRIGHT, 0o644)?;
    // Whatever the umask made them.
    for (path, meta) in walk(root)? {
        if meta.is_dir() {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(0o755))?;
        }
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// A Cargo version as a Debian upstream version: a pre-release sorts
/// before its release (`1.0.0-rc.1` → `1.0.0~rc.1`), and no `-` is left
/// to be read as a Debian revision.
pub fn debian_version(cargo_version: &str) -> String {
    cargo_version.replace('-', "~")
}

/// Whether the ELF file names a program interpreter (PT_INTERP): a
/// dynamically linked executable.
pub fn has_interpreter(path: &Path) -> Result<bool> {
    use object::read::elf::{ElfFile64, ProgramHeader as _};
    let data = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let elf = ElfFile64::<object::Endianness>::parse(&*data)
        .with_context(|| format!("{} is not a 64-bit ELF file", path.display()))?;
    let endian = elf.endian();
    Ok(elf
        .elf_program_headers()
        .iter()
        .any(|header| header.p_type(endian) == object::elf::PT_INTERP))
}

/// `Depends` of the binary at `binary` (relative to `work`) as
/// dpkg-shlibdeps computes them from the libraries it links.
fn shlibs_depends(work: &Path, binary: &str) -> Result<String> {
    let out = Command::new("dpkg-shlibdeps")
        .args(["-O", binary])
        .current_dir(work)
        .output()
        .context("cannot run dpkg-shlibdeps (package dpkg-dev)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let depends = stdout
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .filter(|_| out.status.success());
    match depends {
        Some(depends) if !depends.trim().is_empty() => Ok(depends.trim().to_owned()),
        _ => bail!(
            "dpkg-shlibdeps -O {binary} failed ({}): {}{}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// `Installed-Size` in KiB as dpkg-gencontrol counts it: each file (a
/// hard-linked one once) rounded up to a KiB, 1 for anything else.
fn installed_size(files: &[(PathBuf, fs::Metadata)]) -> u64 {
    let mut inodes = std::collections::HashSet::new();
    files
        .iter()
        .filter(|(path, _)| !path.starts_with("DEBIAN"))
        .map(|(_, meta)| {
            if !meta.is_file() {
                1
            } else if inodes.insert(meta.ino()) {
                meta.len().div_ceil(1024)
            } else {
                0
            }
        })
        .sum()
}

/// DEBIAN/md5sums: every file but the conffiles (dpkg keeps their sums).
fn md5sums(root: &Path, files: &[(PathBuf, fs::Metadata)]) -> Result<String> {
    let paths: Vec<&PathBuf> = files
        .iter()
        .filter(|(path, meta)| {
            meta.is_file()
                && !path.starts_with("DEBIAN")
                && !CONFFILES.contains(&format!("/{}", path.display()).as_str())
        })
        .map(|(path, _)| path)
        .collect();
    stdout_of(Command::new("md5sum").args(&paths).current_dir(root))
}

/// Everything under `root` (not `root` itself), as paths relative to it,
/// sorted.
fn walk(root: &Path) -> Result<Vec<(PathBuf, fs::Metadata)>> {
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        for name in sorted_names(&root.join(&dir))? {
            let path = dir.join(name);
            let meta = fs::symlink_metadata(root.join(&path))?;
            if meta.is_dir() {
                dirs.push(path.clone());
            }
            found.push((path, meta));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let name = entry?.file_name();
        match name.into_string() {
            Ok(name) => names.push(name),
            Err(name) => bail!("{}: not UTF-8: {name:?}", dir.display()),
        }
    }
    names.sort();
    Ok(names)
}

fn remove_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_version_of_cargo_versions() {
        assert_eq!(debian_version("0.1.0"), "0.1.0");
        assert_eq!(debian_version("1.0.0-rc.1"), "1.0.0~rc.1");
        assert_eq!(debian_version("1.0.0+git.5"), "1.0.0+git.5");
    }

    #[test]
    fn control_template_is_complete() {
        for field in [
            "Package: vipcheck\n",
            "Version: @VERSION@\n",
            "Architecture: @ARCH@\n",
            "Maintainer: ",
            "Installed-Size: @INSTALLED_SIZE@\n",
            "Depends: @DEPENDS@\n",
            "Section: net\n",
            "Priority: optional\n",
            "Description: ",
        ] {
            assert!(CONTROL.contains(field), "{field:?} missing");
        }
        // Continuation lines only after the Description line.
        let description = CONTROL.find("Description: ").unwrap();
        assert!(!CONTROL[..description].contains("\n "));
        assert!(CONTROL.ends_with('\n') && !CONTROL.contains("\n\n"));
    }

    #[test]
    fn unit_runs_the_daemon_with_the_default_file() {
        assert!(UNIT.contains("\nEnvironmentFile=-/etc/default/vipcheck\n"));
        assert!(UNIT.contains("\nExecStart=/usr/bin/vipcheck daemon $VIPCHECK_ARGS\n"));
        assert!(DEFAULT.contains("\nVIPCHECK_ARGS=\""));
        let caps = "CAP_NET_RAW CAP_NET_ADMIN CAP_SYS_ADMIN";
        assert!(UNIT.contains(&format!("\nCapabilityBoundingSet={caps}\n")));
        assert!(UNIT.contains(&format!("\nAmbientCapabilities={caps}\n")));
        assert!(!UNIT.contains("\nUser="));
    }
}
