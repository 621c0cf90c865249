//! keepalived.conf read as keepalived 2.2.7 reads it (lib/parser.c):
//! lines, comments, parameters, conditionals, sequences, includes and
//! braces, then keyword blocks by keepalived's own keyword tables
//! ([`super::keywords`]). What `keepalived -t` reports while reading on is
//! a [`Warning`]; what it refuses (an include check that fails) is a
//! [`ConfigError`]. Every expansion is bounded.
//!
//! `differential.py` (next to this file) compares it with keepalived on
//! random files: `python3 differential.py SEED COUNT target/debug/vipcheck`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::keywords::{Block, CHECKER_PASS, Group, Kw, PASSES, ROOT, group};
use crate::config::{ConfigError, Skipped, Warning};

/// Deepest chain of includes.
pub(crate) const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read, the main one included.
pub(crate) const MAX_FILES: usize = 256;
/// Most words over all lines (after every expansion).
pub(crate) const MAX_WORDS: usize = 1_000_000;
/// Most lines handled, after `~SEQ`, `~LST`, includes and multi-line
/// parameters (a definition that expands to itself ends here).
pub(crate) const MAX_LINES: usize = 250_000;
/// Longest line after parameter substitution (bytes).
pub(crate) const MAX_LINE_LEN: usize = 64 * 1024;
/// Most parameter substitutions in one line.
pub(crate) const MAX_SUBSTITUTIONS: usize = 10_000;
/// Most lines one `~SEQ` gives.
pub(crate) const MAX_SEQ_LINES: i128 = 100_000;
/// Most warnings kept (the rest are counted in a last one).
pub(crate) const MAX_WARNINGS: usize = 1_000;
/// Most paths one include pattern gives (brace alternatives and matches).
const MAX_GLOB: usize = MAX_FILES;
/// keepalived reads a line with `fgets` into 1024 bytes: a longer line is
/// read as several.
const MAXBUF: usize = 1024;

/// Include error kinds (keepalived's include_t): an error of a kind is
/// fatal when the include (or `include_check`) asks for that kind.
const INCLUDE_R: u8 = 0x01;
const INCLUDE_M: u8 = 0x02;
const INCLUDE_W: u8 = 0x04;
const INCLUDE_B: u8 = 0x08;

/// A keyword, its arguments and its block (or, in a block of values, one
/// line of values: its first word and the rest).
#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    pub(crate) key: String,
    pub(crate) args: Vec<String>,
    pub(crate) origin: String,
    pub(crate) block: Option<Vec<Stmt>>,
}

/// What reading gives.
pub(crate) struct Read {
    pub(crate) statements: Vec<Stmt>,
    pub(crate) warnings: Vec<Warning>,
    pub(crate) skipped: Vec<Skipped>,
}

/// keepalived's config id without `-i`: the host name up to its first dot.
pub(crate) fn host_config_id() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let short = name.trim().split('.').next()?.to_string();
    (!short.is_empty()).then_some(short)
}

/// Reads keepalived.conf at `path` (its text `text` when given) and what
/// it includes; `config_id`: what `@NAME` lines are matched against. As
/// `keepalived -t`, every process's reader reads it (each passes over the
/// top-level blocks of the others): the warnings are all of theirs, the
/// statements the checker's.
pub(crate) fn read(
    path: &Path,
    text: Option<&str>,
    config_id: Option<String>,
) -> Result<Read, ConfigError> {
    let bytes = match text {
        Some(t) => t.as_bytes().to_vec(),
        None => {
            if path.is_dir() {
                return Err(ConfigError::new(
                    path.display().to_string(),
                    "is a directory: give the configuration file",
                ));
            }
            crate::config::read_bytes(path, &path.display().to_string())?
        }
    };
    let mut out: Option<Read> = None;
    let mut others = Vec::new();
    for (i, active) in PASSES.iter().enumerate() {
        let read = read_pass(path, bytes.clone(), config_id.clone(), active, i > 0)?;
        if i == CHECKER_PASS {
            out = Some(read);
        } else {
            others.extend(read.warnings);
        }
    }
    let mut read = out.expect("the checker's pass is one of PASSES");
    for w in others {
        if read.warnings.len() >= MAX_WARNINGS {
            break;
        }
        if !read.warnings.contains(&w) {
            read.warnings.push(w);
        }
    }
    Ok(read)
}

/// One process's reading: `active`, the groups whose blocks it reads;
/// `copy`: it reads the parent's copy of the configuration, as
/// keepalived's child processes do (each line as the parent's decomment
/// left it, a comment-only line or an include line blank).
fn read_pass(
    path: &Path,
    bytes: Vec<u8>,
    config_id: Option<String>,
    active: &'static [Group],
    copy: bool,
) -> Result<Read, ConfigError> {
    let mut r = Reader {
        config_id,
        rng: seed(),
        active,
        copy,
        ..Reader::default()
    };
    r.std_definitions();
    let origin = path.display().to_string();
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    r.files.push(path.to_path_buf());
    r.globs.push(Glob {
        paths: VecDeque::new(),
        kind: INCLUDE_R | INCLUDE_M | INCLUDE_W,
        saved_check: 0,
        open: Some(Open::new(0, bytes, canonical)),
    });
    if r.bom_check() {
        r.warn_at(
            format!("{origin}:1"),
            "the file starts with a UTF-8 byte order mark: keepalived reads it as part of \
             the first word (remove it)"
                .into(),
        );
    }
    let statements = r.stream(ROOT, false, 0)?;
    if r.block_depth > 0 {
        let n = r.block_depth;
        r.warn(format!("There are {n} missing '}}'s or extra '{{'s"));
    }
    if r.dropped_warnings > 0 {
        let n = r.dropped_warnings;
        let origin = r.origin();
        r.warnings.push(Warning {
            origin,
            message: format!("{n} more warnings not shown"),
        });
    }
    Ok(Read {
        statements,
        warnings: r.warnings,
        skipped: r.skipped,
    })
}

