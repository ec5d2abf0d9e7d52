//! `scripts/bench.sh photos`: the real photo worker (3 photos at once, the
//! catalogue default) on a set of labelled photos; prints one `key=value` line
//! per figure, progress on stderr as `# ...` lines:
//!
//! - `photos_per_s`: photos settled per second, from the first enqueue to the last;
//! - `decode_ms`, `thumbnail_ms`, `candidates_ms`, `ocr_ms`: mean time per photo
//!   in each stage, read from the worker's own `/metrics`
//!   (`photo_stage_seconds{stage}`);
//! - `precision`, `recall`: of the detected bibs against the labels.
//!
//! Photos: `PHOTO_BENCH_DIR`, by default bib-detect's committed test set
//! (`crates/bib-detect/testdata`): every JPEG and PNG in it, labelled by its
//! `labels.jsonl`, a `labels.csv` beside them (`file,bib bib ...` per line) or
//! else by the digit groups of each file name (`race_1234_507.jpg` holds bibs
//! 1234 and 507). With `PHOTO_BENCH_DIR=generated`, `PHOTO_BENCH_PHOTOS` (default 30)
//! photos composed by `photo_worker::testing` (one or two bibs of 3 to 5
//! digits; clean, so their precision and recall only check the pipeline),
//! 800x600 unless `PHOTO_BENCH_SIZE` (e.g. `6000x4000`, a 24 MP camera) sets a
//! larger frame, the bibs keeping their size in its middle.
//! `PHOTOS_CONCURRENCY` changes the concurrency.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use queue_core::testing::TestRedis;
use service::testing::{Running, bench};
use storage::Storage;
use store::photos::{self, NewPhoto, ProcessingStatus};
use store::testing::TestDb;

/// One photo of the set: its bytes and the bibs it holds.
struct Labelled {
    name: String,
    bytes: Vec<u8>,
    bibs: BTreeSet<String>,
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is read from the arguments.
    bench::run(bench());
}

async fn bench() {
    // The detector's committed test set unless told otherwise: photo-like
    // scenes with distractors, so precision and recall mean something.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bib-detect/testdata");
    let set = match std::env::var("PHOTO_BENCH_DIR") {
        Ok(dir) if dir.trim() == "generated" => generated(
            bench::knob("PHOTO_BENCH_PHOTOS", 30),
            std::env::var("PHOTO_BENCH_SIZE").ok().and_then(|s| {
                let (w, h) = s.trim().split_once('x')?;
                Some((w.parse().ok()?, h.parse().ok()?))
            }),
        ),
        Ok(dir) if !dir.trim().is_empty() => from_dir(Path::new(dir.trim())),
        _ => from_dir(&committed),
    };
    assert!(!set.is_empty(), "no photo to run on");
    let concurrency: usize = bench::knob("PHOTOS_CONCURRENCY", jobs::PHOTOS.concurrency);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "# {} photos, concurrency {concurrency}, {cores} cores",
        set.len()
    );

    let redis = TestRedis::new().await;
    let queue = redis.queue(jobs::PHOTOS.name);
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("a storage directory");
    let storage = Storage::local(dir.path());
    let mut ids = Vec::with_capacity(set.len());
    {
        let mut conn = db.pool.acquire().await.expect("conn");
        for (i, photo) in set.iter().enumerate() {
            let path = format!("photos/bench-{i}.img");
            storage.put(&path, &photo.bytes).await.expect("store");
            let (_, rows) = photos::insert_batch(
                &mut conn,
                &[NewPhoto {
                    original_name: Some(&photo.name),
                    storage_path: Some(&path),
                    size_bytes: Some(photo.bytes.len() as i64),
                    ..NewPhoto::default()
                }],
            )
            .await
            .expect("insert");
            ids.push(rows[0].id);
        }
    }
    let mut config = photo_worker::testing::config(&redis.prefix, &db.url, dir.path());
    config.worker.concurrency = concurrency.try_into().expect("nonzero concurrency");
    // The reconciler must not race the bench's own enqueues.
    config.reconcile.after = Duration::from_secs(3600);
    let worker = Running::spawn(
        photo_worker::start(config)
            .await
            .expect("the worker starts"),
    );

    let started = Instant::now();
    redis
        .producer
        .enqueue_many(&queue, ids.iter().map(|&id| jobs::rows::photo_job(id)))
        .await
        .expect("enqueue");
    let deadline = Instant::now() + Duration::from_secs(60 + 10 * set.len() as u64);
    loop {
        let settled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM photos WHERE processing_status IN ('completed', 'failed')",
        )
        .fetch_one(&db.pool)
        .await
        .expect("count");
        if settled as usize == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the photos did not settle in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!("photos_per_s={:.2}", ids.len() as f64 / secs);

    let (_, metrics) = service::testing::http_get(worker.addr, "/metrics").await;
    for stage in ["decode", "thumbnail", "candidates", "ocr"] {
        match stage_mean_ms(&metrics, stage) {
            Some(ms) => println!("{stage}_ms={ms:.1}"),
            None => eprintln!("# no {stage} timings in /metrics"),
        }
    }

    let (mut tp, mut fp, mut fn_, mut failed) = (0usize, 0usize, 0usize, 0usize);
    let mut conn = db.pool.acquire().await.expect("conn");
    for (photo, id) in set.iter().zip(&ids) {
        let row = photos::get(&mut conn, *id)
            .await
            .expect("get")
            .expect("row");
        if row.processing_status == ProcessingStatus::Failed {
            failed += 1;
            eprintln!(
                "# {} failed: {}",
                photo.name,
                row.processing_error.unwrap_or_default()
            );
        }
        let found: BTreeSet<String> = photos::detections(&mut conn, *id)
            .await
            .expect("detections")
            .into_iter()
            .map(|d| d.number)
            .collect();
        tp += found.intersection(&photo.bibs).count();
        fp += found.difference(&photo.bibs).count();
        fn_ += photo.bibs.difference(&found).count();
        if found != photo.bibs {
            eprintln!(
                "# {}: expected {:?}, found {:?}",
                photo.name, photo.bibs, found
            );
        }
    }
    drop(conn);
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    println!("precision={:.3}", ratio(tp, tp + fp));
    println!("recall={:.3}", ratio(tp, tp + fn_));
    println!("photos_failed={failed}");
    eprintln!("# true positives {tp}, false positives {fp}, missed {fn_}, {secs:.2}s");

    worker.stop().await;
    redis.finish().await;
    db.cleanup().await;
}

