//! `gridlet run`: how plugin authors test locally.

use super::one_line::one_line;
use anyhow::Context;
use clap::Args;
use gridlet::event::{self, Event};
use gridlet::plugin::{self, CompileCache, LimitCaps, LoadedPlugin, PluginGrant};
use gridlet::runtime::{
    AllowList, ConfigValues, Invocation, MemoryKeyValue, NetworkPolicy, Outcome, Runtime,
    RuntimeSettings,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Arguments of `gridlet run`.
#[derive(Args)]
pub struct RunArgs {
    /// The plugin component (`.wasm`).
    plugin: PathBuf,
    /// Events: an Event Grid array, a CloudEvents batch, or a single event.
    events: PathBuf,
    /// The manifest to use instead of the sidecar `<plugin>.toml`.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Grant a config value (repeatable): `--config chat_webhook_url=http://127.0.0.1:9090/`.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Grant an outbound host (repeatable): `--allow-host hooks.slack.com`.
    #[arg(long = "allow-host", value_name = "HOST")]
    allow_hosts: Vec<String>,
    /// Grant every host the manifest's [outbound] asks for.
    #[arg(long)]
    allow_manifest_hosts: bool,
    /// Let granted hosts resolve to this private network (repeatable):
    /// `--allow-private-network 127.0.0.1/32` for a local sink.
    #[arg(long = "allow-private-network", value_name = "CIDR")]
    allow_private_networks: Vec<String>,
    /// The attempt number to tell the plugin.
    #[arg(long, default_value_t = 1)]
    attempt: u32,
    /// Deliver every event, even those the manifest's filter would not.
    #[arg(long)]
    ignore_filter: bool,
    /// Keep compiled plugins here, so the next run of the same file starts
    /// in milliseconds (Python and JavaScript take seconds to compile)
    /// [default: ~/.cache/gridlet/compiled].
    #[arg(long, env = "GRIDLET_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every time; read and write no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

/// Run the plugin on every event; exit 1 if any ends in reject, a trap or a
/// limit, 0 otherwise (retry is a normal answer for a plugin to give).
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("error");
    let (manifest, manifest_path) = plugin::read_manifest(&args.plugin, args.manifest.as_deref())?;
    // Whoever runs `gridlet run` is its operator: the flags grant.
    let mut config = ConfigValues::default();
    for pair in &args.config {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--config {pair:?}: expected KEY=VALUE"))?;
        config.insert(key, value);
    }
    let mut allowed_hosts =
        AllowList::parse(&args.allow_hosts).map_err(|e| anyhow::anyhow!("--allow-host {e}"))?;
    if args.allow_manifest_hosts {
        for host in &manifest.outbound {
            allowed_hosts.push(host.clone());
        }
    }
    let settings = RuntimeSettings::default();
    let grant = PluginGrant {
        config,
        allowed_hosts,
        networks: NetworkPolicy::parse(&args.allow_private_networks)
            .map_err(|e| anyhow::anyhow!("--allow-private-network {e}"))?,
        caps: LimitCaps::unlimited(&settings),
    };
    let bytes = std::fs::read(&args.events)
        .with_context(|| format!("cannot read {}", args.events.display()))?;
    let events =
        event::parse_document(&bytes).with_context(|| format!("{}", args.events.display()))?;

    let runtime = Runtime::new(settings, Arc::new(MemoryKeyValue::default()))?;
    let cache_dir = args.cache_dir.clone().or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/gridlet/compiled"))
    });
    let plugin = match cache_dir.filter(|_| !args.no_cache) {
        Some(dir) => {
            let cache = CompileCache::new(dir, &runtime);
            plugin::load_cached(
                &runtime,
                &args.plugin,
                manifest,
                &grant,
                manifest_path,
                &cache,
            )?
        }
        None => plugin::load(&runtime, &args.plugin, manifest, &grant, manifest_path)?,
    };
    describe(&plugin);

    let mut failed = 0;
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    for (index, event) in events.iter().enumerate() {
        header(index, event);
        if !args.ignore_filter && !plugin.filter.matches(event) {
            println!("  = skipped: the manifest's filter does not match");
            *tally.entry("skipped").or_default() += 1;
            continue;
        }
        let invocation = runtime.invoke(&plugin.version, event, args.attempt).await;
        report(&invocation);
        *tally.entry(invocation.outcome.label()).or_default() += 1;
        if !matches!(invocation.outcome, Outcome::Handled | Outcome::Retry(_)) {
            failed += 1;
        }
    }
    let summary: Vec<String> = tally.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!("\n{} event(s): {}", events.len(), summary.join(", "));
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(plugin: &LoadedPlugin) {
    let version = &plugin.version;
    let limits = version.limits();
    let grants = version.grants();
    println!("plugin {} ({})", version.name(), plugin.source.display());
    match &plugin.manifest {
        Some(m) => println!("  manifest  {}", m.display()),
        None => println!("  manifest  none (defaults: every event, no grants)"),
    }
    println!("  filter    {}", plugin.filter.summary());
    println!(
        "  limits    memory {} MiB, deadline {:?}, fuel {}, concurrency {}, {}",
        limits.memory_bytes / (1024 * 1024),
        limits.deadline,
        limits
            .fuel
            .map_or("unlimited".to_string(), |f| f.to_string()),
        limits.max_concurrency,
        match limits.reuse_instance {
            0 => "a fresh instance per event".to_string(),
            n => format!("an instance reused for up to {n} events"),
        }
    );
    let hosts = grants.outbound.allowed_hosts.entries();
    let networks = grants.outbound.networks.entries();
    let keys: Vec<&str> = grants.config.keys().collect();
    println!(
        "  grants    hosts [{}], private networks [{}], config keys [{}]",
        hosts.join(", "),
        networks.join(", "),
        keys.join(", ")
    );
    for warning in &plugin.warnings {
        println!("  warning   {warning}");
    }
}

fn header(index: usize, event: &Event) {
    println!(
        "\nevent {index}  {}  {}",
        one_line(&event.event_type),
        one_line(&event.id)
    );
    println!("  subject {}", one_line(&event.subject));
}

fn report(invocation: &Invocation) {
    for entry in &invocation.entries {
        println!("  {}", one_line(&entry.to_string()));
    }
    if invocation.dropped_log_lines > 0 {
        println!(
            "  log   ({} more lines dropped over the per-delivery cap)",
            invocation.dropped_log_lines
        );
    }
    let fuel = invocation
        .fuel_used
        .map(|f| format!(", {f} fuel"))
        .unwrap_or_default();
    println!(
        "  = {} ({:.1} ms{fuel})",
        one_line(&invocation.outcome.to_string()),
        invocation.duration.as_secs_f64() * 1000.0
    );
}
