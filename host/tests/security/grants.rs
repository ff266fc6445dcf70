//! A plugin's own files can ask, never grant: no host environment, no hosts,
//! no limits beyond the operator's caps, no other plugin's config.

use crate::common::fort::{Extra, Fort, wait};
use crate::common::{Recorder, grant};
use gridlet::plugin::PluginGrant;

#[tokio::test]
async fn a_manifest_cannot_expand_the_admin_token_into_its_config() {
    // The reproduced attack: the manifest builds its sink URL from the
    // operator's admin token and grants itself the listener's host.
    let listener = Recorder::start().await;
    let port = listener.addr.port();
    let old_form = format!(
        "[grants]\nallowed_hosts = [\"localhost:{port}\"]\n\
         [grants.config]\nsink_url = \"http://localhost:{port}/${{GRIDLET_ADMIN_TOKEN}}\"\n"
    );
    let new_form = format!(
        "[config]\nsink_url = {{ default = \"http://localhost:{port}/${{GRIDLET_ADMIN_TOKEN}}\" }}\n\
         [outbound]\nhosts = [\"localhost:{port}\"]\n"
    );
    let fort = Fort::start(
        vec![
            Extra::new("thief", "echo", &old_form, PluginGrant::default()),
            Extra::new("thief-two", "echo", &new_form, PluginGrant::default()),
        ],
        |_| {},
    )
    .await;
    let thief = fort.status("thief").await;
    assert_eq!(thief["state"], "rejected", "{thief}");
    assert!(thief["hash"].is_null(), "nothing of it serves");
    assert!(
        thief["rejected"]["reason"]
            .as_str()
            .unwrap_or("")
            .ends_with(
                "thief.toml: [grants] is not read from a plugin's manifest: the operator grants \
                 config values and hosts in gridlet.toml under [plugins.<name>]; declare the keys \
                 the plugin reads under [config] and the hosts it calls under [outbound]"
            ),
        "{thief}"
    );
    let two = fort.status("thief-two").await;
    assert_eq!(two["state"], "rejected", "{two}");
    assert!(
        two["rejected"]["reason"].as_str().unwrap_or("").ends_with(
            "thief-two.toml: config.sink_url: a plugin's manifest cannot read the host's \
                 environment (`${...}`); the operator sets values in gridlet.toml under \
                 [plugins.<name>.config]"
        ),
        "{two}"
    );
    fort.good_still_delivers().await;
    assert!(
        listener.received().is_empty(),
        "nothing reached the listener"
    );
}

#[tokio::test]
async fn a_manifest_cannot_grant_itself_a_host() {
    let listener = Recorder::start().await;
    let manifest = format!(
        "[config]\nsink_url = \"{}\"\n[outbound]\nhosts = [\"{}\"]\n",
        listener.url("/exfiltrate"),
        listener.host()
    );
    let fort = Fort::start(
        vec![Extra::new(
            "wanderer",
            "echo",
            &manifest,
            PluginGrant::default(),
        )],
        |_| {},
    )
    .await;
    // It serves — a wish is not an error — with the refusal in its status.
    let status = fort.status("wanderer").await;
    assert_eq!(status["state"], "serving", "{status}");
    assert_eq!(
        status["warnings"],
        serde_json::json!([format!(
            "outbound.hosts: `{}` is not granted by the operator ([plugins.wanderer] \
             allowed_hosts); requests to it are denied",
            listener.host()
        )])
    );
    assert_eq!(status["grants"]["allowedHosts"], serde_json::json!([]));
    assert_eq!(fort.post("wander-1").await, 200);
    assert_eq!(
        fort.dead_letter("wanderer").await,
        "request to `<config:sink_url>` denied: host not in allowed_hosts"
    );
    fort.good_still_delivers().await;
    assert!(
        listener.received().is_empty(),
        "nothing reached the listener"
    );
}

#[tokio::test]
async fn a_manifest_asking_for_more_than_its_caps_runs_within_them() {
    let fort = Fort::start(
        vec![Extra::new(
            "greedy",
            "audit-counter",
            "[limits]\nmemory_mib = 4096\ndeadline_ms = 600000\nmax_concurrency = 1024\n",
            PluginGrant::default(),
        )],
        |_| {},
    )
    .await;
    let status = fort.status("greedy").await;
    assert_eq!(status["state"], "serving", "{status}");
    assert_eq!(status["limits"]["memoryBytes"], 256 * 1024 * 1024);
    assert_eq!(status["limits"]["deadlineMs"], 60_000);
    assert_eq!(status["limits"]["maxConcurrency"], 32);
    assert_eq!(
        status["warnings"],
        serde_json::json!([
            "limits.memory_mib: asked for 4096 MiB, the operator's cap is 256 MiB; running with 256 MiB",
            "limits.deadline_ms: asked for 600000 ms, the operator's cap is 60000 ms; running with 60000 ms",
            "limits.max_concurrency: asked for 1024, the operator's cap is 32; running with 32",
        ])
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn a_required_config_key_the_operator_did_not_set_refuses_the_version() {
    let manifest = std::fs::read_to_string(
        crate::common::root().join("plugins/model-promotion/model-promotion.toml"),
    )
    .expect("manifest");
    let fort = Fort::start(
        vec![Extra::new(
            "promoter",
            "model-promotion",
            &manifest,
            PluginGrant::default(),
        )],
        |_| {},
    )
    .await;
    let status = fort.status("promoter").await;
    assert_eq!(status["state"], "rejected", "{status}");
    assert!(
        status["rejected"]["reason"]
            .as_str()
            .unwrap_or("")
            .ends_with(
                "promoter.wasm: config key `deploy_url` required by the manifest and not granted: \
                 the operator sets it in gridlet.toml [plugins.promoter.config] (or `gridlet run \
                 --config KEY=VALUE`)"
            ),
        "{status}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn one_plugins_config_is_not_another_plugins() {
    let sink = Recorder::start().await;
    let secret = grant(
        &[
            ("name", "holder"),
            ("sink_url", &sink.url("/holder")),
            ("api_key", "k-7f3a9d-do-not-share"),
        ],
        &[&sink.host()],
    );
    let other = grant(
        &[("name", "prier"), ("sink_url", &sink.url("/prier"))],
        &[&sink.host()],
    );
    let fort = Fort::start(
        vec![
            Extra::new("holder", "echo", "", secret),
            Extra::new("prier", "echo", "", other),
        ],
        |_| {},
    )
    .await;
    assert_eq!(fort.post("config-1").await, 200);
    wait("both echo", || sink.received().len() == 2).await;
    // Each sees the keys it was granted: the prier never sees `api_key`.
    for r in sink.received() {
        let body = r.json();
        let keys = &body["configKeys"];
        match body["plugin"].as_str() {
            Some("prier") => assert_eq!(keys, &serde_json::json!(["name", "sink_url"])),
            Some("holder") => {
                assert_eq!(keys, &serde_json::json!(["api_key", "name", "sink_url"]))
            }
            other => panic!("{other:?}"),
        }
    }
    let prier = fort.status("prier").await;
    assert_eq!(
        prier["grants"]["configKeys"],
        serde_json::json!(["name", "sink_url"])
    );
    let holder = fort.status("holder").await;
    assert!(
        !holder.to_string().contains("k-7f3a9d"),
        "values are never shown"
    );
    fort.good_still_delivers().await;
}
