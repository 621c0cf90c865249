//! `cargo xtask dist [--deb]`: the release binary, its C names, man pages and
//! completions staged in one directory, and from them a Debian package
//! built with `dpkg-deb` (the unit, the default file, the control file,
//! the changelog, the copyright file, the lintian overrides and the
//! maintainer scripts are the files of `xtask/dist/`; every file under
//! `xtask/dist/share/` is installed under `/usr/share/vipcheck/`), with
//! the binary stripped and its debug information in a `-dbgsym` package
//! beside it, as debhelper makes them.

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
const CHANGELOG: &str = include_str!("../dist/changelog");
const LINTIAN_OVERRIDES: &str = include_str!("../dist/lintian-overrides");
/// The tag lintian gives the -dbgsym package for want of DWARF: the
/// release profile builds without it (Cargo.toml: `debug = false`), so
/// what is kept apart from the stripped binary is its symbol table (for
/// perf, gdb's backtraces, addr2line of function names). lintian takes no
/// override file in a debug package: its test suppresses this tag.
pub const DBGSYM_NO_DWARF_TAG: &str = "debug-file-with-no-debug-symbols";
/// The operator's guide, installed as /usr/share/doc/vipcheck/README.md.gz.
const README: &str = include_str!("../../README.md");
/// Where the package installs the files of [`share_dir`].
pub const SHARE: &str = "usr/share/vipcheck";
/// The package's Maintainer when neither `VIPCHECK_MAINTAINER` nor
/// `DEBFULLNAME`/`DEBEMAIL` nor git's user.name/user.email say another.
pub const DEFAULT_MAINTAINER: &str =
    "vipcheck maintainers <maintainers@users.noreply.r-seed-98dae914.example>";
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

/// `xtask/dist/share/`: every file under it is installed under
/// [`SHARE`], keeping its subdirectories.
pub fn share_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/share")
}

/// Where `cargo xtask dist` stages and builds the package when not told
/// (`--out`): `dist/` in the target directory (`target/`, or
/// `CARGO_TARGET_DIR`), whatever the build's target triple.
pub fn default_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("dist")
}

/// The package's Maintainer: `VIPCHECK_MAINTAINER`, else `DEBFULLNAME
/// <DEBEMAIL>` (what Debian's own tools take), else git's `user.name
/// <user.email>`, else [`DEFAULT_MAINTAINER`]; it must read
/// `Name <user@host>`.
pub fn maintainer() -> Result<String> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let git = |key: &str| git(&["config", key]);
    let (found, from) = if let Some(m) = var("VIPCHECK_MAINTAINER") {
        (m, "VIPCHECK_MAINTAINER")
    } else if let (Some(name), Some(mail)) = (var("DEBFULLNAME"), var("DEBEMAIL")) {
        (format!("{name} <{mail}>"), "DEBFULLNAME and DEBEMAIL")
    } else if let (Some(name), Some(mail)) = (git("user.name"), git("user.email")) {
        (
            format!("{name} <{mail}>"),
            "git config user.name and user.email",
        )
    } else {
        (DEFAULT_MAINTAINER.to_owned(), "the default")
    };
    if !is_maintainer(&found) {
        bail!("Maintainer {found:?} (from {from}) is not `Name <user@host>`");
    }
    Ok(found)
}

/// What `git ARGS` prints in this repository, trimmed; None if git fails
/// or prints nothing.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether `s` is a Maintainer field's `Name <user@host.domain>`.
pub fn is_maintainer(s: &str) -> bool {
    let Some((name, rest)) = s.split_once(" <") else {
        return false;
    };
    let Some(mail) = rest.strip_suffix('>') else {
        return false;
    };
    let Some((user, host)) = mail.split_once('@') else {
        return false;
    };
    let clean = |t: &str| !t.is_empty() && !t.contains(['<', '>', ',', '\n', '@', ' ']);
    !name.trim().is_empty()
        && !name.contains(['<', '>', ',', '\n'])
        && clean(user)
        && clean(host)
        && host.contains('.')
}

