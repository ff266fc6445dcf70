//! An Event Grid namespace's data plane, the five calls a pull consumer
//! makes (api-version 2024-06-01): receive with locks, then acknowledge,
//! release, reject or renew those locks. Our own client over `reqwest`: the
//! calls are small, and the Rust SDK is early and Entra-only.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::path::PathBuf;
use std::time::Duration;

/// The data-plane API version spoken.
pub const API_VERSION: &str = "2024-06-01";

/// The largest answer read from a namespace: 100 events of at most 1 MB
/// each, with room for their envelopes. A broken or hostile endpoint
/// cannot make gridlet buffer more.
pub const MAX_ANSWER_BYTES: usize = 110 * 1024 * 1024;

/// How a consumer proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: SharedAccessKey <key>`.
    Key(String),
    /// An Entra ID bearer token (scope `https://eventgrid.azure.net/.default`)
    /// read from this file at every call, so whatever refreshes it (a
    /// managed-identity sidecar, a workload-identity mount) is picked up.
    TokenFile(PathBuf),
    /// An Entra ID bearer token printed by this command (program and
    /// arguments, no shell), e.g. `az account get-access-token --scope
    /// https://eventgrid.azure.net/.default --query accessToken -o tsv`;
    /// run again after [`TOKEN_COMMAND_REUSE`] or when the service answers 401.
    TokenCommand(Vec<String>),
}

/// How long a token a command printed is used before the command runs
/// again (Entra tokens live an hour or more).
pub const TOKEN_COMMAND_REUSE: Duration = Duration::from_secs(300);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Key(_) => f.write_str("Key(..)"),
            Credential::TokenFile(path) => write!(f, "TokenFile({})", path.display()),
            Credential::TokenCommand(argv) => write!(f, "TokenCommand({:?})", argv.first()),
        }
    }
}

/// One namespace topic subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// `https://{namespace}.{region}-1.eventgrid.azure.net`.
    pub endpoint: String,
    /// The namespace topic.
    pub topic: String,
    /// The event subscription (delivery mode: queue).
    pub subscription: String,
    /// Who gridlet is.
    pub credential: Credential,
}

/// An event received under a lock.
#[derive(Debug, Clone)]
pub struct Received {
    /// The lock token that settles it.
    pub lock_token: String,
    /// How often Event Grid has delivered it (1 on the first).
    pub delivery_count: u32,
    /// The CloudEvent, as JSON text.
    pub event: String,
}

/// What a settle call answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Tokens settled.
    pub succeeded: Vec<String>,
    /// Tokens not settled, with Event Grid's error code and message.
    pub failed: Vec<(String, String, String)>,
}

/// How long a released event waits before it can be received again (the
/// only values the service accepts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseDelay {
    /// At once.
    None,
    /// 10 s.
    TenSeconds,
    /// 1 min.
    OneMinute,
    /// 10 min.
    TenMinutes,
    /// 1 h.
    OneHour,
}

