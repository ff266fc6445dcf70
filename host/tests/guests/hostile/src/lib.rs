//! One component, many misbehaviours, picked by the `behaviour` config key so
//! that one build serves every sandbox test:
//!
//! - `loop`: spin forever (deadline, or fuel when the manifest sets it);
//! - `memory`: allocate until the memory cap stops it;
//! - `recursion`: recurse until the wasm stack runs out;
//! - `trap`: panic;
//! - `flood`: write 100,000 log lines and 100,000 stdout lines, then succeed;
//! - `probe`: try a file, the environment, a socket and a host that is not
//!   granted; log what happened to each and succeed only if all were denied;
//! - `reach`: POST to every URL in `targets` (space-separated), log how each
//!   went (`reach URL: denied | prohibited | failed: … | status N`), and
//!   reject if any answered;
//! - `deny-flood`: send `count` (default 5,000) requests to `forbidden_url`
//!   (followed by `pad` letters, default none), a host that is not granted,
//!   then succeed;
//! - `connect-flood`: start `count` (default 1,000) requests to `url` without
//!   waiting for them, log how many the host refused, then succeed;
//! - `handle-flood`: create resources (header fields) until the host refuses
//!   one (a trap);
//! - `kv-flood`: write 1 MiB values under new keys until the host refuses
//!   one, log why, then succeed;
//! - `kv-read-flood`: write one value of `size` bytes (default 1 MiB), then
//!   read it `count` times (default: until the deadline stops it), then
//!   succeed;
//! - `context-flood`: write 2,000 log lines, each with a `size`-byte
//!   (default 1 MiB) `wasi:logging` context and a one-byte message, then
//!   succeed;
//! - `fields-bomb`: create header fields, each holding `count` (default 1)
//!   8 KiB values, and keep them all, until the host refuses (a trap);
//! - `body-bomb`: create requests that are never sent and write into each
//!   one's body as much as the host takes without blocking, keeping them
//!   all, until the host refuses (a trap);
//! - `request-parts`: give an unsent request an authority, a path and a
//!   method of `size` bytes each (default 1 MiB), log whether each was
//!   taken (`request part: authority taken|refused`, …); with `hoard`, keep
//!   such requests until the host refuses (a trap), else succeed;
//! - `forge-log`: log, and print to stdout, lines that carry a forged line
//!   of the host's log after a newline, a carriage return and a terminal
//!   escape sequence, then succeed.
//! - `long-reason`: reject (or, with `outcome = retry`, ask for a retry)
//!   with a reason of `size` bytes (default 8 MiB): `pad` letters (default
//!   none), its `token` config value, then letters.

use gridlet_plugin::{config, export, http, log, Event, HandlerError, Plugin};
use std::hint::black_box;

struct Hostile;

impl Plugin for Hostile {
    fn handle(_event: Event) -> Result<(), HandlerError> {
        match config::get("behaviour").as_deref() {
            Some("loop") => spin(),
            Some("memory") => hoard(),
            Some("recursion") => {
                black_box(recurse(black_box(1)));
                Ok(())
            }
            Some("trap") => panic!("hostile plugin panicked on purpose"),
            Some("flood") => flood(),
            Some("probe") => probe(),
            Some("reach") => reach(),
            Some("deny-flood") => deny_flood(),
            Some("connect-flood") => connect_flood(),
            Some("handle-flood") => handle_flood(),
            Some("kv-flood") => kv_flood(),
            Some("kv-read-flood") => kv_read_flood(),
            Some("context-flood") => context_flood(),
            Some("forge-log") => forge_log(),
            Some("fields-bomb") => fields_bomb(),
            Some("body-bomb") => body_bomb(),
            Some("request-parts") => request_parts(),
            Some("long-reason") => Err(long_reason()),
            other => Err(HandlerError::Reject(format!("unknown behaviour {other:?}"))),
        }
    }
}

fn spin() -> Result<(), HandlerError> {
    let mut n: u64 = 0;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

fn hoard() -> Result<(), HandlerError> {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the memory is really used, not just reserved.
        kept.push(black_box(vec![0xA5; 1 << 20]));
    }
}

/// Recursion that lives on the wasm stack only (no locals in linear
/// memory), so it is the engine's stack limit that stops it.
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1).wrapping_add(black_box(depth))
}

