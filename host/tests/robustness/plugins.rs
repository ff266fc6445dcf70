//! Plugins that cannot run now: declared but not serving (their deliveries
//! wait), or waiting for an instance (uncounted); and a plugin asking for
//! more concurrency than the pool holds.

use crate::common::fort::{Extra, Fort, install, wait};
use crate::common::grant;
use gridlet::plugin::PluginGrant;
use gridlet::runtime::RuntimeSettings;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_plugin_keeps_its_deliveries_until_a_good_version_loads() {
    let sink = crate::common::Recorder::start().await;
    let echo = || {
        grant(
            &[("name", "late"), ("sink_url", &sink.url("/late"))],
            &[&sink.host()],
        )
    };
    let fort = Fort::start(vec![], |s| {
        s.grants = crate::common::grants(vec![
            ("late", echo()),
            ("good", crate::common::grant(&[("name", "good")], &[])),
        ]);
        // Dispatch never looks again on its own within the test: the new
        // version's publish must wake it.
        s.dispatch.idle_at_most = Duration::from_secs(600);
    })
    .await;
    // A file that is not a component, with a manifest that reads.
    let plugins = fort.dir.path().join("plugins");
    std::fs::write(
        plugins.join("late.toml"),
        "[retry]\nmaxDeliveryAttempts = 5\n",
    )
    .expect("toml");
    std::fs::write(plugins.join(".late"), b"not wasm").expect("write");
    std::fs::rename(plugins.join(".late"), plugins.join("late.wasm")).expect("rename");
    fort.server.plugins.reconcile("late");
    let status = fort.status("late").await;
    assert_eq!(status["state"], "rejected", "{status}");
    assert_eq!(status["waiting"], true, "{status}");
    // Its events are accepted *for it*, and kept, not attempted.
    let answer: serde_json::Value = fort
        .client
        .post(fort.webhook())
        .json(&serde_json::json!([crate::common::fort::event("late-1")]))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["deliveries"], 2, "one for good, one kept for late");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.received().is_empty());
    let journal = fort.server.dispatcher.journal().clone();
    assert!(journal.dead_letters(Some("late")).expect("list").is_empty());
    assert_eq!(journal.deliveries(Some("late"), 10).expect("list").len(), 1);
    // A good version arrives: what waited is delivered.
    install(
        &plugins,
        "late",
        "echo",
        "[retry]\nmaxDeliveryAttempts = 5\n",
    );
    fort.server.plugins.reconcile("late");
    wait("the kept delivery", || sink.received().len() == 1).await;
    assert_eq!(sink.received()[0].json()["id"], "late-1");
    assert_eq!(
        sink.received()[0].json()["attempt"],
        1,
        "waiting is not an attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_the_operator_names_waits_for_its_file() {
    let sink = crate::common::Recorder::start().await;
    let fort = Fort::start(vec![], |s| {
        s.grants = crate::common::grants(vec![
            (
                "announced",
                grant(
                    &[("name", "announced"), ("sink_url", &sink.url("/a"))],
                    &[&sink.host()],
                ),
            ),
            ("good", grant(&[("name", "good")], &[])),
        ]);
        s.dispatch.expire_waiting_every = Duration::from_millis(100);
    })
    .await;
    let status = fort.status("announced").await;
    assert_eq!(status["state"], "waiting", "{status}");
    assert_eq!(fort.post("early-1").await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let plugins = fort.dir.path().join("plugins");
    install(&plugins, "announced", "echo", "");
    fort.server.plugins.reconcile("announced");
    wait("the early event", || sink.received().len() == 1).await;
    assert_eq!(sink.received()[0].json()["id"], "early-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_deliveries_still_expire_after_their_time_to_live() {
    let fort = Fort::start(vec![], |s| {
        s.grants = crate::common::grants(vec![
            ("absent", PluginGrant::default()),
            ("good", grant(&[("name", "good")], &[])),
        ]);
        s.dispatch.expire_waiting_every = Duration::from_millis(100);
    })
    .await;
    let plugins = fort.dir.path().join("plugins");
    // Declared with a one-minute time-to-live through its manifest alone.
    std::fs::write(
        plugins.join("absent.toml"),
        "[retry]\neventTimeToLiveInMinutes = 1\n",
    )
    .expect("toml");
    std::fs::write(plugins.join("absent.wasm"), b"broken").expect("wasm");
    fort.server.plugins.reconcile("absent");
    assert_eq!(fort.post("stale-1").await, 200);
    // Backdate the event by two minutes.
    let conn =
        rusqlite::Connection::open(fort.dir.path().join("state/journal.sqlite3")).expect("open");
    conn.execute(
        "UPDATE events SET received_at = received_at - 120000 WHERE event_id = 'stale-1'",
        [],
    )
    .expect("backdate");
    let error = fort.dead_letter("absent").await;
    assert_eq!(
        error,
        "the event outlived its time-to-live while no version of the plugin served"
    );
    let letters = fort
        .server
        .dispatcher
        .journal()
        .dead_letters(Some("absent"))
        .expect("list");
    assert_eq!(letters[0].reason, "TimeToLiveExceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_without_an_instance_waits_uncounted() {
    // A pool of two instances shared by two plugins, each delivery holding
    // its instance a while: some find no instance free.
    let sink = crate::common::Recorder::start().await;
    let fort = Fort::start(
        vec![Extra::new(
            "busy",
            "echo",
            "",
            grant(
                &[("name", "busy"), ("sink_url", &sink.url("/busy"))],
                &[&sink.host()],
            ),
        )],
        |s| {
            s.runtime = RuntimeSettings {
                max_instances: 2,
                ..RuntimeSettings::default()
            };
        },
    )
    .await;
    for i in 0..8 {
        let r = fort
            .client
            .post(fort.webhook())
            .json(&serde_json::json!([{
                "id": format!("slow-{i}"),
                "topic": "/ws",
                "subject": "models/m/sleep-200",
                "eventType": "Microsoft.MachineLearningServices.ModelRegistered",
                "data": {"modelName": "m", "modelVersion": "1"}
            }]))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let good = fort.good_sink.clone();
    wait("all delivered to both", || {
        sink.received().len() == 8 && good.received().len() == 8
    })
    .await;
    // Those that found no instance free waited, uncounted: every one
    // arrived on its first attempt, none was retried or dead-lettered.
    let stats = fort.server.dispatcher.stats();
    assert!(stats.postponed.load(std::sync::atomic::Ordering::SeqCst) > 0);
    assert_eq!(stats.retry.load(std::sync::atomic::Ordering::SeqCst), 0);
    let all: Vec<_> = sink.received().into_iter().chain(good.received()).collect();
    assert!(all.iter().all(|r| r.json()["attempt"] == 1));
    assert!(
        fort.server
            .dispatcher
            .journal()
            .dead_letters(None)
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_plugin_asking_for_more_concurrency_than_the_pool_holds_is_capped() {
    let fort = Fort::start(
        vec![Extra::new(
            "wide",
            "audit-counter",
            "[limits]\nmax_concurrency = 1024\n",
            PluginGrant {
                caps: gridlet::plugin::LimitCaps {
                    max_concurrency: 1024,
                    ..Default::default()
                },
                ..PluginGrant::default()
            },
        )],
        |s| {
            s.runtime = RuntimeSettings {
                max_instances: 16,
                ..RuntimeSettings::default()
            };
        },
    )
    .await;
    let status = fort.status("wide").await;
    assert_eq!(status["limits"]["maxConcurrency"], 16);
    assert_eq!(
        status["warnings"],
        serde_json::json!([
            "limits.max_concurrency: 1024 is more than the instance pool holds (16); running with 16"
        ])
    );
    fort.good_still_delivers().await;
}
