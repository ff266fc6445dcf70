//! An in-process `gridlet serve` on an ephemeral port with four real
//! plugins and a recording sink, for the webhook suites.

use super::{Received, Recorder, grant, grants, plugin_path, root};
use gridlet::dispatch::Targets;
use gridlet::ingest::{Auth, SecretAuth};
use gridlet::serve::{self, ServeSettings, Server};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const SECRET: &str = "s3cret-Event-Grid-key";
pub const WORKSPACE: &str = "/subscriptions/7d3c1b2a-5e4f-4a8b-9c0d-1e2f3a4b5c6d/resourceGroups/ml-prod/providers/Microsoft.MachineLearningServices/workspaces/fraud-detection";

pub struct Host {
    pub server: Server,
    pub sink: Recorder,
    pub client: reqwest::Client,
    _plugins: tempfile::TempDir,
}

impl Host {
    /// The server with four plugins: echo-all (every event), echo-models
    /// (ModelRegistered under models/), failed-run-alert and model-promotion,
    /// all calling one recording sink.
    pub async fn start(configure: impl FnOnce(&mut ServeSettings)) -> Host {
        let sink = Recorder::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let echo = |name: &str| {
            grant(
                &[("name", name), ("sink_url", &sink.url("/echo"))],
                &[&sink.host()],
            )
        };
        let plugins = [
            ("echo-all", "echo", String::new()),
            (
                "echo-models",
                "echo",
                "[filter]\nincludedEventTypes = [\"Microsoft.MachineLearningServices.ModelRegistered\"]\nsubjectBeginsWith = \"models/\"\n".to_string(),
            ),
            (
                "failed-run-alert",
                "failed-run-alert",
                "[filter]\nadvancedFilters = [{ operatorType = \"StringIn\", key = \"data.runStatus\", values = [\"failed\"] }]\n".to_string(),
            ),
            ("model-promotion", "model-promotion", String::new()),
        ];
        for (name, wasm, manifest) in plugins {
            std::fs::copy(plugin_path(wasm), dir.path().join(format!("{name}.wasm")))
                .expect("copy");
            std::fs::write(dir.path().join(format!("{name}.toml")), manifest).expect("manifest");
        }
        let mut settings = ServeSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            plugins_dir: dir.path().to_path_buf(),
            state_dir: dir.path().join("state"),
            grants: grants(vec![
                ("echo-all", echo("echo-all")),
                ("echo-models", echo("echo-models")),
                (
                    "failed-run-alert",
                    grant(&[("chat_webhook_url", &sink.url("/chat"))], &[&sink.host()]),
                ),
                (
                    "model-promotion",
                    grant(&[("deploy_url", &sink.url("/deploy"))], &[&sink.host()]),
                ),
            ]),
            ..ServeSettings::default()
        };
        settings.ingest.auth = Auth {
            secret: Some(SecretAuth::new(
                &[SECRET.into(), "the-next-secret".into()],
                "code",
                "x-gridlet-secret",
            )),
            entra: None,
        };
        settings.ingest.allowed_topics = vec![WORKSPACE.to_lowercase()];
        configure(&mut settings);
        let server = serve::start(settings).await.expect("server starts");
        assert_eq!(server.plugins.current().len(), 4, "every plugin loads");
        Host {
            server,
            sink,
            client: reqwest::Client::new(),
            _plugins: dir,
        }
    }

    pub fn url(&self, query: &str) -> String {
        format!("http://{}/api/events{query}", self.server.addr)
    }

    pub async fn post(
        &self,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, HeaderMap, Value) {
        let mut request = self.client.post(self.url(query)).body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST an Event Grid delivery with the secret.
    pub async fn event_grid(&self, body: impl Into<reqwest::Body>) -> (u16, HeaderMap, Value) {
        self.post(
            &format!("?code={SECRET}"),
            &[
                ("content-type", "application/json"),
                ("aeg-event-type", "Notification"),
            ],
            body,
        )
        .await
    }

    /// Wait until every delivery made so far has ended, then return what the
    /// sink received on `path`.
    pub async fn settled(&self, path: &str) -> Vec<Received> {
        let stats = self.server.dispatcher.stats();
        let started = Instant::now();
        while stats.finished() < stats.deliveries.load(Ordering::SeqCst) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "deliveries did not finish"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.sink
            .received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn deliveries(&self) -> u64 {
        self.server
            .dispatcher
            .stats()
            .deliveries
            .load(Ordering::SeqCst)
    }
}

pub fn sample(file: &str) -> Vec<u8> {
    std::fs::read(root().join("examples/events").join(file)).expect("sample")
}

/// (plugin, event id, kind) of each echo, sorted.
pub fn echoes(received: &[Received]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = received
        .iter()
        .map(|r| {
            let j = r.json();
            (
                j["plugin"].as_str().unwrap_or("").to_string(),
                j["id"].as_str().unwrap_or("").to_string(),
                j["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn echo(plugin: &str, id: &str, kind: &str) -> (String, String, String) {
    (plugin.into(), id.into(), kind.into())
}