impl ReleaseDelay {
    fn seconds(self) -> u32 {
        match self {
            ReleaseDelay::None => 0,
            ReleaseDelay::TenSeconds => 10,
            ReleaseDelay::OneMinute => 60,
            ReleaseDelay::TenMinutes => 600,
            ReleaseDelay::OneHour => 3600,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PullError {
    /// 429 or 503: wait (`Retry-After` when the service said how long).
    #[error("throttled ({status}){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    Throttled {
        /// The status.
        status: u16,
        /// The service's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Any other non-2xx answer.
    #[error("answered {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// No answer (connection, TLS, timeout).
    #[error("no answer: {0}")]
    Transport(String),
    /// An answer that is not the protocol's.
    #[error("unreadable answer: {0}")]
    Protocol(String),
    /// The credential cannot be read.
    #[error("credential: {0}")]
    Credential(String),
}

/// A client for one subscription.
#[derive(Debug, Clone)]
pub struct Namespace {
    http: reqwest::Client,
    target: Subscription,
    max_answer_bytes: usize,
    /// The last token a command printed, and when.
    token: std::sync::Arc<tokio::sync::Mutex<Option<(String, std::time::Instant)>>>,
}

#[derive(Deserialize)]
struct ReceiveAnswer<'a> {
    #[serde(borrow, default)]
    value: Vec<ReceiveDetails<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReceiveDetails<'a> {
    broker_properties: BrokerProperties,
    #[serde(borrow)]
    event: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BrokerProperties {
    lock_token: String,
    #[serde(default)]
    delivery_count: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SettleAnswer {
    #[serde(default)]
    succeeded_lock_tokens: Vec<String>,
    #[serde(default)]
    failed_lock_tokens: Vec<FailedLockToken>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedLockToken {
    lock_token: String,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Namespace {
    /// A client for `target`.
    pub fn new(target: Subscription) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            http,
            target,
            max_answer_bytes: MAX_ANSWER_BYTES,
            token: Default::default(),
        }
    }

    /// The same client reading answers of at most `bytes`.
    pub fn with_max_answer_bytes(mut self, bytes: usize) -> Self {
        self.max_answer_bytes = bytes;
        self
    }

    /// The subscription this client consumes.
    pub fn target(&self) -> &Subscription {
        &self.target
    }

    fn url(&self, operation: &str, query: &str) -> String {
        let t = &self.target;
        format!(
            "{}/topics/{}/eventsubscriptions/{}:{operation}?api-version={API_VERSION}{query}",
            t.endpoint.trim_end_matches('/'),
            t.topic,
            t.subscription
        )
    }

    async fn authorization(&self) -> Result<String, PullError> {
        match &self.target.credential {
            Credential::Key(key) => Ok(format!("SharedAccessKey {key}")),
            Credential::TokenFile(path) => {
                let token = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| PullError::Credential(format!("{}: {e}", path.display())))?;
                Ok(format!("Bearer {}", token.trim()))
            }
            Credential::TokenCommand(argv) => {
                let mut cached = self.token.lock().await;
                if let Some((token, at)) = cached.as_ref()
                    && at.elapsed() < TOKEN_COMMAND_REUSE
                {
                    return Ok(format!("Bearer {token}"));
                }
                let (program, args) = argv
                    .split_first()
                    .ok_or_else(|| PullError::Credential("token_command is empty".into()))?;
                let out = tokio::process::Command::new(program)
                    .args(args)
                    .kill_on_drop(true)
                    .output()
                    .await
                    .map_err(|e| PullError::Credential(format!("{program}: {e}")))?;
                if !out.status.success() {
                    return Err(PullError::Credential(format!(
                        "{program} exited with {}",
                        out.status
                    )));
                }
                let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if token.is_empty() {
                    return Err(PullError::Credential(format!("{program} printed no token")));
                }
                *cached = Some((token.clone(), std::time::Instant::now()));
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// Receive up to `max_events` (1–100), waiting at most `max_wait`
    /// (10–120 s) for the first.
    pub async fn receive(
        &self,
        max_events: u32,
        max_wait: Duration,
    ) -> Result<Vec<Received>, PullError> {
        let url = self.url(
            "receive",
            &format!(
                "&maxEvents={}&maxWaitTime={}",
                max_events.clamp(1, 100),
                max_wait.as_secs().clamp(10, 120)
            ),
        );
        let text = self
            .post(&url, None, max_wait + Duration::from_secs(30))
            .await?;
        let answer: ReceiveAnswer =
            serde_json::from_str(&text).map_err(|e| PullError::Protocol(e.to_string()))?;
        Ok(answer
            .value
            .into_iter()
            .map(|d| Received {
                lock_token: d.broker_properties.lock_token,
                delivery_count: d.broker_properties.delivery_count,
                event: d.event.get().to_string(),
            })
            .collect())
    }

    /// Acknowledge: the events are done with.
    pub async fn acknowledge(&self, tokens: &[String]) -> Result<Settled, PullError> {
        self.settle("acknowledge", "", tokens).await
    }

    /// Release: deliver again after `delay`.
    pub async fn release(
        &self,
        tokens: &[String],
        delay: ReleaseDelay,
    ) -> Result<Settled, PullError> {
        let query = format!("&releaseDelayInSeconds={}", delay.seconds());
        self.settle("release", &query, tokens).await
    }

    /// Reject: never deliver again (dead-lettered where the subscription
    /// has a dead-letter destination).
    pub async fn reject(&self, tokens: &[String]) -> Result<Settled, PullError> {
        self.settle("reject", "", tokens).await
    }

    /// Renew the locks, so they outlast work that takes long.
    pub async fn renew_locks(&self, tokens: &[String]) -> Result<Settled, PullError> {
        self.settle("renewLock", "", tokens).await
    }

    async fn settle(
        &self,
        operation: &str,
        query: &str,
        tokens: &[String],
    ) -> Result<Settled, PullError> {
        if tokens.is_empty() {
            return Ok(Settled::default());
        }
        let body = serde_json::json!({ "lockTokens": tokens }).to_string();
        let text = self
            .post(
                &self.url(operation, query),
                Some(body),
                Duration::from_secs(30),
            )
            .await?;
        let answer: SettleAnswer =
            serde_json::from_str(&text).map_err(|e| PullError::Protocol(e.to_string()))?;
        Ok(Settled {
            succeeded: answer.succeeded_lock_tokens,
            failed: answer
                .failed_lock_tokens
                .into_iter()
                .map(|f| {
                    let (code, message) = f.error.map(|e| (e.code, e.message)).unwrap_or_default();
                    (f.lock_token, code, message)
                })
                .collect(),
        })
    }

    async fn post(
        &self,
        url: &str,
        body: Option<String>,
        timeout: Duration,
    ) -> Result<String, PullError> {
        let mut request = self
            .http
            .post(url)
            .timeout(timeout)
            .header("accept", "application/json")
            .header("authorization", self.authorization().await?);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| PullError::Transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if status == 401 {
            // A command's token may have expired early: ask again next time.
            *self.token.lock().await = None;
        }
        if status == 429 || status == 503 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(PullError::Throttled {
                status,
                retry_after,
            });
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| PullError::Transport(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > self.max_answer_bytes {
                return Err(PullError::Protocol(format!(
                    "answer larger than {} bytes",
                    self.max_answer_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if !(200..300).contains(&status) {
            return Err(PullError::Status {
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(text)
    }
}
