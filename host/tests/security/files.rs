//! Small leaks, closed: what the plugins folder may hold, what errors may
//! quote, replays that cannot repeat, `gridlet send` and its secret, and
//! floods that cannot fill the host's log.

use crate::common::fort::{ADMIN_TOKEN, Extra, Fort, SECRET, install, wait};
use crate::common::{self, Recorder, plugin_path, root};
use gridlet::plugin::PluginGrant;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_named_like_a_plugin_is_refused_without_blocking() {
    let fort = Fort::start(vec![], |_| {}).await;
    let plugins = fort.dir.path().join("plugins");
    // A FIFO would block a plain reader forever (no writer ever comes).
    let fifo = |name: &str| {
        let status = std::process::Command::new("mkfifo")
            .arg(plugins.join(name))
            .status()
            .expect("mkfifo");
        assert!(status.success());
    };
    fifo("pipe.wasm");
    std::fs::copy(plugin_path("echo"), plugins.join(".staged")).expect("copy");
    fifo("piped.toml");
    std::fs::rename(plugins.join(".staged"), plugins.join("piped.wasm")).expect("rename");
    let mut reasons = Vec::new();
    for name in ["pipe", "piped"] {
        let started = Instant::now();
        let status = loop {
            let status = fort.status(name).await;
            if status["state"] == "rejected" {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        reasons.push(
            status["rejected"]["reason"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    assert!(
        reasons[0]
            .ends_with("pipe.wasm: not a regular file (a folder, FIFO, socket or device): refused"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].ends_with(
            "piped.toml: not a regular file (a folder, FIFO, socket or device): refused"
        ),
        "{reasons:?}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn a_symlink_out_of_the_plugins_folder_is_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("operator-secrets.toml");
    std::fs::write(&secret, "token = \"TOPSECRET-9d2f\"\n").expect("write");
    let fort = Fort::start(vec![], |_| {}).await;
    let plugins = fort.dir.path().join("plugins");
    // A component that is a symlink out of the folder...
    let elsewhere = outside.path().join("far.wasm");
    std::fs::copy(plugin_path("echo"), &elsewhere).expect("copy");
    std::os::unix::fs::symlink(&elsewhere, plugins.join("far.wasm")).expect("symlink");
    // ...a manifest that is a symlink to the operator's file...
    install(&plugins, "leaky", "echo", "");
    std::fs::remove_file(plugins.join("leaky.toml")).expect("rm");
    std::os::unix::fs::symlink(&secret, plugins.join("leaky.toml")).expect("symlink");
    // ...and one inside the folder, which is fine.
    std::fs::create_dir_all(plugins.join("store")).expect("store");
    std::fs::copy(
        plugin_path("audit-counter"),
        plugins.join("store/audit.wasm"),
    )
    .expect("copy");
    std::os::unix::fs::symlink(
        plugins.join("store/audit.wasm"),
        plugins.join("inside.wasm"),
    )
    .expect("symlink");
    let reconcile = |name: &str| fort.server.plugins.reconcile(name);
    for name in ["leaky", "far", "inside"] {
        reconcile(name);
    }
    let leaky = fort.status("leaky").await;
    assert_eq!(leaky["state"], "rejected", "{leaky}");
    assert!(
        leaky["rejected"]["reason"]
            .as_str()
            .unwrap_or("")
            .ends_with("leaky.toml: a symlink to a file outside the plugins folder: refused"),
        "{leaky}"
    );
    assert!(!leaky.to_string().contains("TOPSECRET"));
    let far = fort.status("far").await;
    assert!(
        far["rejected"]["reason"]
            .as_str()
            .unwrap_or("")
            .ends_with("far.wasm: a symlink to a file outside the plugins folder: refused"),
        "{far}"
    );
    assert_eq!(fort.status("inside").await["state"], "serving");
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn an_oversized_plugin_file_is_refused() {
    // Well above any real plugin here (echo is ~200 KB), well below a big one.
    let fort = Fort::start(vec![], |s| s.max_plugin_bytes = 1_000_000).await;
    let plugins = fort.dir.path().join("plugins");
    std::fs::write(plugins.join(".big"), vec![0u8; 5_000_000]).expect("write");
    std::fs::rename(plugins.join(".big"), plugins.join("big.wasm")).expect("rename");
    fort.server.plugins.reconcile("big");
    let status = fort.status("big").await;
    assert_eq!(status["state"], "rejected", "{status}");
    assert!(
        status["rejected"]["reason"]
            .as_str()
            .unwrap_or("")
            .ends_with("big.wasm: 5000000 bytes, over the limit of 1000000 bytes: refused"),
        "{status}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn manifest_and_config_errors_never_quote_the_file() {
    let fort = Fort::start(
        vec![
            Extra::new(
                "quoted",
                "echo",
                "[limits]\nmemory_mib = \"AKIA-5EC2E7-value\"\n",
                PluginGrant::default(),
            ),
            Extra::new(
                "quoted-two",
                "echo",
                "[config]\ntoken = [\"AKIA-5EC2E7-value\"]\n",
                PluginGrant::default(),
            ),
        ],
        |_| {},
    )
    .await;
    for name in ["quoted", "quoted-two"] {
        let status = fort.status(name).await;
        assert_eq!(status["state"], "rejected", "{status}");
        assert!(!status.to_string().contains("AKIA"), "{status}");
    }
    // The operator's gridlet.toml holds secrets too.
    let path = fort.dir.path().join("gridlet.toml");
    for text in [
        "admin_token = [\"AKIA-5EC2E7-value\"]\n",
        "secret = 12345\nadmin_token = \"AKIA-5EC2E7-value\nx = 1\n",
        "[plugins.a]\nconfig = { key = [\"AKIA-5EC2E7-value\"] }\n",
    ] {
        std::fs::write(&path, text).expect("write");
        let error = gridlet::serve::config::ConfigFile::load(&path)
            .expect_err("refused")
            .to_string();
        assert!(!error.contains("AKIA"), "{error}");
        assert!(error.contains("gridlet.toml: line"), "{error}");
    }
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn replaying_a_dead_letter_twice_delivers_it_once() {
    let fort = Fort::start(
        vec![Extra::new(
            "refuser",
            "hostile",
            "",
            common::grant(&[("behaviour", "refuse")], &[]),
        )],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("replay-1").await, 200);
    fort.dead_letter("refuser").await;
    let journal = fort.server.dispatcher.journal().clone();
    let id = journal.dead_letters(Some("refuser")).expect("list")[0].id;
    let replay = |force: bool| {
        fort.client
            .post(format!(
                "http://{}/admin/dead-letters/replay",
                fort.server.addr
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"ids": [id], "force": force}))
            .send()
    };
    let first: Value = replay(false)
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(first, json!({"replayed": 1, "alreadyReplayed": 0}));
    let again: Value = replay(false)
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(
        again,
        json!({"replayed": 0, "alreadyReplayed": 1}),
        "a repeated request delivers nothing twice"
    );
    let forced: Value = replay(true)
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(forced, json!({"replayed": 1, "alreadyReplayed": 0}));
    fort.good_still_delivers().await;
}

async fn send(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .arg("send")
        .args(args)
        .current_dir(root())
        .env_remove("GRIDLET_SEND_SECRET")
        .output()
        .await
        .expect("send runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn gridlet_send_never_prints_a_secret() {
    let fort = Fort::start(vec![], |_| {}).await;
    // The secret in the URL (as an Event Grid endpoint carries it)...
    let with_secret = fort.webhook();
    let (code, out) = send(&[
        "examples/events/eventgrid/run-completed.json",
        "--to",
        &with_secret,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("?code=***"), "{out}");
    assert!(!out.contains(SECRET), "{out}");
    // ...and in --secret, against an endpoint that does not answer.
    let (code, out) = send(&[
        "examples/events/eventgrid/run-completed.json",
        "--to",
        "http://127.0.0.1:9/api/events?code=url-secret-77&x=1",
        "--secret",
        "flag-secret-88",
    ])
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("http://127.0.0.1:9/api/events?code=***&x=***"),
        "{out}"
    );
    assert!(
        !out.contains("url-secret-77") && !out.contains("flag-secret-88"),
        "{out}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn gridlet_send_binary_batch_sends_every_event() {
    let fort = Fort::start(vec![], |_| {}).await;
    let (code, out) = send(&[
        "examples/events/cloudevents/batch.json",
        "--to",
        &format!("http://{}/api/events", fort.server.addr),
        "--secret",
        SECRET,
        "--cloudevents",
        "--binary",
        "--batch",
    ])
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("binary mode has no batch form: sending the 2 events one request each"),
        "{out}"
    );
    assert_eq!(out.matches("→ 200 OK {\"accepted\":1").count(), 2, "{out}");
    wait("both delivered to good", || {
        fort.good_sink.received().len() == 2
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_denied_requests_and_wrong_secrets_are_rate_limited_in_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Recorder::start().await;
    common::install(
        dir.path(),
        "good",
        "echo",
        "",
        &common::echo_grant(&sink, "good"),
    );
    common::install(
        dir.path(),
        "flooder",
        "hostile",
        "",
        "config = { behaviour = \"deny-flood\", count = \"3000\", forbidden_url = \"http://not-granted.example/\" }",
    );
    let (mut child, base, log) = common::process::serve_logging(dir.path(), &[]).await;
    let client = reqwest::Client::new();
    let post = |id: &str, secret: &str| {
        client
            .post(format!("{base}/api/events?code={secret}"))
            .json(&json!([crate::common::fort::event(id)]))
            .send()
    };
    assert_eq!(post("flood-1", SECRET).await.expect("post").status(), 200);
    // An outsider hammering with wrong secrets: 1,000 times 401.
    for i in 0..1000 {
        let r = post(&format!("x-{i}"), "wrong").await.expect("post");
        assert_eq!(r.status(), 401);
    }
    wait("good delivers", || {
        sink.received().iter().any(|r| r.json()["id"] == "flood-1")
    })
    .await;
    // Let the flooder finish its 3,000 denied requests.
    let started = Instant::now();
    loop {
        let metrics = crate::common::process::metrics(&client, &base).await;
        if metrics.contains("gridlet_delivery_success_total{plugin=\"flooder\"") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "flooder never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.start_kill().expect("kill");
    child.wait().await.expect("exits");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = log.lock().expect("log").clone();
    let denied = log.lines().filter(|l| l.contains("denied")).count();
    let refused = log
        .lines()
        .filter(|l| l.contains("request refused"))
        .count();
    // 3,000 denials: at most the per-delivery cap of log lines (1,000) reach the log.
    assert!(denied <= 1_001, "{denied} denial lines");
    assert!(denied > 0, "denials are still logged");
    // 1,000 refusals: a burst of 50 plus 5 a second.
    let seconds = started.elapsed().as_secs() as usize + 5;
    assert!(refused <= 50 + 5 * seconds, "{refused} refusal lines");
    assert!(refused > 0);
}
