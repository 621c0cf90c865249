//! keepalived track files: one file per target holding `0` while vipcheck
//! finds it healthy and `1` while it is down, which keepalived (≥ 2.1)
//! reads through `track_file` blocks and `FILE_CHECK` (see [`snippet`]).
//!
//! What keepalived does with them (keepalived.conf(5), "Track files"):
//! it watches the directory with inotify (a file closed after writing,
//! moved in, moved away or deleted) and reads the number in the file.
//! With `weight 0`, non-zero is a failure and 0 is OK. A missing file
//! reads as 0, i.e. OK: deleting a target's file releases whatever tracks
//! it, which is why [`TrackDir::remove`] is for targets gone from the
//! configuration, not for down ones. keepalived drops a track file whose
//! directory does not exist when it starts: create it before keepalived
//! (systemd's `RuntimeDirectory=`, tmpfiles.d), not only here.
//!
//! Writes are atomic (a temporary file in the same directory, renamed
//! over the file: keepalived sees a whole value or none, and the rename is
//! an event it acts on) and happen only when a target's value changes, so
//! keepalived is not woken every check.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::probe::{AuditTarget, Protocol};

/// Prefix of every file and track name, so vipcheck's files are
/// recognisable in a shared directory.
pub(crate) const PREFIX: &str = "vipcheck";

/// The value of a healthy target (keepalived: OK).
pub(crate) const HEALTHY: &str = "0\n";
/// The value of a target that is down (keepalived, with weight 0: failure).
pub(crate) const DOWN: &str = "1\n";

/// What a track file stands for: a check of a real server of a virtual
/// server, keyed by the `virtual_server` and `real_server` it comes from.
///
/// The check's label ([`TrackKey::check`], also the metrics' `check`
/// label), stable across reloads and readable:
/// - the kind: `tcp`, `http`, `https`, `ping`, `udp`, `dns`, `smtp`;
/// - then `-portN` when the check connects to another port N than the
///   virtual server's (`connect_port`, a MISC_CHECK's port): `tcp-port80`;
/// - a further check with the same label on the same real server (a
///   second `url` of an HTTP_GET) adds its path, letters and digits with
///   the rest as `-` (`/` is `root`): `http-healthz`, `http-api-v1-status`;
///   the Host too if that is still taken, and `-2`, `-3`... last (see
///   [`distinct`]). The first in file order keeps the bare label.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackKey {
    pub(crate) vip: IpAddr,
    /// The virtual server's port.
    pub(crate) port: u16,
    /// The virtual server's protocol: keepalived's virtual servers are
    /// one per address, port and protocol, so a TCP and a UDP one on the
    /// same port are two (`-udp` after the port in names).
    pub(crate) protocol: Protocol,
    pub(crate) real_server: IpAddr,
    /// The real server's port as the input writes it (the snippet's
    /// `real_server` line); not part of the names.
    pub(crate) rs_port: u16,
    /// The check's label (above). Characters other than ASCII letters and
    /// digits become `-` in names.
    pub(crate) check: String,
}

impl TrackKey {
    /// The file's name: `vipcheck_198.18.0.100_80_198.18.0.11_tcp`; an
    /// IPv6 address has its colons as `-` (`vipcheck_fd00--100_80_…`); a
    /// UDP virtual server's port is followed by `-udp`
    /// (`vipcheck_198.18.0.100_53-udp_198.18.0.11_dns`).
    /// Fields are separated by `_`, which no field but the last holds, so
    /// keys of distinct VIP, port, real server and label have distinct
    /// names ([`distinct`] gives a real server written twice with two
    /// ports distinct labels).
    pub(crate) fn file_name(&self) -> String {
        self.name(false)
    }

    /// The `track_file` name in keepalived.conf: the file name with the
    /// dots of IPv4 addresses as `_`
    /// (`vipcheck_198_18_0_100_80_198_18_0_11_tcp`), a plain identifier.
    /// Still distinct: an IPv4 address is four decimal fields, an IPv6
    /// one field holding `-`.
    pub(crate) fn track_name(&self) -> String {
        self.name(true)
    }

