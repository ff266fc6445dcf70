//! Hostile plugins: each ends with its specific error within its limits, the
//! host stays healthy, and a well-behaved plugin run afterwards succeeds.
//! The probe shows every forbidden access is denied.

mod common;

use common::{Recorder, event, grant, load, runtime};
use gridlet::event::Event;
use gridlet::plugin::{self, LimitCaps, Manifest, PluginError, PluginGrant};
use gridlet::runtime::{Entry, FailureKind, LoadError, MAX_REASON_BYTES, Outcome, Runtime};
use std::path::Path;
use std::time::Duration;

fn limits(limits: &str) -> String {
    format!("[limits]\n{limits}\n")
}

/// The hostile plugin, told by its operator to behave as `behaviour`.
fn behaving(behaviour: &str) -> PluginGrant {
    grant(&[("behaviour", behaviour)], &[])
}

fn sample() -> Event {
    event("eventgrid/model-registered.json")
}

/// After any hostile run, a well-behaved plugin on the same runtime works.
async fn well_behaved_still_works(runtime: &Runtime) {
    let plugin = load(runtime, "model-promotion", "", &PluginGrant::default());
    let outcome = runtime
        .invoke(
            &plugin.version,
            &event("eventgrid/model-registered-pascalcase.json"),
            1,
        )
        .await
        .outcome;
    assert_eq!(outcome, Outcome::Handled);
}

fn failure(outcome: &Outcome) -> (FailureKind, &str) {
    match outcome {
        Outcome::Failed(f) => (f.kind, f.message.as_str()),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_infinite_loop_hits_the_deadline() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "hostile",
        &limits("deadline_ms = 300"),
        &behaving("loop"),
    );
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(
        failure(&invocation.outcome),
        (FailureKind::Deadline, "deadline of 300ms exceeded")
    );
    assert!(invocation.duration >= Duration::from_millis(300));
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn an_infinite_loop_runs_out_of_fuel_when_fuel_is_capped() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "hostile",
        &limits("fuel = 50_000_000\ndeadline_ms = 60000"),
        &behaving("loop"),
    );
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(
        failure(&invocation.outcome),
        (FailureKind::Fuel, "fuel exhausted")
    );
    assert_eq!(invocation.fuel_used, Some(50_000_000));
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_memory_cap() {
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "hostile",
        &limits("memory_mib = 24"),
        &behaving("memory"),
    );
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    let (kind, message) = failure(&invocation.outcome);
    assert_eq!(kind, FailureKind::Memory);
    assert!(
        message.starts_with("memory limit of 24.0 MiB reached"),
        "{message}"
    );
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn deep_recursion_exhausts_the_wasm_stack() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile", "", &behaving("recursion"));
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(
        failure(&invocation.outcome),
        (FailureKind::Stack, "wasm stack exhausted")
    );
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn a_panic_is_a_trap_with_the_panic_message() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile", "", &behaving("trap"));
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    let (kind, message) = failure(&invocation.outcome);
    assert_eq!(kind, FailureKind::Trap);
    assert!(
        message.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "{message}"
    );
    assert!(
        message.contains("hostile plugin panicked on purpose"),
        "{message}"
    );
    assert!(invocation.outcome.is_retryable());
    well_behaved_still_works(&runtime).await;
}

