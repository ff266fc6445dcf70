//! A gridlet server in-process with a well-behaved plugin ("good": echo,
//! posting to its own sink) beside whatever a test adds: the harness of the
//! attack and robustness suites, which show an attack or a fault failing
//! while "good" goes on delivering.

use super::{Recorder, grant, plugin_path};
use gridlet::ingest::{Auth, SecretAuth};
use gridlet::journal::JournalSettings;
use gridlet::plugin::{OperatorGrants, PluginGrant};
use gridlet::serve::{self, ServeSettings, Server};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The shared secret senders use.
pub const SECRET: &str = "fort-secret-8f2d";
/// The admin token.
pub const ADMIN_TOKEN: &str = "fort-admin-token-41c7";

/// A plugin a test adds beside "good".
pub struct Extra {
    /// Its name in the plugins folder.
    pub name: &'static str,
    /// The built fixture or example it is a copy of.
    pub wasm: &'static str,
    /// Its manifest (the plugin author's file).
    pub manifest: String,
    /// What the operator grants it.
    pub grant: PluginGrant,
}

impl Extra {
    /// `name`, a copy of `wasm`, with `manifest` and `grant`.
    pub fn new(name: &'static str, wasm: &'static str, manifest: &str, grant: PluginGrant) -> Self {
        Self {
            name,
            wasm,
            manifest: manifest.to_string(),
            grant,
        }
    }
}

/// `gridlet serve` in-process with "good" (echo, posting to its own sink,
/// granted that sink and loopback) and the test's plugins.
pub struct Fort {
    pub server: Server,
    pub good_sink: Recorder,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    settings: ServeSettings,
}

impl Fort {
    /// Start with `extra` plugins; `configure` adjusts the settings.
    pub async fn start(extra: Vec<Extra>, configure: impl FnOnce(&mut ServeSettings)) -> Fort {
        let good_sink = Recorder::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).expect("plugins");
        let mut named = BTreeMap::new();
        named.insert(
            "good".to_string(),
            grant(
                &[("name", "good"), ("sink_url", &good_sink.url("/good"))],
                &[&good_sink.host()],
            ),
        );
        install(&plugins, "good", "echo", "");
        for e in extra {
            install(&plugins, e.name, e.wasm, &e.manifest);
            named.insert(e.name.to_string(), e.grant);
        }
        let mut settings = ServeSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            plugins_dir: plugins,
            state_dir: dir.path().join("state"),
            journal: JournalSettings {
                durable: false,
                ..JournalSettings::default()
            },
            admin_token: Some(ADMIN_TOKEN.into()),
            grants: OperatorGrants::new(PluginGrant::default(), named),
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
        settings.dispatch.retry_delays = vec![Duration::from_millis(50)];
        configure(&mut settings);
        let server = serve::start(settings.clone()).await.expect("server starts");
        Fort {
            server,
            good_sink,
            dir,
            client: reqwest::Client::new(),
            settings,
        }
    }

    /// Stop the server and start it again on the same folders (a restart:
    /// what was acknowledged must survive it); `configure` adjusts the
    /// settings first.
    pub async fn restart(self, configure: impl FnOnce(&mut ServeSettings)) -> Fort {
        let Fort {
            server,
            good_sink,
            dir,
            client,
            mut settings,
        } = self;
        server.shutdown().await;
        configure(&mut settings);
        let server = serve::start(settings.clone())
            .await
            .expect("server restarts");
        Fort {
            server,
            good_sink,
            dir,
            client,
            settings,
        }
    }

    /// The webhook URL with the secret.
    pub fn webhook(&self) -> String {
        format!("http://{}/api/events?code={SECRET}", self.server.addr)
    }

    /// POST one ModelRegistered event with this id; the status code.
    pub async fn post(&self, id: &str) -> u16 {
        self.client
            .post(self.webhook())
            .json(&json!([event(id)]))
            .send()
            .await
            .expect("post")
            .status()
            .as_u16()
    }

    /// The well-behaved plugin still gets a fresh event, end to end.
    pub async fn good_still_delivers(&self) {
        let id = format!("good-{}", rand::random::<u32>());
        assert_eq!(self.post(&id).await, 200, "the webhook still answers");
        wait(&format!("good to deliver {id}"), || {
            self.good_sink
                .received()
                .iter()
                .any(|r| r.json()["id"] == id.as_str())
        })
        .await;
    }

    /// The status of plugin `name`, as the admin API shows it.
    pub async fn status(&self, name: &str) -> Value {
        self.client
            .get(format!("http://{}/admin/plugins/{name}", self.server.addr))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json")
    }

    /// Wait for plugin `name`'s first dead letter; its `lastError`.
    pub async fn dead_letter(&self, name: &str) -> String {
        let journal = self.server.dispatcher.journal().clone();
        let started = Instant::now();
        loop {
            let letters = journal.dead_letters(Some(name)).expect("dead letters");
            if let Some(letter) = letters.first() {
                return letter.last_error.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no dead letter for {name}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Copy `wasm` into `plugins` as `name`, manifest first, `.wasm` renamed in.
pub fn install(plugins: &std::path::Path, name: &str, wasm: &str, manifest: &str) {
    std::fs::write(plugins.join(format!("{name}.toml")), manifest).expect("manifest");
    let tmp = plugins.join(format!(".{name}.partial"));
    std::fs::copy(plugin_path(wasm), &tmp).expect("copy");
    std::fs::rename(&tmp, plugins.join(format!("{name}.wasm"))).expect("rename");
}

/// A ModelRegistered event.
pub fn event(id: &str) -> Value {
    json!({
        "id": id,
        "topic": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w",
        "subject": "models/m:1",
        "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
        "eventTime": "2026-11-29T00:00:00Z",
        "data": {"modelName": "m", "modelVersion": "1"}
    })
}

/// Wait (up to 20 s) until `done`.
pub async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
