//! The composed test photos carry bibs the real detector reads.

use bib_detect::{Detector, DetectorConfig};
use image::DynamicImage;
use photo_worker::testing::{bib_photo, bib_photo_jpeg};

fn numbers_in(image: &DynamicImage) -> Vec<String> {
    let detector = Detector::new(DetectorConfig::default()).expect("Tesseract loads");
    let mut found: Vec<String> = detector
        .detect(image)
        .expect("detection runs")
        .bibs
        .into_iter()
        .map(|d| d.number)
        .collect();
    found.sort();
    found
}

#[test]
fn the_detector_reads_the_bib_of_a_composed_photo() {
    for number in ["1234", "507", "90817"] {
        let photo = DynamicImage::ImageLuma8(bib_photo(&[number]));
        assert_eq!(numbers_in(&photo), vec![number.to_owned()], "{number}");
    }
}

#[test]
fn the_detector_reads_two_bibs_on_one_jpeg_photo() {
    let jpeg = bib_photo_jpeg(&["386", "4521"]);
    let photo = image::load_from_memory(&jpeg).expect("a JPEG");
    assert_eq!(
        numbers_in(&photo),
        vec!["386".to_owned(), "4521".to_owned()]
    );
}
