#![doc = include_str!("../README.md")]

mod candidates;
mod components;
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
    /// [`Limits::deadline`] passed: the detection stopped between two candidates.
    #[error("the detection's deadline passed after {read} of {candidates} candidates were read")]
    DeadlineExceeded { read: usize, candidates: usize },
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
    /// Candidate lines the search found.
    pub candidates_found: usize,
    /// Candidate lines OCR read: at most [`Limits::max_candidates`], the best by score.
    pub candidates_read: usize,
}

/// What became of one digit line the candidate search saw: the trace of a
/// detection, for finding the stage where a missed bib was lost.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Too many blobs for a bib, or a lone blob too small to read.
    Shape,
    /// Touches the photo's border.
    Border,
    /// Its surround is not a bib's paper.
    Surround,
    /// A candidate, but beyond [`Limits::max_candidates`].
    NotRead,
    /// Read with letters allowed: words, a colon or a plate (the reading).
    Words(String),
    /// The digits-only readings did not agree well enough (each reading).
    Vote(Vec<String>),
    /// Read as this number (before de-duplication).
    Read(String),
}

/// One digit line of a traced detection.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedLine {
    pub bbox: BoundingBox,
    pub fate: Fate,
}

/// [`Limits::max_candidates`] unless set: a race photo rarely shows more than a
/// dozen bibs, and each candidate costs two to four Tesseract calls.
pub const DEFAULT_MAX_CANDIDATES: usize = 32;

/// Bounds on one detection, so a photo crowded with digit-like strokes or a
/// caller that gave up cannot keep a thread busy for long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Checked before each candidate is read: once it has passed, the detection
    /// stops with [`Error::DeadlineExceeded`].
    pub deadline: Option<Instant>,
    /// At most this many candidates are read by OCR, the highest scored.
    pub max_candidates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: None,
            max_candidates: DEFAULT_MAX_CANDIDATES,
        }
    }
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

    /// About the most memory, in bytes, that [`detect`](Self::detect) allocates
    /// for a `width` × `height` image of `channels` 8-bit channels, on top of
    /// the image itself, so that a caller can budget it before decoding: the
    /// luma copy, the reduced search copy and the float buffer the resize passes
    /// through (4 × f32 per pixel of the full width and the reduced height), and
    /// the search's own buffers (an integral image of u64, masks, a blob stack
    /// of up to one index per pixel). Crops read by OCR are small.
    pub fn working_bytes(&self, width: u32, height: u32, channels: u8) -> u64 {
        let (w, h) = (u64::from(width), u64::from(height));
        let long = w.max(h).max(1);
        let limit = u64::from(self.config.max_search_side.max(64));
        let channels = u64::from(channels);
        let luma = w * h;
        let (search, resize) = if long > limit {
            let (sw, sh) = (w * limit / long + 1, h * limit / long + 1);
            (sw * sh, w * sh * 16 + sw * sh * channels)
        } else {
            (w * h, 0)
        };
        // RGB and luma search copies; integral (8), two masks (2), stack (8).
        let search_bytes = search * (3 + 1) + (search + w.max(h) + 1) * 8 + search * (2 + 8);
        luma + resize + search_bytes
    }

    /// Finds the bib numbers in `image`, within the default [`Limits`].
    pub fn detect(&self, image: &DynamicImage) -> Result<Detections, Error> {
        self.detect_with(image, &Limits::default())
    }

    /// Finds the bib numbers in `image`, reading at most `limits.max_candidates`
    /// candidates and stopping when `limits.deadline` passes.
    pub fn detect_with(&self, image: &DynamicImage, limits: &Limits) -> Result<Detections, Error> {
        self.run(image, limits, None)
    }

    /// [`detect`](Self::detect), also saying what became of every digit line the
    /// search saw (evaluation: where each missed bib was lost).
    pub fn trace(&self, image: &DynamicImage) -> Result<(Detections, Vec<TracedLine>), Error> {
        let mut lines = Vec::new();
        let found = self.run(image, &Limits::default(), Some(&mut lines))?;
        Ok((found, lines))
    }

    fn run(
        &self,
        image: &DynamicImage,
        limits: &Limits,
        mut trace: Option<&mut Vec<TracedLine>>,
    ) -> Result<Detections, Error> {
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
        let mut rejected = Vec::new();
        let found = candidates::find_traced(
            &search_rgb,
            &search_gray,
            self.config.max_digits + 3,
            trace.is_some().then_some(&mut rejected),
        );
        let candidates_time = started.elapsed();
        let candidates_found = found.len();
        let to_box = |b: [f32; 4]| {
            let b = b.map(|v| v * scale);
            BoundingBox {
                x: b[0].max(0.0) as u32,
                y: b[1].max(0.0) as u32,
                width: (b[2] - b[0]).max(1.0) as u32,
                height: (b[3] - b[1]).max(1.0) as u32,
            }
        };
        if let Some(lines) = trace.as_deref_mut() {
            for (bbox, why) in rejected {
                let fate = match why {
                    candidates::Rejected::Shape => Fate::Shape,
                    candidates::Rejected::Border => Fate::Border,
                    candidates::Rejected::Surround => Fate::Surround,
                };
                lines.push(TracedLine {
                    bbox: to_box(bbox),
                    fate,
                });
            }
            if found.len() > limits.max_candidates {
                let kept = best(found.clone(), limits.max_candidates);
                for c in found.iter().filter(|c| !kept.contains(c)) {
                    lines.push(TracedLine {
                        bbox: to_box(c.bbox),
                        fate: Fate::NotRead,
                    });
                }
            }
        }
        let read = best(found, limits.max_candidates);

        let ocr_started = Instant::now();
        let mut bibs: Vec<Detection> = Vec::new();
        for (done, c) in read.iter().enumerate() {
            if limits.deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::DeadlineExceeded {
                    read: done,
                    candidates: read.len(),
                });
            }
            let outcome = read::read_traced(&gray, c, scale, &self.config)?;
            let bbox = to_box(c.bbox);
            if let Some(lines) = trace.as_deref_mut() {
                let fate = match &outcome {
                    Ok(reading) => Fate::Read(reading.text.clone()),
                    Err(read::NotABib::Words(text)) => Fate::Words(text.clone()),
                    Err(read::NotABib::Vote(texts)) => Fate::Vote(texts.clone()),
                };
                lines.push(TracedLine { bbox, fate });
            }
            let Ok(reading) = outcome else {
                continue;
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
            candidates_found,
            candidates_read: read.len(),
        })
    }
}

