//! The detector on the committed photo set (`testdata/`, generated with held-out
//! fonts and a seed the detector was never tuned on; see the README).

use std::path::Path;

use bib_detect::eval;
use bib_detect::{Detector, DetectorConfig};

#[test]
fn the_committed_set_is_read_with_the_promised_precision_and_recall() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let detector = Detector::new(DetectorConfig::default()).expect("tesseract-ocr-eng installed");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (scores, summary) = eval::evaluate(&detector, &dir, threads).expect("testdata readable");
    for s in scores
        .iter()
        .filter(|s| !s.missed.is_empty() || !s.wrong.is_empty())
    {
        println!("{}: missed {:?} wrong {:?}", s.file, s.missed, s.wrong);
    }
    println!("{}", summary.score_line());
    println!("{}", summary.timing_line());
    assert_eq!(summary.images, 50, "the set has 50 photos");
    assert!(
        summary.recall() >= 0.95,
        "recall {:.3} < 0.95",
        summary.recall()
    );
    assert!(
        summary.precision() >= 0.97,
        "precision {:.3} < 0.97",
        summary.precision()
    );
}

#[test]
fn the_detector_serves_several_threads_at_once() {
    // The photo worker runs three photos at a time on blocking threads.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let labels = eval::read_labels(&dir).expect("testdata readable");
    let image = image::open(dir.join(&labels[0].file)).expect("a decodable photo");
    let detector = Detector::new(DetectorConfig::default()).expect("tesseract-ocr-eng installed");
    let alone = detector.detect(&image).expect("detects").bibs;
    let together: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let detector = detector.clone();
                let image = &image;
                scope.spawn(move || detector.detect(image).expect("detects").bibs)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for bibs in together {
        assert_eq!(bibs, alone);
    }
}
