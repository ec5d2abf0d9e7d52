//! Connections to Redis, shared by producers, workers and the admin API: one
//! server, or a Redis Cluster when the URL lists several nodes (or
//! [`BrokerConfig::cluster`] is set). Every key of a queue carries its hash tag,
//! so each of the queue's commands, pipelines and scripts goes to one node.

use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::{Manager, Pool};
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use crate::keys::{self, DEFAULT_PREFIX};
use crate::queue::{Lanes, Queue};
use crate::{Error, Result};

/// How to reach Redis.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS (the
    /// server's certificate is checked against the system's CAs, plus those of
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`, and its name against the host). Several
    /// comma-separated URLs are the seed nodes of a Redis Cluster.
    pub url: String,
    /// Treat even a single URL as a cluster seed node (`REDIS_CLUSTER=true`).
    pub cluster: bool,
    /// Key prefix; tests use their own to isolate themselves.
    pub prefix: String,
    /// Multiplexed connections in the pool (each pipelines many requests).
    pub pool_size: usize,
    /// Reply timeout for ordinary commands (blocking reads get their own).
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The URL's password is masked: a config shows up in `{:?}` of whatever
/// holds it (a broker, a service's state) and in panics.
impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &redact_url(&self.url))
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("response_timeout", &self.response_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl BrokerConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
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

    /// Connect to a Redis Cluster even when [`BrokerConfig::url`] names one node.
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = cluster;
        self
    }

    /// The URLs of [`BrokerConfig::url`], split at commas.
    pub fn nodes(&self) -> Vec<&str> {
        node_urls(&self.url)
    }

    /// Whether [`Broker::connect`] will talk to a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster || self.nodes().len() > 1
    }
}

/// The non-empty comma-separated items of a Redis URL list.
pub fn node_urls(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// A handle on one Redis deployment and key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    prefix: String,
    display_url: String,
    connect_timeout: Duration,
}

// One per broker, behind its Arc: the size of a variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Single {
        client: redis::Client,
        /// Pooled connections for admin work and tools.
        pool: Pool,
        /// One multiplexed, self-reconnecting connection for the hot paths
        /// (enqueue, read, settle): requests from every task are pipelined on
        /// it, and unlike a pool checkout it costs no extra round trip per use.
        shared: ConnectionManager,
    },
    Cluster {
        client: ClusterClient,
        /// Multiplexed per node, reconnecting and following slot moves by
        /// itself: a pool of them would add nothing, so admin work clones it too.
        shared: ClusterConnection,
    },
}

/// A connection of a [`Broker`]: to one server (pooled, shared or dedicated) or
/// to a cluster. Commands go through [`redis::aio::ConnectionLike`].
pub enum Connection {
    Pooled(deadpool_redis::Connection),
    Shared(ConnectionManager),
    Dedicated(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(c) => c.req_packed_command(cmd),
            Self::Shared(c) => c.req_packed_command(cmd),
            Self::Dedicated(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(c) => c.req_packed_commands(cmd, offset, count),
            Self::Shared(c) => c.req_packed_commands(cmd, offset, count),
            Self::Dedicated(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(c) => c.get_db(),
            Self::Shared(c) => c.get_db(),
            Self::Dedicated(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Where one `SCAN` runs: the server, or one master of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanNode {
    Server,
    Master { host: String, port: u16 },
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("url", &self.inner.display_url)
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl Broker {
    /// Opens the connections and checks with `PING` (every node of a cluster)
    /// that Redis answers.
    pub async fn connect(config: BrokerConfig) -> Result<Self> {
        keys::validate_prefix(&config.prefix)?;
        let display_url = redact_url(&config.url);
        let unreachable = |source| Error::Unreachable {
            url: display_url.clone(),
            source,
        };
        let backend = if config.is_cluster() {
            let client = ClusterClientBuilder::new(config.nodes())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.response_timeout)
                .retries(3)
                .build()
                .map_err(unreachable)?;
            let shared = client
                .get_async_connection_with_config(
                    ClusterConfig::new()
                        .set_connection_timeout(config.connect_timeout)
                        .set_response_timeout(config.response_timeout),
                )
                .await
                .map_err(unreachable)?;
            Backend::Cluster { client, shared }
        } else {
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
            Backend::Single {
                client,
                pool,
                shared,
            }
        };
        let broker = Self {
            inner: Arc::new(Inner {
                backend,
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
            .query_async::<()>(&mut conn)
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

    /// Whether this broker talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.backend, Backend::Cluster { .. })
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
    pub(crate) fn shared(&self) -> Connection {
        match &self.inner.backend {
            Backend::Single { shared, .. } => Connection::Shared(shared.clone()),
            Backend::Cluster { shared, .. } => Connection::Cluster(shared.clone()),
        }
    }

    pub(crate) async fn conn(&self) -> Result<Connection> {
        match &self.inner.backend {
            Backend::Single { pool, .. } => Ok(Connection::Pooled(pool.get().await?)),
            Backend::Cluster { shared, .. } => Ok(Connection::Cluster(shared.clone())),
        }
    }

    /// A connection for commands outside the queue API (readiness checks,
    /// tools). Key names must still come from [`crate::keys`].
    pub async fn connection(&self) -> Result<Connection> {
        self.conn().await
    }

    /// Answers whether Redis responds to `PING` (every node of a cluster), for
    /// readiness probes.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// A dedicated connection for `XREADGROUP ... BLOCK`: its reply timeout must
    /// outlast the block time, and a blocked read must not stall other commands
    /// (on a cluster, those to the same node).
    pub(crate) async fn blocking_conn(&self, block: Duration) -> Result<Connection> {
        let response_timeout = block + Duration::from_secs(5);
        match &self.inner.backend {
            Backend::Single { client, .. } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.inner.connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                Ok(Connection::Dedicated(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                ))
            }
            Backend::Cluster { client, .. } => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(self.inner.connect_timeout)
                    .set_response_timeout(response_timeout);
                Ok(Connection::Cluster(
                    client.get_async_connection_with_config(config).await?,
                ))
            }
        }
    }

    /// Where a full `SCAN` must run: the server, or every master of a cluster
    /// (a cluster node scans only its own slots).
    pub(crate) async fn scan_nodes(&self) -> Result<Vec<ScanNode>> {
        let Backend::Cluster { shared, .. } = &self.inner.backend else {
            return Ok(vec![ScanNode::Server]);
        };
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut shared.clone())
            .await?;
        masters_of(slots)
    }

    /// One `SCAN` step on `node`: the next cursor (0 when done) and the keys.
    pub(crate) async fn scan_step(
        &self,
        conn: &mut Connection,
        node: &ScanNode,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<String>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000);
        let reply = match (node, conn) {
            (ScanNode::Master { host, port }, Connection::Cluster(c)) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                c.route_command(cmd, route).await?
            }
            (_, conn) => cmd.query_async::<Value>(conn).await?,
        };
        Ok(redis::from_redis_value(reply)?)
    }
}

/// The distinct master addresses of a `CLUSTER SLOTS` reply
/// (`[[start, end, [host, port, id, ...], replicas...], ...]`).
fn masters_of(slots: Value) -> Result<Vec<ScanNode>> {
    let bad = || Error::Protocol("CLUSTER SLOTS: unexpected reply".into());
    let Value::Array(ranges) = slots else {
        return Err(bad());
    };
    let mut masters = Vec::new();
    for range in ranges {
        let Value::Array(items) = range else {
            return Err(bad());
        };
        let Some(Value::Array(master)) = items.into_iter().nth(2) else {
            return Err(bad());
        };
        let mut it = master.into_iter();
        let (Some(host), Some(port)) = (it.next(), it.next()) else {
            return Err(bad());
        };
        let host: String = redis::from_redis_value(host)?;
        let port: u16 = redis::from_redis_value(port)?;
        let node = ScanNode::Master { host, port };
        if !masters.contains(&node) {
            masters.push(node);
        }
    }
    Ok(masters)
}

/// Masks the password of a Redis URL (`redis://user:secret@h` -> `redis://user:***@h`),
/// or of each URL of a comma-separated cluster list.
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact_one).collect::<Vec<_>>().join(",");
    }
    redact_one(url)
}

