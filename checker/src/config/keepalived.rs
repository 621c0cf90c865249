//! keepalived.conf as the input of an audit: its virtual servers' real
//! servers and their checkers, as [`AuditTarget`]s.
//!
//! Syntax: whitespace-separated words, a statement per line (its keyword
//! and arguments), `{ }` blocks (the `{` on the keyword's line or the
//! next), `#` and `!` comments from the start of a word to the end of the
//! line, `"quoted strings"` as one word, and `include PATTERN` on its own
//! line: a glob, relative to the directory of the file that includes it,
//! whose files (in name order) are read in its place. Bounded: include
//! depth [`MAX_INCLUDE_DEPTH`], [`MAX_FILES`] files, block nesting
//! [`MAX_NESTING`], [`MAX_WORDS`] words; an include loop is an error.
//!
//! Mapping, for each `virtual_server IP PORT` (IPv4 or IPv6) and each
//! `real_server IP [PORT]` in it, each checker:
//!
//! | keepalived | target |
//! | --- | --- |
//! | `TCP_CHECK` | tcp; `connect_port` overrides the port |
//! | `HTTP_GET`, `SSL_GET` | http, https: one target per `url { path P digest D status_code C... regex R regex_no_match }`; status default 200-299; `virtualhost` (url, checker, real_server or virtual_server level, the innermost wins) is the Host; `SSL_GET` verifies no certificate, as keepalived's, and sends SNI only with `enable_sni` or `sni_name` |
//! | `MISC_CHECK` whose `misc_path` runs `check_tcp_raw`, `check_http_get_raw` or `check_http_raw` (any directory) | what that command line checks: IFACE, REAL_SERVER, VIP and PORT from its arguments, its `-t` as the per-reply timeout |
//!
//! `connect_timeout` (seconds; checker, real_server or virtual_server
//! level; default 5 as keepalived's) and `misc_timeout` are the timeout;
//! `delay_loop` the interval, `retry` (or `nb_get_retry`) the retries,
//! each from the innermost level that gives it.
//!
//! Skipped, with the reason: `virtual_server fwmark N`, `virtual_server
//! group NAME`, a virtual server of `protocol UDP` or `SCTP`, a real
//! server of another family than its VIP, a real server without a checker,
//! `DNS_CHECK`, `SMTP_CHECK`, `UDP_CHECK`, `BFD_CHECK`, `PING_CHECK`,
//! `FILE_CHECK`, a `MISC_CHECK` of another script or of an invalid command
//! line, a checker with a `connect_ip` other than its real server, any
//! other block in a real_server, and an include that matches no file.
//! Everything else (global_defs, vrrp_*, lb_algo, lb_kind, weight...) is
//! not a check and is ignored.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    AuditTarget, CheckSpec, ConfigError, HttpSpec, Loaded, Skipped, TlsSpec, Verify, check_host,
    check_path, check_unicast, parse_ip, parse_md5, parse_port, parse_status,
};

/// Deepest chain of includes.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read, the main one included.
pub const MAX_FILES: usize = 256;
/// Deepest nesting of `{ }` blocks.
pub const MAX_NESTING: usize = 32;
/// Most words (and braces) over all files.
pub const MAX_WORDS: usize = 1_000_000;
/// keepalived's default `connect_timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest timeout taken (one hour, as `vipcheck -t`).
const MAX_TIMEOUT_S: f64 = 3600.0;

/// What a C checker's command line gives (from [`crate::compat`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompatLine {
    pub iface: String,
    pub real_server: IpAddr,
    pub vip: IpAddr,
    pub port: u16,
    pub reply_timeout: Option<Duration>,
    pub check: CheckSpec,
}

/// Reads keepalived.conf at `path` (and what it includes) into targets.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let mut reader = Reader::default();
    reader.read(path, 0, &path.display().to_string())?;
    map(&reader)
}

/// `text` as the keepalived.conf at `path` (includes are relative to its
/// directory).
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let mut reader = Reader::default();
    reader.files.push(path.to_path_buf());
    reader.tokenize(text, 0, 0)?;
    map(&reader)
}

fn map(reader: &Reader) -> Result<Loaded, ConfigError> {
    let statements = parse(reader)?;
    let mut loaded = Loaded {
        targets: Vec::new(),
        skipped: reader.skipped.clone(),
    };
    for s in &statements {
        if s.key == "virtual_server" {
            map_virtual_server(s, &mut loaded)?;
        }
    }
    Ok(loaded)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open,
    Close,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    file: usize,
    line: usize,
}

#[derive(Default)]
struct Reader {
    files: Vec<PathBuf>,
    tokens: Vec<Token>,
    /// Canonical paths of the files being read (to find a loop).
    stack: Vec<PathBuf>,
    skipped: Vec<Skipped>,
}

impl Reader {
    fn origin(&self, file: usize, line: usize) -> String {
        format!("{}:{line}", self.files[file].display())
    }

    /// Reads `path` (`origin`: where it was named) at include depth `depth`.
    fn read(&mut self, path: &Path, depth: usize, origin: &str) -> Result<(), ConfigError> {
        if self.files.len() >= MAX_FILES {
            return Err(ConfigError::new(
                origin,
                format!("more than {MAX_FILES} files included"),
            ));
        }
        let canonical = path.canonicalize().map_err(|e| {
            ConfigError::new(origin, format!("cannot open {}: {e}", path.display()))
        })?;
        if self.stack.contains(&canonical) {
            return Err(ConfigError::new(
                origin,
                format!("include loop: {} includes itself", path.display()),
            ));
        }
        let text = super::read_file(path, origin)?;
        self.files.push(path.to_path_buf());
        self.stack.push(canonical);
        let file = self.files.len() - 1;
        self.tokenize(&text, file, depth)?;
        self.stack.pop();
        Ok(())
    }

