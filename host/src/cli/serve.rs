//! `gridlet serve`: resolve the configuration (flag > environment > file >
//! default), then run the server until SIGINT/SIGTERM.

use clap::Args;
use gridlet::serve::cluster_config::ClusterConfig;
use gridlet::serve::{self, config::ConfigFile, config::EntraConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `gridlet serve`: each overrides the config file's key of the
/// same name, and falls back to `GRIDLET_<KEY>`.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// The config file (default: `gridlet.toml` if it exists).
    #[arg(long, env = "GRIDLET_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8080].
    #[arg(long, env = "GRIDLET_LISTEN")]
    listen: Option<String>,
    /// Path Event Grid POSTs to [default: /api/events].
    #[arg(long, env = "GRIDLET_WEBHOOK_PATH")]
    webhook_path: Option<String>,
    /// Plugins folder [default: plugins].
    #[arg(long, env = "GRIDLET_PLUGINS_DIR")]
    plugins_dir: Option<PathBuf>,
    /// State folder [default: state].
    #[arg(long, env = "GRIDLET_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The shared secret (query `code` or the secret header).
    #[arg(long, env = "GRIDLET_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A second accepted secret, while rotating.
    #[arg(long, env = "GRIDLET_SECONDARY_SECRET", hide_env_values = true)]
    secondary_secret: Option<String>,
    /// Query parameter carrying the secret [default: code].
    #[arg(long, env = "GRIDLET_SECRET_QUERY_PARAM")]
    secret_query_param: Option<String>,
    /// Header carrying the secret [default: x-gridlet-secret].
    #[arg(long, env = "GRIDLET_SECRET_HEADER")]
    secret_header: Option<String>,
    /// Allowed topics (workspace resource ids), comma-separated [default: any].
    #[arg(long, env = "GRIDLET_ALLOWED_TOPICS", value_delimiter = ',')]
    allowed_topics: Option<Vec<String>>,
    /// Largest request body in bytes [default: 4194304].
    #[arg(long, env = "GRIDLET_BODY_LIMIT_BYTES")]
    body_limit_bytes: Option<usize>,
    /// Origins granted in the CloudEvents handshake, comma-separated [default: eventgrid.azure.net].
    #[arg(long, env = "GRIDLET_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Requests per minute granted in the handshake [default: unlimited].
    #[arg(long, env = "GRIDLET_ALLOWED_RATE")]
    allowed_rate: Option<u32>,
    /// Deliveries waiting at most [default: 100000].
    #[arg(long, env = "GRIDLET_QUEUE_CAPACITY")]
    queue_capacity: Option<usize>,
    /// Deliveries claimed at once, running or awaiting their commit [default: 1024].
    #[arg(long, env = "GRIDLET_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// fsync every journal commit [default: true].
    #[arg(long, env = "GRIDLET_JOURNAL_FSYNC")]
    journal_fsync: Option<bool>,
    /// Waits before retries in ms, comma-separated, the last repeating [default: Event Grid's].
    #[arg(long, env = "GRIDLET_RETRY_DELAYS_MS", value_delimiter = ',')]
    retry_delays_ms: Option<Vec<u64>>,
    /// On shutdown, how long running deliveries may take, in ms [default: 30000].
    #[arg(long, env = "GRIDLET_SHUTDOWN_GRACE_MS")]
    shutdown_grace_ms: Option<u64>,
    /// Bearer token for the admin API (off without one).
    #[arg(long, env = "GRIDLET_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Serve Prometheus metrics at /metrics [default: true].
    #[arg(long, env = "GRIDLET_METRICS")]
    metrics: Option<bool>,
    /// On shutdown, keep accepting this long (ms) with /readyz at 503 [default: 0].
    #[arg(long, env = "GRIDLET_SHUTDOWN_DELAY_MS")]
    shutdown_delay_ms: Option<u64>,
    /// Log format: `human` or `json` [default: human].
    #[arg(long, env = "GRIDLET_LOG_FORMAT", value_parser = ["human", "json"])]
    log_format: Option<String>,
    /// Where compiled plugins are cached [default: <state_dir>/compiled].
    #[arg(long, env = "GRIDLET_COMPILE_CACHE_DIR")]
    compile_cache_dir: Option<PathBuf>,
    /// Reload plugins when their files change [default: true].
    #[arg(long, env = "GRIDLET_WATCH_PLUGINS")]
    watch_plugins: Option<bool>,
    /// Quiet time before a changed plugin is reloaded, in ms [default: 20].
    #[arg(long, env = "GRIDLET_RELOAD_DEBOUNCE_MS")]
    reload_debounce_ms: Option<u64>,
    /// Entra ID: expected token issuer.
    #[arg(long, env = "GRIDLET_ENTRA_ISSUER")]
    entra_issuer: Option<String>,
    /// Entra ID: expected token audience.
    #[arg(long, env = "GRIDLET_ENTRA_AUDIENCE")]
    entra_audience: Option<String>,
    /// Entra ID: signing keys from a JWKS file.
    #[arg(long, env = "GRIDLET_ENTRA_JWKS_FILE")]
    entra_jwks_file: Option<PathBuf>,
    /// Entra ID: signing keys from a JWKS URL.
    #[arg(long, env = "GRIDLET_ENTRA_JWKS_URL")]
    entra_jwks_url: Option<String>,
    /// Entra ID: app roles every token must carry, comma-separated.
    #[arg(long, env = "GRIDLET_ENTRA_REQUIRED_ROLES", value_delimiter = ',')]
    entra_required_roles: Option<Vec<String>>,
    /// Serve without any auth on a non-loopback address (refused otherwise).
    #[arg(long, env = "GRIDLET_INSECURE_NO_AUTH", num_args = 0..=1, default_missing_value = "true")]
    insecure_no_auth: Option<bool>,
    /// Serve the webhook; `false` for a host that only pulls [default: true].
    #[arg(long, env = "GRIDLET_WEBHOOK")]
    webhook: Option<bool>,
    /// A separate address for the admin API and /metrics [default: the main listener].
    #[arg(long, env = "GRIDLET_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Most connections open at once per listener [default: 1024].
    #[arg(long, env = "GRIDLET_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Time a client has to send a request's headers, in ms [default: 10000].
    #[arg(long, env = "GRIDLET_HEADER_TIMEOUT_MS")]
    header_timeout_ms: Option<u64>,
    /// Time a client has to send a request's body, in ms [default: 30000].
    #[arg(long, env = "GRIDLET_BODY_TIMEOUT_MS")]
    body_timeout_ms: Option<u64>,
    /// Largest plugin .wasm read, in bytes [default: 134217728].
    #[arg(long, env = "GRIDLET_MAX_PLUGIN_BYTES")]
    max_plugin_bytes: Option<u64>,
    /// Private networks every plugin may reach, comma-separated CIDRs [default: none].
    #[arg(long, env = "GRIDLET_ALLOW_PRIVATE_NETWORKS", value_delimiter = ',')]
    allow_private_networks: Option<Vec<String>>,
    /// Free space (MiB) the state folder's disk must keep for /readyz [default: 64].
    #[arg(long, env = "GRIDLET_MIN_FREE_DISK_MIB")]
    min_free_disk_mib: Option<u64>,
    /// Days dead letters are kept [default: 30].
    #[arg(long, env = "GRIDLET_DEAD_LETTER_RETENTION_DAYS")]
    dead_letter_retention_days: Option<u64>,
    /// Compile plugins in the serving process, not a child [default: false].
    #[arg(long, env = "GRIDLET_COMPILE_IN_PROCESS")]
    compile_in_process: Option<bool>,
    /// Most memory (MiB) one plugin's compile may use [default: 2048].
    #[arg(long, env = "GRIDLET_COMPILE_MAX_MEMORY_MIB")]
    compile_max_memory_mib: Option<u64>,
    /// Most time (ms) one plugin's compile may take [default: 300000].
    #[arg(long, env = "GRIDLET_COMPILE_TIMEOUT_MS")]
    compile_timeout_ms: Option<u64>,
    /// Threads plugin code runs on [default: one per core but one].
    #[arg(long, env = "GRIDLET_GUEST_THREADS")]
    guest_threads: Option<usize>,
    /// Cluster mode: NATS server URLs, comma-separated [default: none, the
    /// embedded journal].
    #[arg(long, env = "GRIDLET_CLUSTER_URLS", value_delimiter = ',')]
    cluster_urls: Option<Vec<String>>,
    /// Cluster mode: replicas of every stream and bucket [default: 3].
    #[arg(long, env = "GRIDLET_CLUSTER_REPLICAS")]
    cluster_replicas: Option<usize>,
}

