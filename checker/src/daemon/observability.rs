//! The Grafana dashboard and the Prometheus rules shipped in
//! `xtask/dist/share` (installed under /usr/share/vipcheck) name only
//! metrics that [`Metrics`] exports: the names are read from its encoding
//! with every family populated, and from every query of the dashboard
//! (panels and variables) and every expression of the rules. The rules may
//! also name their own recording rules and the few metrics of others that
//! [`FOREIGN`] lists. promtool's checks of both files are in
//! `xtask/tests/observability.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use checker_common::Counter as XdpCounter;
use yaml_rust2::{Yaml, YamlLoader};

use super::metrics::{Metrics, Outcome, TargetLabels};
use crate::failure::Failure;

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../xtask/dist/share/grafana/vipcheck-dashboard.json"
);
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../xtask/dist/share/prometheus/vipcheck-rules.yml"
);
const RULES_TEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../xtask/dist/share/prometheus/vipcheck-rules.test.yml"
);

/// Metrics of others the rules may name: Prometheus's own `up` (the
/// scrape alerts) and node_exporter's IPVS collector's weights (the IPVS
/// group). The dashboard names none.
const FOREIGN: [&str; 2] = ["up", "node_ipvs_backend_weight"];

/// [`Metrics`] with a sample in every family.
fn populated() -> Metrics {
    let m = Metrics::new();
    let t = TargetLabels::new(
        "198.18.0.100".parse().unwrap(),
        80,
        "198.18.0.11".parse().unwrap(),
        "http",
    );
    m.observe(&t, Outcome::Healthy, Duration::from_millis(3));
    m.observe(
        &t,
        Outcome::Unhealthy(Failure::Refused),
        Duration::from_millis(2),
    );
    m.observe(&t, Outcome::Error(Failure::Busy), Duration::from_millis(1));
    m.set_state(&t, Some(true));
    m.state_changed(&t);
    let counters: Vec<(XdpCounter, u64)> = XdpCounter::ALL.iter().map(|&c| (c, 1)).collect();
    m.set_xdp("eth0", "xdp", &counters);
    m.set_targets(1);
    m.set_overdue(0);
    m.set_last_cycle(Duration::from_millis(1500));
    m
}

/// What the daemon exports: the names of its series (those a query can
/// select: a histogram's `_bucket`, `_sum` and `_count`, a counter's
/// `_total`), and its families (the `# TYPE` lines), each of which has a
/// series here.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = populated().encode();
    let mut series = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(family) = line.strip_prefix("# TYPE ") {
            families.insert(family.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap();
            series.insert(line[..end].to_string());
        }
    }
    for family in &families {
        assert!(
            series.iter().any(|s| s.starts_with(family.as_str())),
            "the family {family} has no series: populate it in populated()\n{text}"
        );
    }
    (series, families)
}

/// Functions, aggregations and keywords are told from metric names by
/// what follows them; these words are never metric names.
const KEYWORDS: [&str; 13] = [
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
];

/// Keywords that a list of label names in parentheses may follow.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The index past the bracket that closes the one at `open` (`(`, `{` or
/// `[`), strings inside skipped.
fn past_closing(chars: &[char], open: usize) -> usize {
    let (up, down) = match chars[open] {
        '(' => ('(', ')'),
        '{' => ('{', '}'),
        _ => ('[', ']'),
    };
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = past_string(chars, i) - 1,
            c if c == up => depth += 1,
            c if c == down => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unclosed {up} in {}", chars.iter().collect::<String>());
}

/// The index past the string that starts at `start`.
fn past_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 1,
            c if c == quote => return i + 1,
            _ => {}
        }
        i += 1;
    }
    panic!("unclosed string in {}", chars.iter().collect::<String>());
}

/// The metric names a PromQL expression selects: the words that are not
/// functions or aggregations (a `(` follows them), keywords, label names
/// (in `{...}`, or in the list after `by`, `on`, ...), strings, numbers or
/// durations. A selector by `__name__` gives its matcher, which no metric
/// is named.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_non_space = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_whitespace());
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '{' || c == '[' {
            let end = past_closing(&chars, i);
            let inside: String = chars[i..end].iter().collect();
            if inside.contains("__name__") {
                names.push(inside);
            }
            i = end;
        } else if c == '#' {
            i = (i..chars.len())
                .find(|&j| chars[j] == '\n')
                .unwrap_or(chars.len());
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (5m, 1e3, 0x1f).
            while i < chars.len() && (word_char(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if word_char(c) {
            let start = i;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let next = next_non_space(i);
            // A function's or an aggregation's `(`, or an aggregation's
            // `by` or `without` before it.
            let next_word: String = next
                .map(|j| chars[j..].iter().take_while(|&&c| word_char(c)).collect())
                .unwrap_or_default();
            let call = next.is_some_and(|j| chars[j] == '(')
                || ["by", "without"].contains(&next_word.to_ascii_lowercase().as_str());
            if LABEL_LISTS.contains(&lower.as_str()) {
                if let Some(j) = next.filter(|&j| chars[j] == '(') {
                    i = past_closing(&chars, j);
                }
            } else if !KEYWORDS.contains(&lower.as_str()) && !call {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The dashboard's queries: every panel's (rows' panels too) and every
/// variable's.
fn dashboard_queries() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(DASHBOARD).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            // label_values(SELECTOR, LABEL): the selector.
            let query = var["query"].as_str().unwrap();
            let Some((selector, _label)) = query
                .strip_prefix("label_values(")
                .and_then(|q| q.rsplit_once(','))
            else {
                panic!("not label_values(SELECTOR, LABEL): {query}");
            };
            out.push(selector.to_string());
        }
    }
    out
}

fn yaml(path: &str) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .remove(0)
}

/// The rules of vipcheck-rules.yml, of every group.
fn rules() -> Vec<Yaml> {
    let doc = yaml(RULES);
    let mut out = Vec::new();
    for group in doc["groups"].as_vec().unwrap() {
        out.extend(group["rules"].as_vec().unwrap().iter().cloned());
    }
    out
}

/// The names in `names` that are not in `known`.
fn unknown<'a>(names: &'a BTreeSet<String>, known: &BTreeSet<String>) -> Vec<&'a String> {
    names.iter().filter(|n| !known.contains(*n)).collect()
}