/// A seed for `${_RANDOM}`.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    t | 1
}

/// One open file: its bytes and where reading is.
struct Open {
    file: usize,
    bytes: Vec<u8>,
    pos: usize,
    line: usize,
    canonical: PathBuf,
}

impl Open {
    fn new(file: usize, bytes: Vec<u8>, canonical: PathBuf) -> Open {
        Open {
            file,
            bytes,
            pos: 0,
            line: 0,
            canonical,
        }
    }

    /// The next piece `fgets` gives: up to a newline (kept) or 1023 bytes.
    fn next_chunk(&mut self) -> Option<&[u8]> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let rest = &self.bytes[self.pos..];
        let max = rest.len().min(MAXBUF - 1);
        let len = match rest[..max].iter().position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => max,
        };
        self.pos += len;
        Some(&rest[..len])
    }
}

/// The files of one include (or of the main file), read in turn.
struct Glob {
    paths: VecDeque<PathBuf>,
    kind: u8,
    /// `include_check` when the include was read; restored after each file.
    saved_check: u8,
    open: Option<Open>,
}

/// A parameter (`$NAME=value`).
struct Def {
    name: String,
    /// Lines joined by `\n` when multi-line.
    value: String,
    multiline: bool,
    std: Option<StdDef>,
}

/// keepalived's own parameters whose value is computed.
#[derive(Clone, Copy)]
enum StdDef {
    Pwd,
    Instance,
    Random,
}

/// A `~SEQ` or `~LST` being expanded.
struct Seq {
    text: String,
    kind: SeqKind,
    /// Pending multi-line parameter lines when it began: those come after it.
    pending_at: usize,
}

enum SeqKind {
    Num {
        var: String,
        next: i64,
        step: i64,
        last: i64,
        hex: bool,
    },
    Lst {
        params: Vec<String>,
        sets: Vec<Vec<String>>,
        next: usize,
    },
}

#[derive(Default)]
struct Reader {
    files: Vec<PathBuf>,
    globs: Vec<Glob>,
    defs: Vec<Def>,
    seqs: Vec<Seq>,
    pending: VecDeque<String>,
    residue: Option<String>,
    /// The multi-line definition being read.
    defining: Option<usize>,
    include_check: u8,
    config_id: Option<String>,
    warnings: Vec<Warning>,
    dropped_warnings: usize,
    skipped: Vec<Skipped>,
    /// Origin of the line being read.
    file: usize,
    line: usize,
    block_depth: i64,
    lines: usize,
    words: usize,
    rng: u64,
    /// The top-level groups this reading reads.
    active: &'static [Group],
    /// Reading the parent's copy (see [`read_pass`]).
    copy: bool,
}

/// Whether a line is an include (`include`, `includer`... and a blank).
fn is_include(buf: &str) -> bool {
    let b = buf.as_bytes();
    buf.starts_with("include")
        && b.len() > 7
        && (is_space(b[7]) || (b.len() > 8 && is_space(b[8]) && b"rmwba".contains(&b[7])))
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// C's isspace.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// C's `strtol(s, &end, 0)`: the value (saturated) and the rest; no
/// digits: 0 and `s` itself.
fn strtol(s: &str) -> (i64, &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let mut base = 10;
    if i + 1 < b.len() && b[i] == b'0' && (b[i + 1] | 0x20) == b'x' && {
        i + 2 < b.len() && b[i + 2].is_ascii_hexdigit()
    } {
        base = 16;
        i += 2;
    } else if i < b.len() && b[i] == b'0' {
        base = 8;
    }
    let start = i;
    let mut v: i128 = 0;
    while i < b.len() {
        let Some(d) = (b[i] as char).to_digit(base) else {
            break;
        };
        v = (v * base as i128 + d as i128).min(i64::MAX as i128 + 1);
        i += 1;
    }
    if i == start {
        return (0, s);
    }
    let v = if neg { -v } else { v };
    (v.clamp(i64::MIN as i128, i64::MAX as i128) as i64, &s[i..])
}

/// `pattern` with its `{a,b}` alternatives expanded as glob(3)'s
/// GLOB_BRACE does (at most `MAX_GLOB`); an unmatched `{` is literal.
fn brace_expand(pattern: &str, out: &mut Vec<String>) {
    if out.len() > MAX_GLOB {
        return;
    }
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut open = None;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => {
                open = Some(i);
                break;
            }
            _ => {}
        }
        i += 1;
    }
    let Some(open) = open else {
        out.push(pattern.to_string());
        return;
    };
    let mut depth = 0;
    let mut alts = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    let mut j = open + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 1,
            b'{' => depth += 1,
            b'}' if depth == 0 => {
                alts.push(&pattern[start..j]);
                close = Some(j);
                break;
            }
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                alts.push(&pattern[start..j]);
                start = j + 1;
            }
            _ => {}
        }
        j += 1;
    }
    let Some(close) = close else {
        out.push(pattern.to_string());
        return;
    };
    for alt in alts {
        let joined = format!("{}{}{}", &pattern[..open], alt, &pattern[close + 1..]);
        brace_expand(&joined, out);
    }
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// What glob(3) gives for an include pattern, and what it noticed.
#[derive(Default)]
struct Globbed {
    paths: Vec<PathBuf>,
    /// A named file or a directory to search is missing.
    missing: bool,
    have_wildcards: bool,
}

