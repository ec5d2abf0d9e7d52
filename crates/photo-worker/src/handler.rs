//! The `photo.process` job: find the bib numbers on one photo.
//!
//! Effects happen in one order: mark the row `processing` (guarded: a
//! completed photo is left alone; a failed one runs again only when its dead
//! letter is retried, `Job::is_dead_letter_retry`), read the original (or fetch it by URL and store it),
//! decode it within limits, make the thumbnail, detect the bibs, write the
//! thumbnail atomically, then mark the row `completed` and replace its
//! detections in one transaction. A crash at any point leaves a row that is not
//! `completed`, and the redelivered job redoes the same work into the same
//! paths: one thumbnail, one set of detections.
//!
//! The blocking part (decode, thumbnail, OCR) first takes one of
//! `PHOTOS_CONCURRENCY` slots and the photo's working memory from the
//! process-wide budget (estimated from its header), and holds both until it
//! ends: a job that times out drops its future, not its blocking run, so
//! without this a retry would start a second heavy run beside the first. The
//! run stops between OCR candidates once the job's time is up.
//!
//! Errors no attempt can fix (a file that is not a decodable JPEG or PNG, a
//! refused URL, a photo larger than the whole memory budget) dead-letter the
//! job at once; others are retried. Each failed attempt notes its error on the
//! photo, and the dead-letter hook alone marks it `failed` ([`service::rows`]).
//! Stage times go to `photo_stage_seconds{stage}` and to the `photo processed`
//! log line.

use std::ops::DerefMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bib_detect::{Detector, Limits};
use jobs::v1::ProcessPhoto;
use queue_core::Job;
use service::rows::{Failure, RowJob, Settled};
use storage::{Storage, StorageError};
use store::photos::{self, Completed, Photo, Start};
use store::{PgConnection, PgPool};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::budget::{MemoryBudget, OverBudget};
use crate::fetch::Fetcher;
use crate::imaging::{self, ImageLimits, PhotoFormat};

/// Where thumbnails are kept: `thumbs/{photo_id}.jpg`.
pub fn thumbnail_path(photo_id: i64) -> String {
    format!("thumbs/{photo_id}.jpg")
}

/// Where the original of a photo given by URL is kept once fetched.
pub fn fetched_path(photo_id: i64, format: PhotoFormat) -> String {
    format!("photos/url-{photo_id}.{}", format.extension())
}

/// What the handler needs besides the pool and storage.
#[derive(Debug, Clone)]
pub struct PhotoOptions {
    pub limits: ImageLimits,
    pub thumbnail_size: u32,
    /// `PHOTO_MEMORY_BUDGET`: bytes all photos in work may hold at once.
    pub memory_budget: u64,
    /// `PHOTO_MAX_CANDIDATES`: candidate lines OCR reads at most per photo.
    pub max_candidates: usize,
    /// `PHOTOS_CONCURRENCY`: blocking runs (decode, thumbnail, OCR) alive at once.
    pub concurrency: usize,
    /// `PHOTOS_JOB_TIMEOUT`: the blocking run stops between OCR candidates once
    /// this has passed since the job started.
    pub job_timeout: Duration,
}

/// Blocking runs alive in this process, and the most seen at once (a test
/// hook, [`crate::testing::peak_blocking_runs`], and the
/// `photo_blocking_runs` gauge).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Counts one blocking run while it lives.
struct Alive;

impl Alive {
    fn enter() -> Self {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        metrics::gauge!("photo_blocking_runs").set(now as f64);
        Self
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        let now = RUNNING.fetch_sub(1, Ordering::SeqCst) - 1;
        metrics::gauge!("photo_blocking_runs").set(now as f64);
    }
}

/// The most blocking runs seen alive at once in this process.
#[cfg(feature = "testing")]
pub(crate) fn peak_blocking_runs() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Runs `photo.process` jobs. Cheap to share.
#[derive(Debug, Clone)]
pub struct PhotoHandler {
    pool: PgPool,
    storage: Storage,
    detector: Detector,
    fetcher: Fetcher,
    options: Arc<PhotoOptions>,
    /// `PHOTOS_CONCURRENCY` slots for blocking runs, each held until its run ends.
    slots: Arc<Semaphore>,
    budget: MemoryBudget,
}

/// Time spent in each stage of one photo.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub fetch: Option<Duration>,
    pub decode: Duration,
    pub thumbnail: Duration,
    pub candidates: Duration,
    pub ocr: Duration,
}

impl StageTimes {
    fn record(&self) {
        let stages = [
            ("decode", Some(self.decode)),
            ("thumbnail", Some(self.thumbnail)),
            ("candidates", Some(self.candidates)),
            ("ocr", Some(self.ocr)),
            ("fetch", self.fetch),
        ];
        for (stage, time) in stages {
            if let Some(time) = time {
                metrics::histogram!("photo_stage_seconds", "stage" => stage)
                    .record(time.as_secs_f64());
            }
        }
    }
}