/// The mean of `photo_stage_seconds{stage="..."}`, in milliseconds.
fn stage_mean_ms(metrics: &str, stage: &str) -> Option<f64> {
    let value = |suffix: &str| {
        metrics.lines().find_map(|line| {
            let rest = line.strip_prefix(&format!("photo_stage_seconds_{suffix}{{"))?;
            if !rest.contains(&format!("stage=\"{stage}\"")) {
                return None;
            }
            rest.rsplit(' ').next()?.parse::<f64>().ok()
        })
    };
    let (sum, count) = (value("sum")?, value("count")?);
    (count > 0.0).then(|| sum / count * 1000.0)
}

/// `count` photos of one or two random bibs each, composed in memory, in the
/// middle of a `frame` (width, height) when one is given.
fn generated(count: usize, frame: Option<(u32, u32)>) -> Vec<Labelled> {
    let mut seed = 0x9e37_79b9_u64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    (0..count)
        .map(|i| {
            let bibs: Vec<String> = (0..1 + next(2))
                .map(|_| {
                    let digits = 3 + next(3) as u32;
                    let low = 10u64.pow(digits - 1);
                    (low + next(9 * low)).to_string()
                })
                .collect();
            let refs: Vec<&str> = bibs.iter().map(String::as_str).collect();
            let bytes = match frame {
                None => photo_worker::testing::bib_photo_jpeg(&refs),
                Some(frame) => framed_jpeg(&photo_worker::testing::bib_photo(&refs), frame),
            };
            Labelled {
                name: format!("generated-{i}-{}.jpg", bibs.join("-")),
                bytes,
                bibs: bibs.into_iter().collect(),
            }
        })
        .collect()
}

/// `photo` in the middle of a larger shaded frame, as a JPEG (quality 90).
fn framed_jpeg(photo: &image::GrayImage, (width, height): (u32, u32)) -> Vec<u8> {
    let (width, height) = (width.max(photo.width()), height.max(photo.height()));
    let mut frame = image::GrayImage::from_fn(width, height, |x, y| {
        image::Luma([(140 + (x / 7 + y / 11) % 40) as u8])
    });
    image::imageops::replace(
        &mut frame,
        photo,
        i64::from((width - photo.width()) / 2),
        i64::from((height - photo.height()) / 2),
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&frame)
        .expect("JPEG encoding");
    out
}

/// Every JPEG and PNG of `dir`, labelled by `labels.jsonl` (bib-detect's
/// format), `labels.csv` or its name.
fn from_dir(dir: &Path) -> Vec<Labelled> {
    if let Ok(labels) = bib_detect::eval::read_labels(dir) {
        return labels
            .into_iter()
            .map(|label| Labelled {
                bytes: std::fs::read(dir.join(&label.file)).expect("read photo"),
                bibs: label.bibs.into_iter().map(|b| b.number).collect(),
                name: label.file,
            })
            .collect();
    }
    let labels: HashMap<String, BTreeSet<String>> = std::fs::read_to_string(dir.join("labels.csv"))
        .map(|text| {
            text.lines()
                .filter_map(|line| {
                    let (file, bibs) = line.split_once(',')?;
                    let bibs = bibs
                        .split([' ', ';', ','])
                        .map(str::trim)
                        .filter(|b| !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()))
                        .map(str::to_owned)
                        .collect();
                    Some((file.trim().to_owned(), bibs))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading PHOTO_BENCH_DIR {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let stem = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let bibs = labels.get(&name).cloned().unwrap_or_else(|| {
                stem.split(|c: char| !c.is_ascii_digit())
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
            Labelled {
                bytes: std::fs::read(&path).expect("read photo"),
                name,
                bibs,
            }
        })
        .collect()
}
