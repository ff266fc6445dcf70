//! The admin API as the CLI subcommands reach it: where, with which token,
//! and errors turned into one readable line.

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long an idempotent admin request answered 503 is tried again.
pub const RETRY_FOR: Duration = Duration::from_secs(15);

/// Where the admin API is and its token (shared by the admin subcommands).
#[derive(Args, Debug)]
pub struct AdminApi {
    /// The gridlet host.
    #[arg(
        long,
        global = true,
        env = "GRIDLET_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// The admin API token.
    #[arg(
        long,
        global = true,
        env = "GRIDLET_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

impl AdminApi {
    /// `path` under the host, e.g. `/admin/plugins`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    /// Send `request` with the token; the JSON answer, or an error naming
    /// the status and the API's explanation. An idempotent request (GET,
    /// PUT, DELETE) answered 503 — the journal or the cluster cannot answer
    /// *now*, e.g. a stream a cluster has just created is not yet on every
    /// node — is sent again after a growing pause, for up to
    /// [`RETRY_FOR`], saying so on stderr; a POST never is (a replay sent
    /// twice could deliver twice).
    pub async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let token = self
            .token
            .as_deref()
            .context("the admin API needs a token: --token or GRIDLET_ADMIN_TOKEN")?;
        let mut request = request
            .bearer_auth(token)
            .header("content-type", "application/json");
        let idempotent = request
            .try_clone()
            .and_then(|r| r.build().ok())
            .is_some_and(|r| [Method::GET, Method::PUT, Method::DELETE].contains(r.method()));
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        loop {
            let again = if idempotent {
                request.try_clone()
            } else {
                None
            };
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach {}", self.url))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                return Ok(value);
            }
            let why = format!(
                "{status}: {}",
                value
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or(&value.to_string())
            );
            match again {
                Some(next)
                    if status == StatusCode::SERVICE_UNAVAILABLE
                        && started.elapsed() + pause <= RETRY_FOR =>
                {
                    eprintln!("gridlet: {why} — trying again in {} ms", pause.as_millis());
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    request = next;
                }
                _ => bail!("{why}"),
            }
        }
    }
}
