//! Plugin manifests: what a plugin asks for (defaults, every section, each
//! form of a config key), each bad value with an error that names the file,
//! the line and the key but never a value, and how a manifest's asks are
//! resolved against what the operator granted.

use gridlet::plugin::grants::{expand_env, resolve};
use gridlet::plugin::manifest::ConfigKey;
use gridlet::plugin::{LimitCaps, Manifest, PluginGrant};
use gridlet::runtime::{AllowList, ConfigValues, Limits};
use std::path::Path;
use std::time::Duration;

fn parse(text: &str) -> Result<Manifest, String> {
    Manifest::parse(text, Path::new("plugins/alert.toml")).map_err(|e| e.to_string())
}

#[test]
fn an_empty_manifest_asks_for_nothing() {
    let m = parse("").expect("parses");
    assert_eq!(m.limits, Default::default());
    assert!(m.config.is_empty(), "no config keys");
    assert!(m.outbound.is_empty(), "no hosts");
    assert_eq!(m.filter.summary(), "all events");
    assert_eq!(m.retry.max_delivery_attempts, 30);
    assert_eq!(m.retry.event_time_to_live, Duration::from_secs(86_400));
    // Resolved against no grant: the default limits, nothing else.
    let r = resolve("alert", &m, &PluginGrant::default()).expect("resolves");
    assert_eq!(r.limits, Limits::default());
    assert_eq!(r.limits.memory_bytes, 128 * 1024 * 1024);
    assert_eq!(r.limits.deadline, Duration::from_secs(30));
    assert_eq!(r.limits.fuel, None);
    assert_eq!(r.limits.max_concurrency, 4);
    assert!(r.grants.outbound.allowed_hosts.entries().is_empty());
    assert_eq!(r.grants.config.keys().count(), 0);
    assert!(r.warnings.is_empty());
}

