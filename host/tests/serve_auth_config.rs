//! Entra ID bearer tokens, configuration layering (flag > environment >
//! file > default), and `gridlet serve` / `gridlet send` as processes.

mod common;

use common::entra::{AUDIENCE, ISSUER, bearer, fixture, keys, now, token};
use common::{Recorder, echo_grant, plugin_path, root};
use gridlet::ingest::{Auth, EntraAuth};
use gridlet::serve::config::ConfigFile;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

#[tokio::test]
async fn entra_tokens_are_checked_for_signature_issuer_audience_and_expiry() {
    let keys = keys();
    let auth = Auth {
        secret: None,
        entra: Some(EntraAuth::new(ISSUER, AUDIENCE, keys)),
    };
    let good = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "sub": "eventgrid"});
    assert!(
        auth.check(
            None,
            &bearer(&token(good.clone(), Some("gridlet-test-key")))
        )
        .await
    );
    assert!(
        auth.check(None, &bearer(&token(good.clone(), None))).await,
        "no kid: the set's only key"
    );

    let refused = [
        token(
            json!({"iss": ISSUER, "aud": "api://someone-else", "exp": now() + 600}),
            Some("gridlet-test-key"),
        ),
        token(
            json!({"iss": "https://evil.example.com/", "aud": AUDIENCE, "exp": now() + 600}),
            Some("gridlet-test-key"),
        ),
        token(
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() - 3600}),
            Some("gridlet-test-key"),
        ),
        token(good.clone(), Some("unknown-kid")),
        // Signed by us, then tampered with: the signature no longer matches.
        {
            let t = token(good, Some("gridlet-test-key"));
            let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
            parts[1] = parts[1].chars().rev().collect();
            parts.join(".")
        },
        "not-a-jwt".to_string(),
    ];
    for t in &refused {
        assert!(!auth.check(None, &bearer(t)).await, "{t}");
    }
    assert!(
        !auth.check(None, &axum::http::HeaderMap::new()).await,
        "no token"
    );
}

