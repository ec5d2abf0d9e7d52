//! What the QR tests add to the owners' test support (`service::testing`'s
//! world, `qr_worker::testing`): the worker's config for the world, persons
//! stored the way the gateway stores them, and files read back.

use std::path::Path;

use jobs::v1::GenerateQr;
use qr_worker::Config;
use queue_core::testing::eventually;
use service::testing::{Running, TestWorld};
use store::persons::{self, NewPerson, Person, QrStatus};

/// One QR test's world.
pub type TestApp = TestWorld;

/// What the QR tests add to their world.
pub trait QrWorld: Sized {
    /// A world on the `qr` queue.
    async fn new() -> Self;

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and storage, with fast settings and the health port picked by
    /// the system.
    fn config(&self) -> Config;

    /// Starts the worker with [`QrWorld::config`].
    async fn spawn_worker(&self) -> Running;

    /// Stores a person the way the gateway does: at once, `pending`, QR path predefined.
    async fn add_person(&self, document: &str, qr_content: &str, qr_path: &str) -> Person;

    /// Enqueues the QR job of `person` as the gateway does (with the row's key,
    /// unique until settled); returns the job id.
    async fn enqueue(&self, person: &Person) -> String;

    /// Enqueues `job` as it is, without a key; returns the job id.
    async fn enqueue_raw(&self, job: GenerateQr) -> String;

    async fn person(&self, id: i64) -> Person;

    /// Polls the person row until its QR is `status`.
    async fn person_until(&self, id: i64, status: QrStatus) -> Person;

    /// How many `qr.generate` jobs completed (the reconciler's own runs are
    /// completions too, so `QueueStats::completed` counts more than renderings).
    async fn renderings(&self) -> usize;
}

impl QrWorld for TestApp {
    async fn new() -> Self {
        TestWorld::for_queue(&jobs::QR).await
    }

    fn config(&self) -> Config {
        qr_worker::testing::config(&self.redis.prefix, &self.db.url, self.storage.path())
    }

    async fn spawn_worker(&self) -> Running {
        qr_worker::testing::spawn(self.config()).await
    }

    async fn add_person(&self, document: &str, qr_content: &str, qr_path: &str) -> Person {
        persons::insert(
            &mut *self.conn().await,
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

    async fn enqueue(&self, person: &Person) -> String {
        self.enqueue_job(jobs::rows::qr_job(person)).await
    }

    async fn enqueue_raw(&self, job: GenerateQr) -> String {
        self.enqueue_job(jobs::new_job(&job)).await
    }

    async fn person(&self, id: i64) -> Person {
        persons::get(&mut *self.conn().await, id)
            .await
            .expect("get person")
            .expect("the person exists")
    }

    async fn person_until(&self, id: i64, status: QrStatus) -> Person {
        eventually(&format!("person {id}'s QR is {status:?}"), async || {
            Some(self.person(id).await).filter(|p| p.qr_status == status)
        })
        .await
    }

    async fn renderings(&self) -> usize {
        self.completions_of("qr.generate").await
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
