//! `gridlet serve`: the composition root. It loads the plugins, starts
//! dispatch, and mounts the webhook; nothing else in the crate wires stages
//! together.

pub mod config;
pub mod health;

use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::ingest::{self, IngestSettings};
use crate::journal::SqliteJournal;
use crate::plugin::{Change, Registry, WatchSettings, Watcher};
use crate::runtime::{JournalKeyValue, Runtime, RuntimeSettings};
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
    /// fsync every journal commit (durable against power loss); off keeps
    /// commits safe from a process crash only.
    pub journal_fsync: bool,
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
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            plugins_dir: "plugins".into(),
            state_dir: "state".into(),
            journal_fsync: true,
            ingest: IngestSettings::default(),
            dispatch: DispatchSettings::default(),
            runtime: RuntimeSettings::default(),
            admin_token: None,
            watch: Some(WatchSettings::default()),
            compile_cache_dir: None,
            metrics: true,
            shutdown_delay: std::time::Duration::ZERO,
        }
    }
}

/// A running server.
pub struct Server {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The delivery queue, for its counters.
    pub dispatcher: Arc<Dispatcher>,
    /// The plugins and their status.
    pub plugins: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    _watcher: Option<Watcher>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stop accepting and wait for the listener to close.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap_or(Ok(()))
    }

    /// Run until the listener fails or the process is told to stop.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Load the plugins, start dispatch and listen. Logs, first, where it
/// listens, which plugins loaded (and which did not, and why) and whether
/// auth is off.
pub async fn start(settings: ServeSettings) -> anyhow::Result<Server> {
    if settings.metrics {
        // First, so that what start-up records (plugin loads) is counted.
        crate::admin::metrics::install();
    }
    let journal = Arc::new(
        SqliteJournal::open(&settings.state_dir, settings.journal_fsync)
            .map_err(|e| anyhow::anyhow!("state_dir {}: {e}", settings.state_dir.display()))?,
    );
    let runtime = Arc::new(Runtime::new(
        settings.runtime.clone(),
        Arc::new(JournalKeyValue(journal.clone())),
    )?);
    let plugins = Arc::new(Registry::new(
        runtime,
        settings.plugins_dir.clone(),
        settings
            .compile_cache_dir
            .clone()
            .unwrap_or_else(|| settings.state_dir.join("compiled")),
    ));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "gridlet listening on http://{addr}{} (health: /healthz)",
        settings.ingest.webhook_path
    );
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
    // A missing plugins folder is an empty one: the host still starts (and says so).
    let loaded = if dir.is_dir() {
        let registry = plugins.clone();
        tokio::task::spawn_blocking(move || registry.scan())
            .await?
            .map_err(|e| anyhow::anyhow!("plugins_dir {}: {e}", dir.display()))?
            .iter()
            .filter(|(_, c)| matches!(c, Change::Loaded { .. }))
            .count()
    } else {
        0
    };
    if loaded == 0 {
        tracing::warn!(
            "no plugins serving from {}: events are accepted and go nowhere",
            dir.display()
        );
    }
    if settings.ingest.auth.is_off() {
        tracing::warn!(
            "AUTH IS OFF: anyone who can reach {addr} can deliver events. Set GRIDLET_SECRET \
             (and put ?code=<secret> in the Event Grid endpoint URL) or configure [entra]."
        );
    }
    if settings.ingest.allowed_topics.is_empty() {
        tracing::warn!("allowed_topics is empty: events from any topic are accepted");
    }

    let journal: Arc<dyn crate::journal::Journal> = journal;
    let dispatcher =
        Dispatcher::start(plugins.clone(), journal.clone(), settings.dispatch.clone())?;
    let shutting_down = Arc::new(AtomicBool::new(false));
    let mut app = ingest::router(settings.ingest.clone(), dispatcher.clone()).merge(
        health::router(health::Readiness {
            journal,
            plugins: plugins.clone(),
            shutting_down: shutting_down.clone(),
        }),
    );
    if settings.metrics {
        app = app.merge(crate::admin::metrics::router());
    }
    match settings.admin_token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => {
            app = app.merge(crate::admin::router(
                token,
                dispatcher.clone(),
                plugins.clone(),
            ))
        }
        None => tracing::info!("admin API off: set GRIDLET_ADMIN_TOKEN to turn it on"),
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let draining = dispatcher.clone();
    let delay = settings.shutdown_delay;
    let task = tokio::spawn(async move {
        // Stop accepting first; then let running deliveries finish within
        // the grace period; the rest stay pending in the journal.
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = shutdown_signal() => {}
                }
                // Not ready from now on; keep serving through the delay so
                // load balancers see it before connections are refused.
                shutting_down.store(true, Ordering::SeqCst);
                if !delay.is_zero() {
                    tracing::info!(
                        ?delay,
                        "not ready; still accepting until the shutdown delay ends"
                    );
                    tokio::time::sleep(delay).await;
                }
            })
            .await;
        draining.shutdown().await;
        served
    });
    Ok(Server {
        addr,
        dispatcher,
        plugins,
        stop: Some(stop),
        _watcher: watcher,
        task,
    })
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
