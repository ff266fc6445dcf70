//! `gridlet plugins [NAME]`: what serves, what was rejected and why, and how
//! deliveries went, through the admin API; `gridlet plugins push` and
//! `remove`: plugins for every host of a cluster.

use super::admin_api::AdminApi;
use super::one_line::one_line;
use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `gridlet plugins`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PluginsArgs {
    /// Show this plugin in full (JSON) instead of the table.
    name: Option<String>,
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    api: AdminApi,
}

/// What to do with the cluster's plugins.
#[derive(Subcommand, Debug)]
enum Action {
    /// Store a plugin for every host of the cluster (cluster mode): its
    /// `.wasm` and, if given (else `<name>.toml` beside it, if present), its
    /// manifest. Each host loads it as a file in its plugins folder.
    Push {
        /// The plugin: `<name>.wasm`.
        wasm: PathBuf,
        /// Its manifest (default: the `.toml` beside the `.wasm`, if any).
        manifest: Option<PathBuf>,
    },
    /// Remove a pushed plugin from every host of the cluster.
    Remove {
        /// The plugin's name.
        name: String,
    },
}

/// List the plugins, or show one; push or remove a cluster's plugin.
pub async fn plugins(args: PluginsArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("warn");
    let client = reqwest::Client::new();
    match &args.action {
        Some(Action::Push { wasm, manifest }) => {
            let name = gridlet::plugin::plugin_name(wasm)?;
            let bytes = std::fs::read(wasm).with_context(|| format!("{}", wasm.display()))?;
            let manifest = match manifest {
                Some(path) => Some(
                    std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?,
                ),
                None => std::fs::read_to_string(gridlet::plugin::sidecar(wasm)).ok(),
            };
            let body = json!({
                "wasm": base64::engine::general_purpose::STANDARD.encode(&bytes),
                "manifest": manifest,
            });
            let value = args
                .api
                .call(
                    client
                        .put(args.api.url(&format!("/admin/cluster/plugins/{name}")))
                        .json(&body),
                )
                .await?;
            println!(
                "pushed {name} ({} bytes, {}); every host loads it",
                value["bytes"],
                value["hash"]
                    .as_str()
                    .and_then(|h| h.get(..12))
                    .unwrap_or("-")
            );
            return Ok(ExitCode::SUCCESS);
        }
        Some(Action::Remove { name }) => {
            let value = args
                .api
                .call(client.delete(args.api.url(&format!("/admin/cluster/plugins/{name}"))))
                .await?;
            if value["removed"] == json!(true) {
                println!("removed {name} from the cluster");
            } else {
                println!("{name} was not pushed to the cluster");
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
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
        // One row per plugin: a rejection's reason may span lines.
        let text = |key: &str| one_line(p[key].as_str().unwrap_or("-")).into_owned();
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
        let problem = one_line(&problem);
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
