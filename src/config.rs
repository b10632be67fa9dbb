//! Environment -> validated [`Config`]. A bad value stops the function at start with a
//! message naming the variable, never a panic mid-stream.

use std::time::Duration;

use crate::auth::ApiKeys;
use crate::cursor::MAX_FEED_SHARDS;

/// Everything the function reads from its environment (besides the AWS SDK's own).
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub stream_max: Duration,
    /// How far back `since` and cursors may reach.
    pub lookback: Duration,
    pub feed_shards: usize,
    /// Open streams allowed per client (source IP), across all instances.
    pub max_streams_per_client: u32,
    /// How long after a stream's cap its lease lapses when nobody released it (a
    /// killed instance): until then the slot counts against its client.
    pub stream_lease_grace: Duration,
    pub publish_keys: ApiKeys,
    pub log_format: LogFormat,
    /// Whether the streams of this process share one read of the log
    /// (`SHARED_READ`, on by default; off: every stream reads alone).
    pub shared_read: bool,
    /// What this function serves (`ROUTES`): every route, or publishing and lookups
    /// only (the publish function, whose reserved concurrency streams must not take).
    pub routes: Routes,
}

/// The routes a function serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    All,
    /// Everything but the stream.
    Publish,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the config from any variable lookup (the environment, or a test's map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let number =
            |name: &'static str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
                let Some(value) = var(name) else {
                    return Ok(default);
                };
                match value.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(ConfigError {
                        name,
                        value,
                        reason: format!(
                            "expected a whole number from {min} to {max} (default {default})"
                        ),
                    }),
                }
            };

        let table_name = var("TABLE_NAME").unwrap_or_else(|| "firehose".to_owned());
        let table_ok = (3..=255).contains(&table_name.len())
            && table_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !table_ok {
            return Err(ConfigError {
                name: "TABLE_NAME",
                value: table_name,
                reason: "expected 3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.'".into(),
            });
        }

        let publish_keys = match var("PUBLISH_API_KEY_SHA256") {
            None => ApiKeys::default(),
            Some(value) => ApiKeys::parse(&value).map_err(|reason| ConfigError {
                name: "PUBLISH_API_KEY_SHA256",
                // Hashes are not secrets, but there is no reason to echo them either.
                value: format!("<{} characters>", value.len()),
                reason,
            })?,
        };

        let log_format = match var("LOG_FORMAT").as_deref().map(str::trim) {
            None => {
                if lookup("AWS_LAMBDA_FUNCTION_NAME").is_some() {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                }
            }
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    reason: "expected json or text".into(),
                })
            }
        };

        let shared_read = match var("SHARED_READ").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError {
                    name: "SHARED_READ",
                    value: other.to_owned(),
                    reason: "expected on or off".into(),
                })
            }
        };

        let routes = match var("ROUTES").as_deref().map(str::trim) {
            None | Some("all") => Routes::All,
            Some("publish") => Routes::Publish,
            Some(other) => {
                return Err(ConfigError {
                    name: "ROUTES",
                    value: other.to_owned(),
                    reason: "expected all or publish".into(),
                })
            }
        };

        Ok(Config {
            table_name,
            poll_interval: Duration::from_millis(number("POLL_INTERVAL_MS", 1000, 50, 60_000)?),
            heartbeat: Duration::from_secs(number("HEARTBEAT_SECONDS", 15, 1, 300)?),
            // Lambda's hard limit is 900 s; the template's timeout must stay above this.
            stream_max: Duration::from_secs(number("STREAM_MAX_SECONDS", 270, 1, 890)?),
            lookback: Duration::from_secs(number("LOOKBACK_SECONDS", 86_400, 60, 30 * 86_400)?),
            feed_shards: usize::try_from(number("FEED_SHARDS", 1, 1, MAX_FEED_SHARDS as u64)?)
                .unwrap_or(1),
            max_streams_per_client: u32::try_from(number("MAX_STREAMS_PER_CLIENT", 10, 1, 10_000)?)
                .unwrap_or(10),
            stream_lease_grace: Duration::from_secs(number(
                "STREAM_LEASE_GRACE_SECONDS",
                30,
                1,
                600,
            )?),
            publish_keys,
            log_format,
            shared_read,
            routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.table_name, "firehose");
        assert_eq!(config.poll_interval, Duration::from_secs(1));
        assert_eq!(config.heartbeat, Duration::from_secs(15));
        assert_eq!(config.stream_max, Duration::from_secs(270));
        assert_eq!(config.lookback, Duration::from_secs(86_400));
        assert_eq!(config.feed_shards, 1);
        assert_eq!(config.max_streams_per_client, 10);
        assert_eq!(config.stream_lease_grace, Duration::from_secs(30));
        assert!(config.publish_keys.is_empty());
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.shared_read);
        let off = super::tests::config(&[("SHARED_READ", "off")]).expect("valid");
        assert!(!off.shared_read);
        assert_eq!(config.routes, Routes::All);
        let publish = super::tests::config(&[("ROUTES", "publish")]).expect("valid");
        assert_eq!(publish.routes, Routes::Publish);
    }

    #[test]
    fn reads_every_variable() {
        let hash = "a".repeat(64);
        let config = config(&[
            ("TABLE_NAME", "bounties-dev"),
            ("POLL_INTERVAL_MS", "250"),
            ("HEARTBEAT_SECONDS", "2"),
            ("STREAM_MAX_SECONDS", "5"),
            ("LOOKBACK_SECONDS", "600"),
            ("FEED_SHARDS", "4"),
            ("MAX_STREAMS_PER_CLIENT", "3"),
            ("STREAM_LEASE_GRACE_SECONDS", "2"),
            (
                "PUBLISH_API_KEY_SHA256",
                &format!("{hash}, {}", "b".repeat(64)),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", "firehose"),
        ])
        .expect("valid");
        assert_eq!(config.poll_interval, Duration::from_millis(250));
        assert_eq!(config.feed_shards, 4);
        assert_eq!(config.max_streams_per_client, 3);
        assert_eq!(config.stream_lease_grace, Duration::from_secs(2));
        assert_eq!(config.publish_keys.len(), 2);
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("POLL_INTERVAL_MS", "fast"),
            ("POLL_INTERVAL_MS", "10"),
            ("HEARTBEAT_SECONDS", "-1"),
            ("STREAM_MAX_SECONDS", "900"),
            ("LOOKBACK_SECONDS", "1"),
            ("FEED_SHARDS", "0"),
            ("FEED_SHARDS", "17"),
            ("MAX_STREAMS_PER_CLIENT", "1e3"),
            ("MAX_STREAMS_PER_CLIENT", "0"),
            ("STREAM_LEASE_GRACE_SECONDS", "0"),
            ("STREAM_LEASE_GRACE_SECONDS", "601"),
            ("PUBLISH_API_KEY_SHA256", "not-a-hash"),
            ("TABLE_NAME", "a b"),
            ("LOG_FORMAT", "xml"),
            ("SHARED_READ", "yes"),
            ("ROUTES", "stream"),
        ] {
            let err = config(&[(name, value)]).expect_err(name);
            assert_eq!(err.name, name);
            assert!(err.to_string().contains(name));
        }
    }
}