    fn tokenize(&mut self, text: &str, file: usize, depth: usize) -> Result<(), ConfigError> {
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let words =
                split_line(line).map_err(|m| ConfigError::new(self.origin(file, line_no), m))?;
            if words.first() == Some(&Tok::Word("include".into())) {
                let pattern: Vec<String> = words[1..]
                    .iter()
                    .map(|t| match t {
                        Tok::Word(w) => w.clone(),
                        Tok::Open => "{".into(),
                        Tok::Close => "}".into(),
                    })
                    .collect();
                self.include(&pattern.join(" "), file, line_no, depth)?;
                continue;
            }
            for tok in words {
                if self.tokens.len() >= MAX_WORDS {
                    return Err(ConfigError::new(
                        self.origin(file, line_no),
                        format!("more than {MAX_WORDS} words"),
                    ));
                }
                self.tokens.push(Token {
                    tok,
                    file,
                    line: line_no,
                });
            }
        }
        Ok(())
    }

    fn include(
        &mut self,
        pattern: &str,
        file: usize,
        line: usize,
        depth: usize,
    ) -> Result<(), ConfigError> {
        let origin = self.origin(file, line);
        if pattern.is_empty() {
            return Err(ConfigError::new(origin, "include needs a file or pattern"));
        }
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(ConfigError::new(
                origin,
                format!("includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"),
            ));
        }
        let full = match self.files[file].parent() {
            Some(dir) if Path::new(pattern).is_relative() => dir.join(pattern),
            _ => PathBuf::from(pattern),
        };
        let full_text = full
            .to_str()
            .ok_or_else(|| ConfigError::new(&origin, "include path is not UTF-8"))?;
        let paths = glob::glob(full_text)
            .map_err(|e| ConfigError::new(&origin, format!("include {pattern:?}: {e}")))?;
        let mut found = Vec::new();
        for p in paths {
            let p =
                p.map_err(|e| ConfigError::new(&origin, format!("include {pattern:?}: {e}")))?;
            if p.is_file() {
                found.push(p);
            }
            if found.len() > MAX_FILES {
                break;
            }
        }
        if found.is_empty() {
            self.skipped.push(Skipped {
                origin,
                what: format!("include {pattern}"),
                reason: "matches no file".into(),
            });
            return Ok(());
        }
        found.sort();
        for p in found {
            self.read(&p, depth + 1, &origin)?;
        }
        Ok(())
    }
}

/// One line's words and braces; `#` or `!` at the start of a word ends it.
fn split_line(line: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' | '!' => break,
            '{' => {
                chars.next();
                out.push(Tok::Open);
            }
            '}' => {
                chars.next();
                out.push(Tok::Close);
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quoted string".into()),
                    }
                }
                out.push(Tok::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Tok::Word(word));
            }
        }
    }
    Ok(out)
}

/// A keyword, its arguments and its block.
#[derive(Clone, Debug)]
struct Stmt {
    key: String,
    args: Vec<String>,
    origin: String,
    block: Option<Vec<Stmt>>,
}

impl Stmt {
    /// Its one argument.
    fn arg(&self) -> Result<&str, ConfigError> {
        match self.args.as_slice() {
            [one] => Ok(one),
            [] => Err(self.error(format!("{} needs an argument", self.key))),
            _ => Err(self.error(format!(
                "{} takes one argument (one statement per line)",
                self.key
            ))),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin, message)
    }

    fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

fn parse(reader: &Reader) -> Result<Vec<Stmt>, ConfigError> {
    let mut pos = 0;
    let top = parse_block(reader, &mut pos, 0)?;
    if let Some(t) = reader.tokens.get(pos) {
        return Err(ConfigError::new(
            reader.origin(t.file, t.line),
            "} without a matching {",
        ));
    }
    Ok(top)
}

/// Statements up to a `}` (not consumed) or the end.
fn parse_block(reader: &Reader, pos: &mut usize, depth: usize) -> Result<Vec<Stmt>, ConfigError> {
    let tokens = &reader.tokens;
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*pos) {
        let origin = reader.origin(t.file, t.line);
        let key = match &t.tok {
            Tok::Close => return Ok(out),
            Tok::Open => return Err(ConfigError::new(origin, "{ without a keyword before it")),
            Tok::Word(w) => w.clone(),
        };
        *pos += 1;
        let mut args = Vec::new();
        while let Some(Token {
            tok: Tok::Word(w),
            file,
            line,
        }) = tokens.get(*pos)
        {
            if (*file, *line) != (t.file, t.line) {
                break;
            }
            args.push(w.clone());
            *pos += 1;
        }
        let block = if tokens.get(*pos).map(|n| &n.tok) == Some(&Tok::Open) {
            if depth + 1 > MAX_NESTING {
                return Err(ConfigError::new(
                    origin,
                    format!("blocks nested deeper than {MAX_NESTING}"),
                ));
            }
            *pos += 1;
            let inner = parse_block(reader, pos, depth + 1)?;
            if tokens.get(*pos).map(|n| &n.tok) != Some(&Tok::Close) {
                return Err(ConfigError::new(
                    origin,
                    format!("the {{ of {key} is never closed"),
                ));
            }
            *pos += 1;
            Some(inner)
        } else {
            None
        };
        out.push(Stmt {
            key,
            args,
            origin,
            block,
        });
    }
    Ok(out)
}

/// Settings a level gives to the levels inside it.
#[derive(Clone, Debug, Default)]
struct Inherit {
    timeout: Option<Duration>,
    interval: Option<Duration>,
    retry: Option<u32>,
    host: Option<String>,
}

