//! Connections to Redis, shared by producers, workers and the admin API.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Manager, Pool};
use redis::AsyncConnectionConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};

use crate::keys::{self, DEFAULT_PREFIX};
use crate::queue::{Lanes, Queue};
use crate::{Error, Result};

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Key prefix; tests use their own to isolate themselves.
    pub prefix: String,
    /// Multiplexed connections in the pool (each pipelines many requests).
    pub pool_size: usize,
    /// Reply timeout for ordinary commands (blocking reads get their own).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            pool_size: 4,
            response_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// A handle on one Redis deployment and key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Pooled connections for admin work and tools.
    pool: Pool,
    /// One multiplexed, self-reconnecting connection for the hot paths (enqueue,
    /// read, settle): requests from every task are pipelined on it, and unlike a
    /// pool checkout it costs no extra round trip per use.
    shared: ConnectionManager,
    prefix: String,
    display_url: String,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.inner.display_url)
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl Broker {
    /// Opens the pool and checks with `PING` that Redis answers.
    pub async fn connect(config: BrokerConfig) -> Result<Self> {
        keys::validate_prefix(&config.prefix)?;
        let display_url = redact_url(&config.url);
        let unreachable = |source| Error::Unreachable {
            url: display_url.clone(),
            source,
        };
        let client = redis::Client::open(config.url.as_str()).map_err(unreachable)?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout));
        let manager =
            Manager::new_with_config(config.url.as_str(), conn_config).map_err(unreachable)?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidConfig(format!("redis pool: {e}")))?;
        let shared = ConnectionManager::new_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout))
                .set_number_of_retries(3),
        )
        .await
        .map_err(unreachable)?;
        let broker = Self {
            inner: Arc::new(Inner {
                client,
                pool,
                shared,
                prefix: config.prefix,
                display_url: display_url.clone(),
                connect_timeout: config.connect_timeout,
            }),
        };
        let mut conn = broker.conn().await.map_err(|e| match e {
            Error::Pool(deadpool_redis::PoolError::Backend(source)) => unreachable(source),
            other => other,
        })?;
        redis::cmd("PING")
            .query_async::<()>(&mut *conn)
            .await
            .map_err(unreachable)?;
        Ok(broker)
    }

    /// The key prefix of every queue of this broker.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The Redis URL with any password masked, for logs and error messages.
    pub fn display_url(&self) -> &str {
        &self.inner.display_url
    }

    /// A queue with one lane.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        Queue::new(&self.inner.prefix, name, Lanes::Single)
    }

    /// A queue with three priority lanes (high, normal, low), read highest first.
    pub fn priority_queue(&self, name: &str) -> Result<Queue> {
        Queue::new(&self.inner.prefix, name, Lanes::Priority)
    }

    /// The shared multiplexed connection (cheap to clone).
    pub(crate) fn shared(&self) -> ConnectionManager {
        self.inner.shared.clone()
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_redis::Connection> {
        Ok(self.inner.pool.get().await?)
    }

    /// A pooled connection for commands outside the queue API (readiness checks,
    /// tools). Key names must still come from [`crate::keys`].
    pub async fn connection(&self) -> Result<deadpool_redis::Connection> {
        self.conn().await
    }

    /// Answers whether Redis responds to `PING` (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut *conn).await?;
        Ok(())
    }

    /// A dedicated connection for `XREADGROUP ... BLOCK`: its reply timeout must
    /// outlast the block time, and a blocked read must not stall other commands.
    pub(crate) async fn blocking_conn(&self, block: Duration) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.inner.connect_timeout))
            .set_response_timeout(Some(block + Duration::from_secs(5)));
        Ok(self
            .inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

/// Masks the password of a Redis URL (`redis://user:secret@h` -> `redis://user:***@h`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end + 3], masked, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_appear_in_a_displayed_url() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("rediss://:pw@host"), "rediss://:***@host");
        assert_eq!(redact_url("redis://token@host"), "redis://***@host");
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
