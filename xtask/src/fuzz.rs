//! `cargo xtask fuzz`: the cargo-fuzz targets of `fuzz/` (the checker's
//! parsers of frames, HTTP responses, keepalived.conf, targets files and
//! command lines), each run for a while from its seed corpus.
//!
//! One build (`cargo +nightly fuzz build`, AddressSanitizer, into
//! `fuzz/target`), then each target for the time asked with libFuzzer's
//! bounds on each input's time and the process's memory. What a run finds
//! is kept in `fuzz/target/corpus/TARGET` (the next run starts from it as
//! well as from the checked-in seeds in `fuzz/corpus/TARGET`, which it
//! never writes); a crash, a timeout or running out of memory is written to
//! `fuzz/artifacts/TARGET/` and fails the run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Longest time one input may take (seconds): a parser of a few KiB
/// taking longer is a bug.
pub const INPUT_TIMEOUT_S: u64 = 10;
/// Most memory a target process may use (MiB), the fuzzer's corpus and
/// AddressSanitizer's quarantine included.
pub const RSS_LIMIT_MB: u64 = 2048;

/// What one target's run did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub target: String,
    /// Inputs run (libFuzzer's `stat::number_of_executed_units`).
    pub executions: Option<u64>,
    /// The input that crashed, timed out or ran out of memory, if any
    /// (libFuzzer stops at the first).
    pub artifact: Option<String>,
    /// The process failed (whether or not it wrote an artifact).
    pub failed: bool,
    pub seconds: f64,
    pub log: PathBuf,
}