impl Inherit {
    /// These settings with those `block` gives over them.
    fn with(&self, block: &[Stmt]) -> Result<Inherit, ConfigError> {
        let mut out = self.clone();
        for s in block {
            match s.key.as_str() {
                "connect_timeout" => out.timeout = Some(seconds(s, MAX_TIMEOUT_S)?),
                "delay_loop" => out.interval = Some(seconds(s, 86_400.0)?),
                "retry" | "nb_get_retry" => {
                    out.retry = Some(
                        s.arg()?
                            .parse()
                            .map_err(|_| s.error(format!("{} takes a count", s.key)))?,
                    )
                }
                "virtualhost" => {
                    let host = s.arg()?;
                    check_host(host).map_err(|m| s.error(m))?;
                    out.host = Some(host.to_string());
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A duration in seconds (decimals allowed), more than 0, at most `max`.
fn seconds(s: &Stmt, max: f64) -> Result<Duration, ConfigError> {
    let arg = s.arg()?;
    arg.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= max)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            s.error(format!(
                "{} {arg:?}: not a number of seconds (more than 0, at most {max})",
                s.key
            ))
        })
}

fn map_virtual_server(vs: &Stmt, loaded: &mut Loaded) -> Result<(), ConfigError> {
    let what = format!("virtual_server {}", vs.args.join(" "));
    let first = vs.args.first().map(String::as_str);
    if let Some(kind @ ("fwmark" | "group")) = first {
        let reason = if kind == "fwmark" {
            "a firewall-mark virtual server has no single VIP and port to check through"
        } else {
            "a virtual_server_group's addresses are not mapped; give each virtual server on its own"
        };
        loaded.skipped.push(Skipped {
            origin: vs.origin.clone(),
            what,
            reason: reason.into(),
        });
        return Ok(());
    }
    let (vip, port) = match vs.args.as_slice() {
        [ip, port] => (
            parse_ip(ip).map_err(|m| vs.error(format!("virtual_server: {m}")))?,
            parse_port(port).map_err(|m| vs.error(format!("virtual_server: {m}")))?,
        ),
        [] | [_] => {
            return Err(
                vs.error("virtual_server needs an address and a port (or fwmark N, group NAME)")
            );
        }
        _ => return Err(vs.error("virtual_server takes an address and a port")),
    };
    check_unicast(vip, "VIP").map_err(|m| vs.error(m))?;
    let Some(block) = &vs.block else {
        return Err(vs.error(format!("{what} has no {{ }} block")));
    };
    if let Some(p) = block.iter().find(|s| s.key == "protocol") {
        let proto = p.arg()?;
        if !proto.eq_ignore_ascii_case("TCP") {
            loaded.skipped.push(Skipped {
                origin: vs.origin.clone(),
                what,
                reason: format!("protocol {proto}: vipcheck checks TCP services"),
            });
            return Ok(());
        }
    }
    // Only direct routing puts the VIP on the real servers: under NAT they
    // are reached at their own address, under TUN through a tunnel, and a
    // check through the VIP path would fail them all.
    if let Some(kind) = block.iter().find(|s| s.key == "lb_kind") {
        let kind = kind.arg()?;
        if !kind.eq_ignore_ascii_case("DR") {
            loaded.skipped.push(Skipped {
                origin: vs.origin.clone(),
                what,
                reason: format!(
                    "lb_kind {kind}: only direct-routing (DR) real servers carry the VIP, \
                     so only they are checked through the VIP path"
                ),
            });
            return Ok(());
        }
    }
    let inherit = Inherit::default().with(block)?;
    for rs in block.iter().filter(|s| s.key == "real_server") {
        map_real_server(rs, vip, port, &inherit, loaded)?;
    }
    Ok(())
}

/// A checker of keepalived that is not mapped, and why.
fn unmapped_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "DNS_CHECK" => "a DNS query is not a check vipcheck makes (TCP and HTTP(S) only)",
        "SMTP_CHECK" => {
            "an SMTP dialogue is not a check vipcheck makes (a TCP_CHECK of the port is)"
        }
        "UDP_CHECK" => "vipcheck checks TCP services only",
        "BFD_CHECK" => "BFD follows a session, not the service through the VIP",
        "PING_CHECK" => {
            "an ICMP echo to the real server's own address is not a check through the VIP"
        }
        "FILE_CHECK" => "reads a local file; nothing is checked on the wire",
        _ => return None,
    })
}

fn map_real_server(
    rs: &Stmt,
    vip: IpAddr,
    vs_port: u16,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let (ip, port) = match rs.args.as_slice() {
        [ip] => (ip, None),
        [ip, port] => (ip, Some(port)),
        [] => return Err(rs.error("real_server needs an address (and a port)")),
        _ => return Err(rs.error("real_server takes an address and a port")),
    };
    let real_server = parse_ip(ip).map_err(|m| rs.error(format!("real_server: {m}")))?;
    let port = match port {
        Some(p) => parse_port(p).map_err(|m| rs.error(format!("real_server: {m}")))?,
        None => vs_port,
    };
    check_unicast(real_server, "real server").map_err(|m| rs.error(m))?;
    let name = format!("real_server {real_server} {port} of virtual_server {vip} {vs_port}");
    if real_server.is_ipv4() != vip.is_ipv4() {
        loaded.skipped.push(Skipped {
            origin: rs.origin.clone(),
            what: name,
            reason:
                "the real server and the VIP are of different families (LVS-DR forwards within one)"
                    .into(),
        });
        return Ok(());
    }
    let vs_host = inherit.host.clone();
    let inherit = inherit.with(rs.children())?;
    let base = Base {
        real_server,
        vip,
        port,
        vs_port,
        vs_host,
        name: &name,
    };
    let mut checkers = 0;
    for c in rs.children() {
        let key = c.key.as_str();
        let known = matches!(key, "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK");
        let skip = |reason: String, loaded: &mut Loaded| {
            loaded.skipped.push(Skipped {
                origin: c.origin.clone(),
                what: format!("{key} of {name}"),
                reason,
            })
        };
        if let Some(reason) = unmapped_reason(key) {
            checkers += 1;
            skip(reason.into(), loaded);
        } else if known {
            checkers += 1;
            let inherit = inherit.with(c.children())?;
            let connect_ip = c.children().iter().find(|s| s.key == "connect_ip");
            if let Some(s) = connect_ip {
                let ip = parse_ip(s.arg()?).map_err(|m| s.error(format!("connect_ip: {m}")))?;
                if ip != real_server {
                    skip(
                        format!(
                            "connect_ip {ip}: keepalived checks another address than the real server"
                        ),
                        loaded,
                    );
                    continue;
                }
            }
            match key {
                "TCP_CHECK" => loaded
                    .targets
                    .push(base.target(c, &inherit, CheckSpec::Tcp)?),
                "HTTP_GET" | "SSL_GET" => map_http(c, &base, &inherit, loaded)?,
                _ => map_misc(c, &base, &inherit, loaded)?,
            }
        } else if c.block.is_some() || key.ends_with("_CHECK") || key.ends_with("_GET") {
            checkers += 1;
            skip("not a checker vipcheck knows".into(), loaded);
        }
    }
    if checkers == 0 {
        loaded.skipped.push(Skipped {
            origin: rs.origin.clone(),
            what: name,
            reason: "it has no checker (keepalived keeps it up without checking)".into(),
        });
    }
    Ok(())
}