    fn name(&self, identifier: bool) -> String {
        let protocol = match self.protocol {
            Protocol::Tcp => "",
            Protocol::Udp => "-udp",
        };
        format!(
            "{PREFIX}_{}_{}{protocol}_{}_{}",
            address(self.vip, identifier),
            self.port,
            address(self.real_server, identifier),
            safe(&self.check)
        )
    }
}

impl From<&AuditTarget> for TrackKey {
    fn from(target: &AuditTarget) -> TrackKey {
        // Keyed by the virtual and real server the check comes from; the
        // label says when it connects to another port.
        let mut check = target.probe.check.kind().to_string();
        if target.probe.port != target.vs_port {
            check += &format!("-port{}", target.probe.port);
        }
        TrackKey {
            vip: target.vs_vip,
            port: target.vs_port,
            protocol: target.vs_protocol,
            real_server: target.rs_ip,
            rs_port: target.rs_port,
            check,
        }
    }
}

/// The key of `target` made distinct from the names in `taken` (file
/// names), which it joins: a second check with the same label adds its
/// path, then its Host, then a number (see [`TrackKey`]).
pub(crate) fn distinct(
    mut key: TrackKey,
    target: &AuditTarget,
    taken: &mut std::collections::HashSet<String>,
) -> TrackKey {
    let base = key.check.clone();
    if let Some(spec) = target.probe.check.http() {
        let path = path_label(&spec.path);
        let mut tries = vec![format!("{base}-{path}")];
        if let Some(host) = &spec.host {
            tries.push(format!("{base}-{}-{path}", safe(host)));
        }
        for label in tries {
            if !taken.contains(&key.file_name()) {
                break;
            }
            key.check = label;
        }
    }
    let named = key.check.clone();
    let mut n = 1;
    while taken.contains(&key.file_name()) {
        n += 1;
        key.check = format!("{named}-{n}");
    }
    taken.insert(key.file_name());
    key
}

/// A path as a label part: letters and digits, runs of others as one `-`,
/// at most 40 characters; `/` alone is `root`.
fn path_label(path: &str) -> String {
    let mut label = String::new();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    let label: String = label.trim_end_matches('-').chars().take(40).collect();
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        "root".to_string()
    } else {
        label.to_string()
    }
}

/// An address as a name part: IPv6 colons as `-`; with `identifier`, dots
/// (IPv4, or an IPv4-mapped IPv6 tail) as `_`.
fn address(ip: IpAddr, identifier: bool) -> String {
    ip.to_string()
        .chars()
        .map(|c| match c {
            ':' => '-',
            '.' if identifier => '_',
            c => c,
        })
        .collect()
}