#[test]
fn every_section() {
    let m = parse(
        r##"
[limits]
memory_mib = 64
deadline_ms = 2500
fuel = 1_000_000
max_concurrency = 2
reuse_instance = 50

[config]
url = { required = true }
channel = { default = "#ml-alerts" }
literal = "plain $text {braces}"
token = {}

[outbound]
hosts = ["hooks.example.com", "*.example.org:8443", "https://deploy.example.net"]

[filter]
includedEventTypes = ["Microsoft.MachineLearningServices.RunStatusChanged"]
subjectBeginsWith = "experiments/"
advancedFilters = [{ operatorType = "StringIn", key = "data.runStatus", values = ["failed"] }]

[retry]
maxDeliveryAttempts = 5
eventTimeToLiveInMinutes = 60
"##,
    )
    .expect("parses");
    assert_eq!(m.limits.memory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(m.limits.deadline, Some(Duration::from_millis(2500)));
    assert_eq!(m.limits.fuel, Some(1_000_000));
    assert_eq!(m.limits.max_concurrency, Some(2));
    assert_eq!(m.limits.reuse_instance, Some(50));
    assert_eq!(m.config["url"], ConfigKey::Required);
    assert_eq!(m.config["channel"], ConfigKey::Default("#ml-alerts".into()));
    assert_eq!(
        m.config["literal"],
        ConfigKey::Default("plain $text {braces}".into())
    );
    assert_eq!(m.config["token"], ConfigKey::Optional);
    let hosts: Vec<String> = m.outbound.iter().map(ToString::to_string).collect();
    assert_eq!(
        hosts,
        [
            "hooks.example.com",
            "*.example.org:8443",
            "https://deploy.example.net"
        ]
    );
    assert_eq!(
        m.filter.summary(),
        "types=[RunStatusChanged] subject^=\"experiments/\" 1 advanced"
    );
    assert_eq!(m.retry.max_delivery_attempts, 5);
    assert_eq!(m.retry.event_time_to_live, Duration::from_secs(3600));
}

fn granted(config: &[(&str, &str)], hosts: &[&str]) -> PluginGrant {
    let mut values = ConfigValues::default();
    for (k, v) in config {
        values.insert(*k, *v);
    }
    PluginGrant {
        config: values,
        allowed_hosts: AllowList::parse(hosts).expect("hosts"),
        ..PluginGrant::default()
    }
}

#[test]
fn config_comes_from_the_operator_then_the_manifests_defaults() {
    let m = parse(
        "[config]\nurl = { required = true }\nchannel = \"#ml\"\ntoken = {}\nlevel = \"info\"\n",
    )
    .expect("parses");
    let r = resolve(
        "alert",
        &m,
        &granted(
            &[
                ("url", "https://hooks.example.com/T0"),
                ("level", "debug"),
                ("extra", "x"),
            ],
            &[],
        ),
    )
    .expect("resolves");
    let config = &r.grants.config;
    assert_eq!(config.get("url"), Some("https://hooks.example.com/T0"));
    assert_eq!(config.get("channel"), Some("#ml"), "the manifest's default");
    assert_eq!(
        config.get("level"),
        Some("debug"),
        "the operator's value wins"
    );
    assert_eq!(config.get("token"), None, "optional and not set");
    assert_eq!(
        config.get("extra"),
        Some("x"),
        "the operator may grant more"
    );
    // Debug output never shows values.
    let debug = format!("{config:?}");
    assert!(!debug.contains("hooks.example.com"), "{debug}");
    assert!(debug.contains("\"url\": \"<redacted>\""), "{debug}");

    let error = resolve("alert", &m, &PluginGrant::default()).expect_err("required");
    assert_eq!(
        error,
        "config key `url` required by the manifest and not granted: the operator sets it in \
         gridlet.toml [plugins.alert.config] (or `gridlet run --config KEY=VALUE`)"
    );
}

#[test]
fn asking_for_more_than_granted_is_clamped_with_a_warning() {
    let m = parse(
        "[limits]\nmemory_mib = 512\ndeadline_ms = 5000\nmax_concurrency = 64\nfuel = 9000\n\
         [outbound]\nhosts = [\"hooks.example.com\", \"*.example.org\", \"api.example.net\"]\n",
    )
    .expect("parses");
    let mut grant = granted(&[], &["hooks.example.com", "*.org"]);
    grant.caps = LimitCaps {
        fuel: Some(1000),
        ..LimitCaps::default()
    };
    let r = resolve("alert", &m, &grant).expect("resolves");
    assert_eq!(r.limits.memory_bytes, 256 * 1024 * 1024);
    assert_eq!(
        r.limits.deadline,
        Duration::from_secs(5),
        "within the cap: as asked"
    );
    assert_eq!(r.limits.max_concurrency, 32);
    assert_eq!(r.limits.fuel, Some(1000));
    assert_eq!(
        r.warnings,
        [
            "limits.memory_mib: asked for 512 MiB, the operator's cap is 256 MiB; running with 256 MiB",
            "limits.max_concurrency: asked for 64, the operator's cap is 32; running with 32",
            "limits.fuel: asked for 9000, the operator's cap is 1000; running with 1000",
            "outbound.hosts: `api.example.net` is not granted by the operator ([plugins.alert] allowed_hosts); requests to it are denied",
        ]
    );
    // What is reachable is what the operator granted, whatever was asked.
    let hosts = &r.grants.outbound.allowed_hosts;
    assert!(hosts.allows(&"https://hooks.example.com/x".parse().expect("uri")));
    assert!(hosts.allows(&"https://a.example.org/".parse().expect("uri")));
    assert!(!hosts.allows(&"https://api.example.net/".parse().expect("uri")));
}

#[test]
fn allow_list_matching() {
    let list = AllowList::parse(&[
        "hooks.example.com",
        "*.example.org",
        "api.example.net:8443",
        "http://plain.example.io",
        "127.0.0.1:9090",
        "[::1]:8080",
    ])
    .expect("parses");
    let allows = |u: &str| list.allows(&u.parse().expect("uri"));
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
            "plugins/alert.toml: line 2 (`memroy_mib`): unknown field `memroy_mib`, expected one of `memory_mib`, `deadline_ms`, `fuel`, `max_concurrency`, `reuse_instance`",
        ),
        (
            "[limit]\n",
            "plugins/alert.toml: line 1 (`[limit]`): unknown field `limit`, expected one of `limits`, `config`, `outbound`, `filter`, `retry`",
        ),
        (
            "[limits]\nmemory_mib = \"lots\"\n",
            "plugins/alert.toml: line 2 (`memory_mib`): invalid type: string \"…\", expected u64",
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
            "[outbound]\nhosts = [\"ftp://x.com\"]\n",
            "plugins/alert.toml: outbound.hosts[0]: `ftp://x.com`: scheme `ftp` is not http or https",
        ),
        (
            "[outbound]\nhosts = [\"https://x.com/path\"]\n",
            "plugins/alert.toml: outbound.hosts[0]: `https://x.com/path`: give a host, not a URL with a path",
        ),
        (
            "[outbound]\nhosts = [\"x.com:http\"]\n",
            "plugins/alert.toml: outbound.hosts[0]: `x.com:http`: port `http` is not a number from 0 to 65535",
        ),
        (
            "[outbound]\nhosts = [\"a.*.com\"]\n",
            "plugins/alert.toml: outbound.hosts[0]: `a.*.com`: a wildcard may only be a leading `*.` or a lone `*`",
        ),
        (
            "[outbound]\nallowed_hosts = [\"x.com\"]\n",
            "plugins/alert.toml: line 2 (`allowed_hosts`): unknown field `allowed_hosts`, expected `hosts`",
        ),
        (
            "[config]\ntoken = { required = true, default = \"x\" }\n",
            "plugins/alert.toml: config.token: a key is either required or has a default, not both",
        ),
        (
            "[config]\ntoken = { secret = true }\n",
            "plugins/alert.toml: config.token: unknown key `secret`: expected `required` or `default`",
        ),
        (
            "[config]\nport = 8080\n",
            "plugins/alert.toml: config.port: expected a string default, `{ required = true }`, `{ default = \"...\" }` or `{}`",
        ),
        (
            "[config]\nport = { default = 8080 }\n",
            "plugins/alert.toml: config.port: a default must be a string",
        ),
        (
            "[filter]\nincludedEventTypes = [\"\"]\n",
            "plugins/alert.toml: filter.includedEventTypes[0] is empty",
        ),
        (
            "[filter]\nsubjectStartsWith = \"x\"\n",
            "plugins/alert.toml: line 2 (`subjectStartsWith`): unknown field `subjectStartsWith`, expected one of `includedEventTypes`, `subjectBeginsWith`, `subjectEndsWith`, `isSubjectCaseSensitive`, `enableAdvancedFilteringOnArrays`, `advancedFilters`",
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
            "plugins/alert.toml: line 2 (`max_attempts`): unknown field `max_attempts`, expected `maxDeliveryAttempts` or `eventTimeToLiveInMinutes`",
        ),
        (
            "limits = [",
            "plugins/alert.toml: line 1 (`limits`): unclosed array, expected `]`",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(text).expect_err(text), expected, "{text}");
    }
}