/// Run the server.
pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging_as("info", args.log_format.as_deref() == Some("json"));
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None if Path::new("gridlet.toml").exists() => ConfigFile::load(Path::new("gridlet.toml"))?,
        None => ConfigFile::default(),
    };
    let settings = file.merge(args.into_config()).resolve().await?;
    let server = serve::start(settings).await?;
    server.wait().await;
    Ok(ExitCode::SUCCESS)
}

impl ServeArgs {
    /// Flags and environment (clap already put flags over environment) as
    /// one more configuration layer.
    fn into_config(self) -> ConfigFile {
        let entra = EntraConfig {
            issuer: self.entra_issuer,
            audience: self.entra_audience,
            jwks_file: self.entra_jwks_file,
            jwks_url: self.entra_jwks_url,
            required_roles: self.entra_required_roles,
        };
        let cluster = ClusterConfig {
            urls: self.cluster_urls,
            replicas: self.cluster_replicas,
            ..ClusterConfig::default()
        };
        ConfigFile {
            listen: self.listen,
            webhook_path: self.webhook_path,
            plugins_dir: self.plugins_dir,
            state_dir: self.state_dir,
            secret: self.secret,
            secondary_secret: self.secondary_secret,
            secret_query_param: self.secret_query_param,
            secret_header: self.secret_header,
            allowed_topics: self.allowed_topics,
            body_limit_bytes: self.body_limit_bytes,
            allowed_origins: self.allowed_origins,
            allowed_rate: self.allowed_rate,
            queue_capacity: self.queue_capacity,
            max_in_flight: self.max_in_flight,
            journal_fsync: self.journal_fsync,
            retry_delays_ms: self.retry_delays_ms,
            shutdown_grace_ms: self.shutdown_grace_ms,
            admin_token: self.admin_token,
            metrics: self.metrics,
            shutdown_delay_ms: self.shutdown_delay_ms,
            compile_cache_dir: self.compile_cache_dir,
            watch_plugins: self.watch_plugins,
            reload_debounce_ms: self.reload_debounce_ms,
            insecure_no_auth: self.insecure_no_auth,
            webhook: self.webhook,
            admin_listen: self.admin_listen,
            max_connections: self.max_connections,
            header_timeout_ms: self.header_timeout_ms,
            body_timeout_ms: self.body_timeout_ms,
            max_plugin_bytes: self.max_plugin_bytes,
            allow_private_networks: self.allow_private_networks,
            min_free_disk_mib: self.min_free_disk_mib,
            dead_letter_retention_days: self.dead_letter_retention_days,
            compile_in_process: self.compile_in_process,
            compile_max_memory_mib: self.compile_max_memory_mib,
            compile_timeout_ms: self.compile_timeout_ms,
            guest_threads: self.guest_threads,
            // Grants and caps are tables: gridlet.toml only.
            plugin_limits: None,
            plugins: None,
            entra: (entra != EntraConfig::default()).then_some(entra),
            cluster: (cluster != ClusterConfig::default()).then_some(cluster),
            // `[[pull]]` is a list of tables; one source can come from
            // `GRIDLET_PULL_*` (read when the settings are resolved).
            pull: None,
        }
    }
}
