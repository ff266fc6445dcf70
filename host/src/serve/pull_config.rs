//! `[[pull]]` in gridlet.toml: Event Grid namespace subscriptions gridlet
//! pulls from. A source can also come whole from the environment
//! (`GRIDLET_PULL_ENDPOINT`, `_TOPIC`, `_SUBSCRIPTION`, `_KEY` or
//! `_TOKEN_FILE`), and a key may be written `${VAR}` to keep it out of the
//! file.

use crate::plugin::grants::expand_env;
use crate::pull::{Credential, PullSettings, ReleaseDelay, Subscription};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[pull]]` entry, as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// Name in logs, metrics and status (default `<topic>/<subscription>`).
    pub name: Option<String>,
    /// `https://{namespace}.{region}-1.eventgrid.azure.net`.
    pub endpoint: Option<String>,
    /// The namespace topic.
    pub topic: Option<String>,
    /// The event subscription (queue delivery).
    pub subscription: Option<String>,
    /// A namespace access key (`${VAR}` expanded).
    pub key: Option<String>,
    /// A file holding an Entra ID token, read at every call.
    pub token_file: Option<PathBuf>,
    /// A command printing an Entra ID token (program and arguments).
    pub token_command: Option<Vec<String>>,
    /// Events per receive, 1–100 (default 100).
    pub max_events: Option<u32>,
    /// Longest wait for events per receive, 10–120 s (default 60).
    pub max_wait_seconds: Option<u64>,
    /// Receive loops at once (default 1).
    pub concurrency: Option<u32>,
    /// Seconds a batch the journal cannot take waits before it is
    /// delivered again: 0, 10, 60, 600 or 3600 (default 10).
    pub busy_release_delay_seconds: Option<u32>,
}

impl PullConfig {
    /// The source from the environment, if `GRIDLET_PULL_ENDPOINT` is set.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| env(&format!("GRIDLET_PULL_{name}")).filter(|v| !v.is_empty());
        Some(Self {
            endpoint: Some(var("ENDPOINT")?),
            topic: var("TOPIC"),
            subscription: var("SUBSCRIPTION"),
            key: var("KEY"),
            token_file: var("TOKEN_FILE").map(PathBuf::from),
            ..Self::default()
        })
    }

    /// Validate; errors name the entry and the key, never a value.
    pub fn build(
        self,
        index: usize,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<PullSettings> {
        let at = |key: &str| format!("pull[{index}].{key}");
        let endpoint = self
            .endpoint
            .with_context(|| format!("{} is required", at("endpoint")))?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            bail!("{}: must be an http(s) URL", at("endpoint"));
        }
        let topic = self
            .topic
            .with_context(|| format!("{} is required", at("topic")))?;
        let subscription = self
            .subscription
            .with_context(|| format!("{} is required", at("subscription")))?;
        let credential = match (self.key, self.token_file, self.token_command) {
            (Some(key), None, None) => {
                let key =
                    expand_env(&key, env).map_err(|e| anyhow::anyhow!("{}: {e}", at("key")))?;
                if key.is_empty() {
                    bail!("{}: is empty", at("key"));
                }
                Credential::Key(key)
            }
            (None, Some(file), None) => Credential::TokenFile(file),
            (None, None, Some(argv)) if !argv.is_empty() => Credential::TokenCommand(argv),
            _ => bail!("pull[{index}] needs exactly one of key, token_file and token_command"),
        };
        let mut s = PullSettings::new(Subscription {
            endpoint,
            topic,
            subscription,
            credential,
        });
        if let Some(name) = self.name {
            s.name = name;
        }
        if let Some(n) = self.max_events {
            if !(1..=100).contains(&n) {
                bail!("{}: must be 1 to 100", at("max_events"));
            }
            s.max_events = n;
        }
        if let Some(secs) = self.max_wait_seconds {
            if !(10..=120).contains(&secs) {
                bail!("{}: must be 10 to 120", at("max_wait_seconds"));
            }
            s.max_wait = Duration::from_secs(secs);
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                bail!("{}: must be at least 1", at("concurrency"));
            }
            s.concurrency = n;
        }
        if let Some(secs) = self.busy_release_delay_seconds {
            s.busy_release_delay = match secs {
                0 => ReleaseDelay::None,
                10 => ReleaseDelay::TenSeconds,
                60 => ReleaseDelay::OneMinute,
                600 => ReleaseDelay::TenMinutes,
                3600 => ReleaseDelay::OneHour,
                _ => bail!(
                    "{}: must be 0, 10, 60, 600 or 3600",
                    at("busy_release_delay_seconds")
                ),
            };
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "EG_KEY" => Some("the-key".into()),
            "GRIDLET_PULL_ENDPOINT" => Some("https://ns.westus-1.eventgrid.azure.net".into()),
            "GRIDLET_PULL_TOPIC" => Some("t".into()),
            "GRIDLET_PULL_SUBSCRIPTION" => Some("s".into()),
            "GRIDLET_PULL_TOKEN_FILE" => Some("/run/token".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> anyhow::Result<PullSettings> {
        let c: PullConfig = toml::from_str(text)?;
        c.build(0, &env)
    }

    #[test]
    fn a_source_is_read_with_its_defaults_and_its_key_from_the_environment() {
        let s = parse(
            "endpoint = \"https://ns\"\ntopic = \"t\"\nsubscription = \"s\"\nkey = \"${EG_KEY}\"",
        )
        .expect("valid");
        assert_eq!(s.name, "t/s");
        assert_eq!(
            (s.max_events, s.max_wait, s.concurrency),
            (100, Duration::from_secs(60), 1)
        );
        assert!(matches!(s.subscription.credential, Credential::Key(ref k) if k == "the-key"));
        let from_env = PullConfig::from_env(&env).expect("GRIDLET_PULL_ENDPOINT set");
        let s = from_env.build(1, &env).expect("valid");
        assert!(matches!(
            s.subscription.credential,
            Credential::TokenFile(_)
        ));
    }

    #[test]
    fn errors_name_the_entry_and_key_never_a_value() {
        let base = "endpoint = \"https://ns\"\ntopic = \"t\"\nsubscription = \"s\"\n";
        let cases = [
            (
                "topic = \"t\"\nsubscription = \"s\"\nkey = \"k\"",
                "pull[0].endpoint is required",
            ),
            (
                &format!("{base}key = \"secret-k\"\ntoken_file = \"/f\"") as &str,
                "pull[0] needs exactly one of key, token_file and token_command",
            ),
            (
                &format!("{base}key = \"k\"\nmax_events = 101"),
                "pull[0].max_events: must be 1 to 100",
            ),
            (
                &format!("{base}key = \"k\"\nmax_wait_seconds = 5"),
                "pull[0].max_wait_seconds: must be 10 to 120",
            ),
            (
                &format!("{base}key = \"k\"\nbusy_release_delay_seconds = 5"),
                "pull[0].busy_release_delay_seconds: must be 0, 10, 60, 600 or 3600",
            ),
            (
                "endpoint = \"ftp://x\"\ntopic = \"t\"\nsubscription = \"s\"\nkey = \"k\"",
                "pull[0].endpoint: must be an http(s) URL",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text).to_string();
            assert_eq!(error, expected);
            assert!(!error.contains("secret-k"));
        }
    }
}