fn flood() -> Result<(), HandlerError> {
    for i in 0..100_000u32 {
        log::info(&format!("flood line {i}"));
    }
    for i in 0..100_000u32 {
        println!("stdout flood line {i}");
    }
    Ok(())
}

fn probe() -> Result<(), HandlerError> {
    let mut escaped = Vec::new();

    match std::fs::read("/etc/passwd") {
        Ok(_) => escaped.push("file"),
        Err(e) => log::info(&format!("file: denied ({e})")),
    }
    let vars: Vec<(String, String)> = std::env::vars().collect();
    if vars.is_empty() {
        log::info("env: denied (no variables)");
    } else {
        escaped.push("env");
    }
    let target = config::get("socket_target").unwrap_or_else(|| "127.0.0.1:9".into());
    match std::net::TcpStream::connect(target.as_str()) {
        Ok(_) => escaped.push("socket"),
        Err(e) => log::info(&format!("socket: denied ({e})")),
    }
    let url = config::get("forbidden_url").unwrap_or_else(|| "http://example.com/".into());
    match http::post_json(&url, b"{}") {
        Err(http::HttpError::Denied(_)) => log::info("http: denied (host not allowed)"),
        Err(e) => {
            log::info(&format!("http: failed but not denied ({e})"));
            escaped.push("http");
        }
        Ok(_) => escaped.push("http"),
    }

    if escaped.is_empty() {
        Ok(())
    } else {
        Err(HandlerError::Reject(format!(
            "escaped the sandbox: {}",
            escaped.join(", ")
        )))
    }
}

fn reach() -> Result<(), HandlerError> {
    let targets = config::get("targets").unwrap_or_default();
    let mut reached = Vec::new();
    for url in targets.split_whitespace() {
        let result = match http::post_json(url, b"{}") {
            Ok(response) => {
                reached.push(url.to_string());
                format!("status {}", response.status)
            }
            Err(http::HttpError::Denied(_)) => "denied".into(),
            Err(http::HttpError::Prohibited(_)) => "prohibited".into(),
            Err(e) => format!("failed: {e}"),
        };
        log::info(&format!("reach {url}: {result}"));
    }
    if reached.is_empty() {
        Ok(())
    } else {
        Err(HandlerError::Reject(format!(
            "reached {}",
            reached.join(" ")
        )))
    }
}

fn deny_flood() -> Result<(), HandlerError> {
    let count: u32 = config::get("count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(5_000);
    let mut url = config::get("forbidden_url").unwrap_or_else(|| "http://example.com/".into());
    let pad: usize = config::get("pad").and_then(|c| c.parse().ok()).unwrap_or(0);
    url.push_str(&"a".repeat(pad));
    for _ in 0..count {
        let _ = http::post_json(&url, b"{}");
    }
    Ok(())
}

fn count(default: u32) -> u32 {
    config::get("count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn connect_flood() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::http::{outgoing_handler, types};
    let url = config::get("url").unwrap_or_default();
    let authority = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let mut pending = Vec::new();
    let mut refused = 0u32;
    for _ in 0..count(1_000) {
        let request = types::OutgoingRequest::new(types::Fields::new());
        let _ = request.set_scheme(Some(&types::Scheme::Http));
        let _ = request.set_authority(Some(&authority));
        let _ = request.set_path_with_query(Some("/"));
        match outgoing_handler::handle(request, None) {
            // Kept, never awaited: each holds whatever the host opened for it.
            Ok(future) => pending.push(future),
            Err(_) => refused += 1,
        }
    }
    let mut failed = 0u32;
    for future in &pending {
        future.subscribe().block();
        if !matches!(future.get(), Some(Ok(Ok(_)))) {
            failed += 1;
        }
    }
    log::info(&format!(
        "connect-flood: {} started, {refused} refused at once, {failed} failed",
        pending.len()
    ));
    Ok(())
}

fn handle_flood() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::http::types;
    let mut kept = Vec::new();
    loop {
        kept.push(types::Fields::new());
    }
}

fn fields_bomb() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::http::types;
    let value = vec![b'v'; 8 * 1024];
    let mut kept = Vec::new();
    loop {
        let fields = types::Fields::new();
        for i in 0..count(1) {
            let _ = fields.append(&format!("x-{i}"), &value);
        }
        kept.push(fields);
    }
}

