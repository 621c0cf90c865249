//! The Prometheus rules and the Grafana dashboard of `xtask/dist/share`
//! (installed under /usr/share/vipcheck): `promtool check rules` and
//! `promtool test rules` on the rules; the dashboard's form for an import
//! (its uid, a datasource variable every query uses, no path or
//! datasource to edit), and promtool's parser on every query of it. promtool comes from Debian's `prometheus` package,
//! which `cargo xtask setup` installs; without it these tests fail (they do
//! not skip). That each metric they name is one the daemon exports is a
//! test of the checker (`daemon::observability`).

mod common;

use common::TempDir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn share() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/share")
}

fn rules_dir() -> PathBuf {
    share().join("prometheus")
}

const RULES: &str = "vipcheck-rules.yml";
const RULES_TEST: &str = "vipcheck-rules.test.yml";

fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): `cargo xtask setup` installs it (Debian's prometheus)"
            )
        })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn promtool_checks_the_rules() {
    let out = promtool(&["check", "rules", RULES], &rules_dir());
    let said = text(&out);
    assert!(out.status.success(), "promtool check rules: {said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn promtool_tests_the_rules() {
    let out = promtool(&["test", "rules", RULES_TEST], &rules_dir());
    let said = text(&out);
    assert!(out.status.success(), "promtool test rules: {said}");
    assert!(said.contains("SUCCESS"), "{said}");
}

/// The unit tests judge the rules: an alert that fires a minute late fails
/// them (a copy of the rules with `for: 1m` as `for: 2m`).
#[test]
fn promtool_test_fails_on_a_changed_rule() {
    let dir = TempDir::new("prometheus-changed");
    let rules = std::fs::read_to_string(rules_dir().join(RULES)).unwrap();
    let changed = rules.replacen("for: 1m", "for: 2m", 1);
    assert_ne!(changed, rules);
    std::fs::write(dir.0.join(RULES), changed).unwrap();
    std::fs::copy(rules_dir().join(RULES_TEST), dir.0.join(RULES_TEST)).unwrap();
    let out = promtool(&["test", "rules", RULES_TEST], &dir.0);
    assert!(!out.status.success(), "{}", text(&out));
}

fn dashboard() -> serde_json::Value {
    let path = share().join("grafana/vipcheck-dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The panels, those inside rows too (a collapsed row holds its own).
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(inner) = panel.get("panels") {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The datasource every query names: the dashboard's variable.
const DATASOURCE_UID: &str = "${datasource}";

#[test]
fn dashboard_imports_as_it_is() {
    let d = dashboard();
    assert_eq!(d["uid"], "vipcheck");
    assert_eq!(d["title"], "vipcheck");
    assert!(
        d["schemaVersion"].as_u64().unwrap() >= 36,
        "{}",
        d["schemaVersion"]
    );
    // No id of another Grafana's database, and nothing asked at import:
    // the data source is chosen with the variable.
    assert!(d["id"].is_null());
    assert!(d.get("__inputs").is_none());
    let vars = d["templating"]["list"].as_array().unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["datasource", "instance", "vip", "real", "check", "iface"]
    );
    assert_eq!(vars[0]["type"], "datasource");
    assert_eq!(vars[0]["query"], "prometheus");
    for var in &vars[1..] {
        assert_eq!(var["datasource"]["uid"], DATASOURCE_UID, "{var}");
        assert_eq!(var["includeAll"], true, "{var}");
    }
    let mut ids = std::collections::HashSet::new();
    let mut queries = 0;
    for panel in panels(&d) {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "id of {title} twice"
        );
        assert!(panel["gridPos"]["w"].as_u64().unwrap() > 0, "{title}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "{title}");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], DATASOURCE_UID, "{title}");
            assert!(
                target["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}"
            );
            queries += 1;
        }
    }
    assert!(queries >= 15, "{queries} queries");
    // Every variable is used.
    let text = serde_json::to_string(&d["panels"]).unwrap();
    for name in &names[1..] {
        assert!(
            text.contains(&format!("${name}")),
            "${name} is used by no panel"
        );
    }
}

/// The dashboard's queries, Grafana's variables replaced by values that
/// Prometheus takes: every panel's and every variable's (`label_values(
/// SELECTOR, LABEL)` gives its selector).
fn dashboard_queries() -> Vec<String> {
    let d = dashboard();
    let mut out = Vec::new();
    for panel in panels(&d) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for var in d["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"].as_str().unwrap();
        let Some((selector, _label)) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
        else {
            panic!("not label_values(SELECTOR, LABEL): {query}");
        };
        out.push(selector.to_string());
    }
    out.iter()
        .map(|q| {
            q.replace("$__rate_interval", "5m")
                .replace("$__range", "6h")
                .replace("$__interval", "1m")
        })
        .collect()
}

/// `promtool check rules` on a rules file with each query as a recording
/// rule: promtool's verdict and what it said.
fn promtool_parses(queries: &[String], dir: &TempDir) -> (bool, String) {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, query) in queries.iter().enumerate() {
        // A JSON string is a YAML string.
        rules.push_str(&format!(
            "      - record: dashboard_query_{i}\n        expr: {}\n",
            serde_json::Value::String(query.clone())
        ));
    }
    std::fs::write(dir.0.join("dashboard.yml"), rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.yml"], &dir.0);
    (out.status.success(), text(&out))
}

#[test]
fn promtool_parses_every_dashboard_query() {
    let dir = TempDir::new("prometheus-dashboard");
    let queries = dashboard_queries();
    let (ok, said) = promtool_parses(&queries, &dir);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{said}"
    );
    // A query that is not PromQL fails.
    let mut broken = queries;
    broken.push("sum(rate(vipcheck_checks_total[5m])".into());
    let (ok, said) = promtool_parses(&broken, &dir);
    assert!(!ok, "{said}");
}
