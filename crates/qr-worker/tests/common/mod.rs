//! What every integration test needs: a key prefix of its own on the real Redis,
//! a database of its own on the real PostgreSQL, a temporary storage directory,
//! and the worker running in-process through [`qr_worker::QrWorker`], exactly as
//! `main` runs it. Conditions are polled against a deadline, never slept on.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jobs::v1::GenerateQr;
use qr_worker::{Config, QrWorker};
use queue_core::{
    Admin, Backoff, Broker, BrokerConfig, CancellationToken, Producer, Queue, QueueStats,
    WorkerConfig,
};
use store::persons::{self, NewPerson, Person};
use store::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Longest a condition may take; generous for loaded debug builds, free when it passes.
pub const PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The catalogue's QR settings with every interval in milliseconds, so retries and
/// shutdown happen within a test.
pub fn fast_worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4.try_into().expect("nonzero"),
        block: ms(200),
        visibility_timeout: ms(400),
        heartbeat_interval: ms(100),
        reclaim_interval: ms(50),
        promote_interval: ms(20),
        pause_poll: ms(20),
        grace_period: Duration::from_secs(5),
        backoff: Backoff {
            initial: ms(20),
            ..Backoff::default()
        },
        ..jobs::QR.worker_config()
    }
}

/// One test's world.
pub struct TestApp {
    pub db: TestDb,
    pub prefix: String,
    pub broker: Broker,
    pub admin: Admin,
    pub producer: Producer,
    pub queue: Queue,
    pub storage: tempfile::TempDir,
    _keys: PrefixGuard,
}

impl TestApp {
    pub async fn new() -> Self {
        let prefix = format!("t-qr-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        // Created before anything can write under the prefix.
        let keys = PrefixGuard {
            url: redis_url(),
            prefix: prefix.clone(),
        };
        let broker = Broker::connect(BrokerConfig::new(redis_url()).prefix(&prefix))
            .await
            .expect("the tests need Redis at REDIS_URL or redis://127.0.0.1:6379");
        Self {
            db: TestDb::new().await,
            queue: jobs::QR.open(&broker).expect("the qr queue"),
            admin: Admin::new(broker.clone()),
            producer: Producer::new(broker.clone()),
            broker,
            prefix,
            storage: tempfile::tempdir().expect("a temporary storage directory"),
            _keys: keys,
        }
    }

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and storage, with the health port picked by the system.
    pub fn config(&self) -> Config {
        Config {
            redis_url: redis_url(),
            redis_prefix: self.prefix.clone(),
            database_url: self.db.url.clone(),
            storage_dir: self.storage.path().to_owned(),
            health_addr: "127.0.0.1:0".parse().expect("address"),
            worker: fast_worker_config(),
            ..Config::default()
        }
    }

    /// Starts the worker with [`TestApp::config`].
    pub async fn spawn_worker(&self) -> RunningWorker {
        RunningWorker::spawn(self.config()).await
    }

    pub fn storage_path(&self, path: &str) -> PathBuf {
        self.storage.path().join(path)
    }

    /// Stores a person the way the gateway does: at once, `pending`, QR path predefined.
    pub async fn add_person(&self, document: &str, qr_content: &str, qr_path: &str) -> Person {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        persons::insert(
            &mut conn,
            &NewPerson {
                document,
                first_name: "Ana",
                last_name: "Pérez",
                email: None,
                qr_content,
                qr_path,
            },
        )
        .await
        .expect("insert person")
    }

    /// Enqueues the QR job of `person`; returns the job id.
    pub async fn enqueue(&self, person: &Person) -> String {
        self.enqueue_raw(GenerateQr {
            person_id: person.id,
            content: person.qr_content.clone(),
            path: person.qr_path.clone(),
        })
        .await
    }

    pub async fn enqueue_raw(&self, job: GenerateQr) -> String {
        self.producer
            .enqueue(&self.queue, jobs::new_job(&job))
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    pub async fn person(&self, id: i64) -> Person {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        persons::get(&mut conn, id)
            .await
            .expect("get person")
            .expect("the person exists")
    }

    /// Polls the person row until `done` holds.
    pub async fn person_until(
        &self,
        id: i64,
        what: &str,
        done: impl Fn(&Person) -> bool,
    ) -> Person {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let p = self.person(id).await;
            if done(&p) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting until {what}; last row: status {:?}, error {:?}",
                p.qr_status,
                p.qr_error
            );
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn stats_until(&self, what: &str, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.admin.stats(&self.queue).await.expect("stats");
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting until {what}; last stats: {s:#?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deletes the queue's keys and the registry (checking none is left) and drops
    /// the database. Stop workers first.
    pub async fn finish(self) {
        self.admin
            .destroy(&self.queue)
            .await
            .expect("destroy the queue");
        let mut conn = self.broker.connection().await.expect("redis connection");
        let _: () = redis::cmd("DEL")
            .arg(queue_core::keys::registry(&self.prefix))
            .query_async(&mut *conn)
            .await
            .expect("delete the registry");
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut *conn)
            .await
            .expect("KEYS");
        assert!(left.is_empty(), "keys left: {left:?}");
        drop(conn);
        self.db.cleanup().await;
    }
}

/// The worker running in a task of the test's runtime; cancelled when dropped.
pub struct RunningWorker {
    pub health_addr: SocketAddr,
    stop: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningWorker {
    pub async fn spawn(config: Config) -> Self {
        let worker = QrWorker::start(config).await.expect("the worker starts");
        let health_addr = worker.health_addr();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(worker.run(stop.clone()));
        Self {
            health_addr,
            stop,
            handle: Some(handle),
        }
    }

    /// Whether `run` is still running (it must not stop on a failing job).
    pub fn is_running(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Cancels the worker and checks that `run` returns Ok in time.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let handle = self.handle.take().expect("stopped once");
        tokio::time::timeout(PATIENCE, handle)
            .await
            .expect("the worker stops within the deadline")
            .expect("the worker task does not panic")
            .expect("run returns Ok");
    }
}

impl Drop for RunningWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Decodes the one QR code of a PNG file.
pub fn decode_png(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .expect("a valid PNG")
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in {}", path.display());
    grids[0].decode().expect("the QR code decodes").1
}

/// The names in a directory, sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `GET path` on the health port: (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the health port");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("the health port answers in time")
        .expect("read response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Deletes every key of a prefix when dropped, also when a test panics.
struct PrefixGuard {
    url: String,
    prefix: String,
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        let mut cursor: u64 = 0;
        loop {
            let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut conn)
            else {
                return;
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<u64> = redis::cmd("UNLINK").arg(&keys).query(&mut conn);
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }
}
