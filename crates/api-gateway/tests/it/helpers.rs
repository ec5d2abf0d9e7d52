//! Spawns the gateway (and, when asked, a qr-worker) against real Redis and a
//! database of its own, on port 0, with a key prefix and a storage dir of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use api_gateway::{Config, QrFormat, Secret};
use queue_core::{Admin, Backoff, Broker, BrokerConfig, CancellationToken, WorkerConfig};
use store::testing::TestDb;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const USER_TOKEN: &str = "user-token-0123456789";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// What the running gateway was started with.
    pub config: Config,
    pub client: reqwest::Client,
    pub db: Option<TestDb>,
    pub prefix: String,
    pub storage: tempfile::TempDir,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, after `tweak` has adjusted the configuration.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        let prefix = format!("gw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let storage = tempfile::tempdir().expect("tempdir");
        let config = Config {
            api_addr: "127.0.0.1:0".parse().expect("addr"),
            redis_url: Secret::new(redis_url()),
            redis_prefix: prefix.clone(),
            database_url: Secret::new(db.url.clone()),
            database_max_connections: 5,
            storage_dir: storage.path().to_path_buf(),
            admin_token: Secret::new(ADMIN_TOKEN),
            user_token: Secret::new(USER_TOKEN),
            qr_content_prefix: "PERSON:".into(),
            qr_format: QrFormat::Png,
            body_limit_bytes: 16 * 1024,
            request_timeout: Duration::from_secs(30),
        };
        let mut config = config;
        tweak(&mut config);
        let state = api_gateway::connect(config.clone()).await.expect("connect");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(api_gateway::run_on(listener, state, shutdown.clone()));
        let broker = Broker::connect(BrokerConfig::new(redis_url()).prefix(&prefix))
            .await
            .expect("broker");
        Self {
            addr,
            config,
            client: reqwest::Client::new(),
            db: Some(db),
            prefix,
            storage,
            broker,
            shutdown,
            tasks: vec![task],
        }
    }

    /// Starts a qr-worker on the same Redis prefix, database and storage, with
    /// millisecond backoffs so retries finish quickly.
    pub fn start_qr_worker(&mut self) {
        let db = self.db.as_ref().expect("db");
        let config = qr_worker::Config {
            redis_url: redis_url(),
            redis_prefix: self.prefix.clone(),
            database_url: db.url.clone(),
            storage_dir: self.storage.path().to_path_buf(),
            health_addr: "127.0.0.1:0".parse().expect("addr"),
            worker: WorkerConfig {
                backoff: Backoff {
                    initial: Duration::from_millis(20),
                    ..Backoff::default()
                },
                promote_interval: Duration::from_millis(20),
                block: Duration::from_millis(200),
                ..jobs::QR.worker_config()
            },
            ..qr_worker::Config::default()
        };
        self.tasks
            .push(tokio::spawn(qr_worker::run(config, self.shutdown.clone())));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request")
    }

    pub async fn qr_stats(&self) -> queue_core::QueueStats {
        let admin = Admin::new(self.broker.clone());
        let q = jobs::QR.open(&self.broker).expect("queue");
        admin.stats(&q).await.expect("stats")
    }

    /// Stops the app and workers, drops the database and every Redis key of the test.
    pub async fn cleanup(mut self) {
        self.shutdown.cancel();
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        delete_prefix(&self.prefix);
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        delete_prefix(&self.prefix);
    }
}

fn delete_prefix(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}

/// Polls `check` until it returns Some, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("png").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "exactly one QR code in the image");
    grids[0].decode().expect("QR decodes").1
}