#[test]
fn names_in_promql() {
    let names = |e| metric_names(e);
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (check, le) (rate(vipcheck_check_duration_seconds_bucket{instance=~"$instance",check=~"a|b{1}"}[$__rate_interval])))"#
        ),
        ["vipcheck_check_duration_seconds_bucket"]
    );
    assert_eq!(
        names(
            "sum without (result) (rate(x_total{result=\"error\"}[5m] offset 1h)) / on (job) group_left (version) y_info > bool 0.5"
        ),
        ["x_total", "y_info"]
    );
    assert_eq!(
        names("topk without (a) (5, m1) + count BY(x)(m2)"),
        ["m1", "m2"]
    );
    assert_eq!(
        names(
            r#"label_replace(a:b:c, "local_port", "$1", "port", "(.*)") and ignoring(x) count(up == 0) or vector(0) unless Inf"#
        ),
        ["a:b:c", "up"]
    );
    assert_eq!(
        names("max(vipcheck_targets) # a comment naming no_metric\n * 2e3"),
        ["vipcheck_targets"]
    );
    assert_eq!(names(r#"{__name__="x"}"#), [r#"{__name__="x"}"#]);
}

/// A misspelt name is caught: the check below fails on it.
#[test]
fn a_misspelt_name_is_unknown() {
    let (series, _) = exported();
    let used: BTreeSet<String> = metric_names(
        r#"sum(rate(vipcheck_checks_total{result="error"}[5m])) / vipcheck_target_upp"#,
    )
    .into_iter()
    .collect();
    assert_eq!(unknown(&used, &series), ["vipcheck_target_upp"]);
    // The histogram's family name selects nothing: its series do.
    assert!(!series.contains("vipcheck_check_duration_seconds"));
    assert!(series.contains("vipcheck_check_duration_seconds_bucket"));
}

#[test]
fn the_dashboard_names_only_exported_metrics_and_all_of_them() {
    let (series, families) = exported();
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "a query that selects no metric: {query}");
        used.extend(names);
    }
    assert_eq!(
        unknown(&used, &series),
        Vec::<&String>::new(),
        "the dashboard names metrics the daemon does not export"
    );
    // Every family the daemon exports is on the dashboard.
    for family in &families {
        assert!(
            used.iter().any(|u| u.starts_with(family.as_str())),
            "{family} is on no panel of the dashboard"
        );
    }
}

#[test]
fn the_rules_name_only_exported_metrics() {
    let (series, _) = exported();
    let rules = rules();
    let recorded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["record"].as_str().map(String::from))
        .collect();
    let mut known = series.clone();
    known.extend(recorded.iter().cloned());
    known.extend(FOREIGN.map(String::from));
    let mut used = BTreeSet::new();
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "an expression that selects no metric: {expr}"
        );
        used.extend(names);
    }
    assert_eq!(
        unknown(&used, &known),
        Vec::<&String>::new(),
        "the rules name metrics neither the daemon nor they define"
    );
    // Each foreign name is used (the list does not outlive its use), and
    // no recording rule takes the name of a metric of the daemon's.
    for name in FOREIGN {
        assert!(used.contains(name), "{name} is in FOREIGN but unused");
    }
    for name in &recorded {
        assert!(!series.contains(name) && name.contains(':'), "{name}");
    }
}

#[test]
fn every_alert_is_labelled_annotated_and_tested_firing() {
    let tests = yaml(RULES_TEST);
    let mut fired = BTreeSet::new();
    for test in tests["tests"].as_vec().unwrap() {
        for case in test["alert_rule_test"].as_vec().into_iter().flatten() {
            if case["exp_alerts"].as_vec().is_some_and(|a| !a.is_empty()) {
                fired.insert(case["alertname"].as_str().unwrap().to_string());
            }
        }
    }
    let alerts: Vec<Yaml> = rules()
        .into_iter()
        .filter(|r| r["alert"].as_str().is_some())
        .collect();
    assert!(alerts.len() >= 8, "{} alerts", alerts.len());
    for alert in &alerts {
        let name = alert["alert"].as_str().unwrap();
        let severity = alert["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                alert["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{name} has no {key}"
            );
        }
        assert!(
            fired.contains(name),
            "{name} is never shown firing in vipcheck-rules.test.yml"
        );
    }
}