/// What every target of a real server shares.
struct Base<'a> {
    real_server: IpAddr,
    vip: IpAddr,
    /// The real server's port (the virtual server's when it gives none).
    port: u16,
    vs_port: u16,
    /// The virtual server's `virtualhost` (SSL_GET's SNI).
    vs_host: Option<String>,
    name: &'a str,
}

impl Base<'_> {
    /// The target of checker `c` (its `connect_port` over the port).
    fn target(
        &self,
        c: &Stmt,
        inherit: &Inherit,
        check: CheckSpec,
    ) -> Result<AuditTarget, ConfigError> {
        let mut port = self.port;
        for s in c.children().iter().filter(|s| s.key == "connect_port") {
            port = parse_port(s.arg()?).map_err(|m| s.error(format!("connect_port: {m}")))?;
        }
        Ok(AuditTarget {
            iface: None,
            real_server: self.real_server,
            vip: self.vip,
            port,
            vs_vip: self.vip,
            vs_port: self.vs_port,
            rs_ip: self.real_server,
            rs_port: self.port,
            check,
            timeout: inherit.timeout.unwrap_or(DEFAULT_TIMEOUT),
            reply_timeout: None,
            interval: inherit.interval,
            retry: inherit.retry,
            origin: c.origin.clone(),
        })
    }
}

fn map_http(
    c: &Stmt,
    base: &Base,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let urls: Vec<&Stmt> = c.children().iter().filter(|s| s.key == "url").collect();
    if urls.is_empty() {
        loaded.skipped.push(Skipped {
            origin: c.origin.clone(),
            what: format!("{} of {}", c.key, base.name),
            reason: "no url block: nothing to request".into(),
        });
        return Ok(());
    }
    for url in urls {
        let inherit = inherit.with(url.children())?;
        let mut spec = HttpSpec {
            host: inherit.host.clone(),
            ..HttpSpec::default()
        };
        let mut path = None;
        let mut no_match = false;
        for s in url.children() {
            match s.key.as_str() {
                "path" => {
                    let p = s.arg()?;
                    check_path(p).map_err(|m| s.error(m))?;
                    path = Some(p.to_string());
                }
                "digest" => spec.md5 = Some(parse_md5(s.arg()?).map_err(|m| s.error(m))?),
                "status_code" => {
                    if s.args.is_empty() {
                        return Err(s.error("status_code needs a code or a range"));
                    }
                    for a in &s.args {
                        spec.statuses.push(
                            parse_status(a).map_err(|m| s.error(format!("status_code: {m}")))?,
                        );
                    }
                }
                "regex" => spec.regex.push(s.arg()?.to_string()),
                "regex_no_match" => no_match = true,
                _ => {}
            }
        }
        let Some(path) = path else {
            return Err(url.error("url without a path"));
        };
        spec.path = path;
        if no_match {
            spec.regex_absent = std::mem::take(&mut spec.regex);
        }
        if spec.statuses.is_empty() {
            spec.statuses.push(200..=299);
        }
        let check = if c.key == "SSL_GET" {
            CheckSpec::Https(spec, ssl_get_tls(c, url, base)?)
        } else {
            CheckSpec::Http(spec)
        };
        let mut target = base.target(c, &inherit, check)?;
        target.origin = url.origin.clone();
        loaded.targets.push(target);
    }
    Ok(())
}

/// The TLS of keepalived's `SSL_GET` (check_ssl.c): no verification (no
/// SSL_VERIFY_PEER); SNI only with `enable_sni` (or `sni_name`), naming
/// `sni_name`, else the url's, the checker's or the virtual server's
/// `virtualhost` (not the real server's), else none.
fn ssl_get_tls(c: &Stmt, url: &Stmt, base: &Base) -> Result<TlsSpec, ConfigError> {
    let mut enable = false;
    let mut sni_name = None;
    for s in c.children() {
        match (s.key.as_str(), s.args.first().map(String::as_str)) {
            ("enable_sni", None | Some("true" | "on" | "yes")) => enable = true,
            ("enable_sni", Some("false" | "off" | "no")) => enable = false,
            // keepalived reports an error and ignores the setting.
            ("enable_sni", Some(_)) => {}
            ("sni_name", name) => {
                if let Some(name) = name {
                    crate::tls::server_name(Some(name), "")
                        .map_err(|e| s.error(format!("sni_name: {e}")))?;
                    sni_name = Some(name.to_string());
                }
                enable = true;
            }
            _ => {}
        }
    }
    let virtualhost = |block: &[Stmt]| {
        block
            .iter()
            .rfind(|s| s.key == "virtualhost")
            .and_then(|s| s.args.first().cloned())
    };
    let name = sni_name
        .or_else(|| virtualhost(url.children()))
        .or_else(|| virtualhost(c.children()))
        .or_else(|| base.vs_host.clone());
    Ok(TlsSpec {
        verify: Verify::KeepalivedSslGet,
        no_sni: !enable || name.is_none(),
        sni: name.filter(|_| enable),
    })
}

