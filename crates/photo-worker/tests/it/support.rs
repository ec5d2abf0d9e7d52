//! What the photo tests add to the owners' test support (`queue_core::testing`,
//! `store::testing`, `photo_worker::testing`): one test's world with its
//! storage directory, photos stored the way the gateway stores them, and a
//! photo server on loopback for URLs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use photo_worker::Config;
use queue_core::testing::{PATIENCE, TestRedis, eventually_within};
use queue_core::{Queue, QueueStats};
use service::testing::Running;
use storage::Storage;
use store::photos::{self, Detection, NewPhoto, Photo};
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
            queue: redis.queue(jobs::PHOTOS.name),
            db: TestDb::new().await,
            storage: tempfile::tempdir().expect("a temporary storage directory"),
            redis,
        }
    }

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and storage, with fast settings.
    pub fn config(&self) -> Config {
        photo_worker::testing::config(&self.redis.prefix, &self.db.url, self.storage.path())
    }

    pub async fn spawn_worker(&self) -> Running {
        photo_worker::testing::spawn(self.config()).await
    }

    pub async fn spawn_worker_with(&self, tweak: impl FnOnce(&mut Config)) -> Running {
        let mut config = self.config();
        tweak(&mut config);
        photo_worker::testing::spawn(config).await
    }

    /// Stores an uploaded file and its `pending` row the way the gateway does.
    pub async fn upload(&self, bytes: &[u8]) -> Photo {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = format!("photos/test-{}.img", N.fetch_add(1, Ordering::Relaxed));
        Storage::local(self.storage.path())
            .put(&path, bytes)
            .await
            .expect("storing the upload");
        self.insert(NewPhoto {
            original_name: Some("finish-line.jpg"),
            storage_path: Some(&path),
            size_bytes: Some(bytes.len() as i64),
            ..NewPhoto::default()
        })
        .await
    }

    /// Stores a `pending` photo to be fetched from `url`.
    pub async fn by_url(&self, url: &str) -> Photo {
        self.insert(NewPhoto {
            source_url: Some(url),
            ..NewPhoto::default()
        })
        .await
    }

    async fn insert(&self, photo: NewPhoto<'_>) -> Photo {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        let (_, mut stored) = photos::insert_batch(&mut conn, &[photo])
            .await
            .expect("insert photo");
        stored.pop().expect("one photo")
    }

    /// Enqueues the photo's job as the gateway does (its key, unique until
    /// settled); returns the job id.
    pub async fn enqueue(&self, photo_id: i64) -> String {
        self.redis
            .producer
            .enqueue(&self.queue, jobs::rows::photo_job(photo_id))
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    /// Enqueues the photo's job without its key, as a late duplicate (a
    /// crash before an acknowledgement); returns the job id.
    pub async fn enqueue_duplicate(&self, photo_id: i64) -> String {
        self.redis
            .producer
            .enqueue(
                &self.queue,
                queue_core::NewJob::message(
                    <jobs::v1::ProcessPhoto as jobs::JobKind>::KIND,
                    &jobs::v1::ProcessPhoto { photo_id },
                ),
            )
            .await
            .expect("enqueue")
            .id()
            .to_owned()
    }

    pub async fn photo(&self, id: i64) -> Photo {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        photos::get(&mut conn, id)
            .await
            .expect("get photo")
            .expect("the photo exists")
    }

    /// Polls the photo row until `done` holds.
    pub async fn photo_until(&self, id: i64, what: &str, done: impl Fn(&Photo) -> bool) -> Photo {
        self.photo_until_within(id, what, PATIENCE, done).await
    }

    /// [`photo_until`](Self::photo_until) for slow photos: up to `within`.
    pub async fn photo_until_within(
        &self,
        id: i64,
        what: &str,
        within: Duration,
        done: impl Fn(&Photo) -> bool,
    ) -> Photo {
        eventually_within(what, within, async || {
            Some(self.photo(id).await).filter(&done)
        })
        .await
    }

    /// The bib numbers stored for a photo, sorted.
    pub async fn bibs(&self, id: i64) -> Vec<String> {
        let mut numbers: Vec<String> = self
            .detections(id)
            .await
            .into_iter()
            .map(|d| d.number)
            .collect();
        numbers.sort();
        numbers
    }

    pub async fn detections(&self, id: i64) -> Vec<Detection> {
        let mut conn = self.db.pool.acquire().await.expect("db connection");
        photos::detections(&mut conn, id).await.expect("detections")
    }

    /// Waits until the job `job_id` has a completion record.
    pub async fn completed_until(&self, job_id: &str) {
        self.redis.completed_until(&self.queue, job_id).await
    }

    pub async fn stats_until(&self, what: &str, done: impl Fn(&QueueStats) -> bool) -> QueueStats {
        self.redis.stats_until(&self.queue, what, done).await
    }

    /// Deletes the queue's keys and drops the database. Stop workers first.
    pub async fn finish(self) {
        self.redis.finish().await;
        self.db.cleanup().await;
    }
}

/// The bib on the photo server's `/bib.png`.
pub const SERVED_BIB: &str = "2468";

/// A photo server on 127.0.0.1, port 0: `/bib.png` (a photo of bib
/// [`SERVED_BIB`]), `/to-bib` (a relative redirect to it), `/to-metadata` (a
/// redirect to the cloud metadata address), `/huge` (3 MB streamed without a
/// length), `/hang` (never answers) and `/missing` (404). Stops with the test.
pub async fn photo_server() -> SocketAddr {
    let png = photo_worker::testing::bib_photo_png(&[SERVED_BIB]);
    let app = Router::new()
        .route(
            "/bib.png",
            get(move || {
                let png = png.clone();
                async move { ([(header::CONTENT_TYPE, "image/png")], png) }
            }),
        )
        .route("/to-bib", get(|| async { redirect("/bib.png") }))
        .route(
            "/to-metadata",
            get(|| async { redirect("http://169.254.169.254/latest/meta-data/") }),
        )
        .route(
            "/huge",
            get(|| async {
                let chunks = (0..48).map(|_| Ok::<_, std::io::Error>(vec![0u8; 64 * 1024]));
                axum::body::Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the photo server");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn redirect(to: &'static str) -> impl IntoResponse {
    (StatusCode::FOUND, [(header::LOCATION, to)])
}
