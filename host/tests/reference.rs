//! The configuration reference in README.md is complete: every config-file
//! key, every `GRIDLET_*` variable `gridlet serve` reads, every manifest key
//! and every metric family is documented there. A key added in code and
//! not in the docs fails here.

mod common;

use common::root;
use gridlet::plugin::Manifest;
use gridlet::serve::config::ConfigFile;
use std::path::Path;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The field names serde lists for an unknown key ("expected one of `a`, `b`").
fn expected_fields(error: &str) -> Vec<String> {
    let list = error
        .split("expected one of ")
        .nth(1)
        .or_else(|| error.split("expected ").nth(1))
        .unwrap_or_else(|| panic!("no field list in: {error}"));
    list.split(',')
        .filter_map(|f| f.split('`').nth(1))
        .map(str::to_string)
        .collect()
}

#[test]
fn every_config_key_and_variable_is_in_the_readme() {
    let readme = readme();
    let top = toml::from_str::<ConfigFile>("zzz_unknown = 1").expect_err("unknown key");
    let keys = expected_fields(&top.to_string());
    assert!(keys.len() >= 20, "{keys:?}");
    for key in &keys {
        if key == "entra" {
            continue;
        }
        assert!(
            readme.contains(&format!("| `{key}` |")),
            "config key `{key}` has no row in README.md"
        );
    }
    let entra = toml::from_str::<ConfigFile>("[entra]\nzzz_unknown = 1").expect_err("unknown key");
    for key in expected_fields(&entra.to_string()) {
        assert!(
            readme.contains(&format!("`[entra] {key}`")) || readme.contains(&format!("/ `{key}`")),
            "entra key `{key}` is not in README.md"
        );
    }

    let help = std::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .args(["serve", "--help"])
        .output()
        .expect("gridlet serve --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let vars: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|s| s.split(['=', ']']).next())
        .collect();
    assert!(vars.len() >= keys.len(), "{vars:?}");
    for var in vars {
        let documented = readme.contains(&format!("`{var}`"))
            // `GRIDLET_ENTRA_JWKS_FILE` / `_URL` share a row
            || readme.contains(&format!("/ `_{}`", var.rsplit('_').next().unwrap_or("")));
        assert!(documented, "{var} is not in README.md");
    }
}

#[test]
fn every_manifest_key_is_in_the_readme() {
    let readme = readme();
    let section = readme
        .split("### Plugin manifest")
        .nth(1)
        .expect("a manifest section")
        .split("\n### ")
        .next()
        .unwrap_or("");
    let parse = |text: &str| {
        Manifest::parse(text, Path::new("m.toml"))
            .expect_err("unknown key")
            .message
    };
    let sections = expected_fields(&parse("zzz_unknown = 1"));
    assert_eq!(
        sections,
        ["limits", "config", "outbound", "filter", "retry"]
    );
    for s in &sections {
        assert!(
            section.contains(&format!("[{s}]")),
            "[{s}] is not in the README's manifest section"
        );
        if s == "config" {
            // Its keys are the plugin's own; the forms they take are documented.
            for form in ["{ required = true }", "{ default = ", "{}"] {
                assert!(section.contains(form), "[config] form {form}");
            }
            continue;
        }
        for key in expected_fields(&parse(&format!("[{s}]\nzzz_unknown = 1"))) {
            assert!(
                section.contains(&format!("\n{key} ="))
                    || section.contains(&format!("{{ {key} ="))
                    || section.contains(&format!("`{key}`")),
                "manifest key {s}.{key} is not in the README's manifest section"
            );
        }
    }
}

#[test]
fn every_metric_family_is_in_the_readme() {
    let readme = readme();
    for (name, kind, labels, _) in gridlet::admin::metrics::FAMILIES {
        assert!(
            readme.contains(&format!("| `{name}` | {kind} |")),
            "{name} has no row in README.md"
        );
        if !labels.is_empty() {
            assert!(
                readme.contains(&format!("| `{name}` | {kind} | {labels} |")),
                "{name}: labels {labels}"
            );
        }
    }
}

#[test]
fn the_grafana_dashboard_queries_only_exported_families() {
    let text =
        std::fs::read_to_string(root().join("examples/grafana-dashboard.json")).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let names: Vec<&str> = gridlet::admin::metrics::FAMILIES
        .iter()
        .map(|f| f.0)
        .collect();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if let Some(family) = word.strip_prefix("gridlet_") {
                    let base = ["_bucket", "_count", "_sum"]
                        .iter()
                        .find_map(|s| word.strip_suffix(s))
                        .unwrap_or(word);
                    assert!(names.contains(&base), "{family}: not an exported family");
                    queries += 1;
                }
            }
        }
    }
    assert!(queries >= 10);
}
