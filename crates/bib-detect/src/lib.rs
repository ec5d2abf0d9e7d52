#![doc = include_str!("../README.md")]

use std::time::{Duration, Instant};

use image::DynamicImage;
use tesseract::{PageSegMode, Tesseract};

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
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            min_digits: 1,
            max_digits: 6,
            min_confidence: 0.5,
        }
    }
}

/// A bib detector. Cheap to clone; `detect` is blocking CPU work (run it on a
/// blocking thread).
#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: DetectorConfig,
}

impl Detector {
    /// Checks that Tesseract and its English data load.
    pub fn new(config: DetectorConfig) -> Result<Self, Error> {
        Tesseract::new(None, Some("eng")).map_err(|e| Error::Init(e.to_string()))?;
        Ok(Self { config })
    }

    /// Finds the bib numbers in `image`.
    pub fn detect(&self, image: &DynamicImage) -> Result<Detections, Error> {
        let started = Instant::now();
        let gray = image.to_luma8();
        let candidates = started.elapsed();
        let ocr_started = Instant::now();
        let (width, height) = gray.dimensions();
        let mut tess = Tesseract::new(None, Some("eng"))
            .map_err(|e| Error::Init(e.to_string()))?
            .set_variable("tessedit_char_whitelist", "0123456789")
            .map_err(|e| Error::Ocr(e.to_string()))?;
        tess.set_page_seg_mode(PageSegMode::PsmSparseText);
        let mut tess = tess
            .set_frame(gray.as_raw(), width as i32, height as i32, 1, width as i32)
            .map_err(|e| Error::Ocr(e.to_string()))?
            .recognize()
            .map_err(|e| Error::Ocr(e.to_string()))?;
        let tsv = tess
            .get_tsv_text(0)
            .map_err(|e| Error::Ocr(e.to_string()))?;
        let bibs = parse_tsv(&tsv, &self.config);
        Ok(Detections {
            bibs,
            timings: Timings {
                candidates,
                ocr: ocr_started.elapsed(),
            },
        })
    }
}

/// Words of a Tesseract TSV page (level 5 rows) that are digit strings of a bib's length.
fn parse_tsv(tsv: &str, config: &DetectorConfig) -> Vec<Detection> {
    tsv.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() < 12 || cols[0] != "5" {
                return None;
            }
            let number = cols[11].trim();
            let digits = number.len();
            if digits < config.min_digits
                || digits > config.max_digits
                || !number.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let confidence = cols[10].parse::<f32>().ok()? / 100.0;
            if confidence < config.min_confidence {
                return None;
            }
            Some(Detection {
                number: number.to_owned(),
                confidence,
                bbox: BoundingBox {
                    x: cols[6].parse().ok()?,
                    y: cols[7].parse().ok()?,
                    width: cols[8].parse().ok()?,
                    height: cols[9].parse().ok()?,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_confident_digit_words_of_a_bibs_length_count() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t40\t91.5\t1234\n\
                   5\t1\t1\t1\t1\t2\t10\t20\t30\t40\t20\t77\n\
                   5\t1\t1\t1\t1\t3\t10\t20\t30\t40\t95\t1234567\n\
                   4\t1\t1\t1\t1\t0\t10\t20\t30\t40\t-1\t\n";
        let found = parse_tsv(tsv, &DetectorConfig::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].number, "1234");
        assert_eq!(
            found[0].bbox,
            BoundingBox {
                x: 10,
                y: 20,
                width: 30,
                height: 40
            }
        );
    }
}