/// What one photo's run produced.
struct Processed {
    bibs: Vec<String>,
    times: StageTimes,
    /// Candidate lines found and read by OCR (at most `PHOTO_MAX_CANDIDATES`).
    candidates: (usize, usize),
}

impl PhotoHandler {
    pub fn new(
        pool: PgPool,
        storage: Storage,
        detector: Detector,
        fetcher: Fetcher,
        options: PhotoOptions,
    ) -> Self {
        Self {
            pool,
            storage,
            detector,
            fetcher,
            slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
            budget: MemoryBudget::new(options.memory_budget),
            options: Arc::new(options),
        }
    }

    async fn connection(&self) -> Result<impl DerefMut<Target = PgConnection> + Send, Failure> {
        self.pool
            .acquire()
            .await
            .context("acquiring a database connection")
            .map_err(Failure::Retry)
    }

    /// The original's bytes: from storage, or fetched from its URL and stored.
    async fn original(&self, photo: &Photo, times: &mut StageTimes) -> Result<Vec<u8>, Failure> {
        if let Some(path) = &photo.storage_path {
            return match self.storage.get(path).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(Failure::Permanent(anyhow!(
                    "the uploaded file {path} is missing from storage"
                ))),
                Err(e) => Err(Failure::Retry(
                    anyhow::Error::new(e).context(format!("reading {path}")),
                )),
            };
        }
        let url = photo
            .source_url
            .as_deref()
            .ok_or_else(|| Failure::Permanent(anyhow!("the photo has neither a file nor a URL")))?;
        let started = Instant::now();
        let fetched = self.fetcher.fetch(url).await.map_err(|e| {
            if e.is_permanent() {
                Failure::Permanent(e.into())
            } else {
                Failure::Retry(e.into())
            }
        })?;
        times.fetch = Some(started.elapsed());
        let format = PhotoFormat::sniff(&fetched.bytes).ok_or_else(|| {
            Failure::Permanent(anyhow!(
                "{} is not a JPEG or PNG image",
                fetched.url.split('?').next().unwrap_or_default()
            ))
        })?;
        let path = fetched_path(photo.id, format);
        self.storage
            .put(&path, &fetched.bytes)
            .await
            .map_err(|e| storage_failure(e, &path))?;
        let mut conn = self.connection().await?;
        photos::set_original(
            &mut conn,
            photo.id,
            &path,
            format.mime(),
            fetched.bytes.len() as i64,
        )
        .await
        .context("recording the fetched original")
        .map_err(Failure::Retry)?;
        Ok(fetched.bytes)
    }

    /// Processes a photo that is now `processing`; the blocking part stops
    /// between OCR candidates once `deadline` has passed.
    async fn process(
        &self,
        photo: &Photo,
        deadline: Instant,
    ) -> Result<Option<Processed>, Failure> {
        let mut times = StageTimes::default();
        let bytes = self.original(photo, &mut times).await?;
        let header = imaging::probe(&bytes, &self.options.limits)
            .map_err(|e| Failure::Permanent(e.into()))?;
        let needed = header.working_bytes(bytes.len() as u64, &self.detector);
        let over = |e: OverBudget| {
            Failure::Permanent(anyhow!(
                "the image cannot be processed: {}x{} pixels need {e}",
                header.width,
                header.height
            ))
        };
        self.budget.check(needed).map_err(over)?;
        // A slot, then the memory, both moved into the blocking task: a job
        // that times out drops this future, not the task, and the slot and
        // the memory stay taken until the task ends, so no more than
        // PHOTOS_CONCURRENCY runs and PHOTO_MEMORY_BUDGET bytes are ever alive.
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the slots' semaphore is never closed");
        let memory = self.budget.reserve(needed).await.map_err(over)?;
        let (detector, options) = (self.detector.clone(), Arc::clone(&self.options));
        let limits = Limits {
            deadline: Some(deadline),
            max_candidates: options.max_candidates,
        };
        // Decoding, resizing and OCR are CPU work of up to seconds: a blocking thread.
        let work = tokio::task::spawn_blocking(move || {
            // Dropped in this order: the run is counted gone before its slot
            // and memory are free for the next.
            let _held = (Alive::enter(), slot, memory);
            let started = Instant::now();
            let image = imaging::decode(&bytes, &options.limits)
                .map_err(|e| Failure::Permanent(e.into()))?;
            drop(bytes);
            let decode = started.elapsed();
            let started = Instant::now();
            let thumb = imaging::thumbnail(&image, options.thumbnail_size)
                .map_err(|e| Failure::Retry(e.into()))?;
            let thumbnail = started.elapsed();
            let found = detector
                .detect_with(&image, &limits)
                .context("detecting bibs")
                .map_err(Failure::Retry)?;
            Ok::<_, Failure>((
                image.width(),
                image.height(),
                thumb,
                decode,
                thumbnail,
                found,
            ))
        });
        let (width, height, thumb, decode, thumbnail, found) = work
            .await
            .map_err(|e| Failure::Retry(anyhow!("the image task failed: {e}")))??;
        times.decode = decode;
        times.thumbnail = thumbnail;
        times.candidates = found.timings.candidates;
        times.ocr = found.timings.ocr;

        let thumb_path = thumbnail_path(photo.id);
        self.storage
            .put(&thumb_path, &thumb)
            .await
            .map_err(|e| storage_failure(e, &thumb_path))?;

        let detections: Vec<photos::Detection> = found
            .bibs
            .iter()
            .map(|d| photos::Detection {
                number: d.number.clone(),
                confidence: d.confidence.clamp(0.0, 1.0),
                box_x: clamp_i32(d.bbox.x),
                box_y: clamp_i32(d.bbox.y),
                box_width: clamp_i32(d.bbox.width),
                box_height: clamp_i32(d.bbox.height),
            })
            .collect();
        let mut conn = self.connection().await?;
        let done = Completed {
            thumbnail_path: &thumb_path,
            width: clamp_i32(width),
            height: clamp_i32(height),
            detections: &detections,
        };
        let moved = photos::complete(&mut conn, photo.id, &done)
            .await
            .context("storing the detections")
            .map_err(Failure::Retry)?;
        times.record();
        Ok(moved.then(|| Processed {
            bibs: detections.into_iter().map(|d| d.number).collect(),
            times,
            candidates: (found.candidates_found, found.candidates_read),
        }))
    }
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn storage_failure(e: StorageError, path: &str) -> Failure {
    let permanent = matches!(e, StorageError::InvalidPath(_));
    let e = anyhow::Error::new(e).context(format!("writing {path}"));
    if permanent {
        Failure::Permanent(e)
    } else {
        Failure::Retry(e)
    }
}

