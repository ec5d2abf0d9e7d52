#![doc = include_str!("../README.md")]

mod candidates;
mod crop;
pub mod eval;
#[cfg(feature = "generate")]
pub mod generate;
mod ocr;
mod read;

use std::time::{Duration, Instant};

use image::DynamicImage;

/// What can stop a detection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Tesseract could not start (is tesseract-ocr-eng installed?): {0}")]
    Init(String),
    #[error("Tesseract failed: {0}")]
    Ocr(String),
}

/// Where a detection lies in the image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One bib number found in a photo.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The digits as printed, leading zeros kept.
    pub number: String,
    /// 0.0 to 1.0.
    pub confidence: f32,
    pub bbox: BoundingBox,
}

/// Time spent in each stage of one detection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    pub candidates: Duration,
    pub ocr: Duration,
}

/// The bibs of one photo and what finding them cost.
#[derive(Debug, Clone, Default)]
pub struct Detections {
    pub bibs: Vec<Detection>,
    pub timings: Timings,
}

/// Tuning of the detector.
#[derive(Debug, Clone)]
pub struct DetectorConfig {
    /// Shortest and longest digit strings that count as a bib.
    pub min_digits: usize,
    pub max_digits: usize,
    /// Detections below this confidence are dropped.
    pub min_confidence: f32,
    /// Photos are searched at most this many pixels on their long side (OCR still
    /// reads the full-resolution pixels): the search's cost grows with the area.
    pub max_search_side: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_digits: 1,
            max_digits: 6,
            min_confidence: 0.5,
            max_search_side: 2000,
        }
    }
}

/// A bib detector. Cheap to clone; `detect` is blocking CPU work (run it on a
/// blocking thread) and may run on several threads at once, each with its own
/// Tesseract handle.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: DetectorConfig,
}

impl Detector {
    /// Checks that Tesseract and its English data load.
    pub fn new(config: DetectorConfig) -> Result<Self, Error> {
        ocr::init()?;
        Ok(Self { config })
    }

    /// Finds the bib numbers in `image`.
    pub fn detect(&self, image: &DynamicImage) -> Result<Detections, Error> {
        let started = Instant::now();
        let gray = image.to_luma8();
        let (w, h) = gray.dimensions();
        let long = w.max(h);
        let limit = self.config.max_search_side.max(64);
        // Candidates come from a reduced copy of a large photo; `scale` maps them back.
        let (search_rgb, search_gray, scale) = if long > limit {
            let f = limit as f32 / long as f32;
            let (sw, sh) = (((w as f32) * f) as u32, ((h as f32) * f) as u32);
            let small = image.resize_exact(sw, sh, image::imageops::FilterType::Triangle);
            (small.to_rgb8(), small.to_luma8(), 1.0 / f)
        } else {
            (image.to_rgb8(), gray.clone(), 1.0)
        };
        let found = candidates::find(&search_rgb, &search_gray, self.config.max_digits + 3);
        let candidates_time = started.elapsed();

        let ocr_started = Instant::now();
        let mut bibs: Vec<Detection> = Vec::new();
        for c in &found {
            let Some(reading) = read::read_candidate(&gray, c, scale, &self.config)? else {
                continue;
            };
            let b = c.bbox.map(|v| v * scale);
            let bbox = BoundingBox {
                x: b[0].max(0.0) as u32,
                y: b[1].max(0.0) as u32,
                width: (b[2] - b[0]).max(1.0) as u32,
                height: (b[3] - b[1]).max(1.0) as u32,
            };
            bibs.push(Detection {
                number: reading.text,
                confidence: reading.confidence,
                bbox,
            });
        }
        Ok(Detections {
            bibs: deduplicate(bibs),
            timings: Timings {
                candidates: candidates_time,
                ocr: ocr_started.elapsed(),
            },
        })
    }
}

/// Of detections whose boxes overlap, keeps the most confident.
fn deduplicate(mut bibs: Vec<Detection>) -> Vec<Detection> {
    bibs.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
    let mut kept: Vec<Detection> = Vec::new();
    let corners = |b: &BoundingBox| {
        [
            b.x as f32,
            b.y as f32,
            (b.x + b.width) as f32,
            (b.y + b.height) as f32,
        ]
    };
    // Boxes of one height that overlap are one bib read twice; a much taller box over
    // a smaller one is a different thing (and the vote already vetted both).
    // The same number over the same place is one bib, whatever the boxes' heights; so
    // is a box mostly inside another (two readings of one bib).
    let same = |a: &Detection, b: &Detection| {
        let (ba, bb) = (&a.bbox, &b.bbox);
        let ratio = ba.height.min(bb.height) as f32 / ba.height.max(bb.height).max(1) as f32;
        let overlap = candidates::overlap(&corners(ba), &corners(bb));
        overlap >= 0.5 || (overlap >= 0.3 && (ratio > 0.6 || a.number == b.number))
    };
    for d in bibs {
        if kept.iter().all(|k| !same(k, &d)) {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(number: &str, x: u32, confidence: f32) -> Detection {
        Detection {
            number: number.to_owned(),
            confidence,
            bbox: BoundingBox {
                x,
                y: 0,
                width: 40,
                height: 20,
            },
        }
    }

    #[test]
    fn overlapping_detections_keep_the_most_confident() {
        let kept = deduplicate(vec![at("12", 0, 0.6), at("123", 5, 0.9), at("7", 200, 0.7)]);
        let numbers: Vec<&str> = kept.iter().map(|d| d.number.as_str()).collect();
        assert_eq!(numbers, ["123", "7"]);
    }

    #[test]
    fn one_number_read_twice_at_two_heights_is_one_bib() {
        let mut tall = at("540", 0, 0.7);
        tall.bbox.height = 60;
        let kept = deduplicate(vec![at("540", 5, 0.9), tall]);
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn the_detector_is_shareable_across_threads() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<Detector>();
    }
}
