//! The web console in a real browser (headless Chromium over WebDriver):
//! signing in, the example plugins, a rejected event in dead letters,
//! replay after a hot-reloaded fix, purge, markup in events shown inert, a
//! wrong token refused. The screenshots it takes at 1280×800 (light and
//! dark) are the README's (`GRIDLET_SCREENSHOTS=docs` writes them to
//! docs/, otherwise to target/console-screenshots/).

mod common;

use common::browser::Browser;
use common::webhook::{SECRET, WORKSPACE};
use common::{Recorder, grant, grants, plugin_path, root};
use gridlet::ingest::{Auth, SecretAuth};
use gridlet::plugin::WatchSettings;
use gridlet::serve::{self, ServeSettings, Server};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "console-admin-token";
const EXAMPLES: [&str; 5] = [
    "audit-counter",
    "deployment-notifier",
    "drift-guard",
    "failed-run-alert",
    "model-promotion",
];

/// The host: `examples` and `gate`, which rejects every event (the hostile
/// test plugin reaching the sink, which answers) until its file is
/// replaced with echo.
async fn host(dir: &Path, sink: &Recorder, examples: &[&str]) -> Server {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins");
    for name in examples {
        let wasm = plugin_path(name);
        std::fs::copy(&wasm, plugins.join(format!("{name}.wasm"))).expect("wasm");
        std::fs::copy(
            wasm.with_extension("toml"),
            plugins.join(format!("{name}.toml")),
        )
        .expect("manifest");
    }
    std::fs::copy(plugin_path("hostile"), plugins.join("gate.wasm")).expect("gate");
    let hosts = [sink.host()];
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let mut settings = ServeSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        plugins_dir: plugins,
        state_dir: dir.join("state"),
        admin_token: Some(TOKEN.into()),
        watch: Some(WatchSettings::default()),
        compile_cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compiled")),
        grants: grants(vec![
            (
                "gate",
                grant(
                    &[
                        ("behaviour", "reach"),
                        ("targets", &sink.url("/gate")),
                        ("sink_url", &sink.url("/echo")),
                        ("name", "gate"),
                    ],
                    &hosts,
                ),
            ),
            (
                "failed-run-alert",
                grant(&[("chat_webhook_url", &sink.url("/chat"))], &hosts),
            ),
            (
                "deployment-notifier",
                grant(&[("chat_webhook_url", &sink.url("/chat"))], &hosts),
            ),
            (
                "model-promotion",
                grant(&[("deploy_url", &sink.url("/deploy"))], &hosts),
            ),
            (
                "drift-guard",
                grant(&[("pipeline_url", &sink.url("/retrain"))], &hosts),
            ),
        ]),
        ..ServeSettings::default()
    };
    settings.ingest.auth = Auth {
        secret: Some(SecretAuth::new(
            &[SECRET.into()],
            "code",
            "x-gridlet-secret",
        )),
        entra: None,
    };
    settings.ingest.allowed_topics = vec![WORKSPACE.to_lowercase()];
    // The overview's history, sampled often enough for a test to see it.
    settings.dispatch.history_step = Duration::from_millis(200);
    serve::start(settings).await.expect("server starts")
}

/// A ModelRegistered event whose subject carries markup and script.
fn event(id: &str, subject: &str) -> Value {
    json!([{
        "id": id,
        "topic": WORKSPACE,
        "subject": subject,
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": "2026-11-30T09:00:00Z",
        "data": { "modelName": "fraud", "modelVersion": "7", "modelTags": {}, "modelProperties": {} },
        "dataVersion": "2",
    }])
}