#[tokio::test]
async fn configuration_layers_flag_over_env_over_file_over_default() {
    let defaults = ConfigFile::default().resolve().await.expect("defaults");
    assert_eq!(defaults.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(defaults.ingest.webhook_path, "/api/events");
    assert_eq!(defaults.plugins_dir, Path::new("plugins"));
    assert_eq!(defaults.state_dir, Path::new("state"));
    assert_eq!(defaults.ingest.body_limit, 4 * 1024 * 1024);
    assert_eq!(defaults.ingest.allowed_origins, vec!["eventgrid.azure.net"]);
    assert!(defaults.ingest.auth.is_off());
    let watch = defaults.watch.expect("plugins are watched by default");
    assert_eq!(watch.debounce, Duration::from_millis(20));
    let tuned = ConfigFile {
        reload_debounce_ms: Some(250),
        ..ConfigFile::default()
    };
    let tuned = tuned
        .resolve()
        .await
        .expect("resolves")
        .watch
        .expect("watched");
    assert_eq!(tuned.debounce, Duration::from_millis(250));
    let off = ConfigFile {
        watch_plugins: Some(false),
        ..ConfigFile::default()
    };
    assert!(off.resolve().await.expect("resolves").watch.is_none());

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gridlet.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:9000\"\nwebhook_path = \"/eg\"\nsecret = \"from-file\"\nallowed_topics = [\"/subscriptions/a\"]\n\
             body_limit_bytes = 1024\n[entra]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\njwks_file = \"{}\"\n",
            fixture("entra-jwks.json").display()
        ),
    )
    .expect("write");
    let file = ConfigFile::load(&path).expect("loads");
    let flags = ConfigFile {
        listen: Some("127.0.0.1:9100".into()),
        ..ConfigFile::default()
    };
    let settings = file.merge(flags).resolve().await.expect("resolves");
    assert_eq!(
        settings.listen.to_string(),
        "127.0.0.1:9100",
        "the flag wins"
    );
    assert_eq!(
        settings.ingest.webhook_path, "/eg",
        "the file wins over the default"
    );
    assert_eq!(settings.ingest.body_limit, 1024);
    assert_eq!(settings.ingest.allowed_topics, vec!["/subscriptions/a"]);
    assert!(settings.ingest.auth.secret.is_some() && settings.ingest.auth.entra.is_some());

    // Bad files and values name the problem.
    std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nlistne = 1\n").expect("write");
    let error = ConfigFile::load(&path)
        .expect_err("unknown key")
        .to_string();
    assert!(error.ends_with("gridlet.toml: line 2 (`listne`): unknown field `listne`, expected one of `listen`, `webhook_path`, `plugins_dir`, `state_dir`, `secret`, `secondary_secret`, `secret_query_param`, `secret_header`, `allowed_topics`, `body_limit_bytes`, `allowed_origins`, `allowed_rate`, `queue_capacity`, `max_in_flight`, `journal_fsync`, `retry_delays_ms`, `shutdown_grace_ms`, `admin_token`, `metrics`, `shutdown_delay_ms`, `compile_cache_dir`, `watch_plugins`, `reload_debounce_ms`, `insecure_no_auth`, `webhook`, `admin_listen`, `max_connections`, `header_timeout_ms`, `body_timeout_ms`, `max_plugin_bytes`, `allow_private_networks`, `min_free_disk_mib`, `dead_letter_retention_days`, `compile_in_process`, `compile_max_memory_mib`, `compile_timeout_ms`, `guest_threads`, `plugin_limits`, `plugins`, `entra`, `pull`, `cluster`"), "{error}");
    let bad = ConfigFile {
        listen: Some("port 80".into()),
        ..ConfigFile::default()
    };
    assert_eq!(
        bad.resolve().await.expect_err("bad").to_string(),
        "listen: `port 80` is not an address like 0.0.0.0:8080"
    );
    let bad = ConfigFile {
        webhook_path: Some("api".into()),
        ..ConfigFile::default()
    };
    assert_eq!(
        bad.resolve().await.expect_err("bad").to_string(),
        "webhook_path: `api` must start with /"
    );
    // Plugins need a thread; dead letters need a day.
    let bad = ConfigFile {
        guest_threads: Some(0),
        ..ConfigFile::default()
    };
    assert_eq!(
        bad.resolve().await.expect_err("bad").to_string(),
        "guest_threads: plugins need at least one thread"
    );
    let bad = ConfigFile {
        dead_letter_retention_days: Some(0),
        ..ConfigFile::default()
    };
    assert_eq!(
        bad.resolve().await.expect_err("bad").to_string(),
        "dead_letter_retention_days: keep them at least a day"
    );
    let three = ConfigFile {
        guest_threads: Some(3),
        ..ConfigFile::default()
    };
    assert_eq!(
        three
            .resolve()
            .await
            .expect("resolves")
            .runtime
            .guest_threads,
        3
    );
    let bad = ConfigFile {
        entra: Some(gridlet::serve::config::EntraConfig {
            issuer: Some(ISSUER.into()),
            ..Default::default()
        }),
        ..ConfigFile::default()
    };
    assert_eq!(
        bad.resolve().await.expect_err("bad").to_string(),
        "entra.audience is required with [entra]"
    );
}

