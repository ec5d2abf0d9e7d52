//! What the photo tests add to the owners' test support (`service::testing`'s
//! world, `photo_worker::testing`): the worker's config for the world, photos
//! stored the way the gateway stores them, and a photo server on loopback for
//! URLs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use photo_worker::Config;
use queue_core::testing::{PATIENCE, eventually_within};
use service::testing::{Running, TestWorld};
use storage::Storage;
use store::photos::{self, Detection, NewPhoto, Photo, ProcessingStatus};

/// One photo test's world.
pub type TestApp = TestWorld;

/// What the photo tests add to their world.
pub trait PhotoWorld: Sized {
    /// A world on the `photos` queue.
    async fn new() -> Self;

    /// The config `main` would build, pointed at this test's Redis prefix,
    /// database and storage, with fast settings.
    fn config(&self) -> Config;

    /// Starts the worker with [`PhotoWorld::config`].
    async fn spawn_worker(&self) -> Running;

    /// Starts the worker with [`PhotoWorld::config`] after `tweak`.
    async fn spawn_worker_with(&self, tweak: impl FnOnce(&mut Config)) -> Running;

    /// Stores an uploaded file and its `pending` row the way the gateway does.
    async fn upload(&self, bytes: &[u8]) -> Photo;

    /// Stores a `pending` photo to be fetched from `url`.
    async fn by_url(&self, url: &str) -> Photo;

    /// Where the photo's original is stored.
    fn original_path(&self, photo: &Photo) -> PathBuf;

    /// Enqueues the photo's job as the gateway does (its key, unique until
    /// settled); returns the job id.
    async fn enqueue(&self, photo_id: i64) -> String;

    /// Enqueues the photo's job without its key, as a late duplicate (a
    /// crash before an acknowledgement); returns the job id.
    async fn enqueue_duplicate(&self, photo_id: i64) -> String;

    async fn photo(&self, id: i64) -> Photo;

    /// Polls the photo row until it is `status`.
    async fn photo_until(&self, id: i64, status: ProcessingStatus) -> Photo;

    /// [`photo_until`](PhotoWorld::photo_until) for slow photos: up to `within`.
    async fn photo_until_within(
        &self,
        id: i64,
        status: ProcessingStatus,
        within: Duration,
    ) -> Photo;

    /// The bib numbers stored for a photo, sorted.
    async fn bibs(&self, id: i64) -> Vec<String>;

    async fn detections(&self, id: i64) -> Vec<Detection>;
}

impl PhotoWorld for TestApp {
    async fn new() -> Self {
        TestWorld::for_queue(&jobs::PHOTOS).await
    }

    fn config(&self) -> Config {
        photo_worker::testing::config(&self.redis.prefix, &self.db.url, self.storage.path())
    }

    async fn spawn_worker(&self) -> Running {
        self.spawn_worker_with(|_| {}).await
    }

    async fn spawn_worker_with(&self, tweak: impl FnOnce(&mut Config)) -> Running {
        let mut config = self.config();
        tweak(&mut config);
        photo_worker::testing::spawn(config).await
    }

    async fn upload(&self, bytes: &[u8]) -> Photo {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = format!("photos/test-{}.img", N.fetch_add(1, Ordering::Relaxed));
        Storage::local(self.storage.path())
            .put(&path, bytes)
            .await
            .expect("storing the upload");
        insert(
            self,
            NewPhoto {
                original_name: Some("finish-line.jpg"),
                storage_path: Some(&path),
                size_bytes: Some(bytes.len() as i64),
                ..NewPhoto::default()
            },
        )
        .await
    }

    async fn by_url(&self, url: &str) -> Photo {
        insert(
            self,
            NewPhoto {
                source_url: Some(url),
                ..NewPhoto::default()
            },
        )
        .await
    }

    fn original_path(&self, photo: &Photo) -> PathBuf {
        self.storage_path(photo.storage_path.as_deref().expect("a stored original"))
    }

    async fn enqueue(&self, photo_id: i64) -> String {
        self.enqueue_job(jobs::rows::photo_job(photo_id)).await
    }

    async fn enqueue_duplicate(&self, photo_id: i64) -> String {
        // Without the photo's key: a late duplicate is the point.
        self.enqueue_job(queue_core::NewJob::message(
            <jobs::v1::ProcessPhoto as jobs::JobKind>::KIND,
            &jobs::v1::ProcessPhoto { photo_id },
        ))
        .await
    }

    async fn photo(&self, id: i64) -> Photo {
        photos::get(&mut *self.conn().await, id)
            .await
            .expect("get photo")
            .expect("the photo exists")
    }

    async fn photo_until(&self, id: i64, status: ProcessingStatus) -> Photo {
        self.photo_until_within(id, status, PATIENCE).await
    }

    async fn photo_until_within(
        &self,
        id: i64,
        status: ProcessingStatus,
        within: Duration,
    ) -> Photo {
        let what = format!("photo {id} is {status:?}");
        eventually_within(&what, within, async || {
            Some(self.photo(id).await).filter(|p| p.processing_status == status)
        })
        .await
    }

    async fn bibs(&self, id: i64) -> Vec<String> {
        let mut numbers: Vec<String> = self
            .detections(id)
            .await
            .into_iter()
            .map(|d| d.number)
            .collect();
        numbers.sort();
        numbers
    }

    async fn detections(&self, id: i64) -> Vec<Detection> {
        photos::detections(&mut *self.conn().await, id)
            .await
            .expect("detections")
    }
}

async fn insert(app: &TestApp, photo: NewPhoto<'_>) -> Photo {
    let (_, mut stored) = photos::insert_batch(&mut *app.conn().await, &[photo])
        .await
        .expect("insert photo");
    stored.pop().expect("one photo")
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