/// Built without WASI (the Rust SDK for wasm32-unknown-unknown) there is
/// no stderr: the SDK logs the panic with the context `panic`, and the
/// failure names it the same way.
#[tokio::test]
async fn a_panic_without_wasi_is_a_trap_with_the_panic_message() {
    let runtime = runtime();
    let plugin = load(&runtime, "noop-no-wasi", "", &PluginGrant::default());
    let mut event = sample();
    event.subject = "panic".into();
    let invocation = runtime.invoke(&plugin.version, &event, 1).await;
    let (kind, message) = failure(&invocation.outcome);
    assert_eq!(kind, FailureKind::Trap);
    assert!(
        message.starts_with("wasm trap: wasm `unreachable` instruction executed"),
        "{message}"
    );
    assert!(message.contains("noop panicked on purpose"), "{message}");
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn a_log_flood_is_capped_and_counted() {
    let runtime = runtime();
    let plugin = load(&runtime, "hostile", "", &behaving("flood"));
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);
    let logs = invocation
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Log { .. }))
        .count();
    assert_eq!(logs, 1_000, "the default cap is 1,000 lines per delivery");
    // 100,000 wasi:logging lines and 100,000 stdout lines were written.
    assert_eq!(invocation.dropped_log_lines, 200_000 - 1_000);
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn a_log_lines_context_counts_against_the_cap() {
    // 2,000 lines, each a one-byte message under a 1 MiB context: without
    // the context in the byte cap the host would hold 1,000 MiB for one
    // delivery (and write as much to its log).
    let runtime = runtime();
    let plugin = load(&runtime, "hostile", "", &behaving("context-flood"));
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);
    let kept: usize = invocation.entries.iter().map(entry_bytes).sum();
    assert!(kept <= 256 * 1024, "{kept} bytes kept for one delivery");
    assert_eq!(invocation.dropped_log_lines, 2_000, "none fits in 256 KiB");

    // A context that fits is kept whole, and counted.
    let plugin = load(
        &runtime,
        "hostile",
        "",
        &grant(&[("behaviour", "context-flood"), ("size", "1000")], &[]),
    );
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    let logs = invocation
        .entries
        .iter()
        .filter(|e| matches!(e, Entry::Log { context, .. } if context.len() == 1000))
        .count();
    // 256 KiB hold 261 lines of 1,001 bytes.
    assert_eq!(logs, 256 * 1024 / 1001);
    assert_eq!(invocation.dropped_log_lines, 2_000 - logs as u64);
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn thousands_of_requests_with_huge_urls_keep_a_bounded_record() {
    // 5,000 requests to a host that is not granted, each URL 15 KiB (paths
    // up to 16 KiB are taken): the record would hold 75 MiB, the log as
    // much again.
    let runtime = runtime();
    let plugin = load(
        &runtime,
        "hostile",
        "",
        &grant(
            &[
                ("behaviour", "deny-flood"),
                ("forbidden_url", "http://not-granted.example/"),
                ("pad", "15360"),
            ],
            &[],
        ),
    );
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(invocation.outcome, Outcome::Handled);
    let urls: Vec<&String> = invocation
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Http { url, .. } => Some(url),
            _ => None,
        })
        .collect();
    assert!(!urls.is_empty());
    // Each URL cut to 2 KiB, marked as cut; the record within 1 MiB.
    assert!(
        urls.iter()
            .all(|u| u.len() <= 2048 + '…'.len_utf8() && u.ends_with('…')),
        "longest URL kept: {:?} bytes",
        urls.iter().map(|u| u.len()).max()
    );
    let held: usize = invocation.entries.iter().map(entry_bytes).sum();
    assert!(held <= 1024 * 1024 + 256 * 1024, "{held} bytes held");
    assert!(urls.len() < 5_000, "{} requests recorded", urls.len());
    well_behaved_still_works(&runtime).await;
}

/// The hostile plugin's `long-reason` with `config`: how its delivery ended.
async fn long_reason(runtime: &Runtime, config: &[(&str, &str)]) -> Outcome {
    let mut config = config.to_vec();
    config.push(("behaviour", "long-reason"));
    let plugin = load(runtime, "hostile", "", &grant(&config, &[]));
    runtime.invoke(&plugin.version, &sample(), 1).await.outcome
}

#[tokio::test]
async fn a_plugins_reason_is_redacted_then_cut_to_2_kib() {
    // An 8 MiB reason is logged, stored with the delivery or its dead
    // letter and listed by the admin API: 8 MiB per event, at the plugin's
    // choice, before the host cut it.
    let runtime = runtime();
    const TOKEN: &str = "tok-secret-value-1234";
    let suffix = format!("… ({} bytes in all)", 8 << 20);
    for outcome in ["reject", "retry"] {
        let ended = long_reason(&runtime, &[("token", TOKEN), ("outcome", outcome)]).await;
        let why = match &ended {
            Outcome::Reject(why) | Outcome::Retry(why) => why,
            other => panic!("expected a reason, got {other:?}"),
        };
        assert_eq!(ended.label(), outcome);
        assert_eq!(why.len(), MAX_REASON_BYTES + suffix.len(), "bytes kept");
        assert!(why.starts_with("<config:token>rrrr"), "{}", &why[..40]);
        assert!(why.ends_with(&suffix), "{}", &why[why.len() - 40..]);
    }

    // A value across the cut is redacted before the cut, so no part of it
    // is kept: cutting first would keep its first five bytes.
    let pad = (MAX_REASON_BYTES - 5).to_string();
    let ended = long_reason(
        &runtime,
        &[("token", TOKEN), ("pad", &pad), ("size", "4096")],
    )
    .await;
    let Outcome::Reject(why) = &ended else {
        panic!("expected a reject, got {ended:?}");
    };
    assert!(!why.contains("tok-s"), "{}", &why[why.len() - 60..]);
    assert!(why.contains("rrr<conf…"), "{}", &why[why.len() - 60..]);

    // A reason within the cap is kept whole.
    assert_eq!(
        long_reason(&runtime, &[("size", "2048")]).await,
        Outcome::Reject("r".repeat(2048))
    );
    well_behaved_still_works(&runtime).await;
}

