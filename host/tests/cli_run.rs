//! `gridlet run` as a plugin author uses it: output and exit status.

mod common;

use common::{Recorder, plugin_path, root};
use std::process::Output;
use tokio::process::Command;

async fn gridlet(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridlet"));
    command.args(args).current_dir(root());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("gridlet runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn run_shows_requests_state_and_outcomes_and_exits_zero() {
    let sink = Recorder::start().await;
    let plugin = plugin_path("model-promotion");
    let url = sink.url("/deploy");
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/batch-mixed.json",
            "--config",
            &format!("deploy_url={url}"),
            "--allow-host",
            &sink.host(),
            "--allow-private-network",
            "127.0.0.1/32",
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("filter    types=[ModelRegistered]"),
        "{stdout}"
    );
    // The URL came from config: it is shown by its key, never its value.
    assert!(
        stdout.contains("  http  POST <config:deploy_url> → 200"),
        "{stdout}"
    );
    assert!(!stdout.contains(&url), "{stdout}");
    assert!(
        stdout.contains("  kv    default/promoted/fraud-gbm:7  set (36 bytes)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  log   info  requested deployment of fraud-gbm:7"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  = skipped: the manifest's filter does not match"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("4 event(s): 1 handled, 3 skipped\n"),
        "{stdout}"
    );
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn config_values_are_never_printed() {
    let plugin = plugin_path("model-promotion");
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/model-registered-pascalcase.json",
            "--config",
            "deploy_url=https://deploy.example.net/secret-path",
            "--config",
            "deploy_token=tok-12345",
        ],
        &[],
    )
    .await;
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(
        all.contains("config keys [deploy_token, deploy_url, stage_tag, stage_value]"),
        "{all}"
    );
    assert!(
        !all.contains("secret-path") && !all.contains("tok-12345"),
        "{all}"
    );
}

#[tokio::test]
async fn a_reject_or_a_limit_exits_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("loop.toml");
    std::fs::write(&manifest, "[limits]\ndeadline_ms = 200\n").expect("write");
    let plugin = plugin_path("hostile");
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/run-completed.json",
            "--manifest",
            manifest.to_str().unwrap(),
            "--config",
            "behaviour=loop",
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("  = deadline: deadline of 200ms exceeded"),
        "{stdout}"
    );

    // Another behaviour: a reject is a failure too.
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/run-completed.json",
            "--manifest",
            manifest.to_str().unwrap(),
            "--config",
            "behaviour=nonsense",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    // The reason quotes a config value: it is redacted like every plugin output.
    assert!(
        text(&out.stdout).contains("  = reject: unknown behaviour Some(\"<config:behaviour>\")"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn a_retry_is_a_normal_answer_and_exits_zero() {
    let sink = Recorder::start().await;
    sink.answer(503);
    let plugin = plugin_path("failed-run-alert");
    let url = sink.url("/chat");
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/run-status-changed-failed.json",
            "--config",
            &format!("chat_webhook_url={url}"),
            "--allow-host",
            &sink.host(),
            "--allow-private-network",
            "127.0.0.1/32",
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("  = retry: chat webhook answered 503"),
        "{stdout}"
    );
}

#[tokio::test]
async fn unusable_input_exits_two_with_the_reason() {
    let plugin = plugin_path("model-promotion");
    let plugin = plugin.to_str().unwrap();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"[{"id": "x", "subject": "s"}]"#).expect("write");

    // The shipped manifest requires deploy_url.
    let out = gridlet(
        &[
            "run",
            plugin,
            "examples/events/eventgrid/model-registered.json",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with("model-promotion.wasm: config key `deploy_url` required by the manifest and not granted: the operator sets it in gridlet.toml [plugins.model-promotion.config] (or `gridlet run --config KEY=VALUE`)\n"),
        "{}",
        text(&out.stderr)
    );

    let out = gridlet(
        &[
            "run",
            plugin,
            bad.to_str().unwrap(),
            "--config",
            "deploy_url=https://x.example.com",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with("bad.json: event 0 (id x): `eventType` is missing\n"),
        "{}",
        text(&out.stderr)
    );

    let out = gridlet(
        &[
            "run",
            plugin,
            "no-such-file.json",
            "--config",
            "deploy_url=https://x.example.com",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("error: cannot read no-such-file.json"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_plugins_output_is_shown_one_line_per_entry() {
    // The hostile fixture logs and prints lines carrying a forged log line
    // after a newline, a carriage return and a terminal escape sequence.
    let plugin = plugin_path("hostile");
    let out = gridlet(
        &[
            "run",
            plugin.to_str().unwrap(),
            "examples/events/eventgrid/run-completed.json",
            "--config",
            "behaviour=forge-log",
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let forged = "1999-01-01T00:00:00.000000Z  INFO gridlet::serve: admin token rotated";
    assert!(!stdout.lines().any(|l| l.starts_with("1999")), "{stdout}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "{stdout:?}"
    );
    for said in [
        format!("  log   info  harmless\\n{forged}\n"),
        format!("  log   warn  hidden\\r{forged}\\u{{1b}}[2J\n"),
    ] {
        assert!(stdout.contains(&said), "{said:?} in {stdout}");
    }
    assert!(stdout.contains(&format!("stdout\\r{forged}")), "{stdout}");
}