fn glob_include(pattern: &str) -> Globbed {
    let mut alts = Vec::new();
    brace_expand(pattern, &mut alts);
    let mut g = Globbed::default();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    for alt in alts.iter().take(MAX_GLOB) {
        if has_magic(alt) {
            g.have_wildcards = true;
            let first = alt.find(['*', '?', '[']).unwrap_or(0);
            let dir = match alt[..first].rfind('/') {
                Some(0) => "/",
                Some(i) => &alt[..i],
                None => ".",
            };
            if !has_magic(dir) && !Path::new(dir).is_dir() {
                g.missing = true;
                continue;
            }
            match glob::glob_with(alt, options) {
                Ok(paths) => {
                    for p in paths.flatten() {
                        if g.paths.len() > MAX_GLOB {
                            break;
                        }
                        g.paths.push(p);
                    }
                }
                Err(_) => {
                    if Path::new(alt).symlink_metadata().is_ok() {
                        g.paths.push(PathBuf::from(alt));
                    } else {
                        g.missing = true;
                    }
                }
            }
        } else if Path::new(alt).symlink_metadata().is_ok() {
            g.paths.push(PathBuf::from(alt));
        } else {
            g.missing = true;
        }
    }
    g
}

/// What a seq/param substitution found.
enum Replaced {
    Nothing,
    Something,
    /// A multi-line parameter where one is not allowed (in `~SEQ`).
    Multiline,
}

impl Reader {
    fn origin(&self) -> String {
        match self.files.get(self.file) {
            Some(f) => format!("{}:{}", f.display(), self.line),
            None => "keepalived.conf".into(),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.origin(), message)
    }

    fn warn(&mut self, message: String) {
        let origin = self.origin();
        self.warn_at(origin, message);
    }

    fn warn_at(&mut self, origin: String, message: String) {
        if self
            .warnings
            .iter()
            .any(|w| w.origin == origin && w.message == message)
        {
            return;
        }
        if self.warnings.len() >= MAX_WARNINGS {
            self.dropped_warnings += 1;
            return;
        }
        self.warnings.push(Warning { origin, message });
    }

    /// Whether the main file starts with a UTF-8 BOM.
    fn bom_check(&self) -> bool {
        self.globs
            .first()
            .and_then(|g| g.open.as_ref())
            .is_some_and(|o| o.bytes.starts_with(&[0xef, 0xbb, 0xbf]))
    }

    fn std_definitions(&mut self) {
        let mut add = |name: &str, value: &str, std: Option<StdDef>| {
            self.defs.push(Def {
                name: name.into(),
                value: value.into(),
                multiline: false,
                std,
            });
        };
        add("_PWD", "", Some(StdDef::Pwd));
        add("_INSTANCE", "", Some(StdDef::Instance));
        add("_RANDOM", "", Some(StdDef::Random));
        add("_HASH", "#", None);
        add("_BANG", "!", None);
    }

    // ----- raw lines -----

    /// The next non-empty line of the files, comments removed; `None` at
    /// the end of the last file.
    fn next_raw(&mut self) -> Result<Option<String>, ConfigError> {
        loop {
            let Some(g) = self.globs.last_mut() else {
                return Ok(None);
            };
            let Some(open) = g.open.as_mut() else {
                if !self.open_next()? {
                    self.globs.pop();
                }
                continue;
            };
            let Some(chunk) = open.next_chunk() else {
                self.include_check = g.saved_check;
                g.open = None;
                continue;
            };
            // fgets and strlen: the line ends at a NUL byte.
            let chunk = match chunk.iter().position(|&b| b == 0) {
                Some(i) => chunk[..i].to_vec(),
                None => chunk.to_vec(),
            };
            if chunk.last() == Some(&b'\n') {
                open.line += 1;
            }
            self.file = open.file;
            self.line = open.line.max(1);
            let mut len = chunk.len();
            while len > 0 && (chunk[len - 1] == b'\n' || chunk[len - 1] == b'\r') {
                len -= 1;
            }
            let mut text = String::new();
            if len > 0 {
                text = String::from_utf8_lossy(&chunk[..len]).into_owned();
                text = self.decomment(&text);
            }
            // The parent's copy has a blank line for a comment-only or
            // include line (an include being a definition's text is never
            // read).
            let blank = len == 0
                || (self.copy
                    && (text.is_empty() || (is_include(&text) && self.defining.is_some())));
            if blank {
                if let Some(d) = self.defining.take()
                    && self.defs[d].value.is_empty()
                {
                    self.defs[d].multiline = false;
                }
                continue;
            }
            if self.copy {
                text = self.decomment(&text);
            }
            if !text.is_empty() {
                return Ok(Some(text));
            }
        }
    }

    /// Opens the next file of the include on top; false when none is left.
    fn open_next(&mut self) -> Result<bool, ConfigError> {
        loop {
            let Some(g) = self.globs.last_mut() else {
                return Ok(false);
            };
            let kind = g.kind;
            let Some(path) = g.paths.pop_front() else {
                return Ok(false);
            };
            let shown = path.display().to_string();
            let Ok(meta) = std::fs::metadata(&path) else {
                self.file_error(
                    kind,
                    INCLUDE_R,
                    &shown,
                    format!("Configuration file '{shown}' is not a regular non-executable file - skipping"),
                )?;
                continue;
            };
            if meta.is_dir() {
                self.file_error(
                    kind,
                    INCLUDE_R,
                    &shown,
                    format!("Configuration file '{shown}/' is a directory - skipping"),
                )?;
                continue;
            }
            use std::os::unix::fs::PermissionsExt;
            if !meta.is_file() || meta.permissions().mode() & 0o111 != 0 {
                self.file_error(
                    kind,
                    INCLUDE_R,
                    &shown,
                    format!(
                        "Configuration file '{shown}' is not a regular non-executable file - skipping"
                    ),
                )?;
                continue;
            }
            if self.files.len() >= MAX_FILES {
                return Err(self.error(format!(
                    "more than {MAX_FILES} files included: include fewer files"
                )));
            }
            let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
            let looped = self
                .globs
                .iter()
                .filter_map(|g| g.open.as_ref())
                .any(|o| o.canonical == canonical);
            if looped {
                return Err(self.error(format!(
                    "include loop: {shown} includes itself (remove the include)"
                )));
            }
            let bytes = match crate::config::read_bytes(&path, &self.origin()) {
                Ok(b) => b,
                Err(e) => {
                    self.file_error(
                        kind,
                        INCLUDE_R,
                        &shown,
                        format!(
                            "Configuration file '{shown}' open problem ({}) - skipping",
                            e.message
                        ),
                    )?;
                    continue;
                }
            };
            self.files.push(path);
            let file = self.files.len() - 1;
            let g = self.globs.last_mut().expect("checked above");
            g.open = Some(Open::new(file, bytes, canonical));
            return Ok(true);
        }
    }

