//! Plugin manifests: defaults, every section, `${ENV}` expansion, and each
//! bad value with an error that names the file, the key and the reason.

use gridlet::plugin::Manifest;
use gridlet::plugin::manifest::expand_env;
use gridlet::runtime::Limits;
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Manifest, String> {
    let env = |name: &str| match name {
        "HOOK" => Some("https://hooks.example.com/T0/B0".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    Manifest::parse(text, Path::new("plugins/alert.toml"), &env).map_err(|e| e.to_string())
}

#[test]
fn an_empty_manifest_is_the_defaults() {
    let m = parse("").expect("parses");
    assert_eq!(m.limits, Limits::default());
    assert_eq!(m.limits.memory_bytes, 128 * 1024 * 1024);
    assert_eq!(m.limits.deadline, Duration::from_secs(30));
    assert_eq!(m.limits.fuel, None);
    assert_eq!(m.limits.max_concurrency, 4);
    assert!(
        m.grants.allowed_hosts.entries().is_empty(),
        "no hosts by default"
    );
    assert_eq!(m.grants.config.keys().count(), 0, "no config by default");
    assert_eq!(m.filter.summary(), "all events");
    assert_eq!(m.retry.max_delivery_attempts, 30);
    assert_eq!(m.retry.event_time_to_live, Duration::from_secs(86_400));
}

#[test]
fn every_section() {
    let m = parse(
        r#"
[limits]
memory_mib = 64
deadline_ms = 2500
fuel = 1_000_000
max_concurrency = 2
reuse_instance = 50

[grants]
allowed_hosts = ["hooks.example.com", "*.example.org:8443", "https://deploy.example.net"]
[grants.config]
url = "${HOOK}"
channel = "${CHANNEL:-#ml-alerts}"
literal = "plain $text {braces}"

[filter]
includedEventTypes = ["Microsoft.MachineLearningServices.RunStatusChanged"]
subjectBeginsWith = "experiments/"
advancedFilters = [{ operatorType = "StringIn", key = "data.runStatus", values = ["failed"] }]

[retry]
maxDeliveryAttempts = 5
eventTimeToLiveInMinutes = 60
"#,
    )
    .expect("parses");
    assert_eq!(m.limits.memory_bytes, 64 * 1024 * 1024);
    assert_eq!(m.limits.deadline, Duration::from_millis(2500));
    assert_eq!(m.limits.fuel, Some(1_000_000));
    assert_eq!(m.limits.max_concurrency, 2);
    assert_eq!(m.limits.reuse_instance, 50);
    assert_eq!(
        m.grants.allowed_hosts.entries(),
        vec![
            "hooks.example.com",
            "*.example.org:8443",
            "https://deploy.example.net"
        ]
    );
    assert_eq!(
        m.grants.config.get("url"),
        Some("https://hooks.example.com/T0/B0")
    );
    assert_eq!(m.grants.config.get("channel"), Some("#ml-alerts"));
    assert_eq!(m.grants.config.get("literal"), Some("plain $text {braces}"));
    assert_eq!(
        m.filter.summary(),
        "types=[RunStatusChanged] subject^=\"experiments/\" 1 advanced"
    );
    assert_eq!(m.retry.max_delivery_attempts, 5);
    assert_eq!(m.retry.event_time_to_live, Duration::from_secs(3600));
}

#[test]
fn config_values_never_show_in_debug_output() {
    let m = parse("[grants.config]\nurl = \"${HOOK}\"\n").expect("parses");
    let debug = format!("{m:?}");
    assert!(!debug.contains("hooks.example.com"), "{debug}");
    assert!(debug.contains("\"url\": \"<redacted>\""), "{debug}");
}

#[test]
fn allow_list_matching() {
    let m = parse(
        r#"[grants]
allowed_hosts = ["hooks.example.com", "*.example.org", "api.example.net:8443", "http://plain.example.io", "127.0.0.1:9090", "[::1]:8080"]"#,
    )
    .expect("parses");
    let allows = |u: &str| m.grants.allowed_hosts.allows(&u.parse().expect("uri"));
    assert!(allows("https://hooks.example.com/x"));
    assert!(
        allows("http://HOOKS.EXAMPLE.COM/x"),
        "hosts compare without case"
    );
    assert!(!allows("https://evil-hooks.example.com/"));
    assert!(!allows("https://hooks.example.com.evil.io/"));
    assert!(allows("https://a.example.org/"));
    assert!(allows("https://a.b.example.org/"));
    assert!(
        !allows("https://example.org/"),
        "a wildcard needs a subdomain"
    );
    assert!(allows("https://api.example.net:8443/"));
    assert!(
        !allows("https://api.example.net/"),
        "a port in the entry must match"
    );
    assert!(allows("http://plain.example.io/"));
    assert!(
        !allows("https://plain.example.io/"),
        "a scheme in the entry must match"
    );
    assert!(allows("http://127.0.0.1:9090/chat"));
    assert!(!allows("http://127.0.0.1:9091/chat"));
    assert!(allows("http://[::1]:8080/"));
    assert!(!allows("https://unlisted.example.com/"));
}

#[test]
fn bad_manifests_name_the_file_the_key_and_the_reason() {
    let cases = [
        (
            "[limits]\nmemroy_mib = 4\n",
            "plugins/alert.toml: line 2 (`memroy_mib = 4`): unknown field `memroy_mib`, expected one of `memory_mib`, `deadline_ms`, `fuel`, `max_concurrency`, `reuse_instance`",
        ),
        (
            "[limit]\n",
            "plugins/alert.toml: line 1 (`[limit]`): unknown field `limit`, expected one of `limits`, `grants`, `filter`, `retry`",
        ),
        (
            "[limits]\nmemory_mib = \"lots\"\n",
            "plugins/alert.toml: line 2 (`memory_mib = \"lots\"`): invalid type: string \"lots\", expected u64",
        ),
        (
            "[limits]\nmemory_mib = 0\n",
            "plugins/alert.toml: limits.memory_mib: 0 is not between 1 and 4096",
        ),
        (
            "[limits]\ndeadline_ms = 600001\n",
            "plugins/alert.toml: limits.deadline_ms: 600001 is not between 1 and 600000 (10 minutes)",
        ),
        (
            "[limits]\nfuel = 0\n",
            "plugins/alert.toml: limits.fuel: must be above 0 (leave it out for no fuel limit)",
        ),
        (
            "[limits]\nmax_concurrency = 0\n",
            "plugins/alert.toml: limits.max_concurrency: 0 is not between 1 and 1024",
        ),
        (
            "[limits]\nreuse_instance = 100001\n",
            "plugins/alert.toml: limits.reuse_instance: 100001 is not between 0 (off) and 100000",
        ),
        (
            "[grants]\nallowed_hosts = [\"ftp://x.com\"]\n",
            "plugins/alert.toml: grants.allowed_hosts: `ftp://x.com`: scheme `ftp` is not http or https",
        ),
        (
            "[grants]\nallowed_hosts = [\"https://x.com/path\"]\n",
            "plugins/alert.toml: grants.allowed_hosts: `https://x.com/path`: give a host, not a URL with a path",
        ),
        (
            "[grants]\nallowed_hosts = [\"x.com:http\"]\n",
            "plugins/alert.toml: grants.allowed_hosts: `x.com:http`: port `http` is not a number from 0 to 65535",
        ),
        (
            "[grants]\nallowed_hosts = [\"a.*.com\"]\n",
            "plugins/alert.toml: grants.allowed_hosts: `a.*.com`: a wildcard may only be a leading `*.`",
        ),
        (
            "[grants.config]\ntoken = \"${TOKEN}\"\n",
            "plugins/alert.toml: grants.config.token: environment variable TOKEN is not set",
        ),
        (
            "[grants.config]\ntoken = \"${TOKEN\"\n",
            "plugins/alert.toml: grants.config.token: `${` without a closing `}` in \"${TOKEN\"",
        ),
        (
            "[grants.config]\ntoken = \"${1X}\"\n",
            "plugins/alert.toml: grants.config.token: `${1X}` is not a valid environment variable name",
        ),
        (
            "[grants.config]\nport = 8080\n",
            "plugins/alert.toml: line 2 (`port = 8080`): invalid type: integer `8080`, expected a string",
        ),
        (
            "[filter]\nincludedEventTypes = [\"\"]\n",
            "plugins/alert.toml: filter.includedEventTypes[0] is empty",
        ),
        (
            "[filter]\nsubjectStartsWith = \"x\"\n",
            "plugins/alert.toml: line 2 (`subjectStartsWith = \"x\"`): unknown field `subjectStartsWith`, expected one of `includedEventTypes`, `subjectBeginsWith`, `subjectEndsWith`, `isSubjectCaseSensitive`, `enableAdvancedFilteringOnArrays`, `advancedFilters`",
        ),
        (
            "[[filter.advancedFilters]]\noperatorType = \"StringEquals\"\nkey = \"subject\"\nvalues = [\"x\"]\n",
            "plugins/alert.toml: filter.advancedFilters[0]: operatorType `StringEquals` is not one of NumberIn, NumberNotIn, NumberLessThan, NumberGreaterThan, NumberLessThanOrEquals, NumberGreaterThanOrEquals, NumberInRange, NumberNotInRange, BoolEquals, StringIn, StringNotIn, StringContains, StringNotContains, StringBeginsWith, StringNotBeginsWith, StringEndsWith, StringNotEndsWith, IsNullOrUndefined, IsNotNull",
        ),
        (
            "[retry]\nmaxDeliveryAttempts = 31\n",
            "plugins/alert.toml: retry.maxDeliveryAttempts: 31 is not between 1 and 30",
        ),
        (
            "[retry]\neventTimeToLiveInMinutes = 0\n",
            "plugins/alert.toml: retry.eventTimeToLiveInMinutes: 0 is not between 1 and 1440",
        ),
        (
            "[retry]\nmax_attempts = 3\n",
            "plugins/alert.toml: line 2 (`max_attempts = 3`): unknown field `max_attempts`, expected `maxDeliveryAttempts` or `eventTimeToLiveInMinutes`",
        ),
        (
            "limits = [",
            "plugins/alert.toml: line 1 (`limits = [`): unclosed array, expected `]`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).expect_err(text), expected, "{text}");
    }
}

#[test]
fn env_expansion() {
    let env = |name: &str| (name == "A").then(|| "1".to_string());
    assert_eq!(expand_env("x${A}y${A}", &env).as_deref(), Ok("x1y1"));
    assert_eq!(
        expand_env("${B:-fallback}", &env).as_deref(),
        Ok("fallback")
    );
    assert_eq!(expand_env("${A:-fallback}", &env).as_deref(), Ok("1"));
    assert_eq!(expand_env("${B:-}", &env).as_deref(), Ok(""));
    assert_eq!(expand_env("no vars", &env).as_deref(), Ok("no vars"));
    assert_eq!(expand_env("$A {A}", &env).as_deref(), Ok("$A {A}"));
}
