//! Per-photo cost of each stage on the committed set, one photo at a time, plus the
//! set's precision and recall. `cargo bench -p bib-detect`.
//!
//! Decoding is done before timing starts: it belongs to the photo worker.

use std::path::Path;
use std::time::Duration;

use bib_detect::eval::{self, Summary};
use bib_detect::{Detector, DetectorConfig};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let labels = eval::read_labels(&dir).expect("testdata readable");
    let photos: Vec<_> = labels
        .iter()
        .map(|l| image::open(dir.join(&l.file)).expect("a decodable photo"))
        .collect();
    let detector = Detector::new(DetectorConfig::default()).expect("tesseract-ocr-eng installed");
    // One photo first so that the thread's Tesseract handle is loaded before timing.
    detector.detect(&photos[0]).expect("detects");
    let mut summary = Summary::default();
    let mut worst = Duration::ZERO;
    for (label, photo) in labels.iter().zip(&photos) {
        let found = detector.detect(photo).expect("detects");
        worst = worst.max(found.timings.candidates + found.timings.ocr);
        summary.add(&eval::score_image(label, &found.bibs), &found.timings);
    }
    let (candidates, ocr) = summary.ms_per_photo();
    println!("photos={}", summary.images);
    println!("candidates_ms_per_photo={candidates:.1}");
    println!("ocr_ms_per_photo={ocr:.1}");
    println!("slowest_photo_ms={:.1}", worst.as_secs_f64() * 1000.0);
    println!("precision={:.3}", summary.precision());
    println!("recall={:.3}", summary.recall());
}