    /// An include problem of `kind`: fatal (keepalived refuses the
    /// configuration) when the include or `include_check` asks for it,
    /// else skipped with the reason.
    fn file_error(
        &mut self,
        include_kind: u8,
        kind: u8,
        what: &str,
        message: String,
    ) -> Result<(), ConfigError> {
        if (self.include_check | include_kind) & kind != 0 {
            return Err(self.error(format!(
                "{message} (keepalived refuses the configuration: fix the include, or use \
                 plain `include`)"
            )));
        }
        let origin = self.origin();
        self.skipped.push(Skipped {
            origin,
            what: format!("include {what}"),
            reason: message,
        });
        Ok(())
    }

    /// decomment(): leading blanks, `!`/`#` comments outside quotes, the
    /// `\` of `\#` and `\!`, trailing blanks (a final `\` is kept, after
    /// the text).
    fn decomment(&mut self, line: &str) -> String {
        let s = line.trim_start_matches(is_blank);
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::with_capacity(s.len());
        let mut quote = false;
        let mut skip: Option<usize> = None;
        let mut cont = false;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '"' => {
                    if skip.is_none() {
                        quote = !quote;
                    }
                    out.push(c);
                    i += 1;
                }
                '\\' => {
                    if let Some(&n) = chars.get(i + 1) {
                        if !quote && (n == '#' || n == '!') {
                            out.push(n);
                        } else {
                            out.push('\\');
                            out.push(n);
                        }
                        i += 2;
                    } else {
                        cont = true;
                        break;
                    }
                }
                '!' | '#' => {
                    if !quote && skip.is_none() {
                        skip = Some(out.len());
                    }
                    out.push(c);
                    i += 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        if quote {
            self.warn(format!("Unterminated quote '{s}'"));
        }
        if let Some(k) = skip {
            out.truncate(k);
        }
        let trimmed = out.trim_end_matches(is_blank).len();
        out.truncate(trimmed);
        if cont {
            out.push('\\');
        }
        out
    }

    // ----- logical lines -----

    /// Whether the last `~SEQ`/`~LST` gives the next line (before pending
    /// lines of a multi-line parameter begun before it).
    fn seq_due(&self) -> bool {
        self.seqs
            .last()
            .is_some_and(|s| self.pending.len() <= s.pending_at)
    }

    fn seq_next(&mut self) -> String {
        let seq = self.seqs.last_mut().expect("seq_due");
        let text = seq.text.clone();
        let mut sets = Vec::new();
        let done = match &mut seq.kind {
            SeqKind::Num {
                var,
                next,
                step,
                last,
                hex,
            } => {
                let val = if *hex {
                    format!("{:x}", *next as u64)
                } else {
                    next.to_string()
                };
                sets.push((var.clone(), val));
                match next.checked_add(*step) {
                    Some(n) => {
                        *next = n;
                        (*step > 0 && n > *last) || (*step < 0 && n < *last)
                    }
                    None => true,
                }
            }
            SeqKind::Lst {
                params,
                sets: values,
                next,
            } => {
                for (p, v) in params.iter().zip(&values[*next]) {
                    sets.push((p.clone(), v.clone()));
                }
                *next += 1;
                *next >= values.len()
            }
        };
        if done {
            self.seqs.pop();
        }
        for (name, value) in sets {
            self.set_definition(&name, &value);
        }
        text
    }

    fn set_definition(&mut self, name: &str, value: &str) {
        match self.defs.iter_mut().find(|d| d.name == name) {
            Some(d) => {
                d.value = value.into();
                d.std = None;
            }
            None => self.defs.push(Def {
                name: name.into(),
                value: value.into(),
                multiline: false,
                std: None,
            }),
        }
    }

    /// The next line for the keyword parser: braces on lines of their own.
    fn next_line(&mut self) -> Result<Option<String>, ConfigError> {
        loop {
            self.lines += 1;
            if self.lines > MAX_LINES || self.pending.len() > MAX_LINES {
                return Err(self.error(format!(
                    "more than {MAX_LINES} lines after ~SEQ, ~LST and parameter expansion \
                     (a parameter that expands to itself?)"
                )));
            }
            let mut buf = if let Some(r) = self.residue.take() {
                r
            } else if self.seq_due() {
                self.seq_next()
            } else if let Some(l) = self.pending.pop_front() {
                l
            } else {
                match self.next_raw()? {
                    Some(l) => l,
                    None => return Ok(None),
                }
            };
            if let Some(d) = self.defining {
                self.continue_definition(d, &buf);
                continue;
            }
            if buf.is_empty() {
                continue;
            }
            let mut subs = 0;
            loop {
                if buf.starts_with('@') {
                    let (rev, ofs) = if buf[1..].starts_with('^') {
                        (true, 2)
                    } else {
                        (false, 1)
                    };
                    let rest = &buf[ofs..];
                    let Some(ws) = rest.find(is_blank) else {
                        buf.clear();
                        break;
                    };
                    let matches = self.config_id.as_deref() == Some(&rest[..ws]);
                    if matches == rev {
                        buf.clear();
                        break;
                    }
                    buf = rest[ws..].trim_start_matches(is_blank).to_string();
                }
                if buf.starts_with('$')
                    && let Some(d) = self.check_definition(&buf)
                {
                    if self.defs[d].multiline {
                        self.defining = Some(d);
                    }
                    buf.clear();
                    break;
                }
                if buf.starts_with("~SEQ") || buf.starts_with("~LST") {
                    let seq = buf.starts_with("~SEQ");
                    let ok = if seq {
                        self.add_seq(&buf)?
                    } else {
                        self.add_lst(&buf)
                    };
                    if !ok {
                        let kind = if seq { "~SEQ" } else { "~LST" };
                        self.warn(format!("Invalid {kind} specification '{buf}'"));
                    }
                    buf.clear();
                    break;
                }
                if buf.starts_with('~') || !buf.contains('$') {
                    break;
                }
                match self.replace_param(&mut buf, &mut subs, true)? {
                    Replaced::Nothing => break,
                    _ => {
                        buf = self.decomment(&buf);
                        if !(buf.starts_with('@') || buf.contains('$')) {
                            break;
                        }
                    }
                }
            }
            if buf.is_empty() || self.check_include(&buf)? {
                continue;
            }
            self.split_braces(&mut buf);
            return Ok(Some(buf));
        }
    }

    /// A `{` or `}` outside quotes begins a line of its own.
    fn split_braces(&mut self, buf: &mut String) {
        let b = buf.as_bytes();
        let mut at = None;
        if b[0] == b'{' || b[0] == b'}' {
            at = Some(0);
        } else {
            let mut i = 0;
            while let Some(rel) = buf[i..].find(['{', '}', '"']) {
                let p = i + rel;
                if b[p] != b'"' {
                    at = Some(p);
                    break;
                }
                match buf[p + 1..].find('"') {
                    Some(q) => i = p + 1 + q + 1,
                    None => break,
                }
            }
        }
        if let Some(p) = at {
            let skip = if p == 0 {
                1 + buf[1..].len() - buf[1..].trim_start_matches(is_blank).len()
            } else {
                0
            };
            let rest = buf[p + skip..].trim_end_matches(is_blank);
            if !rest.is_empty() {
                self.residue = Some(rest.to_string());
                buf.truncate(p + skip);
            }
        }
        let len = buf.trim_end_matches(is_blank).len();
        buf.truncate(len);
        if buf == "{" {
            self.block_depth += 1;
        } else if buf == "}" {
            if self.block_depth < 1 {
                self.warn("Extra '}' found".into());
                self.block_depth = 0;
            } else {
                self.block_depth -= 1;
            }
        }
    }

    /// A line of a multi-line definition.
    fn continue_definition(&mut self, d: usize, buf: &str) {
        let (line, more) = match buf.strip_suffix('\\') {
            Some(l) => (format!("{}\n", l.trim_end_matches(is_blank)), true),
            None => (buf.to_string(), false),
        };
        if !more {
            self.defining = None;
            if self.defs[d].value.is_empty() {
                self.defs[d].multiline = false;
            }
        }
        if line.len() >= 2 || (!line.is_empty() && !more) {
            self.defs[d].value.push_str(&line);
        }
    }

    /// `$NAME=value` (`\` at the end: more lines follow); its index.
    fn check_definition(&mut self, buf: &str) -> Option<usize> {
        let b = buf.as_bytes();
        if b.len() < 2 || !(b[1].is_ascii_alphabetic() || b[1] == b'_') {
            return None;
        }
        let mut p = 2;
        while p < b.len() && b[p] != b'=' {
            if !(b[p].is_ascii_alphanumeric() || b[p] == b'_') {
                return None;
            }
            p += 1;
        }
        if p >= b.len() {
            return None;
        }
        let name = &buf[1..p];
        let rest = buf[p + 1..].trim_start_matches(is_blank);
        let (value, multiline) = match rest.strip_suffix('\\') {
            Some(v) => {
                let v = v.trim_end_matches(is_blank);
                if v.is_empty() {
                    (String::new(), true)
                } else {
                    (format!("{v}\n"), true)
                }
            }
            None => (rest.to_string(), false),
        };
        let def = Def {
            name: name.into(),
            value,
            multiline,
            std: None,
        };
        match self.defs.iter().position(|d| d.name == name) {
            Some(i) => {
                self.defs[i] = def;
                Some(i)
            }
            None => {
                self.defs.push(def);
                Some(self.defs.len() - 1)
            }
        }
    }

    /// The parameter used at the start of `s` (after its `$`): its index,
    /// the length of the use, its `${NAME params}`.
    fn find_use(&self, s: &str) -> Option<(usize, usize, Option<String>)> {
        let b = s.as_bytes();
        let braces = b.first() == Some(&b'{');
        let start = usize::from(braces);
        if start >= b.len() || !(b[start].is_ascii_alphabetic() || b[start] == b'_') {
            return None;
        }
        let mut end = start + 1;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let name = &s[start..end];
        let (consumed, allow_multiline, params) = if braces {
            let mut p = end;
            let (mut ps, mut pe) = (None, None);
            while p < b.len() && (b[p] == b' ' || b[p].is_ascii_digit()) {
                if b[p] != b' ' {
                    ps.get_or_insert(p);
                    pe = Some(p);
                }
                p += 1;
            }
            if pe.is_some_and(|pe| pe + 1 != p) || b.get(p) != Some(&b'}') {
                return None;
            }
            let params = ps.zip(pe).map(|(a, z)| s[a..=z].to_string());
            (p + 1, p + 1 == b.len(), params)
        } else {
            if end < b.len() && !matches!(b[end], b' ' | b'\t' | b',' | b')') {
                return None;
            }
            (end, end == b.len(), None)
        };
        let i = self
            .defs
            .iter()
            .position(|d| d.name == name && (allow_multiline || !d.multiline))?;
        if params.is_some() && !matches!(self.defs[i].std, Some(StdDef::Random)) {
            return None;
        }
        Some((i, consumed, params))
    }

    fn def_value(&mut self, i: usize, params: Option<&str>) -> String {
        match self.defs[i].std {
            None => self.defs[i].value.clone(),
            Some(StdDef::Instance) => self.config_id.clone().unwrap_or_default(),
            Some(StdDef::Pwd) => {
                let file = &self.files[self.file.min(self.files.len().saturating_sub(1))];
                let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
                let dir = match dir {
                    Some(d) => d.to_path_buf(),
                    None => std::env::current_dir().unwrap_or_default(),
                };
                dir.canonicalize().unwrap_or(dir).display().to_string()
            }
            Some(StdDef::Random) => {
                let (mut min, mut max) = (0u64, 32767u64);
                if let Some(p) = params {
                    let mut it = p.split(' ').filter(|w| !w.is_empty());
                    min = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    if let Some(v) = it.next() {
                        max = v.parse().unwrap_or(max);
                    }
                }
                // xorshift64
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let span = max.saturating_sub(min).saturating_add(1);
                (self.rng % span + min).to_string()
            }
        }
    }

    /// replace_param(): every `$NAME` and `${NAME}` of a known parameter
    /// replaced by its value, the value itself expanded in turn (as
    /// keepalived does, bounded); an unknown one is left as it is.
    fn replace_param(
        &mut self,
        buf: &mut String,
        subs: &mut usize,
        multiline_ok: bool,
    ) -> Result<Replaced, ConfigError> {
        let mut pos = 0;
        let mut found = Replaced::Nothing;
        while let Some(rel) = buf[pos..].find('$') {
            let i = pos + rel;
            if i + 1 >= buf.len() {
                break;
            }
            let Some((d, consumed, params)) = self.find_use(&buf[i + 1..]) else {
                pos = i + 1;
                continue;
            };
            if self.defs[d].multiline && !multiline_ok {
                return Ok(Replaced::Multiline);
            }
            found = Replaced::Something;
            *subs += 1;
            if *subs > MAX_SUBSTITUTIONS {
                return Err(self.error(format!(
                    "more than {MAX_SUBSTITUTIONS} parameter substitutions in one line: a \
                     parameter's value uses the parameter itself (like $A=$A); change it"
                )));
            }
            let value = self.def_value(d, params.as_deref());
            let first = if self.defs[d].multiline {
                let mut lines = value.split('\n');
                let first = lines.next().unwrap_or_default().to_string();
                let rest: Vec<String> = lines.map(str::to_string).collect();
                for l in rest.into_iter().rev() {
                    self.pending.push_front(l);
                }
                first
            } else {
                value.clone()
            };
            buf.replace_range(i..i + 1 + consumed, &first);
            if buf.len() > MAX_LINE_LEN {
                return Err(self.error(format!(
                    "a line longer than {MAX_LINE_LEN} bytes after parameter substitution \
                     (a parameter that uses itself?)"
                )));
            }
            if value.trim_start_matches(is_blank).starts_with('~') {
                break;
            }
            pos = i;
        }
        Ok(found)
    }

    /// `~SEQ[x](var, [start, [step,]] end) TEXT`; false: invalid.
    fn add_seq(&mut self, buf: &str) -> Result<bool, ConfigError> {
        let mut p = &buf[4..];
        let hex = p.starts_with('x');
        if hex {
            p = &p[1..];
        }
        p = p.trim_start_matches(is_blank);
        let Some(rest) = p.strip_prefix('(') else {
            return Ok(false);
        };
        let p = rest.trim_start_matches(is_blank);
        let var_len = p.find([' ', '\t', ',', ')']).unwrap_or(p.len());
        let var = &p[..var_len];
        let p = p[var_len..].trim_start_matches(is_blank);
        if p.is_empty() || p.starts_with(')') || var.is_empty() {
            return Ok(false);
        }
        // keepalived steps over the separator, whatever it is.
        let p = p[p.chars().next().map_or(0, char::len_utf8)..].trim_start_matches(is_blank);
        let Some(end_seq) = p.find(')') else {
            return Ok(false);
        };
        if end_seq + 2 > 64 {
            self.warn(format!("~SEQ parameter strings too long '{buf}'"));
            return Ok(false);
        }
        let mut args = p[..=end_seq].to_string();
        let mut subs = 0;
        if let Replaced::Multiline = self.replace_param(&mut args, &mut subs, false)? {
            self.warn(format!("~SEQ parameter is multiline definition '{buf}'"));
            return Ok(false);
        }
        let text = p[end_seq + 1..].trim_start_matches(is_blank).to_string();
        let (one, rest) = strtol(&args);
        let rest = rest.trim_start_matches(is_blank);
        let (start, step, end) = if rest.starts_with(')') {
            let end = one;
            (
                if end < 0 { -1 } else { 1 },
                if end < 1 { -1 } else { 1 },
                end,
            )
        } else {
            let Some(rest) = rest.strip_prefix(',') else {
                return Ok(false);
            };
            let (two, rest) = strtol(rest);
            let rest = rest.trim_start_matches(is_blank);
            if rest.starts_with(')') {
                (one, if one <= two { 1 } else { -1 }, two)
            } else {
                let Some(rest) = rest.strip_prefix(',') else {
                    return Ok(false);
                };
                let (three, rest) = strtol(rest);
                if !rest.trim_start_matches(is_blank).starts_with(')') {
                    return Ok(false);
                }
                if two == 0 || (one < three && two < 0) || (one > three && two > 0) {
                    self.warn(format!("Invalid ~SEQ values '{buf}'"));
                    return Ok(false);
                }
                (one, two, three)
            }
        };
        if hex && (start < 0 || end < 0) {
            self.warn(format!("~SEQx is only valid for positive numbers '{buf}'"));
            return Ok(false);
        }
        let count = (end as i128 - start as i128) / step as i128 + 1;
        if count > MAX_SEQ_LINES {
            return Err(self.error(format!(
                "~SEQ gives {count} lines, more than {MAX_SEQ_LINES}: use a shorter sequence"
            )));
        }
        if count > 0 {
            self.seqs.push(Seq {
                text,
                kind: SeqKind::Num {
                    var: var.to_string(),
                    next: start,
                    step,
                    last: end,
                    hex,
                },
                pending_at: self.pending.len(),
            });
        }
        Ok(true)
    }

    /// `~LST(var, v1, v2...) TEXT` or `~LST({a, b}, {1, 2}, {3, 4}) TEXT`;
    /// false: invalid.
    fn add_lst(&mut self, buf: &str) -> bool {
        fn skip(p: &str) -> &str {
            p.trim_start_matches(is_blank)
        }
        let p = skip(&buf[4..]);
        let Some(p) = p.strip_prefix('(') else {
            return false;
        };
        let mut p = skip(p);
        let mut end_char = ',';
        if let Some(r) = p.strip_prefix('{') {
            end_char = '}';
            p = skip(r);
        }
        let mut params = Vec::new();
        loop {
            let n = p.find([' ', '\t', ',', '}']).unwrap_or(p.len());
            params.push(p[..n].to_string());
            p = skip(&p[n..]);
            if p.starts_with(end_char) {
                break;
            }
            let Some(r) = p.strip_prefix(',') else {
                return false;
            };
            p = skip(r);
            if params.len() > MAX_GLOB {
                return false;
            }
        }
        let num_vars = params.len() - 1;
        if let Some(r) = p.strip_prefix('}') {
            p = skip(r);
        }
        let Some(r) = p.strip_prefix(',') else {
            return false;
        };
        p = skip(r);
        let mut sets = Vec::new();
        loop {
            let mut end_char = ',';
            if let Some(r) = p.strip_prefix('{') {
                end_char = '}';
                p = skip(r);
            }
            let mut values = Vec::new();
            loop {
                let n = p.find([' ', '\t', ',', '}', ')']).unwrap_or(p.len());
                values.push(p[..n].to_string());
                p = skip(&p[n..]);
                if p.starts_with(end_char) || (p.starts_with(')') && end_char == ',') {
                    break;
                }
                let Some(r) = p.strip_prefix(',') else {
                    return false;
                };
                p = skip(r);
                if values.len() > num_vars {
                    self.warn(format!("~LST specification has too many values '{buf}'"));
                    return false;
                }
            }
            values.resize(num_vars + 1, String::new());
            sets.push(values);
            if sets.len() as i128 > MAX_SEQ_LINES {
                return false;
            }
            if end_char == '}'
                && let Some(r) = p.strip_prefix('}')
            {
                p = skip(r);
            }
            if p.starts_with(')') {
                break;
            }
            let Some(r) = p.strip_prefix(',') else {
                return false;
            };
            p = skip(r);
        }
        let text = skip(&p[1..]).to_string();
        self.seqs.push(Seq {
            text,
            kind: SeqKind::Lst {
                params,
                sets,
                next: 0,
            },
            pending_at: self.pending.len(),
        });
        true
    }

    /// `include`, `includer`, `includem`, `includew`, `includeb`,
    /// `includea` PATTERN: its files are read next. Whether it is one.
    fn check_include(&mut self, buf: &str) -> Result<bool, ConfigError> {
        let b = buf.as_bytes();
        if !is_include(buf) {
            return Ok(false);
        }
        let (kind, rest) = if is_space(b[7]) {
            (0, &buf[8..])
        } else if b.len() > 8 && is_space(b[8]) {
            let kind = match b[7] {
                b'r' => INCLUDE_R,
                b'a' => INCLUDE_R | INCLUDE_M | INCLUDE_B | INCLUDE_W,
                b'w' => INCLUDE_R | INCLUDE_M | INCLUDE_W,
                b'm' => INCLUDE_R | INCLUDE_M,
                b'b' => INCLUDE_R | INCLUDE_B,
                _ => return Ok(false),
            };
            (kind, &buf[9..])
        } else {
            return Ok(false);
        };
        let pattern = rest.trim_start_matches(is_blank).to_string();
        self.include(&pattern, kind)?;
        Ok(true)
    }

    fn include(&mut self, pattern: &str, kind: u8) -> Result<(), ConfigError> {
        if self.globs.len() > MAX_INCLUDE_DEPTH {
            return Err(self.error(format!(
                "includes nested deeper than {MAX_INCLUDE_DEPTH} (an include loop?)"
            )));
        }
        let dir = self
            .files
            .get(self.file)
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let full = if Path::new(pattern).is_relative() && !dir.as_os_str().is_empty() {
            dir.join(pattern).display().to_string()
        } else {
            pattern.to_string()
        };
        let g = glob_include(&full);
        let has_brace = {
            let mut out = Vec::new();
            brace_expand(&full, &mut out);
            out.len() != 1 || out[0] != full
        };
        if g.paths.is_empty() {
            if g.missing {
                let k = if has_brace { INCLUDE_B } else { INCLUDE_M };
                if (self.include_check | kind) & k != 0 {
                    return Err(self.error(format!(
                        "Config files missing '{full}' (keepalived refuses the configuration: \
                         create them, or use plain `include`)"
                    )));
                }
                let origin = self.origin();
                self.skipped.push(Skipped {
                    origin,
                    what: format!("include {pattern}"),
                    reason: "matches no file".into(),
                });
            } else if g.have_wildcards && (self.include_check | kind) & INCLUDE_W != 0 {
                return Err(self.error(format!(
                    "No config files matched '{full}' (keepalived refuses the configuration: \
                     create one, or use `include` or `includem`)"
                )));
            } else {
                let origin = self.origin();
                self.skipped.push(Skipped {
                    origin,
                    what: format!("include {pattern}"),
                    reason: "matches no file".into(),
                });
            }
            return Ok(());
        }
        if g.missing {
            if (self.include_check | kind) & INCLUDE_B != 0 {
                return Err(self.error(format!(
                    "Some config files missing: \"{full}\" (keepalived refuses the \
                     configuration: create them, or use plain `include`)"
                )));
            }
            let origin = self.origin();
            self.skipped.push(Skipped {
                origin,
                what: format!("include {pattern}"),
                reason: "some of its files are missing (the others are read)".into(),
            });
        }
        self.globs.push(Glob {
            paths: g.paths.into(),
            kind,
            saved_check: self.include_check,
            open: None,
        });
        Ok(())
    }

    /// `include_check` of global_defs, from here on.
    fn include_check_set(&mut self, args: &[String]) {
        if args.is_empty() {
            self.include_check = INCLUDE_R | INCLUDE_M | INCLUDE_W | INCLUDE_B;
            return;
        }
        for (i, word) in args.iter().enumerate() {
            let (op, name) = match word.as_bytes().first() {
                Some(b'-') => (-1, &word[1..]),
                Some(b'+') => (1, &word[1..]),
                _ => {
                    if i == 0 {
                        self.include_check = 0;
                    } else {
                        self.warn(format!(
                            "Duplicate include_check '{word}' specified - ignoring"
                        ));
                        continue;
                    }
                    (0, &word[..])
                }
            };
            let flag = match name {
                "read" => INCLUDE_R,
                "match" => INCLUDE_M,
                "wildcard_match" => INCLUDE_W,
                "brace_match" => INCLUDE_B,
                _ => {
                    self.warn(format!("Unknown include_check type '{name}' - ignoring"));
                    0
                }
            };
            if flag != 0 {
                match op {
                    0 => self.include_check = INCLUDE_R | flag,
                    1 => self.include_check |= flag,
                    _ => self.include_check &= !flag,
                }
            }
        }
    }

    // ----- words and blocks -----

    /// alloc_strvec(): words split at blanks, `"..."` one word.
    fn words(&mut self, line: &str) -> Result<Vec<String>, ConfigError> {
        let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c');
        let mut out = Vec::new();
        let mut rest = line;
        loop {
            rest = rest.trim_start_matches(ws);
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix('"') {
                let Some(q) = r.find('"') else {
                    self.warn(format!("Unmatched quote: '{line}'"));
                    break;
                };
                out.push(r[..q].to_string());
                rest = &r[q + 1..];
            } else {
                let n = rest.find(|c| ws(c) || c == '"').unwrap_or(rest.len());
                out.push(rest[..n].to_string());
                rest = &rest[n..];
            }
        }
        self.words += out.len();
        if self.words > MAX_WORDS {
            return Err(self.error(format!("more than {MAX_WORDS} words")));
        }
        Ok(out)
    }

    /// process_stream(): the keywords of `level` up to the `}` that ends
    /// the block (or the end); unknown ones are reported and left out.
    fn stream(
        &mut self,
        level: &'static [Kw],
        mut need_bob: bool,
        kw_level: usize,
    ) -> Result<Vec<Stmt>, ConfigError> {
        let mut out = Vec::new();
        // keepalived's skip_sublevel: passing over an inactive block (-1:
        // its `{` may come next).
        let mut skip: i64 = 0;
        while let Some(line) = self.next_line()? {
            let mut words = self.words(&line)?;
            if words.is_empty() {
                continue;
            }
            if skip == -1 {
                if words[0] == "{" {
                    skip = 1;
                    need_bob = false;
                    continue;
                }
                skip = 0;
            }
            if skip > 0 {
                for w in &words {
                    if w == "{" {
                        skip += 1;
                    } else if w == "}" {
                        skip -= 1;
                        if skip == 0 {
                            break;
                        }
                    }
                }
                continue;
            }
            let origin = self.origin();
            if need_bob {
                need_bob = false;
                if words[0] == "{" && kw_level > 0 {
                    continue;
                }
                self.warn("Missing '{' at beginning of configuration block".into());
            } else if words[0] == "{" {
                self.warn("Unexpected '{' - ignoring".into());
                continue;
            }
            if words[0] == "}" && kw_level > 0 {
                break;
            }
            let Some(kw) = level.iter().find(|k| k.name == words[0]) else {
                self.warn(format!("Unknown keyword '{}'", words[0]));
                continue;
            };
            if kw_level == 0 && !self.active.contains(&group(kw.name)) {
                skip = -1;
                continue;
            }
            let key = words.remove(0);
            if key == "include_check" && kw_level == 1 {
                self.include_check_set(&words);
            }
            let block = match kw.block {
                Block::None => None,
                Block::Values => Some(self.values()?),
                Block::Sub(sub) => Some(self.stream(sub, true, kw_level + 1)?),
            };
            out.push(Stmt {
                key,
                args: words,
                origin,
                block,
            });
        }
        Ok(out)
    }

    /// alloc_value_block(): one statement a line up to the `}`.
    fn values(&mut self) -> Result<Vec<Stmt>, ConfigError> {
        let mut out = Vec::new();
        let mut need_bob = true;
        while let Some(line) = self.next_line()? {
            let mut words = self.words(&line)?;
            if words.is_empty() {
                continue;
            }
            if need_bob {
                need_bob = false;
                if words[0] == "{" {
                    if words.len() == 1 {
                        continue;
                    }
                    words.remove(0);
                }
            }
            let mut eob = false;
            if words.last().map(String::as_str) == Some("}") {
                if words.len() == 1 {
                    break;
                }
                eob = true;
                words.pop();
            }
            let origin = self.origin();
            let key = words.remove(0);
            out.push(Stmt {
                key,
                args: words,
                origin,
                block: None,
            });
            if eob {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_as_c() {
        assert_eq!(strtol("12)"), (12, ")"));
        assert_eq!(strtol(" -3, 4"), (-3, ", 4"));
        assert_eq!(strtol("0x1f)"), (31, ")"));
        assert_eq!(strtol("010)"), (8, ")"));
        assert_eq!(strtol(")"), (0, ")"));
        assert_eq!(strtol("99999999999999999999").0, i64::MAX);
    }

    #[test]
    fn braces_expand() {
        let mut out = Vec::new();
        brace_expand("/a/{b,c{1,2}}/x.conf", &mut out);
        assert_eq!(out, vec!["/a/b/x.conf", "/a/c1/x.conf", "/a/c2/x.conf"]);
        let mut out = Vec::new();
        brace_expand("/a/{b", &mut out);
        assert_eq!(out, vec!["/a/{b"]);
    }
}