#[test]
fn a_manifest_cannot_read_the_hosts_environment() {
    for (text, expected) in [
        (
            "[config]\nsink_url = { default = \"http://localhost:9/${GRIDLET_ADMIN_TOKEN}\" }\n",
            "plugins/alert.toml: config.sink_url: a plugin's manifest cannot read the host's environment (`${...}`); the operator sets values in gridlet.toml under [plugins.<name>.config]",
        ),
        (
            "[config]\nsecret = \"${GRIDLET_SECRET}\"\n",
            "plugins/alert.toml: config.secret: a plugin's manifest cannot read the host's environment (`${...}`); the operator sets values in gridlet.toml under [plugins.<name>.config]",
        ),
        (
            "[outbound]\nhosts = [\"${DEPLOY_HOST}\"]\n",
            "plugins/alert.toml: outbound.hosts[0]: a plugin's manifest cannot read the host's environment (`${...}`); the operator sets values in gridlet.toml under [plugins.<name>.config]",
        ),
        (
            "[grants]\nallowed_hosts = [\"localhost:9\"]\n[grants.config]\nsink_url = \"http://localhost:9/${GRIDLET_ADMIN_TOKEN}\"\n",
            "plugins/alert.toml: [grants] is not read from a plugin's manifest: the operator grants config values and hosts in gridlet.toml under [plugins.<name>]; declare the keys the plugin reads under [config] and the hosts it calls under [outbound]",
        ),
    ] {
        assert_eq!(parse(text).expect_err(text), expected, "{text}");
    }
}

#[test]
fn errors_never_quote_a_value() {
    let secret = "hunter2-very-secret";
    for text in [
        format!("[limits]\nmemory_mib = \"{secret}\"\n"),
        format!("[config]\ntoken = [\"{secret}\"]\n"),
        format!("[retry]\nmaxDeliveryAttempts = \"{secret}\"\n"),
        format!("[filter]\nsubjectBeginsWith = [\"{secret}\"]\n"),
        format!("[outbound]\nhosts = \"{secret}\"\n"),
        secret.to_string(),
        format!("x = \"{secret}"),
    ] {
        let error = parse(&text).expect_err(&text);
        assert!(!error.contains("hunter2"), "{error}");
    }
}

#[test]
fn env_expansion_for_the_operators_grants() {
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
    // Errors name the variable, never the value around it.
    assert_eq!(
        expand_env("secret-${B}", &env),
        Err("environment variable B is not set".to_string())
    );
    assert_eq!(
        expand_env("hunter2${B", &env),
        Err("`${` without a closing `}`".to_string())
    );
    assert_eq!(
        expand_env("hunter2${1X}", &env),
        Err("`${...}` holds something that is not an environment variable name".to_string())
    );
}
