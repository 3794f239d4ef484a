//! Settings: one typed struct, read once from the environment and validated at start.
//!
//! Every variable of the contract has a field here; nothing else in the crate reads the environment.
//! Secrets (the app secret, passwords inside URLs) are kept in [`SecretString`] and never printed.

use std::{collections::HashMap, fmt, net::SocketAddr, str::FromStr, time::Duration};

use secrecy::{ExposeSecret, SecretString};

/// A bad or missing setting. Its message names the variable and never contains the value of a secret.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {var}: {reason}")]
pub struct SettingsError {
    pub var: &'static str,
    pub reason: String,
}

impl SettingsError {
    fn new(var: &'static str, reason: impl Into<String>) -> Self {
        Self {
            var,
            reason: reason.into(),
        }
    }
}

/// Queue type of the work queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// Replicated, with `x-delivery-limit` as the net for a message that kills its consumer.
    Quorum,
    /// Single-node classic queues (faster to declare; for development and tests).
    Classic,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone)]
pub struct Settings {
    /// Postgres; the password is redacted by `tokio_postgres::Config`'s own `Debug`.
    pub database: tokio_postgres::Config,
    /// Connections to Postgres per process.
    pub database_pool_size: usize,
    /// RabbitMQ URL; may carry a password, hence secret.
    pub amqp_url: SecretString,
    /// Prefix of every exchange and queue name.
    pub amqp_prefix: String,
    pub queue_type: QueueType,
    /// The app's client secret: the HMAC key of webhooks. Required by `serve`, `receiver`, `send`.
    pub api_secret: Option<SecretString>,
    /// Accepted as well while the secret is being rotated.
    pub api_secret_previous: Option<SecretString>,
    pub listen_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub max_body_bytes: usize,
    /// The receiver's deadline for the broker's confirm (Shopify waits 5 s in all).
    pub publish_timeout: Duration,
    /// The longest a client may take to send one request, headers and body (slow clients get 408).
    pub request_timeout: Duration,
    /// Connections the receiver serves at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// One delayed-retry tier per entry; a message gets `retry_delays.len() + 1` attempts.
    pub retry_delays: Vec<Duration>,
    pub prefetch: u16,
    /// Base of the Admin API; `{shop}` stands for the shop domain.
    pub shopify_admin_url: String,
    pub shopify_api_version: String,
    pub sync_interval: Duration,
    pub sync_stale_after: Duration,
    pub log_format: LogFormat,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<SecretString>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("database_pool_size", &self.database_pool_size)
            .field("amqp_url", &redact_url(self.amqp_url.expose_secret()))
            .field("amqp_prefix", &self.amqp_prefix)
            .field("queue_type", &self.queue_type)
            .field("api_secret", &redacted(&self.api_secret))
            .field("api_secret_previous", &redacted(&self.api_secret_previous))
            .field("listen_addr", &self.listen_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("publish_timeout", &self.publish_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("retry_delays", &self.retry_delays)
            .field("prefetch", &self.prefetch)
            .field("shopify_admin_url", &self.shopify_admin_url)
            .field("shopify_api_version", &self.shopify_api_version)
            .field("sync_interval", &self.sync_interval)
            .field("sync_stale_after", &self.sync_stale_after)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`, for display.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Settings {
    /// Reads the process environment. Call once, in `main`.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars().collect())
    }

    /// Builds settings from explicit variables (missing ones take their defaults). Tests use this.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, SettingsError> {
        let get = |name: &str| vars.get(name).map(String::as_str).filter(|v| !v.is_empty());
        let or = |name: &str, default: &'static str| get(name).unwrap_or(default).to_owned();

        let database_url = or(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/shopify_sync",
        );
        let database = tokio_postgres::Config::from_str(&database_url)
            .map_err(|e| SettingsError::new("DATABASE_URL", format!("not a Postgres URL ({e})")))?;
        if database.get_dbname().is_none() {
            return Err(SettingsError::new("DATABASE_URL", "names no database"));
        }

        let amqp_url = or("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f");
        amq_protocol_uri::AMQPUri::from_str(&amqp_url)
            .map_err(|_| SettingsError::new("AMQP_URL", "not an AMQP URL"))?;

        let amqp_prefix = or("AMQP_PREFIX", "shopify");
        if !amqp_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(SettingsError::new(
                "AMQP_PREFIX",
                "use letters, digits, '-', '_' and '.' only",
            ));
        }

        let queue_type = match get("QUEUE_TYPE").unwrap_or("quorum") {
            "quorum" => QueueType::Quorum,
            "classic" => QueueType::Classic,
            other => {
                return Err(SettingsError::new(
                    "QUEUE_TYPE",
                    format!("'{other}' is neither 'quorum' nor 'classic'"),
                ));
            }
        };

        let retry_delays = get("RETRY_DELAYS")
            .unwrap_or("10s,1m,5m,30m")
            .split(',')
            .map(|part| parse_duration("RETRY_DELAYS", part.trim()))
            .collect::<Result<Vec<_>, _>>()?;

        let prefetch: u16 = parse("PREFETCH", get("PREFETCH").unwrap_or("64"))?;
        if prefetch == 0 {
            return Err(SettingsError::new("PREFETCH", "must be at least 1"));
        }

        let log_format = match get("LOG_FORMAT").unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(SettingsError::new(
                    "LOG_FORMAT",
                    format!("'{other}' is neither 'pretty' nor 'json'"),
                ));
            }
        };

        let shopify_admin_url = or("SHOPIFY_ADMIN_URL", "https://{shop}");
        if !shopify_admin_url.starts_with("http://") && !shopify_admin_url.starts_with("https://") {
            return Err(SettingsError::new(
                "SHOPIFY_ADMIN_URL",
                "must start with http:// or https://",
            ));
        }

        let max_body_bytes: usize =
            parse("MAX_BODY_BYTES", get("MAX_BODY_BYTES").unwrap_or("5242880"))?;
        if max_body_bytes == 0 {
            return Err(SettingsError::new("MAX_BODY_BYTES", "must be at least 1"));
        }

        let max_connections: usize =
            parse("MAX_CONNECTIONS", get("MAX_CONNECTIONS").unwrap_or("1024"))?;
        if max_connections == 0 {
            return Err(SettingsError::new("MAX_CONNECTIONS", "must be at least 1"));
        }
        let database_pool_size: usize = parse(
            "DATABASE_POOL_SIZE",
            get("DATABASE_POOL_SIZE").unwrap_or("16"),
        )?;
        if database_pool_size == 0 {
            return Err(SettingsError::new(
                "DATABASE_POOL_SIZE",
                "must be at least 1",
            ));
        }

        Ok(Self {
            database,
            database_pool_size,
            amqp_url: amqp_url.into(),
            amqp_prefix,
            queue_type,
            api_secret: get("SHOPIFY_API_SECRET").map(SecretString::from),
            api_secret_previous: get("SHOPIFY_API_SECRET_PREVIOUS").map(SecretString::from),
            listen_addr: parse("LISTEN_ADDR", get("LISTEN_ADDR").unwrap_or("0.0.0.0:8080"))?,
            metrics_addr: parse(
                "METRICS_ADDR",
                get("METRICS_ADDR").unwrap_or("0.0.0.0:9091"),
            )?,
            max_body_bytes,
            publish_timeout: parse_duration(
                "PUBLISH_TIMEOUT",
                get("PUBLISH_TIMEOUT").unwrap_or("3s"),
            )?,
            request_timeout: parse_duration(
                "REQUEST_TIMEOUT",
                get("REQUEST_TIMEOUT").unwrap_or("10s"),
            )?,
            max_connections,
            retry_delays,
            prefetch,
            shopify_admin_url,
            shopify_api_version: or("SHOPIFY_API_VERSION", "2026-10"),
            sync_interval: parse_duration("SYNC_INTERVAL", get("SYNC_INTERVAL").unwrap_or("24h"))?,
            sync_stale_after: parse_duration(
                "SYNC_STALE_AFTER",
                get("SYNC_STALE_AFTER").unwrap_or("6h"),
            )?,
            log_format,
        })
    }

    /// The app secret, or an error naming the variable for commands that cannot run without it.
    pub fn require_api_secret(&self) -> Result<&SecretString, SettingsError> {
        self.api_secret
            .as_ref()
            .ok_or_else(|| SettingsError::new("SHOPIFY_API_SECRET", "is required by this command"))
    }

    /// Name of the database in `DATABASE_URL`.
    pub fn database_name(&self) -> &str {
        self.database.get_dbname().unwrap_or("shopify_sync")
    }
}

fn parse<T: FromStr>(var: &'static str, value: &str) -> Result<T, SettingsError>
where
    T::Err: fmt::Display,
{
    value
        .parse()
        .map_err(|e| SettingsError::new(var, format!("'{value}': {e}")))
}

/// Durations are a number and a unit: `ms`, `s`, `m` or `h` (`500ms`, `10s`, `1m`, `24h`).
pub fn parse_duration(var: &'static str, value: &str) -> Result<Duration, SettingsError> {
    let bad = || {
        SettingsError::new(
            var,
            format!("'{value}' is not a duration like 500ms, 10s, 1m or 24h"),
        )
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::from_vars(HashMap::new()).unwrap();
        assert_eq!(s.database_name(), "shopify_sync");
        assert_eq!(s.amqp_prefix, "shopify");
        assert_eq!(s.queue_type, QueueType::Quorum);
        assert_eq!(s.listen_addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.metrics_addr.to_string(), "0.0.0.0:9091");
        assert_eq!(s.max_body_bytes, 5_242_880);
        assert_eq!(s.publish_timeout, Duration::from_secs(3));
        assert_eq!(
            s.retry_delays,
            [10, 60, 300, 1800].map(Duration::from_secs).to_vec()
        );
        assert_eq!(s.prefetch, 64);
        assert_eq!(s.shopify_api_version, "2026-10");
        assert_eq!(s.sync_interval, Duration::from_secs(24 * 3600));
        assert_eq!(s.sync_stale_after, Duration::from_secs(6 * 3600));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.api_secret.is_none());
    }

    #[test]
    fn durations_take_ms_s_m_h() {
        assert_eq!(
            parse_duration("X", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("X", "3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("X", "5m").unwrap(), Duration::from_secs(300));
        assert_eq!(
            parse_duration("X", "24h").unwrap(),
            Duration::from_secs(86_400)
        );
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "10 s",
            "-1s",
            "3d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration("X", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (var, value) in [
            ("RETRY_DELAYS", "10s,soon"),
            ("PUBLISH_TIMEOUT", "3"),
            ("QUEUE_TYPE", "lazy"),
            ("PREFETCH", "0"),
            ("LISTEN_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("AMQP_URL", "http://x"),
            ("LOG_FORMAT", "xml"),
            ("MAX_BODY_BYTES", "-1"),
        ] {
            let err = Settings::from_vars(vars(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let s = Settings::from_vars(vars(&[
            ("SHOPIFY_API_SECRET", "hush-current"),
            ("SHOPIFY_API_SECRET_PREVIOUS", "hush-previous"),
            ("AMQP_URL", "amqp://user:hush-amqp@broker:5672/%2f"),
            ("DATABASE_URL", "postgres://user:hush-db@db/app"),
        ]))
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hush"), "{shown}");
        assert!(shown.contains("amqp://user:***@broker"));
    }

    #[test]
    fn missing_secret_is_reported_by_name() {
        let s = Settings::from_vars(HashMap::new()).unwrap();
        let err = s.require_api_secret().unwrap_err();
        assert_eq!(err.var, "SHOPIFY_API_SECRET");
    }
}