fn safe(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The directory of the track files, and what this process last wrote in
/// each (so that unchanged values are not written again).
#[derive(Debug)]
pub(crate) struct TrackDir {
    dir: PathBuf,
    /// File name → last value written (true: healthy).
    written: HashMap<String, bool>,
}

impl TrackDir {
    /// Uses `path`, creating it (and its parents) with mode 0755 if
    /// missing: keepalived, often another user, must read the files.
    pub(crate) fn new(path: impl Into<PathBuf>) -> io::Result<TrackDir> {
        let dir = path.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)?;
        if !fs::metadata(&dir)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(TrackDir {
            dir,
            written: HashMap::new(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    #[cfg(test)]
    /// Where the file `name` is.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Sets the file `name` to `0` (healthy) or `1` (down), unless this
    /// TrackDir last wrote that same value there; returns whether it
    /// wrote. The first set of each name always writes, so a file left by
    /// an earlier run is brought up to date.
    ///
    /// Not fsynced: track files belong on a tmpfs (`/run`), and after a
    /// crash the daemon writes every file again with its first results.
    pub(crate) fn set(&mut self, name: &str, healthy: bool) -> io::Result<bool> {
        check_name(name)?;
        if self.written.get(name) == Some(&healthy) {
            return Ok(false);
        }
        let value = if healthy { HEALTHY } else { DOWN };
        // Hidden, and named after the file: never a track file itself, and
        // one per file, so sets of different files never share it.
        let temp = self.dir.join(format!(".{name}.tmp"));
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp)
            .and_then(|mut file| file.write_all(value.as_bytes()))
            .and_then(|()| fs::rename(&temp, self.dir.join(name)));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            // Unknown now: the next set writes whatever its value.
            self.written.remove(name);
            return Err(e);
        }
        self.written.insert(name.to_string(), healthy);
        Ok(true)
    }

    /// Deletes the file `name` (a target removed from the configuration);
    /// a file already gone is not an error. keepalived reads a missing
    /// file as 0 (OK): remove what tracks it from keepalived.conf too.
    pub(crate) fn remove(&mut self, name: &str) -> io::Result<()> {
        check_name(name)?;
        self.written.remove(name);
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A name must be one plain file name in the directory (not a path, not
/// hidden: hidden names are the temporary files').
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a track file name"),
        ));
    }
    Ok(())
}

/// The keepalived.conf (≥ 2.1) that uses the track files of `keys` in
/// `dir`: a `track_file` block per file, an example `track_file` list for a
/// `vrrp_instance` (commented out), and each virtual server's real servers
/// with a `FILE_CHECK` per check. Keys are grouped by virtual server in
/// their first order; duplicates are printed once.
pub(crate) fn snippet(dir: &Path, keys: &[TrackKey]) -> String {
    let mut unique: Vec<&TrackKey> = Vec::new();
    for key in keys {
        if !unique.contains(&key) {
            unique.push(key);
        }
    }
    let mut out = String::new();
    // `write!` to a String cannot fail.
    let _ = writeln!(
        out,
        "# keepalived.conf for vipcheck's track files (keepalived >= 2.1).\n\
         #\n\
         # Each file holds 0 while vipcheck finds its check healthy and 1 while\n\
         # it is down (after the rise/fall damping). With `weight 0` keepalived\n\
         # reads non-zero as a failure and 0 as OK (another weight would add\n\
         # value x weight to a priority or an LVS weight instead).\n\
         #\n\
         # A missing file reads as 0 (OK). Create the directory\n\
         #   {dir}\n\
         # before keepalived starts: it drops a track file whose directory is\n\
         # missing. To keep a real server down until vipcheck's first result,\n\
         # add `init_file 1` to its track_file block (it creates a missing file,\n\
         # and keeps an existing one).\n",
        dir = dir.display()
    );
    for key in &unique {
        let _ = writeln!(
            out,
            "track_file {} {{\n    file \"{}\"\n    weight 0\n}}\n",
            key.track_name(),
            quoted(&dir.join(key.file_name()))
        );
    }
    let _ = writeln!(
        out,
        "# A VRRP instance can follow the files too: with weight 0, any file\n\
         # at 1 puts the instance in FAULT, moving the VIPs to the peer. List\n\
         # only the checks whose failure should do that, in your existing\n\
         # vrrp_instance:\n\
         #\n\
         # vrrp_instance VI_1 {{\n\
         #     track_file {{"
    );
    for key in &unique {
        let _ = writeln!(out, "#         {}", key.track_name());
    }
    let _ = writeln!(out, "#     }}\n# }}\n");

    // Virtual servers in first order, each with its real servers in first
    // order, each with its checks.
    let mut servers: Vec<VirtualServer> = Vec::new();
    for key in &unique {
        let at = match servers
            .iter()
            .position(|v| (v.vip, v.port, v.protocol) == (key.vip, key.port, key.protocol))
        {
            Some(at) => at,
            None => {
                servers.push(VirtualServer {
                    vip: key.vip,
                    port: key.port,
                    protocol: key.protocol,
                    reals: Vec::new(),
                });
                servers.len() - 1
            }
        };
        let reals = &mut servers[at].reals;
        let real = (key.real_server, key.rs_port);
        match reals.iter_mut().find(|(rs, _)| *rs == real) {
            Some((_, checks)) => checks.push(key),
            None => reals.push((real, vec![key])),
        }
    }
    for VirtualServer {
        vip,
        port,
        protocol,
        reals,
    } in &servers
    {
        let _ = writeln!(
            out,
            "virtual_server {vip} {port} {{\n    protocol {}\n    lb_kind DR\n    # ... your lb_algo, delay_loop and other settings",
            protocol.keyword()
        );
        for ((rs, rs_port), checks) in reals {
            // The virtual and real servers as the input writes them: the
            // FILE_CHECK joins the real server's other checkers.
            let _ = writeln!(
                out,
                "    real_server {rs} {rs_port} {{\n        # Down while any of its files holds non-zero (with any\n        # other checkers it has: all must pass)."
            );
            for key in checks {
                let _ = writeln!(
                    out,
                    "        FILE_CHECK {{\n            track_file {}\n        }}",
                    key.track_name()
                );
            }
            let _ = writeln!(out, "    }}");
        }
        let _ = writeln!(out, "}}\n");
    }
    out
}

/// A virtual server of the snippet: its real servers, each with its checks.
struct VirtualServer<'a> {
    vip: IpAddr,
    port: u16,
    protocol: Protocol,
    reals: Vec<((IpAddr, u16), Vec<&'a TrackKey>)>,
}

/// A path inside keepalived's double quotes: `"` and `\` escaped.
fn quoted(path: &Path) -> String {
    path.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The track keys of `targets` as the daemon names them (in input order;
/// see [`TrackKey`] for the labels of look-alike checks). Targets of one
/// [`AuditTarget::identity`] are one target, as the daemon follows them.
pub(crate) fn track_keys(targets: &[AuditTarget]) -> Vec<TrackKey> {
    let mut taken = HashSet::new();
    let mut seen = HashMap::new();
    targets
        .iter()
        .map(|t| {
            seen.entry(t.identity())
                .or_insert_with(|| distinct(TrackKey::from(t), t, &mut taken))
                .clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one, removed when
    /// dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "vipcheck-track-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn key(vip: &str, port: u16, rs: &str, check: &str) -> TrackKey {
        TrackKey {
            vip: vip.parse().unwrap(),
            port,
            protocol: Protocol::Tcp,
            real_server: rs.parse().unwrap(),
            rs_port: port,
            check: check.into(),
        }
    }

    #[test]
    fn names_ipv4() {
        let k = key("198.18.0.100", 80, "198.18.0.11", "tcp");
        assert_eq!(k.file_name(), "vipcheck_198.18.0.100_80_198.18.0.11_tcp");
        assert_eq!(k.track_name(), "vipcheck_198_18_0_100_80_198_18_0_11_tcp");
    }

    #[test]
    fn names_ipv6() {
        let k = key("fd00::100", 443, "fd00::11", "https");
        assert_eq!(k.file_name(), "vipcheck_fd00--100_443_fd00--11_https");
        assert_eq!(k.track_name(), "vipcheck_fd00--100_443_fd00--11_https");
        let mapped = key("::ffff:198.18.0.100", 80, "::ffff:198.18.0.11", "tcp");
        assert_eq!(
            mapped.track_name(),
            "vipcheck_--ffff-198_18_0_100_80_--ffff-198_18_0_11_tcp"
        );
        for k in [&k, &mapped] {
            assert!(!k.track_name().contains(['.', ':', '/']));
            assert!(!k.file_name().contains([':', '/']));
        }
        // The check is made safe too.
        assert_eq!(
            key("fd00::1", 80, "fd00::2", "http/2.x").track_name(),
            "vipcheck_fd00--1_80_fd00--2_http-2-x"
        );
    }

    #[test]
    fn names_from_an_audit_target() {
        let target = AuditTarget {
            probe: crate::probe::Probe::new(
                "198.18.0.11".parse().unwrap(),
                "198.18.0.100".parse().unwrap(),
                80,
                crate::probe::CheckSpec::Tcp,
            ),
            vs_vip: "198.18.0.100".parse().unwrap(),
            vs_port: 80,
            vs_protocol: Protocol::Tcp,
            rs_ip: "198.18.0.11".parse().unwrap(),
            rs_port: 80,
            interval: None,
            retry: None,
            origin: "t:1".into(),
        };
        assert_eq!(
            TrackKey::from(&target),
            key("198.18.0.100", 80, "198.18.0.11", "tcp")
        );
    }

    #[test]
    fn a_udp_virtual_server_is_not_the_tcp_one_on_its_port() {
        // keepalived.conf: a TCP_CHECK of the same real server under a
        // TCP and a UDP virtual server on port 53, and a DNS_CHECK.
        let conf = "virtual_server 10.0.0.100 53 {\n protocol TCP\n lb_kind DR\n\
                    real_server 10.0.0.42 53 {\n TCP_CHECK {\n }\n }\n}\n\
                    virtual_server 10.0.0.100 53 {\n protocol UDP\n lb_kind DR\n\
                    real_server 10.0.0.42 53 {\n TCP_CHECK {\n }\n DNS_CHECK {\n }\n }\n}\n";
        let loaded =
            crate::config::keepalived::load_str(conf, Path::new("/etc/keepalived/keepalived.conf"))
                .unwrap();
        let keys = track_keys(&loaded.targets);
        let names: Vec<String> = keys.iter().map(TrackKey::file_name).collect();
        assert_eq!(
            names,
            [
                "vipcheck_10.0.0.100_53_10.0.0.42_tcp",
                "vipcheck_10.0.0.100_53-udp_10.0.0.42_tcp",
                "vipcheck_10.0.0.100_53-udp_10.0.0.42_dns",
            ]
        );
        assert_eq!(
            keys[1].track_name(),
            "vipcheck_10_0_0_100_53-udp_10_0_0_42_tcp"
        );
        let text = snippet(Path::new("/run/vipcheck"), &keys);
        let servers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("virtual_server") || l.trim_start().starts_with("protocol"))
            .collect();
        assert_eq!(
            servers,
            [
                "virtual_server 10.0.0.100 53 {",
                "    protocol TCP",
                "virtual_server 10.0.0.100 53 {",
                "    protocol UDP",
            ]
        );
        // keepalived reads it (UDP virtual servers with FILE_CHECKs).
        crate::config::keepalived::cases::keepalived_agrees_on(
            &text,
            &Ok(crate::config::Loaded::default()),
        )
        .unwrap();
        // The metrics' labels differ too.
        let labels: Vec<_> = loaded
            .targets
            .iter()
            .map(crate::daemon::metrics::TargetLabels::from)
            .collect();
        assert_ne!(labels[0], labels[1]);
        assert_eq!((labels[0].protocol, labels[1].protocol), ("tcp", "udp"));
    }

    #[test]
    fn writes_atomically_and_only_on_change() {
        let tmp = TempDir::new("write");
        // Created, with parents.
        let mut dir = TrackDir::new(tmp.0.join("run/vipcheck")).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.dir()).unwrap().permissions().mode();
            assert_eq!(mode & 0o700, 0o700);
        }
        let name = key("198.18.0.100", 80, "198.18.0.11", "tcp").file_name();
        let read = |d: &TrackDir| fs::read_to_string(d.path(&name)).unwrap();
        assert!(dir.set(&name, true).unwrap());
        assert_eq!(read(&dir), "0\n");
        // Same value: not written again (its content changed behind our
        // back stays, which proves no write happened).
        fs::write(dir.path(&name), "7\n").unwrap();
        assert!(!dir.set(&name, true).unwrap());
        assert_eq!(read(&dir), "7\n");
        assert!(dir.set(&name, false).unwrap());
        assert_eq!(read(&dir), "1\n");
        assert!(!dir.set(&name, false).unwrap());
        // Nothing else in the directory: the temporary file was renamed.
        let entries: Vec<String> = fs::read_dir(dir.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0], name);
        // A second TrackDir (a restart) writes once, whatever the file holds.
        let mut again = TrackDir::new(dir.dir()).unwrap();
        assert!(again.set(&name, false).unwrap());
        assert!(!again.set(&name, false).unwrap());
        // Removed, then removing again is fine; a later set writes.
        again.remove(&name).unwrap();
        assert!(!again.path(&name).exists());
        again.remove(&name).unwrap();
        assert!(again.set(&name, false).unwrap());
    }

    #[test]
    fn bad_names_are_refused() {
        let tmp = TempDir::new("names");
        let mut dir = TrackDir::new(&tmp.0).unwrap();
        for bad in ["", ".hidden", "../escape", "a/b"] {
            let e = dir.set(bad, true).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(dir.remove(bad).is_err());
        }
        // A file where the directory should be.
        let file = tmp.0.join("file");
        fs::write(&file, "").unwrap();
        assert!(TrackDir::new(&file).is_err());
    }

    #[test]
    fn snippet_has_every_block() {
        let keys = [
            key("198.18.0.100", 80, "198.18.0.11", "tcp"),
            key("198.18.0.100", 80, "198.18.0.11", "http"),
            key("198.18.0.100", 80, "198.18.0.12", "tcp"),
            key("fd00::100", 443, "fd00::11", "https"),
            key("198.18.0.100", 80, "198.18.0.11", "tcp"),
        ];
        let text = snippet(Path::new("/run/vipcheck"), &keys);
        let block = "track_file vipcheck_198_18_0_100_80_198_18_0_11_tcp {\n    \
                     file \"/run/vipcheck/vipcheck_198.18.0.100_80_198.18.0.11_tcp\"\n";
        assert!(text.contains(block), "{text}");
        assert_eq!(text.matches(block).count(), 1, "duplicates printed once");
        assert_eq!(text.matches("\n    weight 0\n").count(), 4);
        assert!(text.contains(
            "track_file vipcheck_fd00--100_443_fd00--11_https {\n    \
             file \"/run/vipcheck/vipcheck_fd00--100_443_fd00--11_https\"\n"
        ));
        assert!(text.contains("# vrrp_instance VI_1 {\n#     track_file {\n"));
        assert!(text.contains("#         vipcheck_198_18_0_100_80_198_18_0_12_tcp\n"));
        // One virtual server per VIP and port, each real server once, a
        // FILE_CHECK per check.
        assert_eq!(text.matches("virtual_server 198.18.0.100 80 {").count(), 1);
        assert_eq!(text.matches("real_server 198.18.0.11 80 {").count(), 1);
        assert!(text.contains("virtual_server fd00::100 443 {"));
        assert!(text.contains("real_server fd00::11 443 {"));
        assert!(text.contains(
            "        FILE_CHECK {\n            track_file vipcheck_198_18_0_100_80_198_18_0_11_http\n        }\n"
        ));
        assert_eq!(text.matches("FILE_CHECK {").count(), 4);
        // Braces balance outside comments.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert_eq!(code.matches('{').count(), code.matches('}').count());
    }

    /// A keepalived.conf's targets as the daemon keys them.
    fn keys_of(conf: &str) -> Vec<TrackKey> {
        let loaded = crate::config::keepalived::load_str(conf, Path::new("k.conf")).unwrap();
        track_keys(&loaded.targets)
    }

    #[test]
    fn keys_name_the_virtual_server_and_tell_checks_apart() {
        let keys = keys_of(
            r#"
virtual_server 198.18.0.100 443 {
  protocol TCP
  lb_kind DR
  real_server 198.18.0.11 443 {
    TCP_CHECK { connect_port 80 }
    TCP_CHECK { }
    HTTP_GET {
      url { path / }
      url { path /api/v1/status?full=1 }
      url { path /api/v1/status?full=1
            status_code 204 }
    }
  }
}
virtual_server 198.18.0.100 22 {
  protocol TCP
  lb_kind DR
  real_server 198.18.0.11 22 {
    MISC_CHECK {
      misc_path "check_tcp_raw -t 250 eth0 198.18.0.11 198.18.0.100 80"
    }
  }
}
"#,
        );
        let names: Vec<(u16, u16, &str)> = keys
            .iter()
            .map(|k| (k.port, k.rs_port, k.check.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (443, 443, "tcp-port80"),
                (443, 443, "tcp"),
                (443, 443, "http"),
                (443, 443, "http-api-v1-status-full-1"),
                (443, 443, "http-api-v1-status-full-1-2"),
                (22, 22, "tcp-port80"),
            ]
        );
        assert_eq!(
            keys[0].file_name(),
            "vipcheck_198.18.0.100_443_198.18.0.11_tcp-port80"
        );
        // No label reads like a protocol version.
        assert!(keys.iter().all(|k| !k.check.contains("http2")));
        assert_eq!(path_label("/"), "root");
        assert_eq!(path_label("/healthz/"), "healthz");
        assert_eq!(path_label(&format!("/{}", "a".repeat(50))).len(), 40);
    }

    #[test]
    fn a_misc_check_elsewhere_is_keyed_by_its_block() {
        // The command line checks another VIP and real server: the file
        // stands for the real server it is written under.
        let conf = r#"
virtual_server 198.18.0.100 22 {
  protocol TCP
  lb_kind DR
  real_server 198.18.0.11 22 {
    MISC_CHECK {
      misc_path "check_tcp_raw -t 250 eth0 198.18.0.12 198.18.0.200 80"
    }
  }
}
"#;
        let loaded = crate::config::keepalived::load_str(conf, Path::new("k.conf")).unwrap();
        let t = &loaded.targets[0];
        assert_eq!(
            (
                t.probe.real_server.to_string(),
                t.probe.vip.to_string(),
                t.probe.port
            ),
            ("198.18.0.12".into(), "198.18.0.200".into(), 80)
        );
        let keys = keys_of(conf);
        assert_eq!(
            keys[0].file_name(),
            "vipcheck_198.18.0.100_22_198.18.0.11_tcp-port80"
        );
        let text = snippet(Path::new("/run/vipcheck"), &keys);
        assert!(text.contains("virtual_server 198.18.0.100 22 {"), "{text}");
        assert!(text.contains("    real_server 198.18.0.11 22 {"), "{text}");
        assert!(
            !text.contains("198.18.0.200 ") && !text.contains("198.18.0.12 "),
            "{text}"
        );
    }

    #[test]
    fn one_real_server_written_with_two_ports() {
        let keys = keys_of(
            "virtual_server 10.0.0.100 80 {\nprotocol TCP\nlb_kind DR\nreal_server 10.0.0.42 80 {\nTCP_CHECK {\n}\n}\n\
             real_server 10.0.0.42 8080 {\nTCP_CHECK {\n}\n}\n}\n",
        );
        let labels: Vec<(u16, &str)> = keys.iter().map(|k| (k.rs_port, k.check.as_str())).collect();
        // Each checks its own port: the labels differ by it.
        assert_eq!(labels, [(80, "tcp"), (8080, "tcp-port8080")]);
        let text = snippet(Path::new("/run/vipcheck"), &keys);
        assert!(text.contains("    real_server 10.0.0.42 80 {"), "{text}");
        assert!(text.contains("    real_server 10.0.0.42 8080 {"), "{text}");
    }

    #[test]
    fn labels_are_stable_when_other_checks_come_and_go() {
        // The daemon keeps the keys of the targets it had; a later url
        // keeps its label whatever is added before it.
        let one = "virtual_server 10.0.0.100 80 {\nprotocol TCP\nlb_kind DR\nreal_server 10.0.0.42 80 {\n\
                   HTTP_GET {\nurl {\npath /\n}\nurl {\npath /healthz\n}\n}\n}\n}\n";
        let two = "virtual_server 10.0.0.100 80 {\nprotocol TCP\nlb_kind DR\nreal_server 10.0.0.42 80 {\n\
                   HTTP_GET {\nurl {\npath /\n}\nurl {\npath /new\n}\nurl {\npath /healthz\n}\n}\n}\n}\n";
        let labels = |conf| -> Vec<String> { keys_of(conf).into_iter().map(|k| k.check).collect() };
        assert_eq!(labels(one), ["http", "http-healthz"]);
        assert_eq!(labels(two), ["http", "http-new", "http-healthz"]);
    }

    #[test]
    fn snippet_keeps_the_virtual_and_real_servers() {
        let keys = keys_of(
            r"
virtual_server 198.18.0.100 443 {
  protocol TCP
  lb_kind DR
  real_server 198.18.0.11 8443 {
    TCP_CHECK { connect_port 80 }
  }
}
",
        );
        let text = snippet(Path::new("/run/vipcheck"), &keys);
        assert!(text.contains("virtual_server 198.18.0.100 443 {"), "{text}");
        assert!(
            text.contains("    real_server 198.18.0.11 8443 {"),
            "{text}"
        );
        assert!(!text.contains(" 80 {"), "{text}");
        assert!(text.contains("track_file vipcheck_198_18_0_100_443_198_18_0_11_tcp-port80\n"));
    }

    #[test]
    fn paths_are_quoted() {
        assert_eq!(quoted(Path::new("/a \"b\"\\c")), "/a \\\"b\\\"\\\\c");
    }
}
