//! `gridlet serve`: the composition root. It loads the plugins, starts
//! dispatch, and mounts the webhook; nothing else in the crate wires stages
//! together.

pub mod cluster_config;
pub mod config;
pub mod health;
pub mod listener;
pub mod plugin_config;
pub mod pull_config;

pub use listener::ServerLimits;

use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::ingest::{self, IngestSettings};
use crate::journal::{JetStreamJournal, Journal, JournalSettings, PluginStore, SqliteJournal};
use crate::plugin::registry::{DEFAULT_MAX_PLUGIN_BYTES, Folder};
use crate::plugin::{Change, Compiler, OperatorGrants, Registry, WatchSettings, Watcher};
use crate::runtime::{JetStreamKeyValue, JournalKeyValue, KeyValue, Runtime, RuntimeSettings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Everything `serve` needs, resolved from file, environment and flags.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The plugins folder.
    pub plugins_dir: PathBuf,
    /// gridlet's own state folder (created if missing): the journal.
    pub state_dir: PathBuf,
    /// The journal: fsync on every commit (durable against power loss; off
    /// keeps commits safe from a process crash only), dead-letter retention,
    /// purge pace.
    pub journal: JournalSettings,
    /// The webhook.
    pub ingest: IngestSettings,
    /// The delivery queue.
    pub dispatch: DispatchSettings,
    /// The sandbox.
    pub runtime: RuntimeSettings,
    /// The admin API's bearer token; without one the admin API is off.
    pub admin_token: Option<String>,
    /// Reload plugins when their files change; `None` loads them once.
    pub watch: Option<WatchSettings>,
    /// Where compiled plugins are cached; `None` is `<state_dir>/compiled`.
    pub compile_cache_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at `/metrics`.
    pub metrics: bool,
    /// On SIGTERM/SIGINT, keep accepting this long with `/readyz` answering
    /// 503, so load balancers stop sending first.
    pub shutdown_delay: std::time::Duration,
    /// Serve without auth on a non-loopback address (otherwise refused).
    pub insecure_no_auth: bool,
    /// A listener of their own for the admin API and `/metrics`.
    pub admin_listen: Option<SocketAddr>,
    /// Connection limits of every listener.
    pub limits: ServerLimits,
    /// Largest plugin `.wasm` read.
    pub max_plugin_bytes: u64,
    /// What the operator grants each plugin.
    pub grants: OperatorGrants,
    /// Free space the state folder's disk must keep for `/readyz` to say
    /// ready.
    pub min_free_disk_bytes: u64,
    /// Where plugins are compiled (`gridlet serve`: a child process).
    pub compiler: Compiler,
    /// Event Grid namespace subscriptions to pull events from.
    pub pull: Vec<crate::pull::PullSettings>,
    /// Run on NATS JetStream (`[cluster]`) instead of the SQLite journal
    /// in `state_dir`.
    pub cluster: Option<crate::journal::ClusterSettings>,
    /// Serve the webhook (false: a host that only pulls; its listener then
    /// serves health, metrics and the admin API).
    pub webhook: bool,
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            plugins_dir: "plugins".into(),
            state_dir: "state".into(),
            journal: JournalSettings::default(),
            ingest: IngestSettings::default(),
            dispatch: DispatchSettings::default(),
            runtime: RuntimeSettings::default(),
            admin_token: None,
            watch: Some(WatchSettings::default()),
            compile_cache_dir: None,
            metrics: true,
            shutdown_delay: std::time::Duration::ZERO,
            insecure_no_auth: false,
            admin_listen: None,
            limits: ServerLimits::default(),
            max_plugin_bytes: DEFAULT_MAX_PLUGIN_BYTES,
            grants: OperatorGrants::default(),
            min_free_disk_bytes: 64 * 1024 * 1024,
            compiler: Compiler::InProcess,
            pull: Vec::new(),
            cluster: None,
            webhook: true,
        }
    }
}

/// A running server.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Where the admin API and `/metrics` listen, when on their own.
    pub admin_addr: Option<SocketAddr>,
    /// The delivery queue, for its counters.
    pub dispatcher: Arc<Dispatcher>,
    /// The plugins and their status.
    pub plugins: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    _watcher: Option<Watcher>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stop accepting and wait for the listener to close.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.task.await;
    }

    /// Run until the process is told to stop.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Listen, start dispatch, then load the plugins (serving meanwhile: see
