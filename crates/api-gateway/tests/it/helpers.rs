//! Spawns the gateway (and, when asked, a qr-worker) against the real Redis and a
//! database of its own, on port 0, with a key prefix and a storage dir of its own.
//! Redis keys and the database go away with the `TestApp`, also on panic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_gateway::{Config, QrFormat, Secret, SecretUrl};
use queue_core::CancellationToken;
use queue_core::testing::{
    PATIENCE, PrivateRedis, TestRedis, eventually, eventually_within, redis_url,
};
use service::testing::Running;
use store::testing::TestDb;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const USER_TOKEN: &str = "user-token-0123456789";

pub struct TestApp {
    pub addr: SocketAddr,
    /// `/healthz`, `/readyz` and `/metrics`.
    pub health_addr: SocketAddr,
    /// What the running gateway was started with.
    pub config: Config,
    pub client: reqwest::Client,
    db: Option<TestDb>,
    pub redis: TestRedis,
    /// Where `redis` is: the qr-worker connects there, whatever the gateway's
    /// config was tweaked to.
    redis_url: String,
    pub storage: tempfile::TempDir,
    pub shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    qr_worker: Option<Running>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, after `tweak` has adjusted the configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(TestRedis::new().await, &redis_url(), tweak).await
    }

    /// Like `spawn_with`, on the Redis of `redis` (e.g. a private cluster) at
    /// `url`; a qr-worker started later uses it too.
    pub async fn spawn_on(redis: TestRedis, url: &str, tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let storage = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            api_addr: "127.0.0.1:0".parse().expect("addr"),
            health_addr: "127.0.0.1:0".parse().expect("addr"),
            redis_url: SecretUrl::new(url),
            redis_cluster: redis.broker.is_cluster(),
            redis_prefix: redis.prefix.clone(),
            database_url: SecretUrl::new(db.url.clone()),
            database_max_connections: 5.try_into().expect("nonzero"),
            storage_dir: storage.path().to_path_buf(),
            admin_token: Secret::new(ADMIN_TOKEN),
            user_token: Secret::new(USER_TOKEN),
            qr_content_prefix: "PERSON:".into(),
            qr_format: QrFormat::Png,
            body_limit_bytes: (16 * 1024).try_into().expect("nonzero"),
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 64.try_into().expect("nonzero"),
            // Tests that count jobs right after a request rely on the enqueue,
            // also on a loaded machine; the outage tests shorten it.
            enqueue: api_gateway::config::EnqueueConfig {
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            context_min_length: api_gateway::config::DEFAULT_CONTEXT_MIN_LENGTH,
            wispro_per_page: api_gateway::config::DEFAULT_WISPRO_PER_PAGE,
            photos: api_gateway::config::PhotoConfig::default(),
            payments: api_gateway::config::PaymentsConfig::default(),
            dashboard: api_gateway::config::DashboardConfig::default(),
            auth: api_gateway::config::AuthConfig::default(),
        };
        tweak(&mut config);
        Self::start(config, Some(db), redis, url, storage).await
    }

    /// A second replica of `first`'s gateway: its configuration, so its
    /// database (which stays `first`'s) and Redis prefix.
    pub async fn spawn_replica_of(first: &TestApp) -> Self {
        let storage = tempfile::tempdir().expect("tempdir");
        let redis = TestRedis::new().await;
        Self::start(first.config.clone(), None, redis, &first.redis_url, storage).await
    }

    async fn start(
        config: Config,
        db: Option<TestDb>,
        redis: TestRedis,
        url: &str,
        storage: tempfile::TempDir,
    ) -> Self {
        let state = api_gateway::connect(config.clone()).await.expect("connect");
        let listener = tokio::net::TcpListener::bind(config.api_addr)
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let health = tokio::net::TcpListener::bind(config.health_addr)
            .await
            .expect("bind the health port");
        let health_addr = health.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(api_gateway::run_on(
            listener,
            health,
            state,
            shutdown.clone(),
        ));
        Self {
            addr,
            health_addr,
            config,
            client: reqwest::Client::new(),
            db,
            redis_url: url.to_owned(),
            redis,
            storage,
            shutdown,
            server: Some(server),
            qr_worker: None,
        }
    }

    /// Like `spawn_with`, on a Redis of its own that dies once the gateway
    /// has connected; the test's prefix on the shared Redis, where a worker
    /// connects, stays up, as after a failover. The dead server goes with the
    /// test.
    pub async fn spawn_with_redis_down(tweak: impl FnOnce(&mut Config)) -> (Self, PrivateRedis) {
        let mut redis = PrivateRedis::start().await;
        let url = redis.url();
        let app = Self::spawn_with(|c| {
            c.redis_url = SecretUrl::new(url);
            tweak(c);
        })
        .await;
        redis.kill().await;
        (app, redis)
    }

    /// Starts a qr-worker, exactly as its `main` runs it, on the same Redis
    /// prefix, database and storage, with millisecond intervals.
    pub async fn start_qr_worker(&mut self) {
        let mut config =
            qr_worker::testing::config(&self.redis.prefix, &self.db().url, self.storage.path());
        config.base.redis_url = SecretUrl::new(&self.redis_url);
        config.base.redis_cluster = self.redis.broker.is_cluster();
        self.qr_worker = Some(qr_worker::testing::spawn(config).await);
    }

    /// The test's own database.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("the database lives until cleanup")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET a path of the health port, without a token.
    pub async fn health_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("http://{}{path}", self.health_addr))
            .send()
            .await
            .expect("request")
    }

    /// Waits until the person's QR code is `ready`.
    pub async fn until_ready(&self, id: i64, within: Duration) {
        eventually_within(&format!("person {id} is ready"), within, async || {
            let p: serde_json::Value = self
                .get(USER_TOKEN, &format!("/api/persons/{id}"))
                .await
                .json()
                .await
                .ok()?;
            (p["qr_status"] == "ready").then_some(())
        })
        .await;
    }

    pub fn file(&self, qr_path: &str) -> PathBuf {
        self.storage.path().join(qr_path)
    }

    pub async fn post_person(
        &self,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url("/api/persons")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post_company(
        &self,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url("/api/companies")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// GET `path` with `token`, its body as JSON.
    pub async fn get_json(&self, token: &str, path: &str) -> serde_json::Value {
        self.get(token, path).await.json().await.expect("json")
    }

    /// GET `path` without a token.
    pub async fn get_anonymous(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// The served OpenAPI document (no token needed).
    pub async fn openapi(&self) -> serde_json::Value {
        self.get_anonymous("/openapi.json")
            .await
            .json()
            .await
            .expect("json")
    }

    /// POST `body` as `content_type` to `path` with the user's token.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(USER_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// The entry of queue `name` in the admin API's list of queues.
    pub async fn queue_listed(&self, name: &str) -> serde_json::Value {
        let queues = self.get_json(ADMIN_TOKEN, "/api/queues").await;
        queues
            .as_array()
            .expect("a list")
            .iter()
            .find(|q| q["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("the {name} queue is listed: {queues}"))
    }

    /// Polls the person at `person_url` until its `qr_status` is `status`; the
    /// person as the API shows it.
    pub async fn person_until(&self, person_url: &str, status: &str) -> serde_json::Value {
        eventually(&format!("status {status}"), async || {
            let p = self.get_json(USER_TOKEN, person_url).await;
            (p["qr_status"] == status).then_some(p)
        })
        .await
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    /// The `J` jobs waiting in their queue's streams (every lane, highest
    /// first), decoded, oldest first in each.
    pub async fn waiting_jobs<J: jobs::JobKind>(&self) -> Vec<(queue_core::Envelope, J)> {
        let queue = J::QUEUE.open(&self.redis.broker).expect("queue");
        let mut entries: Vec<(String, std::collections::HashMap<String, Vec<u8>>)> = Vec::new();
        // A queue without lanes has only the middle stream; the others read empty.
        for lane in [Some("high"), None, Some("low")] {
            let stream = queue.keys().stream(lane);
            let lane: Vec<(String, std::collections::HashMap<String, Vec<u8>>)> = self
                .redis
                .cmd(redis::cmd("XRANGE").arg(stream).arg("-").arg("+"))
                .await;
            entries.extend(lane);
        }
        entries
            .into_iter()
            .map(|(_, fields)| {
                let bytes = &fields[queue_core::fields::ENVELOPE];
                let envelope = <queue_core::Envelope as prost::Message>::decode(bytes.as_slice())
                    .expect("an envelope");
                let payload = J::decode(&envelope.payload[..]).expect("a payload");
                (envelope, payload)
            })
            .collect()
    }

    pub async fn qr_stats(&self) -> queue_core::QueueStats {
        let q = jobs::QR.open(&self.redis.broker).expect("queue");
        self.redis.stats(&q).await
    }

    /// Stops the worker and the gateway (both must stop cleanly) and drops the
    /// database; the Redis keys of the test's prefix go when `redis` is dropped.
    pub async fn cleanup(mut self) {
        if let Some(worker) = self.qr_worker.take() {
            worker.stop().await;
        }
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            tokio::time::timeout(PATIENCE, server)
                .await
                .expect("the gateway drains in time")
                .expect("the gateway task does not panic")
                .expect("the gateway stops cleanly");
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Checks that `res` is an error with `status` and the error code `error`; its body.
pub async fn assert_error(res: reqwest::Response, status: u16, error: &str) -> serde_json::Value {
    assert_eq!(res.status(), status);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Checks that `res` is the answer to a request without a valid token: 401,
/// `WWW-Authenticate: Bearer` and the error code `unauthorized`.
pub async fn assert_unauthorized(res: reqwest::Response) {
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(res, 401, "unauthorized").await;
}

/// Checks that a create answered 201, as it does whenever PostgreSQL is up;
/// its body.
pub async fn assert_created(res: reqwest::Response) -> serde_json::Value {
    assert_eq!(
        res.status(),
        201,
        "a create never answers 503 while PostgreSQL is up"
    );
    res.json().await.expect("json")
}

/// A token no one was given.
pub const WRONG_TOKEN: &str = "wrong-token-0123456789";

/// Log lines written while it is the thread's default subscriber.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let logs = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || logs.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().expect("logs").clone()).expect("utf-8");
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}