impl RowJob for PhotoHandler {
    type Message = ProcessPhoto;
    const ROW: &'static str = "photo";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn row_id(msg: &ProcessPhoto) -> i64 {
        msg.photo_id
    }

    async fn run(&self, msg: &ProcessPhoto, job: &Job) -> Result<Settled, Failure> {
        let id = msg.photo_id;
        let started = Instant::now();
        let start = {
            let mut conn = self.connection().await?;
            // A failed photo runs again only for its dead letter retried by an
            // operator; any other job finding it failed is a stale duplicate.
            photos::start_processing(&mut conn, id, job.is_dead_letter_retry())
                .await
                .context("marking the photo processing")?
        };
        let photo = match start {
            Start::Started(photo) => photo,
            Start::Gone => return Ok(Settled::Gone),
            Start::Settled(photo) => {
                info!(
                    photo.id = id,
                    job.id = job.id(),
                    photo.status = ?photo.processing_status,
                    "the photo is already settled (completed, or failed and not retried from its dead letter); nothing to do"
                );
                return Ok(Settled::Done);
            }
        };
        info!(
            photo.id = id,
            photo.batch_id = photo.batch_id,
            job.id = job.id(),
            job.attempt = job.attempt(),
            by_url = photo.source_url.is_some(),
            "processing photo"
        );
        match self
            .process(&photo, started + self.options.job_timeout)
            .await
        {
            Ok(Some(done)) => {
                let t = done.times;
                info!(
                    photo.id = id,
                    photo.bibs = ?done.bibs,
                    photo.candidates = done.candidates.0,
                    photo.candidates_read = done.candidates.1,
                    fetch_ms = t.fetch.map(|d| d.as_millis() as u64),
                    decode_ms = t.decode.as_millis() as u64,
                    thumbnail_ms = t.thumbnail.as_millis() as u64,
                    candidates_ms = t.candidates.as_millis() as u64,
                    ocr_ms = t.ocr.as_millis() as u64,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "photo processed"
                );
                Ok(Settled::Done)
            }
            Ok(None) => {
                info!(
                    photo.id = id,
                    "the photo was settled or removed meanwhile; its result is dropped"
                );
                Ok(Settled::Done)
            }
            Err(Failure::Permanent(e)) => {
                warn!(
                    photo.id = id,
                    error = format!("{e:#}"),
                    "the photo cannot be processed; it is failed"
                );
                Err(Failure::Permanent(e))
            }
            Err(Failure::Retry(e)) => {
                warn!(
                    photo.id = id,
                    job.attempt = job.attempt(),
                    last_attempt = job.is_last_attempt(),
                    error = format!("{e:#}"),
                    "processing the photo failed"
                );
                Err(Failure::Retry(e))
            }
            Err(stale) => Err(stale),
        }
    }

    async fn note_error(
        &self,
        conn: &mut PgConnection,
        msg: &ProcessPhoto,
        error: &str,
    ) -> anyhow::Result<()> {
        Ok(photos::note_error(conn, msg.photo_id, error).await?)
    }

    /// Unless the photo is settled.
    async fn mark_failed(
        &self,
        conn: &mut PgConnection,
        msg: &ProcessPhoto,
        error: &str,
    ) -> anyhow::Result<bool> {
        Ok(photos::mark_failed(conn, msg.photo_id, error).await?)
    }
}