/// `gridlet serve` from environment variables (and a file for the grants),
/// and `gridlet send` against it in every mode.
#[tokio::test]
async fn serve_from_env_and_send_in_every_mode() {
    let sink = Recorder::start().await;
    let plugins = tempfile::tempdir().expect("tempdir");
    std::fs::copy(plugin_path("echo"), plugins.path().join("echo.wasm")).expect("copy");
    // Grants are tables: the one thing that needs a file.
    let operator = plugins.path().join("grants.toml");
    std::fs::write(
        &operator,
        format!(
            "allow_private_networks = [\"127.0.0.1/32\"]\n[plugins.echo]\n{}\n",
            echo_grant(&sink, "echo")
        ),
    )
    .expect("grants");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("serve")
        .current_dir(plugins.path())
        .env("GRIDLET_LISTEN", format!("127.0.0.1:{port}"))
        .env("GRIDLET_PLUGINS_DIR", plugins.path())
        .env("GRIDLET_STATE_DIR", plugins.path().join("state"))
        .env("GRIDLET_SECRET", "env-secret")
        .env("GRIDLET_WEBHOOK_PATH", "/hooks/ml")
        .env("GRIDLET_CONFIG", &operator)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    common::process::plugins_loaded(&format!("http://127.0.0.1:{port}")).await;
    let to = format!("http://127.0.0.1:{port}/hooks/ml");
    let send = |args: Vec<&'static str>| {
        let to = to.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
                .arg("send")
                .args(&args)
                .args(["--to", &to])
                .current_dir(root())
                .output()
                .await
                .expect("send runs");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        }
    };
    let (code, out) = send(vec![
        "examples/events/eventgrid/batch-mixed.json",
        "--secret",
        "env-secret",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!(
            "validation handshake with {to} → 200 OK, validationResponse matches\n"
        )),
        "{out}"
    );
    assert!(out.contains("deliver 4 (a2f5b7c3-6e89-4f0a-9b2c-3d4e5f607182) → 200 OK {\"accepted\":1,\"deliveries\":1}"), "{out}");
    assert!(!out.contains("env-secret"), "the secret is never printed");

    let (code, out) = send(vec![
        "examples/events/cloudevents/batch.json",
        "--secret",
        "env-secret",
        "--cloudevents",
        "--binary",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = send(vec![
        "examples/events/eventgrid/demo.json",
        "--secret",
        "env-secret",
        "--cloudevents",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with(&format!("CloudEvents handshake with {to} → 200 OK, WebHook-Allowed-Origin eventgrid.azure.net, WebHook-Allowed-Rate *\n")), "{out}");
    let (code, out) = send(vec![
        "examples/events/cloudevents/batch.json",
        "--secret",
        "env-secret",
        "--cloudevents",
        "--batch",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    // Already delivered in binary form: acknowledged, not delivered again.
    assert!(
        out.contains("→ 200 OK {\"accepted\":2,\"deliveries\":0}"),
        "{out}"
    );

    // A wrong secret fails at the handshake, and nothing is delivered.
    let (code, out) = send(vec![
        "examples/events/eventgrid/run-completed.json",
        "--secret",
        "nope",
    ])
    .await;
    assert_eq!(code, Some(1));
    assert!(out.contains("→ 401 Unauthorized"), "{out}");

    // Unique events: 4 (Event Grid) + 2 (binary) + 2 new of the 6 in demo.json.
    let started = std::time::Instant::now();
    while sink.received().len() < 8 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} echoes",
            sink.received().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let binary = sink
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["id"] == "f1e4a6b2-5d78-4e9f-8a1b-2c3d4e5f6071")
        .count();
    assert_eq!(
        binary, 1,
        "sent three times (binary, structured, batch), delivered once"
    );
    assert_eq!(sink.received().len(), 8);

    server.start_kill().expect("kill");
    let out = server.wait_with_output().await.expect("exits");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains(&format!(
            "gridlet listening on http://127.0.0.1:{port}/hooks/ml"
        )),
        "{log}"
    );
    assert!(log.contains("plugin loaded from"), "{log}");
    assert!(!log.contains("env-secret"), "the secret is never logged");
    assert!(!log.contains("AUTH IS OFF"), "{log}");
}

#[tokio::test]
async fn serve_says_loudly_when_auth_is_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No config at all (only an ephemeral port): the embedded defaults, in an
    // empty folder with no `plugins/`.
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("serve")
        .env("GRIDLET_LISTEN", "127.0.0.1:0")
        .env_remove("GRIDLET_PLUGINS_DIR")
        .env_remove("GRIDLET_STATE_DIR")
        .current_dir(dir.path())
        .env_remove("GRIDLET_SECRET")
        .env_remove("GRIDLET_CONFIG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let mut stderr = server.stderr.take().expect("stderr");
    let mut log = String::new();
    let started = std::time::Instant::now();
    use tokio::io::AsyncReadExt;
    // Auth is said first; the plugins after they are loaded.
    while !(log.contains("AUTH IS OFF") && log.contains("no plugins serving")) {
        assert!(started.elapsed() < Duration::from_secs(20), "{log}");
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(20), stderr.read(&mut buf))
            .await
            .expect("log")
            .expect("read");
        assert!(n > 0, "serve exited: {log}");
        log.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        log.contains("gridlet listening on http://127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("no plugins serving from plugins"), "{log}");
    assert!(
        dir.path().join("state").is_dir(),
        "the default state folder is created"
    );
    server.start_kill().expect("kill");
}

#[tokio::test]
async fn the_example_configuration_is_valid() {
    let file = ConfigFile::load(&root().join("examples/gridlet.toml"))
        .expect("examples/gridlet.toml loads");
    let settings = file.resolve().await.expect("resolves");
    assert_eq!(settings.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(settings.ingest.allowed_topics.len(), 1);
}
