//! Interop with the real publisher SDKs: the Azure SDK's
//! `EventGridPublisherClient` (`EventGridEvent` with `aeg-sas-key` and with
//! an `aeg-sas-token` from its own `generate_sas`, and a `CloudEvent`), and
//! the `cloudevents` SDK in binary and structured mode, each publishing
//! straight to `gridlet serve`; every event reaches the plugins.
//! The SDKs are installed, pinned, by `cargo xtask plugins`
//! (`host/tests/sdk/requirements.txt`).

mod common;

use common::root;
use common::webhook::{Host, WORKSPACE};
use gridlet::ingest::SecretAuth;

/// An Event Grid access key (base64, as Azure makes them).
const KEY: &str = "c2RrLWludGVyb3AtYWNjZXNzLWtleS1mb3ItZ3JpZGxldA==";

#[tokio::test]
async fn the_azure_and_cloudevents_sdks_publish_straight_to_gridlet() {
    let python = root().join("target/toolchains/sdk-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask plugins` (it installs the pinned SDKs)",
        python.display()
    );
    let host = Host::start(|s| {
        s.ingest.auth.secret = Some(SecretAuth::new(&[KEY.into()], "code", "x-gridlet-secret"))
    })
    .await;
    let url = host.url("");
    let script = root().join("host/tests/sdk/publish.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args([url.as_str(), KEY, WORKSPACE])
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "the SDKs' publish failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<String> = serde_json::from_slice(&out.stdout).expect("ids printed");
    assert_eq!(sent.len(), 5);
    let echoes: Vec<serde_json::Value> = host
        .settled("/echo")
        .await
        .iter()
        .map(|r| r.json())
        .filter(|j| j["plugin"] == "echo-all")
        .collect();
    let mut got: Vec<(String, String)> = echoes
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap_or("").to_string(),
                j["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    got.sort();
    let expected = [
        ("ce-azure", "dataset-drift-detected"),
        ("ce-binary", "model-registered"),
        ("ce-struct", "model-registered"),
        ("eg-key", "model-registered"),
        ("eg-sas", "model-registered"),
    ];
    assert_eq!(
        got,
        expected
            .iter()
            .map(|(id, kind)| (id.to_string(), kind.to_string()))
            .collect::<Vec<_>>()
    );
    // The SDK's EventGridEvent arrives with its data and the topic it named.
    let eg = echoes.iter().find(|j| j["id"] == "eg-key").expect("eg-key");
    assert_eq!(eg["data"]["modelTags"]["stage"], "prod");
    assert_eq!(eg["topic"], WORKSPACE);
}
