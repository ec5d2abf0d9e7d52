//! Test support (feature `testing`) for crates whose tests or benchmarks need a
//! running photo worker (this one's and the gateway's): its config pointed at
//! a test's Redis prefix, database and storage directory with fast settings,
//! starting it on port 0, and race photos with bibs the detector can read.
//!
//! The photos are composed from a glyph sheet of the digits in DejaVu Sans Bold
//! (`src/testing/digits.png`, made by `make_digits.py` beside it): a plain,
//! gently shaded background with one white bib per number, dark digits 73
//! pixels high. Clean and high-contrast on purpose: they test the pipeline, not
//! the detector (whose own test set is `crates/bib-detect/testdata`).

use std::path::Path;
use std::time::Duration;

use image::{GrayImage, ImageEncoder, Luma};
use service::testing::Running;

use crate::{Config, FetchPolicy, ImageLimits};

/// The config `main` would build, pointed at the test's Redis key prefix,
/// database and storage directory, with millisecond intervals and the health
/// port picked by the system. Fetching by URL is off (no allowed host).
pub fn config(redis_prefix: &str, database_url: &str, storage_dir: &Path) -> Config {
    Config {
        base: service::testing::base_config(redis_prefix, database_url),
        worker: service::testing::fast_worker_config(&jobs::PHOTOS),
        storage: service::config::StorageConfig {
            dir: storage_dir.to_owned(),
            temp_max_age: service::config::DEFAULT_STORAGE_TEMP_MAX_AGE,
            sweep_interval: Duration::from_millis(50),
        },
        limits: ImageLimits::default(),
        memory_budget: crate::config::DEFAULT_MEMORY_BUDGET,
        max_candidates: bib_detect::DEFAULT_MAX_CANDIDATES,
        thumbnail_size: crate::config::DEFAULT_THUMBNAIL_SIZE,
        min_confidence: crate::config::DEFAULT_MIN_CONFIDENCE,
        fetch: FetchPolicy {
            timeout: Duration::from_secs(5),
            ..FetchPolicy::default()
        },
        reconcile: service::config::ReconcileConfig {
            // The shortest period a repeating job allows.
            interval: Duration::from_secs(1),
            after: Duration::from_millis(500),
            batch: service::config::DEFAULT_RECONCILE_BATCH,
        },
    }
}

/// Starts the worker in the test's runtime exactly as `main` runs it; stop it
/// with [`Running::stop`] (dropping it cancels it too).
pub async fn spawn(config: Config) -> Running {
    Running::spawn(crate::start(config).await.expect("the photo worker starts"))
}

/// The most blocking runs (decode, thumbnail, OCR of one photo) this process
/// has seen alive at once. Process-wide: meaningful in a test that runs alone
/// in its process, as nextest runs each.
pub fn peak_blocking_runs() -> usize {
    crate::handler::peak_blocking_runs()
}

const DIGITS: &[u8] = include_bytes!("testing/digits.png");

/// A grey race photo with one white bib per number (digits only, 1 to 8 each).
pub fn bib_photo(numbers: &[&str]) -> GrayImage {
    let sheet = image::load_from_memory_with_format(DIGITS, image::ImageFormat::Png)
        .expect("the glyph sheet is a PNG")
        .to_luma8();
    let (cell_w, cell_h) = (sheet.width() / 10, sheet.height());
    let pad = 30;
    let gap = 80;
    let bib_w = |n: &str| n.len() as u32 * cell_w + 2 * pad;
    let bib_h = cell_h + 2 * pad;
    // One bib per row, alternately left and right: bibs on one line would be
    // read as one long number.
    let widest = numbers.iter().map(|n| bib_w(n)).max().unwrap_or(0);
    let columns = numbers.len().min(2) as u32;
    let width = (columns * widest + (columns + 1) * gap).max(800);
    let rows = numbers.len() as u32;
    let height = (rows * bib_h + (rows + 1) * gap).max(600);
    // A gentle left-to-right shade with a little deterministic noise.
    let mut seed = 0x2545_f491_u32;
    let mut photo = GrayImage::from_fn(width, height, |x, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        Luma([(150 + x * 40 / width + seed % 9) as u8])
    });
    let first_top = (height - rows * bib_h - rows.saturating_sub(1) * gap) / 2;
    for (row, number) in numbers.iter().enumerate() {
        assert!(
            !number.is_empty() && number.len() <= 8 && number.bytes().all(|b| b.is_ascii_digit()),
            "a bib is 1 to 8 digits: {number:?}"
        );
        let row = row as u32;
        let top = first_top + row * (bib_h + gap);
        let left = if numbers.len() == 1 {
            (width - bib_w(number)) / 2
        } else if row.is_multiple_of(2) {
            gap
        } else {
            width - gap - bib_w(number)
        };
        for y in top..top + bib_h {
            for x in left..left + bib_w(number) {
                photo.put_pixel(x, y, Luma([250]));
            }
        }
        for (i, digit) in number.bytes().enumerate() {
            let d = u32::from(digit - b'0');
            for gy in 0..cell_h {
                for gx in 0..cell_w {
                    let v = sheet.get_pixel(d * cell_w + gx, gy).0[0];
                    let (x, y) = (left + pad + i as u32 * cell_w + gx, top + pad + gy);
                    photo.put_pixel(x, y, Luma([v.min(250)]));
                }
            }
        }
    }
    photo
}

/// [`bib_photo`] as PNG bytes.
pub fn bib_photo_png(numbers: &[&str]) -> Vec<u8> {
    let photo = bib_photo(numbers);
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            photo.as_raw(),
            photo.width(),
            photo.height(),
            image::ExtendedColorType::L8,
        )
        .expect("PNG encoding");
    out
}

/// [`bib_photo`] as JPEG bytes (quality 90), what cameras upload.
pub fn bib_photo_jpeg(numbers: &[&str]) -> Vec<u8> {
    let photo = bib_photo(numbers);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&photo)
        .expect("JPEG encoding");
    out
}
