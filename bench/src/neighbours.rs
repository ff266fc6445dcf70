//! Neighbours: how a well-behaved plugin fares beside a hostile one. A
//! steady stream of single events (one every 20 ms) goes to a gridlet
//! serving "good" (the echo fixture, posting each event to a sink here) and,
//! in every row but the first, the hostile fixture doing one thing on every
//! event: spinning until its deadline, growing memory until its cap,
//! flooding logs, opening connections to a server that answers slowly,
//! writing 1 MiB key-value entries until its quota, or reading one in a
//! loop; and, in the last row, a Python plugin replaced by a new build
//! every 2 s, so that the host compiles all the time. Measured: the time from
//! the webhook POST to the sink receiving good's request (good's end to
//! end), and the webhook's answer time (ack), p50 and p99, each next to the
//! same figure alone.

use crate::load;
use crate::process::{Gridlet, Launch, Paths, PluginCopy, install_into};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One event every this often.
const INTERVAL: Duration = Duration::from_millis(20);

/// How long the slow route takes to answer (connection flood).
const SLOW: Duration = Duration::from_secs(2);

/// The hostile rows: what the table calls it, its `behaviour`.
const HOSTILE: [(&str, &str); 7] = [
    ("spin until the deadline", "loop"),
    ("memory growth to the cap", "memory"),
    ("log flood (100,000 + 100,000 lines)", "flood"),
    ("connection flood (1,000 held)", "connect-flood"),
    ("key-value flood (1 MiB values)", "kv-flood"),
    ("key-value read flood (1 MiB value)", "kv-read-flood"),
    ("a Python plugin rebuilt every 2 s (compiles)", RECOMPILE),
];

/// Not a behaviour of the hostile fixture: a plugin author replacing a
/// Python plugin with a new build every 2 s, so the host compiles all the
/// time (each build differs by a custom section, so no compile is cached).
const RECOMPILE: &str = "recompile";

/// Write a new build of the Python example as plugin `churn` every 2 s.
async fn rebuild_all_the_time(python: PathBuf, folder: PathBuf) -> Result<()> {
    let python = std::fs::read(python)?;
    let staged = tempfile::tempdir()?;
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    loop {
        ticker.tick().await;
        // A custom section (id 0) named "build" holding a fresh nonce.
        let nonce = format!("{:?}", Instant::now());
        let mut payload = vec![5u8];
        payload.extend_from_slice(b"build");
        payload.extend_from_slice(nonce.as_bytes());
        let mut build = python.clone();
        build.push(0);
        build.push(u8::try_from(payload.len())?);
        build.extend_from_slice(&payload);
        let file = staged.path().join("churn.wasm");
        std::fs::write(&file, &build)?;
        install_into(&folder, "churn", &file)?;
    }
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Where "good" posts (`/good`, arrival times by event id) and where the
/// connection flood goes (`/slow`).
struct Sink {
    addr: std::net::SocketAddr,
    arrivals: Arrivals,
    server: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> Result<Self> {
        let arrivals = Arrivals::default();
        let app = Router::new()
            .route("/good", post(arrived))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(SLOW).await;
                    "late"
                }),
            )
            .with_state(arrivals.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            arrivals,
            server,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn arrived(State(arrivals): State<Arrivals>, body: String) -> &'static str {
    let at = Instant::now();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
        && let Some(id) = v["id"].as_str()
    {
        arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_string())
            .or_insert(at);
    }
    "ok"
}