async fn send(server: &Server, body: &Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/events?code={SECRET}", server.addr))
        .json(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

fn screenshots() -> PathBuf {
    if std::env::var("GRIDLET_SCREENSHOTS").as_deref() == Ok("docs") {
        root().join("docs")
    } else {
        root().join("target/console-screenshots")
    }
}

async fn admin(server: &Server, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json")
}

async fn sign_in(b: &Browser, console: &str, token: &str) {
    b.client.goto(console).await.expect("open console");
    let input = b.find("#token").await;
    input.send_keys(token).await.expect("type token");
    b.click("#sign-in-form button[type=submit]").await;
}

/// Confirm the open dialog.
async fn confirm(b: &Browser) {
    b.find("dialog#confirm[open]").await;
    b.click("#confirm-ok").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_replays_and_purges_what_the_host_holds() {
    let sink = Recorder::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let server = host(dir.path(), &sink, &EXAMPLES).await;
    let console = format!("http://{}/console", server.addr);
    let b = Browser::start(1280, 800).await;

    // A wrong token is refused, and nothing else shows.
    sign_in(&b, &console, "not-the-token").await;
    b.text_appears("Wrong token").await;
    assert!(
        b.find("#page")
            .await
            .attr("hidden")
            .await
            .expect("attr")
            .is_some(),
        "pages stay hidden"
    );

    // The right one: the overview, then the example plugins.
    b.client.goto(&console).await.expect("reload");
    sign_in(&b, &console, TOKEN).await;
    b.find("#stat-received").await;
    b.click("#nav a[data-page=plugins]").await;
    for name in EXAMPLES.iter().chain(&["gate"]) {
        b.find(&format!("tr[data-plugin=\"{name}\"]")).await;
    }
    b.text_appears("serving").await;

    // Two events the gate rejects, one with markup and script in its
    // subject: both become dead letters.
    let hostile_subject =
        "models/<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    b.click("#nav a[data-page=live]").await;
    b.text_appears("live").await;
    send(&server, &event("evt-replay-me", hostile_subject)).await;
    send(&server, &event("evt-purge-me", "models/fraud:7")).await;
    // The live tail shows the subject as text.
    let row = b
        .find("tr[data-event-id=\"evt-replay-me\"] td.subject")
        .await;
    assert_eq!(row.text().await.expect("text"), hostile_subject);
    b.click("#nav a[data-page=dead-letters]").await;
    b.find("tr[data-event-id=\"evt-replay-me\"]").await;
    b.find("tr[data-event-id=\"evt-purge-me\"]").await;
    b.text_appears("Rejected").await;
    b.screenshot(&screenshots().join("console-dead-letters-light.png"))
        .await;

    // Open one: the event as JSON text, the reason, each attempt's error.
    b.click("tr[data-event-id=\"evt-replay-me\"] a").await;
    let shown = b.find("#dl-event").await.text().await.expect("text");
    assert!(
        shown.contains("<script>window.__pwned=1</script>"),
        "{shown}"
    );
    let errors = b.find("#dl-errors li").await.text().await.expect("text");
    assert!(errors.contains("reached"), "{errors}");
    b.screenshot(&screenshots().join("console-dead-letter-light.png"))
        .await;

    // No script from the event ran anywhere.
    let pwned = b
        .client
        .execute("return window.__pwned === undefined;", vec![])
        .await
        .expect("script");
    assert_eq!(pwned, Value::Bool(true), "the event's script ran");

    // Fix the gate (a new file: echo, hot-reloaded), then replay.
    let before = admin(&server, "/admin/plugins/gate").await["hash"].clone();
    let tmp = dir.path().join("plugins/.gate.partial");
    std::fs::copy(plugin_path("echo"), &tmp).expect("copy");
    std::fs::rename(&tmp, dir.path().join("plugins/gate.wasm")).expect("swap");
    let started = Instant::now();
    while admin(&server, "/admin/plugins/gate").await["hash"] == before {
        assert!(started.elapsed() < Duration::from_secs(30), "no reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.click("#dl-replay-one").await;
    confirm(&b).await;
    b.text_appears("Replayed 1").await;
    let started = Instant::now();
    while !sink
        .received()
        .iter()
        .any(|r| r.path == "/echo" && r.body.contains("evt-replay-me"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "never delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The plugin's page shows the handled attempt.
    b.client
        .goto(&format!("{console}#/plugins/gate"))
        .await
        .expect("plugin page");
    b.text_appears("handled").await;
    b.screenshot(&screenshots().join("console-plugin-light.png"))
        .await;

    // Purge the other, by selection, with a confirmation.
    b.client
        .goto(&format!("{console}#/dead-letters"))
        .await
        .expect("dead letters");
    b.click("tr[data-event-id=\"evt-purge-me\"] input[type=checkbox]")
        .await;
    b.click("#dl-purge").await;
    confirm(&b).await;
    b.text_appears("Purged 1").await;
    let letters = admin(&server, "/admin/dead-letters").await;
    let left: Vec<&str> = letters["deadLetters"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["eventId"].as_str())
        .collect();
    assert!(!left.contains(&"evt-purge-me"), "{left:?}");

    // A reloaded overview charts what happened before it opened (the host
    // keeps the last hour's counters): the two dead letters.
    b.client
        .execute("location.reload();", vec![])
        .await
        .expect("reload");
    b.client
        .goto(&format!("{console}#/overview"))
        .await
        .expect("overview");
    let started = Instant::now();
    loop {
        let charted = b
            .client
            .execute(
                "const l = document.querySelector('#deliveries-chart polyline.dead');
                 return !!l && (l.getAttribute('points') || '').split(' ')
                   .some((p) => p && parseFloat(p.split(',')[1]) < 155);",
                vec![],
            )
            .await
            .expect("chart");
        if charted == Value::Bool(true) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the reloaded overview charts no dead letters"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The screenshots: overview and plugins, light and dark.
    for theme in ["light", "dark"] {
        b.client
            .execute(
                "localStorage.setItem('gridlet.theme', arguments[0]); location.reload();",
                vec![json!(theme)],
            )
            .await
            .expect("theme");
        for page in ["overview", "plugins"] {
            b.client
                .goto(&format!("{console}#/{page}"))
                .await
                .expect("page");
            b.find("#page h1").await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            b.screenshot(&screenshots().join(format!("console-{page}-{theme}.png")))
                .await;
        }
    }
    b.close().await;
}

/// At a phone's width the pages still work (no sideways scrolling of the
/// page itself; tables scroll inside their card).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_fits_a_phone() {
    let sink = Recorder::start().await;
    let dir = tempfile::tempdir().expect("dir");
    // Only the gate: the other tests compile the examples.
    let server = host(dir.path(), &sink, &[]).await;
    let console = format!("http://{}/console", server.addr);
    let b = Browser::start(390, 844).await;
    sign_in(&b, &console, TOKEN).await;
    b.find("#stat-received").await;
    b.click("#nav a[data-page=plugins]").await;
    b.find("tr[data-plugin=\"gate\"]").await;
    let overflow = b
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("width");
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "page scrolls sideways by {overflow}"
    );
    b.screenshot(&screenshots().join("console-phone.png")).await;
    b.close().await;
}

/// The console's pages carry a policy that allows no inline script and no
/// other origin; without an admin token there is no console at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_locked_down_and_only_there_with_an_admin_token() {
    let sink = Recorder::start().await;
    let dir = tempfile::tempdir().expect("dir");
    // Only the gate: the other tests compile the examples.
    let server = host(dir.path(), &sink, &[]).await;
    let client = reqwest::Client::new();
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let r = client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{path}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    // The page itself holds no token, config value or secret.
    let page = client
        .get(format!("http://{}/console", server.addr))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("text");
    assert!(!page.contains(TOKEN) && !page.contains(SECRET));
    // Its data needs the token.
    let r = client
        .get(format!("http://{}/admin/overview", server.addr))
        .send()
        .await
        .expect("overview");
    assert_eq!(r.status(), 401);
    // Another site's page: a form post carries no token (there is no
    // cookie to ride on) and a script's preflight gets no CORS grant, so
    // a browser sends neither the token nor the purge.
    let forged = client
        .post(format!("http://{}/admin/dead-letters/purge", server.addr))
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("all=true")
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 401);
    let preflight = client
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/admin/dead-letters/purge", server.addr),
        )
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS grant: {:?}",
        preflight.headers()
    );

    let bare = serve::start(ServeSettings {
        listen: "127.0.0.1:0".parse().expect("addr"),
        plugins_dir: dir.path().join("none"),
        state_dir: dir.path().join("bare-state"),
        insecure_no_auth: true,
        ..ServeSettings::default()
    })
    .await
    .expect("serves");
    let r = client
        .get(format!("http://{}/console", bare.addr))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404, "no admin token, no console");
}