/// `Registry::declare_found`); returns once they are loaded. Logs, first,
/// where it listens and whether auth is off, then which plugins loaded (and
/// which did not, and why).
pub async fn start(settings: ServeSettings) -> anyhow::Result<Server> {
    // Fail closed: without auth, only a loopback address, or an explicit
    // decision to run open.
    // With no webhook there is nothing for a sender to reach.
    let open = settings.webhook && settings.ingest.auth.is_off();
    if !settings.webhook && settings.pull.is_empty() {
        anyhow::bail!("webhook = false and no [[pull]] source: nothing would bring events in");
    }
    if open && !settings.listen.ip().is_loopback() && !settings.insecure_no_auth {
        anyhow::bail!(
            "refusing to serve without auth on {}: set GRIDLET_SECRET (and put ?code=<secret> \
             in the Event Grid endpoint URL) or configure [entra], listen on a loopback address, \
             or pass --insecure-no-auth",
            settings.listen
        );
    }
    if settings.metrics {
        // First, so that what start-up records (plugin loads) is counted.
        crate::admin::metrics::install();
    }
    let Backends {
        journal,
        kv,
        pushed,
    } = open_journal(&settings)?;
    let runtime = Arc::new(Runtime::new(settings.runtime.clone(), kv)?);
    let pushed_dir = settings.state_dir.join("pushed-plugins");
    let registry = Registry::new(
        runtime,
        Folder {
            dir: settings.plugins_dir.clone(),
            cache_dir: settings
                .compile_cache_dir
                .clone()
                .unwrap_or_else(|| settings.state_dir.join("compiled")),
            max_plugin_bytes: settings.max_plugin_bytes,
            grants: Arc::new(settings.grants.clone()),
            compiler: settings.compiler.clone(),
        },
    );
    let plugins = Arc::new(match &pushed {
        Some(_) => registry.with_pushed(pushed_dir.clone()),
        None => registry,
    });
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = match settings.admin_listen {
        Some(admin) => Some(
            tokio::net::TcpListener::bind(admin)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on admin_listen {admin}: {e}"))?,
        ),
        None => None,
    };
    let admin_addr = match &admin_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    tracing::info!(
        "gridlet listening on http://{addr}{} (health: /healthz)",
        settings.ingest.webhook_path
    );
    if let Some(admin) = admin_addr {
        tracing::info!("admin API and metrics on http://{admin}");
    }
    // Watch first, then scan, so no change between the two is missed; start-up
    // and reload share one path: reconcile each plugin with its files.
    let dir = settings.plugins_dir.clone();
    let watcher = match settings.watch {
        Some(watch) if dir.is_dir() => match Watcher::start(plugins.clone(), watch) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(
                    "cannot watch {}; plugins load only at start: {e}",
                    dir.display()
                );
                None
            }
        },
        Some(_) => {
            tracing::warn!(
                "plugins_dir {} does not exist: not watching it",
                dir.display()
            );
            None
        }
        None => None,
    };
    // Every plugin found is declared from its manifest at once, and the
    // host serves while the scan below compiles them: events that come
    // meanwhile are kept for them, `/healthz` answers (a liveness probe
    // does not kill a host compiling a large plugin) and `/readyz` says
    // `loading`.
    let loading = Arc::new(AtomicBool::new(true));
    if dir.is_dir() {
        let registry = plugins.clone();
        tokio::task::spawn_blocking(move || registry.declare_found())
            .await?
            .map_err(|e| anyhow::anyhow!("plugins_dir {}: {e}", dir.display()))?;
    }
    if open {
        tracing::warn!(
            "AUTH IS OFF{}: anyone who can reach {addr} can deliver events. Set GRIDLET_SECRET \
             (and put ?code=<secret> in the Event Grid endpoint URL) or configure [entra].",
            if settings.insecure_no_auth {
                " (--insecure-no-auth)"
            } else {
                ""
            }
        );
    }
    if settings.ingest.allowed_topics.is_empty() {
        tracing::warn!("allowed_topics is empty: events from any topic are accepted");
    }

    let dispatcher =
        Dispatcher::start(plugins.clone(), journal.clone(), settings.dispatch.clone())?;
    // Pull sources feed the same intake as the webhook.
    let sources: Vec<Arc<crate::pull::Source>> = settings
        .pull
        .iter()
        .map(|p| {
            Arc::new(crate::pull::Source::new(
                p.clone(),
                dispatcher.clone(),
                settings.ingest.allowed_topics.clone(),
            ))
        })
        .collect();
    let mut pulling = Vec::new();
    for (source, p) in sources.iter().zip(&settings.pull) {
        tracing::info!(source = source.name(), endpoint = %p.subscription.endpoint, "pulling from an Event Grid namespace");
        for _ in 0..p.concurrency {
            pulling.push(tokio::spawn(source.clone().run()));
        }
    }
    let shutting_down = Arc::new(AtomicBool::new(false));
    let readiness = health::Readiness::start(
        journal,
        health::Disk {
            dir: settings.state_dir.clone(),
            min_free: settings.min_free_disk_bytes,
        },
        plugins.clone(),
        loading.clone(),
        shutting_down.clone(),
        if settings.webhook {
            health::auth_mode(&settings.ingest.auth, settings.insecure_no_auth)
        } else {
            "webhook off"
        },
        sources.clone(),
    );
    let probed = readiness.clone();
    let health = health::router(readiness);
    let mut admin = axum::Router::new();
    if settings.metrics {
        admin = admin.merge(crate::admin::metrics::router());
    }
    match settings.admin_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            admin = admin.merge(crate::admin::router(
                token,
                dispatcher.clone(),
                plugins.clone(),
                sources.clone(),
                pushed.clone(),
                Arc::new(move || probed.checks()),
            ))
        }
        None => tracing::info!("admin API off: set GRIDLET_ADMIN_TOKEN to turn it on"),
    }
    let mut app = if settings.webhook {
        ingest::router(settings.ingest.clone(), dispatcher.clone())
    } else {
        tracing::info!("webhook off: events come only from [[pull]] sources");
        ingest::health_router()
    }
    .merge(health.clone());
    // On its own listener when asked (so it need not be reachable where
    // Event Grid is), else beside the webhook.
    let admin = match admin_listener {
        Some(admin_listener) => Some((admin_listener, admin.merge(health))),
        None => {
            app = app.merge(admin);
            None
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = dispatcher.clone();
    let watched = dispatcher.clone();
    let delay = settings.shutdown_delay;
    let limits = settings.limits;
    let task = tokio::spawn(async move {
        let (stop_admin, admin_stopped) = oneshot::channel::<()>();
        let admin_task = admin.map(|(listener, router)| {
            tokio::spawn(listener::serve(listener, router, limits, async {
                let _ = admin_stopped.await;
            }))
        });
        // Stop accepting first; then let running deliveries finish within
        // the grace period; the rest stay pending in the journal.
        listener::serve(listener, app, limits, async move {
            tokio::select! {
                _ = stopped => {}
                _ = shutdown_signal() => {}
            }
            // Not ready from now on; keep serving through the delay so
            // load balancers see it before connections are refused.
            shutting_down.store(true, Ordering::SeqCst);
            // Live tails end, so their connections can close.
            watched.stop_watches();
            if !delay.is_zero() {
                tracing::info!(
                    ?delay,
                    "not ready; still accepting until the shutdown delay ends"
                );
                tokio::time::sleep(delay).await;
            }
        })
        .await;
        // No new events from namespaces; a batch received but not yet
        // acknowledged comes back after its lock expires.
        for task in pulling {
            task.abort();
        }
        draining.shutdown().await;
        let _ = stop_admin.send(());
        if let Some(task) = admin_task {
            let _ = task.await;
        }
    });
    let server = Server {
        addr,
        admin_addr,
        dispatcher,
        plugins: plugins.clone(),
        stop: Some(stop),
        _watcher: watcher,
        task,
    };
    // A missing plugins folder is an empty one: the host still starts (and says so).
    let dir = settings.plugins_dir.clone();
    let scanned = if dir.is_dir() {
        let registry = plugins.clone();
        tokio::task::spawn_blocking(move || registry.scan()).await
    } else {
        Ok(Ok(Vec::new()))
    };
    let scanned = scanned
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(|e| anyhow::anyhow!("plugins_dir {}: {e}", dir.display())));
    let loaded = match scanned {
        Ok(changes) => changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::Loaded { .. }))
            .count(),
        Err(e) => {
            server.shutdown().await;
            return Err(e);
        }
    };
    loading.store(false, Ordering::SeqCst);
    if let Some(store) = &pushed {
        crate::plugin::pushed::start(store.clone(), plugins.clone(), pushed_dir);
    }
    if loaded == 0 && pushed.is_none() {
        tracing::warn!(
            "no plugins serving from {}: events are accepted and go nowhere",
            dir.display()
        );
    }
    Ok(server)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: no longer accepting events");
}