fn map_misc(
    c: &Stmt,
    base: &Base,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let what = format!("MISC_CHECK of {}", base.name);
    let mut skip = |origin: &str, reason: String| {
        loaded.skipped.push(Skipped {
            origin: origin.to_string(),
            what: what.clone(),
            reason,
        })
    };
    let Some(path_stmt) = c.children().iter().find(|s| s.key == "misc_path") else {
        skip(&c.origin, "no misc_path: nothing to run".into());
        return Ok(());
    };
    let command = path_stmt.args.join(" ");
    let words = match split_command(&command) {
        Ok(w) if !w.is_empty() => w,
        Ok(_) => {
            skip(&path_stmt.origin, "misc_path is empty".into());
            return Ok(());
        }
        Err(m) => {
            skip(&path_stmt.origin, format!("misc_path: {m}"));
            return Ok(());
        }
    };
    let script = Path::new(&words[0])
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if !crate::compat::NAMES.contains(&script) {
        skip(
            &path_stmt.origin,
            format!(
                "{} is not one of {}: what it checks is unknown",
                words[0],
                crate::compat::NAMES.join(", ")
            ),
        );
        return Ok(());
    }
    let line = match crate::compat::parse_line(script, &words[1..]) {
        Ok(line) => line,
        Err(m) => {
            skip(
                &path_stmt.origin,
                format!("invalid {script} command line: {m}"),
            );
            return Ok(());
        }
    };
    let mut timeout = DEFAULT_TIMEOUT;
    for s in c.children().iter().filter(|s| s.key == "misc_timeout") {
        timeout = seconds(s, MAX_TIMEOUT_S)?;
    }
    loaded.targets.push(AuditTarget {
        iface: Some(line.iface),
        real_server: line.real_server,
        vip: line.vip,
        port: line.port,
        vs_vip: base.vip,
        vs_port: base.vs_port,
        rs_ip: base.real_server,
        rs_port: base.port,
        check: line.check,
        timeout,
        reply_timeout: line.reply_timeout,
        interval: inherit.interval,
        retry: inherit.retry,
        origin: path_stmt.origin.clone(),
    });
    Ok(())
}

/// A command line split as a shell would: whitespace between words,
/// `'...'` literal, `"..."` with `\"` and `\\`, `\` escaping outside quotes.
fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                let c = chars.next().ok_or("a trailing \\")?;
                word.get_or_insert_with(String::new).push(c);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory with `files` (name, text) in it.
    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vipcheck-keepalived-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn load_text(text: &str) -> Result<Loaded, ConfigError> {
        load_str(text, Path::new("/etc/keepalived/keepalived.conf"))
    }

    fn err(text: &str) -> String {
        load_text(text).unwrap_err().to_string()
    }

    const README: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id LVS_A
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}

