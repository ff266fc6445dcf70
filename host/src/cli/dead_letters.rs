//! `gridlet dead-letters list|show|replay|purge`: the admin API from the
//! command line.

use super::admin_api::AdminApi;
use super::one_line::one_line;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::process::ExitCode;

/// Arguments of `gridlet dead-letters`.
#[derive(Args, Debug)]
pub struct DeadLetterArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    api: AdminApi,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List dead letters, newest first.
    List(Filter),
    /// Show one dead letter with its event.
    Show {
        /// The dead letter's id.
        id: i64,
    },
    /// Deliver dead letters again (a new delivery each); one replayed
    /// before is skipped unless --force.
    Replay {
        #[command(flatten)]
        choice: Choice,
        /// Replay dead letters that were replayed before, too.
        #[arg(long)]
        force: bool,
    },
    /// Forget dead letters.
    Purge(Choice),
}

#[derive(Args, Debug)]
struct Filter {
    /// Only this plugin's.
    #[arg(long)]
    plugin: Option<String>,
    /// Only those dead-lettered within this long (`90s`, `30m`, `12h`, `7d`).
    #[arg(long)]
    since: Option<String>,
}

#[derive(Args, Debug)]
struct Choice {
    /// These ids.
    ids: Vec<i64>,
    /// Every dead letter the filter selects.
    #[arg(long, conflicts_with = "ids")]
    all: bool,
    #[command(flatten)]
    filter: Filter,
}

/// Run the action.
pub async fn dead_letters(args: DeadLetterArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("warn");
    let base = args.api.url("/admin/dead-letters");
    let client = reqwest::Client::new();
    let request = match &args.action {
        Action::List(filter) => client.get(&base).query(&query(filter)?),
        Action::Show { id } => client.get(format!("{base}/{id}")),
        Action::Replay { choice, force } => {
            let mut body = body(choice)?;
            body["force"] = json!(force);
            client.post(format!("{base}/replay")).body(body.to_string())
        }
        Action::Purge(choice) => client
            .post(format!("{base}/purge"))
            .body(body(choice)?.to_string()),
    };
    let value = args.api.call(request).await?;
    match &args.action {
        Action::List(_) => print_list(&value),
        _ => println!("{}", serde_json::to_string_pretty(&value)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// A string field of a listed dead letter as one line of terminal text:
/// event ids and types are the sender's, a reason may quote a plugin.
fn text(value: &Value) -> Cow<'_, str> {
    one_line(value.as_str().unwrap_or(""))
}

fn print_list(value: &Value) {
    let letters = value["deadLetters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    println!(
        "{:>6}  {:<24}  {:<20}  {:<28}  {:>8}  event",
        "id", "dead-lettered", "plugin", "reason", "attempts"
    );
    for d in letters {
        let replayed = if d["replayedTime"].is_string() {
            "  (replayed)"
        } else {
            ""
        };
        println!(
            "{:>6}  {:<24}  {:<20}  {:<28}  {:>8}  {} {}{replayed}",
            d["id"],
            text(&d["deadLetteredTime"]),
            text(&d["plugin"]),
            text(&d["deadLetterReason"]),
            d["deliveryAttempts"],
            text(&d["eventType"]).rsplit('.').next().unwrap_or(""),
            text(&d["eventId"]),
        );
    }
}

fn query(filter: &Filter) -> anyhow::Result<Vec<(&'static str, String)>> {
    let mut q = Vec::new();
    if let Some(plugin) = &filter.plugin {
        q.push(("plugin", plugin.clone()));
    }
    if let Some(since) = &filter.since {
        q.push((
            "since",
            (gridlet::journal::now_ms() - ago_ms(since)?).to_string(),
        ));
    }
    Ok(q)
}

fn body(choice: &Choice) -> anyhow::Result<Value> {
    if choice.ids.is_empty() && !choice.all {
        bail!("give dead letter ids, or --all (with --plugin / --since to narrow it)");
    }
    let since = match &choice.filter.since {
        Some(s) => Some(gridlet::journal::now_ms() - ago_ms(s)?),
        None => None,
    };
    Ok(
        json!({ "ids": choice.ids, "all": choice.all, "plugin": choice.filter.plugin, "since": since }),
    )
}

/// `90s`, `30m`, `12h`, `7d` → milliseconds.
fn ago_ms(text: &str) -> anyhow::Result<i64> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .parse()
        .with_context(|| format!("--since {text}: expected a number and s, m, h or d"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {text}: expected a number and s, m, h or d"),
    };
    Ok(n * unit_ms)
}