fn redact_one(url: &str) -> String {
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
        assert_eq!(
            redact_url("redis://:pw@a:7000, redis://:pw@b:7001"),
            "redis://:***@a:7000, redis://:***@b:7001"
        );
    }

    #[test]
    fn a_config_in_a_debug_line_shows_no_password() {
        let config = BrokerConfig::new("redis://:s3cret@host:6379, redis://:s3cret@b:7001");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("redis://:***@host:6379"), "{shown}");
    }

    #[test]
    fn several_urls_or_the_cluster_flag_mean_a_cluster() {
        assert!(!BrokerConfig::new("redis://a:6379").is_cluster());
        assert!(
            BrokerConfig::new("redis://a:6379")
                .cluster(true)
                .is_cluster()
        );
        let config = BrokerConfig::new("redis://a:7000, redis://b:7001,");
        assert_eq!(config.nodes(), ["redis://a:7000", "redis://b:7001"]);
        assert!(config.is_cluster());
    }

    #[test]
    fn the_masters_of_a_cluster_slots_reply_are_listed_once_each() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range =
            |start, end, master| Value::Array(vec![Value::Int(start), Value::Int(end), master]);
        let reply = Value::Array(vec![
            range(0, 100, node("10.0.0.1", 7000)),
            range(101, 200, node("10.0.0.2", 7001)),
            range(201, 300, node("10.0.0.1", 7000)),
        ]);
        assert_eq!(
            masters_of(reply).expect("parsed"),
            [
                ScanNode::Master {
                    host: "10.0.0.1".into(),
                    port: 7000
                },
                ScanNode::Master {
                    host: "10.0.0.2".into(),
                    port: 7001
                },
            ]
        );
        assert!(masters_of(Value::Nil).is_err());
    }
}
