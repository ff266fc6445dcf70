//! `gridlet send`: behave like Event Grid toward any webhook — the
//! handshake first, then the deliveries with Event Grid's headers — and say
//! what happened at each step. For testing your endpoint without a tunnel.

use anyhow::{Context, bail};
use clap::Args;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `gridlet send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// Events: an Event Grid array, a CloudEvents batch, or a single event.
    events: PathBuf,
    /// The webhook URL.
    #[arg(long)]
    to: String,
    /// Deliver in the CloudEvents 1.0 schema (structured mode) instead of Event Grid's.
    #[arg(long)]
    cloudevents: bool,
    /// With --cloudevents: binary mode (attributes in `ce-*` headers, data as the body).
    #[arg(long, requires = "cloudevents")]
    binary: bool,
    /// Send all events in one request (Event Grid's batching) instead of one
    /// per request. Binary mode has no batch form: with --binary every event
    /// still goes, one request each.
    #[arg(long)]
    batch: bool,
    /// The secret, sent as `?<secret-param>=<secret>` like a subscription's endpoint URL.
    #[arg(long, env = "GRIDLET_SEND_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The query parameter for --secret.
    #[arg(long, default_value = "code")]
    secret_param: String,
    /// The subscription name to send in `aeg-subscription-name`.
    #[arg(long, default_value = "gridlet-send")]
    subscription: String,
    /// The origin to announce in the CloudEvents handshake.
    #[arg(long, default_value = "eventgrid.azure.net")]
    origin: String,
    /// Skip the handshake.
    #[arg(long)]
    no_handshake: bool,
}

/// Characters the CloudEvents HTTP binding says to percent-encode in headers.
const HEADER_UNSAFE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Run the handshake and the deliveries; exit 1 if any step failed.
pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("warn");
    let bytes = std::fs::read(&args.events)
        .with_context(|| format!("cannot read {}", args.events.display()))?;
    gridlet::event::parse_document(&bytes).with_context(|| format!("{}", args.events.display()))?;
    let raw: Vec<Value> = match serde_json::from_slice(&bytes)? {
        Value::Array(items) => items,
        one => vec![one],
    };
    let url = match &args.secret {
        Some(secret) => {
            let sep = if args.to.contains('?') { '&' } else { '?' };
            let secret = utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC);
            format!("{}{sep}{}={secret}", args.to, args.secret_param)
        }
        None => args.to.clone(),
    };
    // What is printed never carries a secret: query values are masked.
    let shown = &masked(&args.to);
    let client = Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut ok = true;

    if !args.no_handshake {
        ok &= if args.cloudevents {
            options_handshake(&client, &url, shown, &args.origin).await?
        } else {
            validation_handshake(&client, &url, shown, &args.subscription).await?
        };
        if !ok {
            println!("handshake failed: not delivering");
            return Ok(ExitCode::from(1));
        }
    }

    let events: Vec<Value> = if args.cloudevents {
        raw.iter().map(to_cloud_event).collect()
    } else {
        raw.iter()
            .map(to_event_grid)
            .collect::<anyhow::Result<_>>()?
    };
    if args.binary && args.batch && events.len() > 1 {
        println!(
            "binary mode has no batch form: sending the {} events one request each",
            events.len()
        );
    }
    let groups: Vec<Vec<Value>> = if args.batch && !args.binary {
        vec![events]
    } else {
        events.into_iter().map(|e| vec![e]).collect()
    };
    for (i, group) in groups.iter().enumerate() {
        let request = if args.binary {
            binary(client.post(&url), &group[0])
        } else if args.cloudevents && args.batch {
            client
                .post(&url)
                .header(
                    "content-type",
                    "application/cloudevents-batch+json; charset=utf-8",
                )
                .body(serde_json::to_vec(group)?)
        } else if args.cloudevents {
            client
                .post(&url)
                .header(
                    "content-type",
                    "application/cloudevents+json; charset=utf-8",
                )
                .body(serde_json::to_vec(&group[0])?)
        } else {
            client
                .post(&url)
                .header("content-type", "application/json; charset=utf-8")
                .header("aeg-event-type", "Notification")
                .header(
                    "aeg-data-version",
                    group[0]["dataVersion"].as_str().unwrap_or(""),
                )
                .header("aeg-metadata-version", "1")
                .body(serde_json::to_vec(group)?)
        };
        let request = request
            .header("aeg-subscription-name", &args.subscription)
            .header("aeg-delivery-count", "0")
            .header("webhook-request-origin", &args.origin);
        let ids: Vec<&str> = group.iter().filter_map(|e| e["id"].as_str()).collect();
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                println!(
                    "deliver {} ({}) → {status} {}",
                    i + 1,
                    ids.join(", "),
                    one_line(&body)
                );
                ok &= status.is_success();
            }
            Err(e) => {
                println!(
                    "deliver {} ({}) → failed: {}",
                    i + 1,
                    ids.join(", "),
                    e.without_url()
                );
                ok = false;
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn validation_handshake(
    client: &Client,
    url: &str,
    shown: &str,
    subscription: &str,
) -> anyhow::Result<bool> {
    let code = format!("gridlet-send-{}", std::process::id());
    let event = json!([{
        "id": format!("validation-{code}"),
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/gridlet/providers/Microsoft.EventGrid/eventSubscriptions/gridlet-send",
        "subject": "",
        "data": { "validationCode": code, "validationUrl": "https://gridlet.invalid/validate" },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-01-01T00:00:00Z",
        "metadataVersion": "1",
        "dataVersion": "1"
    }]);
    let response = client
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("aeg-event-type", "SubscriptionValidation")
        .header("aeg-subscription-name", subscription)
        .header("aeg-delivery-count", "0")
        .body(event.to_string())
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            println!(
                "validation handshake with {shown} → failed: {}",
                e.without_url()
            );
            return Ok(false);
        }
    };
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let answered = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["validationResponse"].as_str().map(str::to_string));
    let ok = status.as_u16() == 200 && answered.as_deref() == Some(code.as_str());
    println!(
        "validation handshake with {shown} → {status}, validationResponse {}",
        match (&answered, ok) {
            (_, true) => "matches".to_string(),
            (Some(other), false) => format!("{other:?} does not match {code:?}"),
            (None, false) => format!("missing ({})", one_line(&body)),
        }
    );
    Ok(ok)
}

async fn options_handshake(
    client: &Client,
    url: &str,
    shown: &str,
    origin: &str,
) -> anyhow::Result<bool> {
    let response = client
        .request(Method::OPTIONS, url)
        .header("webhook-request-origin", origin)
        .header("webhook-request-rate", "120")
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            println!(
                "CloudEvents handshake with {shown} → failed: {}",
                e.without_url()
            );
            return Ok(false);
        }
    };
    let status = response.status();
    let allowed = response
        .headers()
        .get("webhook-allowed-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let rate = response
        .headers()
        .get("webhook-allowed-rate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let ok = status.is_success() && allowed.as_deref().is_some_and(|a| a == origin || a == "*");
    println!(
        "CloudEvents handshake with {shown} → {status}, WebHook-Allowed-Origin {}, WebHook-Allowed-Rate {rate}",
        allowed.as_deref().unwrap_or("missing")
    );
    Ok(ok)
}

/// An Event Grid event as is, or a CloudEvent mapped back.
fn to_event_grid(event: &Value) -> anyhow::Result<Value> {
    if event.get("specversion").is_none() {
        return Ok(event.clone());
    }
    if event.get("data_base64").is_some() {
        bail!("cannot send binary data (`data_base64`) in the Event Grid schema");
    }
    Ok(json!({
        "id": event["id"],
        "topic": event["source"],
        "subject": event.get("subject").cloned().unwrap_or(Value::String(String::new())),
        "eventType": event["type"],
        "eventTime": event.get("time").cloned().unwrap_or(Value::Null),
        "data": event.get("data").cloned().unwrap_or(Value::Null),
        "dataVersion": "",
        "metadataVersion": "1",
    }))
}

/// A CloudEvent as is, or an Event Grid event mapped as Event Grid maps it.
fn to_cloud_event(event: &Value) -> Value {
    if event.get("specversion").is_some() {
        return event.clone();
    }
    let mut ce = json!({
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
    });
    if let Some(data) = event.get("data") {
        ce["data"] = data.clone();
    }
    ce
}

/// Binary mode: attributes as percent-encoded `ce-*` headers, data as the body.
fn binary(mut request: RequestBuilder, event: &Value) -> RequestBuilder {
    let Value::Object(attributes) = event else {
        return request;
    };
    for (name, value) in attributes {
        if matches!(name.as_str(), "data" | "data_base64" | "datacontenttype") {
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        request = request.header(
            format!("ce-{name}"),
            utf8_percent_encode(&text, HEADER_UNSAFE).to_string(),
        );
    }
    let content_type = attributes
        .get("datacontenttype")
        .and_then(Value::as_str)
        .unwrap_or("application/json");
    let body = attributes
        .get("data")
        .map(|d| d.to_string())
        .unwrap_or_default();
    request.header("content-type", content_type).body(body)
}

/// `url` with every query value replaced by `***` (`?code=***`): endpoint
/// URLs carry their secret in the query.
fn masked(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) => format!("{name}=***"),
            None => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn one_line(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}
