//! `gridlet plugins [NAME]`: what serves, what was rejected and why, and how
//! deliveries went, through the admin API.

use super::admin_api::AdminApi;
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `gridlet plugins`.
#[derive(Args, Debug)]
pub struct PluginsArgs {
    /// Show this plugin in full (JSON) instead of the table.
    name: Option<String>,
    #[command(flatten)]
    api: AdminApi,
}

/// List the plugins, or show one.
pub async fn plugins(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("warn");
    let client = reqwest::Client::new();
    if let Some(name) = &args.name {
        let value = args
            .api
            .call(client.get(args.api.url(&format!("/admin/plugins/{name}"))))
            .await?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    let value = args
        .api
        .call(client.get(args.api.url("/admin/plugins")))
        .await?;
    let plugins = value["plugins"].as_array().cloned().unwrap_or_default();
    if plugins.is_empty() {
        println!("no plugins");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24}  {:<9}  {:<12}  {:<24}  {:>9}  {:>7}  {:>5}  filter / problem",
        "plugin", "state", "hash", "loaded", "delivered", "retried", "dead"
    );
    for p in plugins {
        let text = |key: &str| p[key].as_str().unwrap_or("-").to_string();
        let hash = text("hash");
        let problem = match p["rejected"].as_object() {
            Some(r) => format!(
                "REJECTED {}: {}",
                r.get("hash")
                    .and_then(Value::as_str)
                    .map_or("-", |h| h.get(..12).unwrap_or(h)),
                r.get("reason").and_then(Value::as_str).unwrap_or("")
            ),
            None => text("filter"),
        };
        println!(
            "{:<24}  {:<9}  {:<12}  {:<24}  {:>9}  {:>7}  {:>5}  {problem}",
            text("name"),
            text("state"),
            hash.get(..12).unwrap_or(&hash),
            text("loadedAt"),
            p["counters"]["delivered"],
            p["counters"]["retried"],
            p["counters"]["deadLettered"],
        );
    }
    Ok(ExitCode::SUCCESS)
}
