//! The admin API as the CLI subcommands reach it: where, with which token,
//! and errors turned into one readable line.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

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
    /// the status and the API's explanation.
    pub async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let token = self
            .token
            .as_deref()
            .context("the admin API needs a token: --token or GRIDLET_ADMIN_TOKEN")?;
        let response = request
            .bearer_auth(token)
            .header("content-type", "application/json")
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            bail!(
                "{status}: {}",
                value
                    .get("detail")
                    .and_then(Value::as_str)
                    .unwrap_or(&value.to_string())
            );
        }
        Ok(value)
    }
}