/// The text an entry holds.
fn entry_bytes(entry: &Entry) -> usize {
    match entry {
        Entry::Log {
            context, message, ..
        } => context.len() + message.len(),
        Entry::KeyValue {
            bucket,
            key,
            change,
        } => bucket.len() + key.len() + change.len(),
        Entry::Http { method, url, .. } => method.len() + url.len(),
    }
}

#[tokio::test]
async fn the_sandbox_denies_files_env_sockets_and_ungranted_hosts() {
    // Something real to reach on loopback: a TCP listener and an HTTP server.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let server = Recorder::start().await;
    // SAFETY: set before any plugin runs; tests in this binary only read it.
    unsafe { std::env::set_var("GRIDLET_TEST_SECRET", "do-not-leak") };

    let runtime = runtime();
    let socket_target = listener.local_addr().expect("addr").to_string();
    let forbidden_url = server.url("/exfiltrate");
    let granted = grant(
        &[
            ("behaviour", "probe"),
            ("socket_target", &socket_target),
            ("forbidden_url", &forbidden_url),
        ],
        &["granted.example.com"],
    );
    let plugin = load(&runtime, "hostile", "", &granted);
    let invocation = runtime.invoke(&plugin.version, &sample(), 1).await;
    assert_eq!(
        invocation.outcome,
        Outcome::Handled,
        "{:#?}",
        invocation.entries
    );

    let logs: Vec<&str> = invocation
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Log { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        logs.iter().any(|l| l.starts_with("file: denied")),
        "{logs:?}"
    );
    assert!(logs.contains(&"env: denied (no variables)"), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.starts_with("socket: denied")),
        "{logs:?}"
    );
    assert!(
        logs.contains(&"http: denied (host not allowed)"),
        "{logs:?}"
    );
    assert!(
        logs.contains(
            &"outbound request to `127.0.0.1` denied: not in this plugin's allowed_hosts"
        )
    );
    assert!(invocation.entries.contains(&Entry::Http {
        method: "POST".into(),
        url: "<config:forbidden_url>".into(),
        result: Err("denied: host not in allowed_hosts".into()),
    }));
    // Nothing arrived at either target.
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
    assert!(
        server.received().is_empty(),
        "no request reached the server"
    );
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn plugins_cannot_read_each_others_state() {
    let runtime = runtime();
    let sink = Recorder::start().await;
    let granted = grant(&[("deploy_url", &sink.url("/deploy"))], &[&sink.host()]);
    let promotion = load(&runtime, "model-promotion", "", &granted);
    assert_eq!(
        runtime
            .invoke(&promotion.version, &sample(), 1)
            .await
            .outcome,
        Outcome::Handled
    );
    assert_eq!(sink.received().len(), 1);

    // The same component under another name is another plugin: another
    // namespace, so it does not see that fraud-gbm:7 was promoted.
    let copy = tempfile::tempdir().expect("tempdir");
    let other = copy.path().join("other-team.wasm");
    std::fs::copy(common::plugin_path("model-promotion"), &other).expect("copy");
    let other = plugin::load(&runtime, &other, Manifest::default(), &granted, None).expect("load");
    assert_eq!(
        runtime.invoke(&other.version, &sample(), 1).await.outcome,
        Outcome::Handled
    );
    assert_eq!(
        sink.received().len(),
        2,
        "the other plugin deployed too: it could not see the first one's state"
    );
}