virtual_server 10.0.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    protocol TCP

    real_server 10.0.0.42 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
            retry 2
        }
    }
    real_server 10.0.0.43 80 {
        weight 1
        HTTP_GET {
            url {
              path /healthcheck
              digest d36f8f9425c4a8000ad9c4a97185aca5
            }
            url {
              path /status
              status_code 200 300-399
            }
            virtualhost www.example.com
            connect_port 8080
        }
    }
    real_server 10.0.0.44 80 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check_http_raw -t 500 -S 200 -R 'Server: nginx' eth1 10.0.0.44 10.0.0.100 80 www.example.com /hc"
            misc_timeout 2
        }
    }
    real_server 10.0.0.45 {
        SSL_GET {
            url {
                path /
                virtualhost secure.example.com
            }
        }
    }
}
"#;

    #[test]
    fn readme_example() {
        let loaded = load_text(README).unwrap();
        assert_eq!(loaded.skipped, vec![]);
        let t = &loaded.targets;
        assert_eq!(t.len(), 5, "{t:#?}");
        let vip: IpAddr = "10.0.0.100".parse().unwrap();

        assert_eq!(t[0].real_server.to_string(), "10.0.0.42");
        assert_eq!((t[0].vip, t[0].port), (vip, 80));
        assert_eq!(t[0].check, CheckSpec::Tcp);
        assert_eq!(t[0].timeout, Duration::from_secs(3));
        assert_eq!(t[0].interval, Some(Duration::from_secs(6)));
        assert_eq!(t[0].retry, Some(2));
        assert_eq!(t[0].iface, None);
        assert_eq!(t[0].origin, "/etc/keepalived/keepalived.conf:24");

        let CheckSpec::Http(h) = &t[1].check else {
            panic!("{:?}", t[1].check)
        };
        assert_eq!(t[1].port, 8080);
        assert_eq!(h.host.as_deref(), Some("www.example.com"));
        assert_eq!(h.path, "/healthcheck");
        assert_eq!(h.md5.as_deref(), Some("d36f8f9425c4a8000ad9c4a97185aca5"));
        assert_eq!(h.statuses, vec![200..=299]);
        assert_eq!(t[1].timeout, DEFAULT_TIMEOUT);
        assert_eq!(t[1].origin, "/etc/keepalived/keepalived.conf:32");
        let CheckSpec::Http(h) = &t[2].check else {
            panic!()
        };
        assert_eq!(h.path, "/status");
        assert_eq!(h.statuses, vec![200..=200, 300..=399]);
        assert_eq!(h.md5, None);

        assert_eq!(t[3].iface.as_deref(), Some("eth1"));
        assert_eq!(t[3].real_server.to_string(), "10.0.0.44");
        assert_eq!(t[3].timeout, Duration::from_secs(2));
        assert_eq!(t[3].reply_timeout, Some(Duration::from_millis(500)));
        let CheckSpec::Http(h) = &t[3].check else {
            panic!()
        };
        assert_eq!(h.statuses, vec![200..=200]);
        assert_eq!(
            h.response_headers,
            vec![("Server".to_string(), Some("nginx".to_string()))]
        );
        assert_eq!(
            (h.host.as_deref(), h.path.as_str()),
            (Some("www.example.com"), "/hc")
        );

        assert_eq!(t[4].port, 80);
        let CheckSpec::Https(h, _) = &t[4].check else {
            panic!()
        };
        assert_eq!(h.host.as_deref(), Some("secure.example.com"));
    }

    #[test]
    fn misc_check_c_names() {
        let conf = r#"
virtual_server 10.0.0.100 80 {
  real_server 10.0.0.42 80 {
    MISC_CHECK {
      misc_path "/opt/vipcheck/check_tcp_raw -c -t 250 eth0 10.0.0.42 10.0.0.100 80"
    }
    MISC_CHECK {
      misc_path /usr/bin/check_http_get_raw eth0 10.0.0.42 10.0.0.100 80 h /p D36F8F9425C4A8000AD9C4A97185ACA5
    }
    MISC_CHECK {
      misc_path "/usr/lib/nagios/plugins/check_http -H 10.0.0.42"
    }
    MISC_CHECK {
      misc_path "check_http_raw eth0 10.0.0.42 10.0.0.100 80 h /p"
    }
    MISC_CHECK {
      misc_timeout 3
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        assert_eq!(loaded.targets[0].check, CheckSpec::Tcp);
        assert_eq!(
            loaded.targets[0].reply_timeout,
            Some(Duration::from_millis(250))
        );
        let CheckSpec::Http(h) = &loaded.targets[1].check else {
            panic!()
        };
        assert_eq!(h.md5.as_deref(), Some("d36f8f9425c4a8000ad9c4a97185aca5"));
        assert!(h.statuses.is_empty());
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons[0].contains("check_http is not one of"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("invalid check_http_raw command line"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("at least one validation"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("no misc_path"), "{reasons:?}");
        assert_eq!(
            loaded.skipped[0].origin,
            "/etc/keepalived/keepalived.conf:11"
        );
    }

    #[test]
    fn nested_includes_with_a_glob() {
        let dir = dir_with(&[
            (
                "keepalived.conf",
                "global_defs {\n}\ninclude conf.d/*.conf\ninclude /nonexistent/dir/*.conf\n",
            ),
            (
                "conf.d/b.conf",
                "virtual_server 10.0.0.101 443 {\n  include ../rs/*.inc\n}\n",
            ),
            (
                "conf.d/a.conf",
                "virtual_server 10.0.0.100 80 {\n real_server 10.0.0.42 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
            ),
            ("conf.d/ignored.txt", "this is not read {"),
            (
                "rs/one.inc",
                "real_server 10.0.0.50 443 {\n  SSL_GET {\n    url {\n      path /\n    }\n  }\n}\n",
            ),
        ]);
        let loaded = load(&dir.join("keepalived.conf")).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        assert_eq!(loaded.targets[0].vip.to_string(), "10.0.0.100");
        assert!(loaded.targets[0].origin.ends_with("conf.d/a.conf:3"));
        assert_eq!(loaded.targets[1].vip.to_string(), "10.0.0.101");
        assert!(matches!(loaded.targets[1].check, CheckSpec::Https(..)));
        assert!(
            loaded.targets[1].origin.ends_with("rs/../rs/one.inc:3")
                || loaded.targets[1].origin.ends_with("rs/one.inc:3")
        );
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(loaded.skipped[0].reason, "matches no file");
        assert!(loaded.skipped[0].origin.ends_with("keepalived.conf:4"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn include_loop_is_an_error() {
        let dir = dir_with(&[
            ("keepalived.conf", "include a.conf\n"),
            ("a.conf", "include b.conf\n"),
            ("b.conf", "include a.conf\n"),
            ("self.conf", "include *.conf\n"),
        ]);
        let e = load(&dir.join("keepalived.conf")).unwrap_err();
        assert!(e.origin.ends_with("b.conf:1"), "{e}");
        assert!(e.message.contains("include loop"), "{e}");
        let e = load(&dir.join("self.conf")).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        let e = load(&dir.join("missing.conf")).unwrap_err();
        assert!(e.message.contains("cannot open"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn include_depth_is_bounded() {
        let names: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("{i}.conf"))
            .collect();
        let texts: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("include {}.conf\n", i + 1))
            .collect();
        let files: Vec<(&str, &str)> = names
            .iter()
            .zip(&texts)
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let dir = dir_with(&files);
        let e = load(&dir.join("0.conf")).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ipv6_virtual_servers() {
        let conf = "virtual_server fd98:c612:0:1::100 443 {\n\
                    real_server fd98:c612:0:1::b 443 {\n\
                    SSL_GET {\n url {\n path /hc\n status_code 204\n }\n connect_timeout 1.5\n }\n }\n\
                    real_server 10.0.0.42 443 {\n TCP_CHECK {\n }\n }\n}\n";
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 1);
        let t = &loaded.targets[0];
        assert_eq!(t.vip.to_string(), "fd98:c612:0:1::100");
        assert_eq!(t.real_server.to_string(), "fd98:c612:0:1::b");
        assert_eq!(t.timeout, Duration::from_millis(1500));
        let CheckSpec::Https(h, _) = &t.check else {
            panic!()
        };
        assert_eq!(
            (h.host.as_deref(), h.statuses.clone()),
            (None, vec![204..=204])
        );
        assert_eq!(loaded.skipped.len(), 1);
        assert!(loaded.skipped[0].reason.contains("different families"));
    }

    #[test]
    fn only_direct_routing_is_checked() {
        let conf = r#"
virtual_server 10.0.0.100 80 {
  lb_kind NAT
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.101 80 {
  lb_kind TUN
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.102 80 {
  lb_kind dr
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 1);
        assert_eq!(loaded.targets[0].vip.to_string(), "10.0.0.102");
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].starts_with("lb_kind NAT") && reasons[1].starts_with("lb_kind TUN"));
    }

    #[test]
    fn every_skipped_kind() {
        let conf = r#"
virtual_server_group G {
  10.0.0.100 80
}
virtual_server fwmark 1 {
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server group G {
}
virtual_server 10.0.0.100 53 {
  protocol UDP
  real_server 10.0.0.42 53 {
    DNS_CHECK {
    }
  }
}
virtual_server 10.0.0.100 25 {
  lb_kind DR
  persistence_timeout 50
  real_server 10.0.0.42 25 {
    weight 2
    DNS_CHECK {
      type A
    }
    SMTP_CHECK {
    }
    UDP_CHECK {
    }
    BFD_CHECK {
    }
    PING_CHECK {
    }
    FILE_CHECK {
    }
    FOO_CHECK
    something_new {
    }
    TCP_CHECK {
      connect_ip 10.0.0.9
    }
    HTTP_GET {
    }
  }
  real_server 10.0.0.43 25 {
    weight 1
    inhibit_on_failure
  }
  real_server 10.0.0.44 25
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets, vec![]);
        let got: Vec<(usize, &str, &str)> = loaded
            .skipped
            .iter()
            .map(|s| {
                let line = s.origin.rsplit(':').next().unwrap().parse().unwrap();
                (line, s.what.as_str(), s.reason.as_str())
            })
            .collect();
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            lines,
            vec![5, 8, 10, 22, 25, 27, 29, 31, 33, 35, 36, 38, 41, 44, 48],
            "{got:#?}"
        );
        assert!(got[0].1 == "virtual_server fwmark 1" && got[0].2.contains("firewall-mark"));
        assert!(got[1].1 == "virtual_server group G");
        assert!(got[2].2.contains("protocol UDP"));
        assert!(
            got[3]
                .1
                .starts_with("DNS_CHECK of real_server 10.0.0.42 25")
        );
        assert!(got[4].1.starts_with("SMTP_CHECK"));
        assert!(got[9].1.starts_with("FOO_CHECK") && got[9].2.contains("not a checker"));
        assert!(got[10].1.starts_with("something_new"));
        assert!(got[11].2.contains("connect_ip 10.0.0.9"));
        assert!(got[12].2.contains("no url block"));
        assert!(got[13].1.starts_with("real_server 10.0.0.43") && got[13].2.contains("no checker"));
        assert!(got[14].1.starts_with("real_server 10.0.0.44"));
    }

    #[test]
    fn malformed_input_says_where() {
        let cases = [
            (
                "virtual_server 10.0.0.100 80 {\n real_server 10.0.0.42 80 {\n",
                ":2: the { of real_server is never closed",
            ),
            (
                "virtual_server 10.0.0.100 80 {\n}\n}\n",
                ":3: } without a matching {",
            ),
            ("{\n", ":1: { without a keyword"),
            (
                "\nvirtual_server 10.0.0.100\n{\n}\n",
                ":2: virtual_server needs an address and a port",
            ),
            (
                "virtual_server 10.0.0.300 80 {\n}\n",
                ":1: virtual_server: \"10.0.0.300\" is not an IP address",
            ),
            (
                "virtual_server 10.0.0.100 0 {\n}\n",
                ":1: virtual_server: \"0\" is not a TCP port",
            ),
            (
                "virtual_server 10.0.0.100 80\n",
                ":1: virtual_server 10.0.0.100 80 has no { } block",
            ),
            (
                "virtual_server 224.0.0.1 80 {\n}\n",
                ":1: VIP 224.0.0.1 is not a unicast address",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server 10.0.0.x 80 {\n}\n}\n",
                ":2: real_server: \"10.0.0.x\" is not an IP address",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server\n}\n",
                ":2: real_server needs an address",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server 10.0.0.42 {\nHTTP_GET {\nurl {\ndigest abc\n}\n}\n}\n}\n",
                ":5: \"abc\" is not an MD5",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server 10.0.0.42 {\nHTTP_GET {\nurl {\nstatus_code 200\n}\n}\n}\n}\n",
                ":4: url without a path",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server 10.0.0.42 {\nHTTP_GET {\nurl {\npath / digest x\n}\n}\n}\n}\n",
                ":5: path takes one argument",
            ),
            (
                "virtual_server 10.0.0.100 80 {\ndelay_loop -1\n}\n",
                ":2: delay_loop \"-1\": not a number of seconds",
            ),
            (
                "virtual_server 10.0.0.100 80 {\nreal_server 10.0.0.42 {\nTCP_CHECK {\nconnect_port\n}\n}\n}\n",
                ":4: connect_port needs an argument",
            ),
            (
                "vrrp_script x {\n script \"unterminated\n}\n",
                ":2: unterminated quoted string",
            ),
            ("include\n", ":1: include needs a file or pattern"),
        ];
        for (text, want) in cases {
            let got = err(text);
            assert!(
                got.starts_with("/etc/keepalived/keepalived.conf:") && got.contains(want),
                "{text:?}: {got}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let text = "a {\n".repeat(MAX_NESTING + 2) + &"}\n".repeat(MAX_NESTING + 2);
        assert!(err(&text).contains("nested deeper"));
        let fine = "a {\n".repeat(MAX_NESTING) + &"}\n".repeat(MAX_NESTING);
        assert!(load_text(&fine).is_ok());
    }

    #[test]
    fn comments_braces_and_inheritance() {
        let conf = "virtual_server 10.0.0.100 80 { # comment { not a brace\n\
                    virtualhost vs.example.com\n connect_timeout 2\n retry 4\n\
                    real_server 10.0.0.42 80{\n virtualhost rs.example.com ! another\n delay_loop 9\n\
                    HTTP_GET\n {\n url { path /a }\n url {\n path /b\n virtualhost url.example.com\n regex \"ok|fine\"\n regex_no_match\n }\n nb_get_retry 7\n }}}\n";
        let loaded = load_text(conf).unwrap();
        let t = &loaded.targets;
        assert_eq!(t.len(), 2, "{loaded:#?}");
        assert_eq!(
            (t[0].timeout, t[0].interval, t[0].retry),
            (
                Duration::from_secs(2),
                Some(Duration::from_secs(9)),
                Some(7)
            )
        );
        let (CheckSpec::Http(a), CheckSpec::Http(b)) = (&t[0].check, &t[1].check) else {
            panic!()
        };
        assert_eq!(
            (a.host.as_deref(), a.path.as_str()),
            (Some("rs.example.com"), "/a")
        );
        assert_eq!(b.host.as_deref(), Some("url.example.com"));
        assert_eq!(
            (b.regex.clone(), b.regex_absent.clone()),
            (vec![], vec!["ok|fine".to_string()])
        );
    }

    #[test]
    fn command_split() {
        assert_eq!(
            split_command(r#"/bin/x -R 'Server: nginx' -B "a \"b\"" c\ d"#).unwrap(),
            vec!["/bin/x", "-R", "Server: nginx", "-B", "a \"b\"", "c d"]
        );
        assert!(split_command("'open").is_err());
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn ssl_get_verifies_nothing_and_targets_keep_their_ports() {
        let conf = r#"
virtual_server 10.0.0.100 443 {
  protocol TCP
  real_server 10.0.0.42 443 {
    SSL_GET { url { path / } }
    TCP_CHECK { connect_port 80 }
  }
  real_server 10.0.0.43 {
    SSL_GET { virtualhost www.example.com
      url { path /hc } }
  }
}
virtual_server 10.0.0.100 22 {
  protocol TCP
  real_server 10.0.0.42 22 {
    MISC_CHECK {
      misc_path "/opt/vipcheck/check_tcp_raw -t 250 eth0 10.0.0.42 10.0.0.100 80"
    }
  }
}
"#;
        let t = load_text(conf).unwrap().targets;
        assert_eq!(t.len(), 4);
        let keepalived = TlsSpec {
            verify: Verify::KeepalivedSslGet,
            sni: None,
            no_sni: true,
        };
        let CheckSpec::Https(h, tls) = &t[0].check else {
            panic!("{:?}", t[0].check)
        };
        assert_eq!((h.host.as_deref(), tls), (None, &keepalived));
        // The virtualhost is the Host; without enable_sni, no SNI (and
        // still no verification).
        let CheckSpec::Https(h, tls) = &t[2].check else {
            panic!("{:?}", t[2].check)
        };
        assert_eq!(
            (h.host.as_deref(), tls),
            (Some("www.example.com"), &keepalived)
        );
        // (checked port, virtual server's, real server's)
        let ports: Vec<_> = t.iter().map(|t| (t.port, t.vs_port, t.rs_port)).collect();
        assert_eq!(
            ports,
            [
                (443, 443, 443),
                (80, 443, 443),
                (443, 443, 443),
                (80, 22, 22)
            ]
        );
    }

    #[test]
    fn ssl_get_sends_sni_as_keepalived() {
        // (the SSL_GET's settings, the real server's) → (SNI, no_sni)
        let sni = |checker: &str, rs: &str| {
            let conf = format!(
                "virtual_server 10.0.0.100 443 {{\n virtualhost vs.example\n\
                 real_server 10.0.0.42 443 {{\n {rs}\n SSL_GET {{\n {checker}\n\
                 url {{\n path /\n }}\n }}\n }}\n}}\n"
            );
            let t = load_text(&conf).unwrap().targets;
            let CheckSpec::Https(_, tls) = &t[0].check else {
                panic!("{:?}", t[0].check)
            };
            assert_eq!(tls.verify, Verify::KeepalivedSslGet);
            (tls.sni.clone(), tls.no_sni)
        };
        let some = |name: &str| (Some(name.to_string()), false);
        // keepalived sends none unless enable_sni (or sni_name) is set.
        assert_eq!(sni("", ""), (None, true));
        assert_eq!(sni("virtualhost c.example", ""), (None, true));
        assert_eq!(sni("enable_sni", ""), some("vs.example"));
        assert_eq!(
            sni("enable_sni yes\nvirtualhost c.example", ""),
            some("c.example")
        );
        assert_eq!(
            sni("enable_sni off\nvirtualhost c.example", ""),
            (None, true)
        );
        assert_eq!(sni("enable_sni bogus", ""), (None, true));
        assert_eq!(
            sni("sni_name n.example\nvirtualhost c.example", ""),
            some("n.example")
        );
        // The real server's virtualhost is its Host, not its SNI.
        assert_eq!(
            sni("enable_sni", "virtualhost rs.example"),
            some("vs.example")
        );
        assert!(load_text(
            "virtual_server 10.0.0.100 443 {\nreal_server 10.0.0.42 443 {\nSSL_GET {\nsni_name \"a b\"\nurl {\npath /\n}\n}\n}\n}\n"
        )
        .is_err());
    }
}
