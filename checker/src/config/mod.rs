//! The input of `vipcheck audit`: many targets at once, from a TOML
//! targets file ([`targets`]) or from keepalived.conf ([`keepalived`]).
//!
//! Both end in the same plain data, [`Loaded`]: the targets to check and
//! what could not be mapped ([`Skipped`], with the reason), so nothing in
//! the input is silently ignored. Nothing here touches the network or
//! resolves a name: addresses are literal IPs. Errors carry `file:line`.

pub mod keepalived;
pub mod targets;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::probe::AuditTarget;

/// Where the targets come from; a daemon reads it again on SIGHUP.
#[derive(Clone, Debug)]
pub(crate) enum Input {
    Keepalived(PathBuf),
    Targets(PathBuf),
}

impl Input {
    /// The file read, its warnings (keepalived's reports, `file:line`) said
    /// on stderr.
    pub(crate) fn load(&self) -> std::result::Result<Loaded, ConfigError> {
        let loaded = match self {
            Input::Keepalived(path) => keepalived::load(path),
            Input::Targets(path) => targets::load(path),
        }?;
        print_warnings(&loaded);
        Ok(loaded)
    }

    /// [`Input::load`], and an error when it gives nothing to check (after
    /// the warnings, which often say why).
    pub(crate) fn load_checkable(&self) -> std::result::Result<Loaded, ConfigError> {
        let loaded = self.load()?;
        match loaded.nothing_to_check(self.path()) {
            Some(e) => Err(e),
            None => Ok(loaded),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Input::Keepalived(path) | Input::Targets(path) => path,
        }
    }
}

/// Something of the input that is not checked, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Skipped {
    /// `file:line`.
    pub(crate) origin: String,
    /// What it is, e.g. `virtual_server fwmark 1` or `DNS_CHECK of
    /// real_server 10.0.0.42 80`.
    pub(crate) what: String,
    pub(crate) reason: String,
}

/// What an input file gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub targets: Vec<AuditTarget>,
    pub(crate) skipped: Vec<Skipped>,
    /// What the reader noticed and read past (what `keepalived -t`
    /// reports, and meanings worth a look); print each one.
    pub(crate) warnings: Vec<Warning>,
}

/// Something of the input that is read, but maybe not as its author
/// meant: `file:line` and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Warning {
    /// `file:line`.
    pub(crate) origin: String,
    pub(crate) message: String,
}

impl fmt::Display for Warning {
    /// `FILE:LINE: warning: MESSAGE`, one line (control characters of
    /// the input escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: ", self.origin)?;
        for c in self.message.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Prints each warning as one line on stderr: `vipcheck: FILE:LINE:
/// warning: ...` (a closed stderr is ignored, as by every `note!`).
pub(crate) fn print_warnings(loaded: &Loaded) {
    for w in &loaded.warnings {
        crate::note!("vipcheck: {w}");
    }
}

impl Loaded {
    /// Why `path` gives nothing to check, when it gives no target: a
    /// daemon or an audit of it would check nothing and say all is well.
    pub(crate) fn nothing_to_check(&self, path: &Path) -> Option<ConfigError> {
        if !self.targets.is_empty() {
            return None;
        }
        let why = match self.skipped.first() {
            None => "it has no virtual_server (or target) with a real server to check".to_string(),
            Some(first) => format!(
                "each of its {} entries is skipped, the first at {}: {}: {}",
                self.skipped.len(),
                first.origin,
                first.what,
                first.reason
            ),
        };
        Some(ConfigError::new(
            path.display().to_string(),
            format!("nothing to check: {why}; is it the right file?"),
        ))
    }
}

/// A file that cannot be read as asked: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `file:line`, or `file` when no line applies.
    pub(crate) origin: String,
    pub(crate) message: String,
}

impl ConfigError {
    pub(crate) fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Largest input file read (bytes).
pub(crate) const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a whole UTF-8 file, bounded by [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path, origin: &str) -> Result<String, ConfigError> {
    let bytes = read_bytes(path, origin)?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            origin,
            format!(
                "{} is not UTF-8 (byte {} is not): save it as UTF-8",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a whole file as bytes, bounded by [`MAX_FILE_BYTES`].
pub(crate) fn read_bytes(path: &Path, origin: &str) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| ConfigError::new(origin, format!("cannot open {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| ConfigError::new(origin, format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            origin,
            format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse::*;

    #[test]
    fn small_parsers() {
        assert_eq!(parse_ip("[fd00::1]").unwrap().to_string(), "fd00::1");
        assert!(parse_ip("10.0.0.256").is_err());
        assert!(parse_ip("www.example.com").is_err());
        assert_eq!(parse_port("80"), Ok(80));
        assert!(parse_port("0").is_err() && parse_port("65536").is_err());
        assert_eq!(
            parse_md5("D36F8F9425C4A8000AD9C4A97185ACA5").unwrap(),
            "d36f8f9425c4a8000ad9c4a97185aca5"
        );
        assert!(parse_md5("xyz").is_err());
        assert!(check_path("/ok").is_ok() && check_path("nope").is_err());
        assert!(check_host("a b").is_err());
        assert_eq!(parse_status("200-299"), Ok(200..=299));
        assert!(check_unicast("127.0.0.1".parse().unwrap(), "VIP").is_err());
        assert_eq!(
            ConfigError::new("a.conf:3", "bad").to_string(),
            "a.conf:3: bad"
        );
        let w = Warning {
            origin: "a.conf:4".into(),
            message: "Unknown keyword 'a\x0bb'".into(),
        };
        assert_eq!(
            w.to_string(),
            "a.conf:4: warning: Unknown keyword 'a\\u{b}b'"
        );
    }
}