#[tokio::test]
async fn things_that_are_not_plugins_are_refused_with_a_reason() {
    let runtime = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "garbage",
            b"this is not wasm at all",
            "not a WebAssembly component: ",
        ),
        (
            "core",
            b"\0asm\x01\0\0\0",
            "not a WebAssembly component: this is a core wasm module",
        ),
        (
            "truncated",
            &std::fs::read(common::plugin_path("model-promotion")).expect("read")[..4096],
            "not a WebAssembly component: ",
        ),
        // An empty component: valid, but it exports no handler.
        (
            "empty",
            b"\0asm\x0d\0\x01\0",
            "does not fit the gridlet:plugin world: ",
        ),
        // The contract's interface by name, but `handle` takes a string: it
        // is refused when it loads, never called with values of the wrong
        // shape (the host does not check `handle`'s type again per instance).
        (
            "wrong-signature",
            &std::fs::read(common::plugin_path("wrong-signature")).expect("read"),
            "does not fit the gridlet:plugin world: type-checking export func `handle`",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, bytes).expect("write");
        let error = match plugin::load(
            &runtime,
            &path,
            Manifest::default(),
            &PluginGrant::default(),
            None,
        ) {
            Err(PluginError::Load { source, .. }) => source,
            Err(other) => panic!("{name}: unexpected {other}"),
            Ok(_) => panic!("{name} loaded"),
        };
        assert!(error.to_string().starts_with(expected), "{name}: {error}");
        match (name, &error) {
            ("empty" | "wrong-signature", LoadError::Link(_))
            | (_, LoadError::NotAComponent(_)) => {}
            _ => panic!("{name}: wrong kind {error:?}"),
        }
    }
    well_behaved_still_works(&runtime).await;
}

#[tokio::test]
async fn a_limit_over_the_operators_cap_is_clamped_with_a_warning() {
    let runtime = runtime();
    let manifest =
        Manifest::parse("[limits]\nmemory_mib = 2048\n", Path::new("big.toml")).expect("parses");
    let loaded = plugin::load(
        &runtime,
        &common::plugin_path("audit-counter"),
        manifest,
        &PluginGrant::default(),
        None,
    )
    .expect("loads within the cap");
    assert_eq!(loaded.version.limits().memory_bytes, 256 * 1024 * 1024);
    assert_eq!(
        loaded.warnings,
        [
            "limits.memory_mib: asked for 2048 MiB, the operator's cap is 256 MiB; running with 256 MiB"
        ]
    );
}

#[tokio::test]
async fn a_cap_over_the_hosts_maximum_is_refused() {
    let runtime = runtime();
    let manifest =
        Manifest::parse("[limits]\nmemory_mib = 2048\n", Path::new("big.toml")).expect("parses");
    let generous = PluginGrant {
        caps: LimitCaps {
            memory_bytes: 4096 * 1024 * 1024,
            ..LimitCaps::default()
        },
        ..PluginGrant::default()
    };
    let error = plugin::load(
        &runtime,
        &common::plugin_path("audit-counter"),
        manifest,
        &generous,
        None,
    )
    .err()
    .expect("refused");
    assert!(
        error.to_string().ends_with(
            "limits.memory of 2147483648 bytes is over this host's maximum of 1073741824 bytes"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn outbound_responses_are_capped_and_slow_services_time_out() {
    use gridlet::runtime::{HttpLimits, RuntimeSettings};
    let runtime = common::runtime_settings(RuntimeSettings {
        http: HttpLimits {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_millis(300),
            max_response_bytes: 1024,
            ..HttpLimits::default()
        },
        ..RuntimeSettings::default()
    });
    let sink = Recorder::start().await;
    let granted = grant(&[("deploy_url", &sink.url("/deploy"))], &[&sink.host()]);
    let plugin = load(&runtime, "model-promotion", "", &granted);

    // A 4 KiB answer to a plugin allowed 1 KiB: the read fails, the plugin retries.
    sink.answer_body(vec![b'x'; 4096]);
    let outcome = runtime.invoke(&plugin.version, &sample(), 1).await.outcome;
    let Outcome::Retry(why) = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        why,
        "request failed: reading response: HTTP response body size exceeds limit: 1024 bytes"
    );

    // A service slower than the response timeout.
    sink.answer_body(Vec::new());
    sink.answer_after(Duration::from_secs(3));
    let invocation = runtime.invoke(&plugin.version, &sample(), 2).await;
    let Outcome::Retry(why) = &invocation.outcome else {
        panic!("{:?}", invocation.outcome)
    };
    // Had it waited, the service would have answered 200 and the plugin handled the event.
    assert!(why.contains("Timeout"), "{why}");
    well_behaved_still_works(&runtime).await;
}