/// The fuzz targets: the files of `fuzz/fuzz_targets/`, by name.
pub fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Builds the targets, then runs `only` (default: every target) for
/// `seconds` each; prints a line per target. The outcomes, in order.
pub fn run(root: &Path, seconds: u64, only: Option<&str>) -> Result<Vec<Outcome>> {
    let all = targets(root)?;
    let chosen: Vec<String> = match only {
        Some(t) if all.iter().any(|a| a == t) => vec![t.to_owned()],
        Some(t) => bail!("no fuzz target {t:?} (there are {})", all.join(", ")),
        None => all,
    };
    let started = Instant::now();
    let mut build = cargo_fuzz(root, "build");
    if let [one] = chosen.as_slice() {
        build.arg(one);
    }
    let status = build
        .status()
        .with_context(|| format!("cannot run {build:?}"))?;
    if !status.success() {
        bail!("{build:?} failed ({status})");
    }
    println!(
        "fuzz: built in {:.0} s; each target for {seconds} s",
        started.elapsed().as_secs_f64()
    );
    let mut outcomes = Vec::new();
    for target in &chosen {
        let outcome = run_one(root, target, seconds)?;
        println!("{}", summary(&outcome));
        if outcome.failed {
            print_failure(root, &outcome);
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// `cargo +nightly fuzz SUBCOMMAND` with the build options every call
/// shares (a `run` with other options would build again): 16 codegen
/// units (with `opt-level = 1` in fuzz/Cargo.toml) for a quicker build.
fn cargo_fuzz(root: &Path, subcommand: &str) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", subcommand])
        .args(["--codegen-units", "16"])
        .arg("--target-dir")
        .arg(root.join("fuzz/target"))
        .current_dir(root);
    cmd
}

fn run_one(root: &Path, target: &str, seconds: u64) -> Result<Outcome> {
    let work = root.join("fuzz/target/corpus").join(target);
    let seeds = root.join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&work)?;
    let logs = root.join("fuzz/target/logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join(format!("{target}.log"));
    let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = cargo_fuzz(root, "run");
    cmd.arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
    Ok(Outcome {
        target: target.to_owned(),
        executions: executions(&text),
        artifact: artifact(&text),
        failed: !status.success(),
        seconds,
        log,
    })
}

/// Inputs run, from libFuzzer's final statistics, else its last status
/// line (`#N ...`).
pub fn executions(log: &str) -> Option<u64> {
    let stat = log.lines().rev().find_map(|l| {
        l.strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        log.lines().rev().find_map(|l| {
            let n = l.strip_prefix('#')?;
            let digits = n.split(|c: char| !c.is_ascii_digit()).next()?;
            digits.parse().ok()
        })
    })
}

/// The input libFuzzer wrote when the target failed.
pub fn artifact(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split_once("Test unit written to "))
        .map(|(_, path)| path.trim().to_owned())
}

/// `fuzz frames: 1058028 executions in 20 s (52901/s), no crash`.
pub fn summary(o: &Outcome) -> String {
    let runs = o
        .executions
        .map_or_else(|| "? executions".to_owned(), |n| format!("{n} executions"));
    let rate = match o.executions {
        Some(n) if o.seconds > 0.0 => format!(" ({:.0}/s)", n as f64 / o.seconds),
        _ => String::new(),
    };
    let verdict = match (&o.artifact, o.failed) {
        (_, false) => "no crash".to_owned(),
        (Some(a), true) => format!("1 crash: {a}"),
        (None, true) => format!("FAILED (see {})", o.log.display()),
    };
    format!(
        "fuzz {}: {runs} in {:.0} s{rate}, {verdict}",
        o.target, o.seconds
    )
}

/// The end of the failed run's log (the panic or sanitizer report) and how
/// to run the input again.
fn print_failure(root: &Path, o: &Outcome) {
    let text = std::fs::read(&o.log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines
        .iter()
        .position(|l| l.contains("panicked at") || l.contains("==ERROR") || l.contains("ERROR: "))
        .unwrap_or(lines.len().saturating_sub(40));
    for line in lines[from..].iter().take(60) {
        eprintln!("  {line}");
    }
    if let Some(a) = &o.artifact {
        eprintln!(
            "  again: (cd {} && cargo +nightly fuzz run --codegen-units 16 --target-dir fuzz/target {} {a})",
            root.display(),
            o.target
        );
    }
    eprintln!("  log: {}", o.log.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_from_final_stats_or_status_line() {
        let done = "#1058028\tDONE   cov: 740 ft: 1123 corp: 244/16Kb lim: 4096 exec/s: 50382 rss: 529Mb\n\
                    Done 1058028 runs in 21 second(s)\n\
                    stat::number_of_executed_units: 1058028\n\
                    stat::average_exec_per_sec:     50382\n";
        assert_eq!(executions(done), Some(1_058_028));
        let crashed = "#477\tNEW    cov: 721 ft: 1830 corp: 94/11147b lim: 330 exec/s: 0 rss: 48Mb\n\
                       thread '<unnamed>' panicked at fuzz_targets/http_response.rs:65:5:\n";
        assert_eq!(executions(crashed), Some(477));
        assert_eq!(executions("error: could not compile\n"), None);
    }

    #[test]
    fn artifact_of_a_crash() {
        let log = "==20957== ERROR: libFuzzer: deadly signal\n\
                   MS: 1 ChangeByte-; base unit: 0a1b\n\
                   artifact_prefix='/w/fuzz/artifacts/http_response/'; Test unit written to /w/fuzz/artifacts/http_response/crash-bbc3\n\
                   Base64: CABIVFRQ\n";
        assert_eq!(
            artifact(log).as_deref(),
            Some("/w/fuzz/artifacts/http_response/crash-bbc3")
        );
        assert_eq!(artifact("#5 DONE\n"), None);
    }

    #[test]
    fn targets_are_the_files_of_fuzz_targets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let names = targets(root).unwrap();
        for t in ["frames", "http_response", "keepalived_conf", "cli_args"] {
            assert!(names.iter().any(|n| n == t), "{names:?}");
            assert!(
                root.join("fuzz/corpus").join(t).read_dir().unwrap().count() > 0,
                "{t} has seeds"
            );
        }
    }

    #[test]
    fn summary_line() {
        let mut o = Outcome {
            target: "frames".into(),
            executions: Some(1000),
            artifact: None,
            failed: false,
            seconds: 10.0,
            log: PathBuf::from("/l"),
        };
        assert_eq!(
            summary(&o),
            "fuzz frames: 1000 executions in 10 s (100/s), no crash"
        );
        o.failed = true;
        o.artifact = Some("/a/crash-1".into());
        assert_eq!(
            summary(&o),
            "fuzz frames: 1000 executions in 10 s (100/s), 1 crash: /a/crash-1"
        );
    }
}