/// Builds `dist/vipcheck_VERSION_ARCH.deb` from what [`stage`] put in
/// `dist`, and `dist/vipcheck-dbgsym_VERSION_ARCH.deb` with the debug
/// information of its binary, and returns the first one's path. The
/// package trees are made in `dist/deb/` and removed once the packages
/// are built.
pub fn deb(dist: &Path) -> Result<PathBuf> {
    let arch = stdout_of(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let version = debian_version(env!("CARGO_PKG_VERSION"));
    let maintainer = maintainer()?;
    let work = dist.join("deb");
    remove_if_present(&work)?;
    // dpkg-shlibdeps wants a source tree: debian/control, and the
    // package's files in debian/PACKAGE.
    let root = work.join("debian/vipcheck");
    let dbgsym = work.join("debian/vipcheck-dbgsym");
    let build_id = fill_tree(dist, &root, &dbgsym, &version, &maintainer)?;
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
        .replace("@MAINTAINER@", &maintainer)
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
    build(&root, &deb)?;

    // The debug information, as dh_strip's automatic -dbgsym package.
    let files = walk(&dbgsym)?;
    let control_dir = dbgsym.join("DEBIAN");
    create_dir(&control_dir)?;
    let build_ids = build_id
        .map(|id| format!("Build-Ids: {id}\n"))
        .unwrap_or_default();
    let control = format!(
        "Package: vipcheck-dbgsym\nSource: vipcheck\nVersion: {version}\n\
         Auto-Built-Package: debug-symbols\nArchitecture: {arch}\n\
         Maintainer: {maintainer}\nInstalled-Size: {}\n\
         Depends: vipcheck (= {version})\nSection: debug\nPriority: optional\n\
         Description: debug symbols for vipcheck\n{build_ids}",
        installed_size(&files)
    );
    write(&control_dir.join("control"), &control, 0o644)?;
    write(
        &control_dir.join("md5sums"),
        &md5sums(&dbgsym, &files)?,
        0o644,
    )?;
    build(
        &dbgsym,
        &dist.join(format!("vipcheck-dbgsym_{version}_{arch}.deb")),
    )?;
    fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    Ok(deb)
}

fn build(root: &Path, deb: &Path) -> Result<()> {
    run_ok(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(root)
            .arg(deb),
    )
}

/// Strips `binary` as dh_strip does and puts its debug information in
/// `dbgsym`'s tree under `/usr/lib/debug/.build-id/` (or under
/// `/usr/lib/debug/usr/bin/` for a binary without a build id), linked
/// from the binary by `.gnu_debuglink`. Returns the build id in hex.
fn strip(binary: &Path, installed: &str, dbgsym: &Path) -> Result<Option<String>> {
    let data = fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    let build_id = {
        use object::Object as _;
        let elf = object::File::parse(&*data)
            .with_context(|| format!("{} is not an ELF file", binary.display()))?;
        elf.build_id()?
            .map(|id| id.iter().map(|b| format!("{b:02x}")).collect::<String>())
    };
    let debug = match &build_id {
        Some(id) if id.len() > 2 => dbgsym
            .join("usr/lib/debug/.build-id")
            .join(&id[..2])
            .join(format!("{}.debug", &id[2..])),
        _ => dbgsym.join(format!("usr/lib/debug/{installed}.debug")),
    };
    create_dir(debug.parent().expect("a debug file has a directory"))?;
    run_ok(
        Command::new("objcopy")
            .args(["--only-keep-debug", "--compress-debug-sections"])
            .arg(binary)
            .arg(&debug),
    )?;
    fs::set_permissions(&debug, fs::Permissions::from_mode(0o644))?;
    run_ok(
        Command::new("strip")
            .args(["--remove-section=.comment", "--remove-section=.note"])
            .arg(binary),
    )?;
    run_ok(
        Command::new("objcopy")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(binary),
    )?;
    fs::set_permissions(binary, fs::Permissions::from_mode(0o755))?;
    let doc = dbgsym.join("usr/share/doc");
    create_dir(&doc)?;
    std::os::unix::fs::symlink("vipcheck", doc.join("vipcheck-dbgsym"))?;
    set_dir_modes(dbgsym)?;
    Ok(build_id)
}

/// The package's files under `root`, modes set, owners left to
/// `dpkg-deb --root-owner-group`; the debug information of its binary
/// under `dbgsym` (see [`strip`], which returns the build id).
fn fill_tree(
    dist: &Path,
    root: &Path,
    dbgsym: &Path,
    version: &str,
    maintainer: &str,
) -> Result<Option<String>> {
    let usr_bin = root.join("usr/bin");
    create_dir(&usr_bin)?;
    let vipcheck = usr_bin.join("vipcheck");
    copy(&dist.join("bin/vipcheck"), &vipcheck, 0o755)?;
    // Before the links: strip writes a new file.
    let build_id = strip(&vipcheck, "usr/bin/vipcheck", dbgsym)?;
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
    write(
        &doc.join("copyright"),
        &COPYRIGHT.replace("@MAINTAINER@", maintainer),
        0o644,
    )?;
    let changelog = CHANGELOG
        .replace("@VERSION@", version)
        .replace("@MAINTAINER@", maintainer)
        .replace("@DATE@", &changelog_date()?);
    // A native package's changelog (its version has no Debian revision).
    write(&doc.join("changelog"), &changelog, 0o644)?;
    write(&doc.join("README.md"), README, 0o644)?;
    run_ok(
        Command::new("gzip")
            .arg("-9n")
            .arg(doc.join("changelog"))
            .arg(doc.join("README.md")),
    )?;
    let overrides = root.join("usr/share/lintian/overrides");
    create_dir(&overrides)?;
    write(&overrides.join("vipcheck"), LINTIAN_OVERRIDES, 0o644)?;
    let share = share_dir();
    for (path, meta) in walk(&share)? {
        let to = root.join(SHARE).join(&path);
        if meta.is_dir() {
            create_dir(&to)?;
        } else if meta.is_file() {
            create_dir(to.parent().expect("a file has a directory"))?;
            copy(&share.join(&path), &to, 0o644)?;
        } else {
            bail!(
                "{}: neither a file nor a directory",
                share.join(path).display()
            );
        }
    }
    set_dir_modes(root)?;
    Ok(build_id)
}

/// Every directory of `root` and `root` itself 0755, whatever the umask
/// made them.
fn set_dir_modes(root: &Path) -> Result<()> {
    for (path, meta) in walk(root)? {
        if meta.is_dir() {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(0o755))?;
        }
    }
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The changelog entry's date (RFC 2822): `SOURCE_DATE_EPOCH`, else the
/// time of the last commit, so that a build is reproducible; else now.
fn changelog_date() -> Result<String> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| git(&["log", "-1", "--format=%ct"]));
    let mut date = Command::new("date");
    date.env("LC_ALL", "C").args(["-u", "-R"]);
    if let Some(epoch) = epoch {
        let epoch: u64 = epoch
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH or the commit time {epoch:?}"))?;
        date.arg("-d").arg(format!("@{epoch}"));
    }
    Ok(stdout_of(&mut date)?.trim().to_owned())
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
    fn readme_install_paths_are_where_dist_puts_the_package() {
        let section = README
            .split("\n## Install from the .deb\n")
            .nth(1)
            .expect("the README's install section");
        let block = section.split("```sh\n").nth(1).unwrap();
        let block = block.split("```").next().unwrap();
        let dist = default_dir(Path::new("target"));
        let version = debian_version(env!("CARGO_PKG_VERSION"));
        // `cargo xtask dist --deb   # target/dist/vipcheck_VERSION_amd64.deb`
        let built = block
            .lines()
            .find_map(|l| l.strip_prefix("cargo xtask dist --deb"))
            .and_then(|rest| rest.split('#').nth(1))
            .expect("the dist line names its package")
            .trim();
        assert_eq!(
            Path::new(built),
            dist.join(format!("vipcheck_{version}_amd64.deb"))
        );
        // `apt install ./target/dist/vipcheck_*.deb`
        let installed = block
            .lines()
            .find_map(|l| l.strip_prefix("apt install ./"))
            .expect("the apt install line")
            .trim();
        assert_eq!(Path::new(installed), dist.join("vipcheck_*.deb"));
        assert!(section.contains(&format!("`{}/`", dist.display())));
        // The conffile and the unit it names are the package's.
        assert!(block.contains(&format!("editor {}", CONFFILES[0])));
        assert!(block.contains("systemctl enable --now vipcheck\n"));
    }

    #[test]
    fn maintainers() {
        assert!(is_maintainer(DEFAULT_MAINTAINER));
        assert!(is_maintainer("Jane Doe <jane@example.org>"));
        for bad in [
            "jane@example.org",
            "Jane <jane>",
            "<jane@example.org>",
            "Jane <jane@example.org",
            "Jane <jane@@example.org>",
            "Jane, Joe <j@example.org>",
        ] {
            assert!(!is_maintainer(bad), "{bad:?}");
        }
    }

    #[test]
    fn control_template_is_complete() {
        for field in [
            "Package: vipcheck\n",
            "Version: @VERSION@\n",
            "Architecture: @ARCH@\n",
            "Maintainer: @MAINTAINER@\n",
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