/// The `max` best-scored candidates, in the order they were found (so a photo
/// under the cap is read exactly as without one).
fn best(mut found: Vec<candidates::Candidate>, max: usize) -> Vec<candidates::Candidate> {
    if found.len() <= max {
        return found;
    }
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by(|&a, &b| found[b].score.total_cmp(&found[a].score).then(a.cmp(&b)));
    let mut keep = vec![false; found.len()];
    for &i in &order[..max] {
        keep[i] = true;
    }
    let mut i = 0;
    found.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    found
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

    /// `columns` × `rows` white patches, each with three crude dark "7"s, on a
    /// red shirt: a photo crowded with digit-like lines on bib-like paper.
    fn crowded(columns: u32, rows: u32) -> DynamicImage {
        let mut rgb =
            image::RgbImage::from_pixel(columns * 200, rows * 150, image::Rgb([180, 30, 30]));
        for (column, row) in (0..columns).flat_map(|c| (0..rows).map(move |r| (c, r))) {
            candidates::tests::draw_bib_like(&mut rgb, column * 200, row * 150);
        }
        DynamicImage::ImageRgb8(rgb)
    }

    #[test]
    fn a_photo_crowded_with_digit_like_lines_has_only_the_best_candidates_read() {
        let detector =
            Detector::new(DetectorConfig::default()).expect("tesseract-ocr-eng installed");
        let limits = Limits {
            max_candidates: 3,
            ..Limits::default()
        };
        let found = detector
            .detect_with(&crowded(6, 4), &limits)
            .expect("detects");
        assert_eq!(found.candidates_found, 24, "every patch is a candidate");
        assert_eq!(found.candidates_read, 3);
    }

    #[test]
    fn the_cap_keeps_the_best_scored_candidates_in_the_order_they_were_found() {
        let at = |score: f32, cx: f32| candidates::Candidate {
            cx,
            cy: 0.0,
            angle: 0.0,
            length: 10.0,
            height: 10.0,
            bbox: [0.0; 4],
            blobs: 2,
            score,
            coloured: false,
            outlined: false,
        };
        let found = vec![at(0.8, 1.0), at(0.95, 2.0), at(0.7, 3.0), at(0.9, 4.0)];
        let kept: Vec<f32> = best(found.clone(), 2).iter().map(|c| c.cx).collect();
        assert_eq!(kept, [2.0, 4.0]);
        assert_eq!(best(found.clone(), 4), found, "under the cap, all in order");
    }

    #[test]
    fn a_detection_past_its_deadline_stops_before_reading_the_next_candidate() {
        let detector =
            Detector::new(DetectorConfig::default()).expect("tesseract-ocr-eng installed");
        let limits = Limits {
            deadline: Some(Instant::now()),
            ..Limits::default()
        };
        let err = detector
            .detect_with(&crowded(2, 2), &limits)
            .expect_err("the deadline has passed");
        assert!(
            matches!(
                err,
                Error::DeadlineExceeded {
                    read: 0,
                    candidates: 4
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_detector_is_shareable_across_threads() {
        fn shareable<T: Clone + Send + Sync>() {}
        shareable::<Detector>();
    }
}
