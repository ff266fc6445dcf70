//! The load: Event Grid batches of RunCompleted events with ids unique per
//! run (gridlet drops a repeated (topic, id) as a duplicate), sent by `wrk`
//! for fixed-duration runs, or by this process's own senders for a fixed
//! number of events. Either way a second process on the same two cores.

use anyhow::{Context, Result, bail};
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOPIC: &str =
    "/subscriptions/x/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w";

/// One RunCompleted event; `{id}` and `{run}` filled in.
pub fn event(id: &str, run: &str) -> String {
    format!(
        r#"{{"id":"{id}","topic":"{TOPIC}","subject":"experiments/e/runs/{run}","eventType":"Microsoft.MachineLearningServices.RunCompleted","eventTime":"2026-11-28T00:00:00Z","data":{{"experimentId":"e","experimentName":"nightly","runId":"{run}","runType":"azureml.scriptrun","runTags":{{}},"runProperties":{{}}}},"dataVersion":"2","metadataVersion":"1"}}"#
    )
}

/// A batch of `size` events, ids prefixed with `prefix`.
pub fn batch(prefix: &str, size: usize) -> String {
    let events: Vec<String> = (0..size)
        .map(|i| event(&format!("{prefix}-{i}"), &format!("r{i}")))
        .collect();
    format!("[{}]", events.join(","))
}

/// What a load run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests answered 2xx.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Request latency percentiles.
    pub p50: Duration,
    pub p99: Duration,
}

impl Load {
    /// 2xx requests per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// `wrk` against `url` for `seconds` with `connections` on 2 threads,
/// POSTing batches of `size` unique events.
pub fn wrk(url: &str, size: usize, connections: u32, seconds: u32) -> Result<Load> {
    let script = tempfile::Builder::new().suffix(".lua").tempfile()?;
    let template = event("%d-%d-%d", "r%d");
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .context("url without a path")?;
    // Lua's string.format: the template's only `%` are its five `%d`
    // (thread, request, event; the run id twice).
    std::fs::write(
        script.path(),
        format!(
            r#"local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local events = {{}}
  for i = 1, {size} do
    events[i] = string.format([[{template}]], tid, n, i, i, i)
  end
  return wrk.format("POST", "{path}", {{["content-type"] = "application/json"}}, "[" .. table.concat(events, ",") .. "]")
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"#
        ),
    )?;
    let out = std::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(script.path())
        .arg(url)
        .stderr(Stdio::inherit())
        .output()
        .context("wrk (Debian package `wrk`; `cargo xtask bench` installs it)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        bail!("wrk printed no result: {stdout}");
    };
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let [requests, failed, duration_us, p50, p99] = n[..] else {
        bail!("wrk result {line}");
    };
    Ok(Load {
        ok: requests.saturating_sub(failed),
        failed,
        elapsed: Duration::from_micros(duration_us),
        p50: Duration::from_micros(p50),
        p99: Duration::from_micros(p99),
    })
}

/// `senders` concurrent keep-alive clients POST `requests` batches of
/// `size` events in all, each waiting for its answer before the next.
pub async fn send(url: &str, run: &str, size: usize, requests: usize, senders: usize) -> Load {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (url, run) = (url.to_string(), run.to_string());
        let mine = requests / senders + usize::from(s < requests % senders);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::with_capacity(mine);
            let mut failed = 0u64;
            for n in 0..mine {
                let body = batch(&format!("{run}-{s}-{n}"), size);
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                latencies.push(t.elapsed());
                failed += u64::from(!ok);
            }
            (latencies, failed)
        }));
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    for t in tasks {
        if let Ok((l, f)) = t.await {
            latencies.extend(l);
            failed += f;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: usize| {
        latencies
            .get(latencies.len() * q / 100)
            .copied()
            .unwrap_or_default()
    };
    Load {
        ok: latencies.len() as u64 - failed,
        failed,
        elapsed,
        p50: at(50),
        p99: at(99),
    }
}