/// p50 and p99 of a row, good's and the ack's.
struct Row {
    beside: &'static str,
    good: (Duration, Duration),
    ack: (Duration, Duration),
    sent: usize,
    delivered: usize,
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let at = |q: usize| {
        v.get((v.len() * q / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    (at(50), at(99))
}

/// The operator's gridlet.toml for the row: good may post to the sink;
/// the hostile plugin gets its behaviour, and may reach the slow route.
fn config(sink: &Sink, behaviour: Option<&str>) -> String {
    let host = sink.addr.to_string();
    let mut toml = format!(
        "[plugins.good]\nallowed_hosts = [\"{host}\"]\nallow_private_networks = [\"127.0.0.1/32\"]\n\
         config = {{ name = \"good\", sink_url = \"http://{host}/good\" }}\n"
    );
    if let Some(b) = behaviour {
        let _ = write!(
            toml,
            "\n[plugins.hostile]\nallowed_hosts = [\"{host}\"]\nallow_private_networks = [\"127.0.0.1/32\"]\n\
             config = {{ behaviour = \"{b}\", url = \"http://{host}/slow\" }}\n"
        );
    }
    toml
}

async fn row(
    paths: &Paths,
    beside: &'static str,
    behaviour: Option<&str>,
    seconds: u64,
) -> Result<Row> {
    let sink = Sink::start().await?;
    let good = paths.test_plugin("echo");
    let hostile = paths.test_plugin("hostile");
    let mut plugins = vec![PluginCopy {
        name: "good".into(),
        wasm: &good,
        manifest: "",
    }];
    if behaviour.is_some_and(|b| b != RECOMPILE) {
        plugins.push(PluginCopy {
            name: "hostile".into(),
            wasm: &hostile,
            manifest: "",
        });
    }
    let config = config(&sink, behaviour.filter(|b| *b != RECOMPILE));
    // The rebuilds compile into a cache of their own (they are never hits).
    let cache = tempfile::tempdir()?;
    let gridlet = Gridlet::launch(
        paths,
        Launch {
            plugins: &plugins,
            fsync: true,
            config: &config,
            compile_cache: (behaviour == Some(RECOMPILE)).then_some(cache.path()),
            ..Launch::default()
        },
    )
    .await?;
    let churn = match behaviour {
        Some(RECOMPILE) => Some(tokio::spawn(rebuild_all_the_time(
            paths.plugin("drift-guard"),
            gridlet.plugins_folder(),
        ))),
        _ => None,
    };
    // Let the hostile plugin get going (and good warm) before measuring.
    let client = reqwest::Client::new();
    send_one(&client, &gridlet.url, "warm").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    sink.arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();

    let count = (seconds * 1000 / INTERVAL.as_millis() as u64) as usize;
    let mut ticker = tokio::time::interval(INTERVAL);
    let mut sends = Vec::with_capacity(count);
    for n in 0..count {
        ticker.tick().await;
        let (client, url) = (client.clone(), gridlet.url.clone());
        let id = format!("n-{n}");
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = send_one(&client, &url, &id).await.is_ok();
            (id, sent, sent.elapsed(), ok)
        }));
    }
    let mut acks = Vec::with_capacity(count);
    let mut sent_at = HashMap::with_capacity(count);
    for s in sends {
        let (id, sent, ack, ok) = s.await?;
        if ok {
            acks.push(ack);
            sent_at.insert(id, sent);
        }
    }
    // Good's deliveries still under way finish (or not) within 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sink
        .arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .len()
        < sent_at.len()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = sink
        .arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let trips: Vec<Duration> = sent_at
        .iter()
        .filter_map(|(id, sent)| arrivals.get(id).map(|at| at.duration_since(*sent)))
        .collect();
    if let Some(churn) = churn {
        // It rebuilds until stopped: finished early, it failed.
        if churn.is_finished() {
            churn.await?.context("rebuilding the Python plugin")?;
        } else {
            churn.abort();
        }
    }
    drop(gridlet);
    Ok(Row {
        beside,
        delivered: trips.len(),
        good: percentiles(trips),
        ack: percentiles(acks),
        sent: count,
    })
}

/// POST one RunCompleted event with this id; an error unless 2xx.
async fn send_one(client: &reqwest::Client, url: &str, id: &str) -> Result<()> {
    let body = format!("[{}]", load::event(id, "r"));
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{}", r.status());
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The median of each figure over the rounds (`rows` holds one row per
/// round, all of the same configuration).
fn median_row(rows: &[Row]) -> Row {
    let median = |f: &dyn Fn(&Row) -> Duration| {
        let mut v: Vec<Duration> = rows.iter().map(f).collect();
        v.sort();
        v[v.len() / 2]
    };
    Row {
        beside: rows[0].beside,
        good: (median(&|r| r.good.0), median(&|r| r.good.1)),
        ack: (median(&|r| r.ack.0), median(&|r| r.ack.1)),
        sent: rows.iter().map(|r| r.sent).sum(),
        delivered: rows.iter().map(|r| r.delivered).sum(),
    }
}

/// The section's Markdown. Rows run in interleaved rounds (alone, then
/// beside each hostile plugin, again), and each figure is the median over
/// the rounds: a p99 from one short row on a shared machine swings with
/// the neighbours' load, in the baseline as much as anywhere.
pub async fn run(paths: &Paths, quick: bool) -> Result<String> {
    let (rounds, seconds) = if quick { (1, 3) } else { (3, 6) };
    let configs: Vec<(&'static str, Option<&'static str>)> =
        std::iter::once(("nothing (alone)", None))
            .chain(HOSTILE.iter().map(|(beside, b)| (*beside, Some(*b))))
            // `GRIDLET_BENCH_ONLY=<behaviour>`: alone and that row (profiling).
            .filter(|(_, b)| match (std::env::var("GRIDLET_BENCH_ONLY"), b) {
                (Ok(only), Some(b)) => only == *b,
                _ => true,
            })
            .collect();
    let mut measured: Vec<Vec<Row>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for ((beside, behaviour), rows) in configs.iter().zip(&mut measured) {
            eprintln!("bench: neighbours: round {round}/{rounds}, beside {beside}");
            rows.push(
                row(paths, beside, *behaviour, seconds)
                    .await
                    .with_context(|| format!("beside {beside}"))?,
            );
        }
    }
    let rows: Vec<Row> = measured.iter().map(|r| median_row(r)).collect();
    let alone = &rows[0];
    let mut md = format!(
        "One event every {} ms for {seconds} s per row, {rounds} interleaved rounds (alone, then \
         beside each hostile plugin, again); each figure is the median over the rounds. Good's end \
         to end (webhook POST to its request reaching the sink) and the webhook's ack, in ms.\n\n\
         | beside | good p50 | good p99 | good p99 vs alone | ack p50 | ack p99 | good delivered |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        INTERVAL.as_millis()
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {:.1} | {:.1} | {:.2}× | {:.1} | {:.1} | {}/{} |",
            r.beside,
            ms(r.good.0),
            ms(r.good.1),
            ms(r.good.1) / ms(alone.good.1).max(0.001),
            ms(r.ack.0),
            ms(r.ack.1),
            r.delivered,
            r.sent
        );
    }
    Ok(md)
}