/// The journal and plugin state: JetStream for `[cluster]` (shared by the
/// cluster's hosts, with the bucket of plugins pushed to all of them), else
/// SQLite in the state folder.
struct Backends {
    journal: Arc<dyn Journal>,
    kv: Arc<dyn KeyValue>,
    pushed: Option<PluginStore>,
}

fn open_journal(settings: &ServeSettings) -> anyhow::Result<Backends> {
    if let Some(cluster) = &settings.cluster {
        let journal = JetStreamJournal::connect(cluster.clone())
            .map_err(|e| anyhow::anyhow!("[cluster]: {e}"))?;
        let (js, replicas) = journal.jetstream();
        let pushed = journal.plugin_store();
        tracing::info!(
            servers = cluster.urls.len(),
            replicas,
            "cluster mode: the journal, plugin state and pushed plugins are on NATS JetStream"
        );
        return Ok(Backends {
            journal: Arc::new(journal),
            kv: Arc::new(JetStreamKeyValue::new(js, replicas)),
            pushed: Some(pushed),
        });
    }
    let journal = Arc::new(
        SqliteJournal::open_with(&settings.state_dir, settings.journal)
            .map_err(|e| anyhow::anyhow!("state_dir {}: {e}", settings.state_dir.display()))?,
    );
    Ok(Backends {
        journal: journal.clone(),
        kv: Arc::new(JournalKeyValue(journal)),
        pushed: None,
    })
}
