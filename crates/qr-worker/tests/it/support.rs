//! What the QR tests add to the owners' test support (`queue_core::testing`,
//! `store::testing`, `qr_worker::testing`): one test's world with its storage
//! directory, and persons stored the way the gateway stores them.

use std::path::{Path, PathBuf};

use jobs::v1::GenerateQr;
use qr_worker::Config;
use queue_core::testing::{TestRedis, eventually};
use queue_core::{Queue, QueueStats};
use service::testing::Running;
use store::persons::{self, NewPerson, Person};
use store::testing::TestDb;

/// One test's world.
pub struct TestApp {
    pub redis: TestRedis,
    pub db: TestDb,
    pub queue: Queue,
    pub storage: tempfile::TempDir,
}

impl TestApp {
    pub async fn new() -> Self {
        let redis = TestRedis::new().await;
        Self {
            queue: redis.queue(jobs::QR.name),
            db: TestDb::new().await,
            storage: tempfile::tempdir().expect("a temporary storage directory"),
            redis,
        }
    }

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and storage, with fast settings and the health port picked by
    /// the system.
    pub fn config(&self) -> Config {
        qr_worker::testing::config(&self.redis.prefix, &self.db.url, self.storage.path())
    }

    /// Starts the worker with [`TestApp::config`].
    pub async fn spawn_worker(&self) -> Running {
        qr_worker::testing::spawn(self.config()).await
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

    /// Enqueues the QR job of `person` as the gateway does (with the row's key,
    /// unique until settled); returns the job id.
    pub async fn enqueue(&self, person: &Person) -> String {
        self.redis
            .producer
            .enqueue(&self.queue, jobs::rows::qr_job(person))
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    pub async fn enqueue_raw(&self, job: GenerateQr) -> String {
        self.redis
            .producer
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
        eventually(what, async || Some(self.person(id).await).filter(&done)).await
    }

    /// Waits until the job `job_id` has a completion record.
    pub async fn completed_until(&self, job_id: &str) {
        self.redis.completed_until(&self.queue, job_id).await
    }

    /// How many `qr.generate` jobs completed (the reconciler's own runs are
    /// completions too, so `QueueStats::completed` counts more than renderings).
    pub async fn renderings(&self) -> usize {
        self.redis
            .admin
            .completions(&self.queue, 1000)
            .await
            .expect("completions")
            .iter()
            .filter(|c| c.kind == "qr.generate")
            .count()
    }

    pub async fn stats_until(&self, what: &str, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
        self.redis.stats_until(&self.queue, what, done).await
    }

    /// Deletes the queue's keys (checking none is left) and drops the database.
    /// Stop workers first.
    pub async fn finish(self) {
        self.redis.finish().await;
        self.db.cleanup().await;
    }
}

/// Decodes the one QR code of a PNG file.
pub fn decode_png(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    qr_worker::testing::decode_qr_png(&bytes)
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