fn body_bomb() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::http::types;
    let chunk = vec![b'b'; 1 << 20];
    let mut kept = Vec::new();
    loop {
        let request = types::OutgoingRequest::new(types::Fields::new());
        let body = request
            .body()
            .map_err(|_| HandlerError::Reject("body".into()))?;
        let stream = body
            .write()
            .map_err(|_| HandlerError::Reject("stream".into()))?;
        // Whatever the stream accepts at once sits in the host, unsent.
        let mut taken = 0usize;
        while let Ok(n) = stream.check_write() {
            if n == 0 {
                break;
            }
            let n = (n as usize).min(chunk.len());
            if stream.write(&chunk[..n]).is_err() {
                break;
            }
            taken += n;
        }
        if kept.is_empty() {
            // (Not named after the behaviour: config values are redacted.)
            log::info(&format!("an unsent body took {taken} bytes"));
        }
        kept.push((request, body, stream));
    }
}

fn request_parts() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::http::types;
    let size = config::get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let authority = "a".repeat(size);
    let path = format!("/{}", "p".repeat(size.saturating_sub(1)));
    let method = types::Method::Other("M".repeat(size));
    let said = |what: &str, taken: bool| {
        let verdict = if taken { "taken" } else { "refused" };
        log::info(&format!("request part: {what} {verdict}"));
    };
    let request = types::OutgoingRequest::new(types::Fields::new());
    said("authority", request.set_authority(Some(&authority)).is_ok());
    said("path", request.set_path_with_query(Some(&path)).is_ok());
    said("method", request.set_method(&method).is_ok());
    if config::get("hoard").is_none() {
        return Ok(());
    }
    let mut kept = vec![request];
    loop {
        let request = types::OutgoingRequest::new(types::Fields::new());
        let _ = request.set_authority(Some(&authority));
        let _ = request.set_path_with_query(Some(&path));
        let _ = request.set_method(&method);
        kept.push(request);
    }
}

fn kv_flood() -> Result<(), HandlerError> {
    let value = vec![0x5au8; 1 << 20];
    let bucket = gridlet_plugin::kv::bucket()?;
    for i in 0..count(100_000) {
        if let Err(e) = bucket.set(&format!("blob/{i}"), &value) {
            log::info(&format!("kv-flood: refused after {i} values: {e:?}"));
            return Ok(());
        }
    }
    log::info("kv-flood: never refused");
    Ok(())
}

fn kv_read_flood() -> Result<(), HandlerError> {
    let failed = |e| HandlerError::Retry(format!("kv-read-flood: {e:?}"));
    let size: usize = config::get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let key = format!("blob-{size}");
    let bucket = gridlet_plugin::kv::bucket()?;
    if bucket.get(&key).map_err(failed)?.is_none() {
        bucket.set(&key, &vec![0x5au8; size]).map_err(failed)?;
    }
    for _ in 0..count(u32::MAX) {
        black_box(bucket.get(&key).map_err(failed)?);
    }
    Ok(())
}

fn context_flood() -> Result<(), HandlerError> {
    use gridlet_plugin::wasi::logging::logging::{log, Level};
    let size = config::get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 20);
    let context = "c".repeat(size);
    for _ in 0..2_000 {
        log(Level::Info, &context, "x");
    }
    Ok(())
}

/// What a forged line of the host's log looks like: a timestamp, a level,
/// the host's own module. The year tells it from the host's lines.
const FORGED: &str = "1999-01-01T00:00:00.000000Z  INFO gridlet::serve: admin token rotated";

fn forge_log() -> Result<(), HandlerError> {
    log::info(&format!("harmless\n{FORGED}"));
    log::warn(&format!("hidden\r{FORGED}\u{1b}[2J"));
    println!("stdout\r{FORGED}");
    Ok(())
}

fn long_reason() -> HandlerError {
    let size: usize = config::get("size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(8 << 20);
    let pad: usize = config::get("pad").and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut why = "r".repeat(pad);
    why.push_str(&config::get("token").unwrap_or_default());
    why.extend(std::iter::repeat_n('r', size.saturating_sub(why.len())));
    match config::get("outcome").as_deref() {
        Some("retry") => HandlerError::Retry(why),
        _ => HandlerError::Reject(why),
    }
}

export!(Hostile);
