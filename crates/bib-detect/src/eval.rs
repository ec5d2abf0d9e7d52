//! Labelled photo sets and the detector's score on them.
//!
//! A set is a directory of JPEGs and `labels.jsonl`, one line per image:
//! `{"file":"0001.jpg","bibs":[{"number":"123","bbox":[x,y,w,h]}]}`.
//! A detection counts as found when its number equals a not yet matched true bib of
//! the same photo and its box overlaps that bib's box: a photo is tagged with a
//! number, and the box check keeps a right number read off a sign from counting.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Detection, Detector, Error, Fate, TracedLine};

/// The stage where a missed bib was lost, from first to last: the furthest any
/// digit line over the bib got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// No digit line over the bib at all: its strokes were not found or not chained.
    Search,
    /// A line too long, a lone blob too small, or a line touching the border.
    Shape,
    /// A line, rejected by the surround (paper) test.
    Surround,
    /// A candidate beyond the cap of candidates read.
    Cap,
    /// The wide reading found words, a colon or a plate.
    Words,
    /// The digits-only readings did not agree.
    Vote,
    /// Read, but as another number.
    Misread,
    /// Read right, then dropped by de-duplication.
    Dedup,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 8] = [
        Stage::Search,
        Stage::Shape,
        Stage::Surround,
        Stage::Cap,
        Stage::Words,
        Stage::Vote,
        Stage::Misread,
        Stage::Dedup,
    ];

    /// The stage's name in `eval`'s output.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Search => "search",
            Stage::Shape => "shape",
            Stage::Surround => "surround",
            Stage::Cap => "cap",
            Stage::Words => "words",
            Stage::Vote => "vote",
            Stage::Misread => "misread",
            Stage::Dedup => "dedup",
        }
    }
}

/// Where a missed bib was lost: the furthest stage any traced line over its box reached.
pub fn lost_at(truth: &TruthBib, lines: &[TracedLine]) -> Stage {
    lines
        .iter()
        .filter(|l| overlaps(truth.bbox, &l.bbox))
        .map(|l| match &l.fate {
            Fate::Shape | Fate::Border => Stage::Shape,
            Fate::Surround => Stage::Surround,
            Fate::NotRead => Stage::Cap,
            Fate::Words(_) => Stage::Words,
            Fate::Vote(_) => Stage::Vote,
            Fate::Read(n) if *n == truth.number => Stage::Dedup,
            Fate::Read(_) => Stage::Misread,
        })
        .max()
        .unwrap_or(Stage::Search)
}

/// One true bib of a photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruthBib {
    pub number: String,
    /// x, y, width, height of the digits in pixels.
    pub bbox: [u32; 4],
}

/// The truth of one photo: a line of `labels.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub file: String,
    pub bibs: Vec<TruthBib>,
}

/// What can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {source}")]
    Label {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("cannot decode {path}: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error(transparent)]
    Detect(#[from] Error),
}

/// Reads `labels.jsonl` of a set directory.
pub fn read_labels(dir: &Path) -> Result<Vec<Label>, EvalError> {
    let path = dir.join("labels.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Read {
        path: path.clone(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|source| EvalError::Label {
                path: path.clone(),
                line: i + 1,
                source,
            })
        })
        .collect()
}

/// Matches of one photo.
#[derive(Debug, Clone, Default)]
pub struct ImageScore {
    pub file: String,
    pub truth: usize,
    pub found: usize,
    pub correct: usize,
    /// True bibs not found.
    pub missed: Vec<String>,
    /// Detections that match no true bib, as `number@x,y,w,h`.
    pub wrong: Vec<String>,
    /// Every detection's confidence and whether it was right.
    pub confidences: Vec<(f32, bool)>,
    /// Each missed bib's number and the stage where it was lost (when traced).
    pub lost: Vec<(String, Stage)>,
}

/// Compares the detections of one photo with its truth.
pub fn score_image(label: &Label, detections: &[Detection]) -> ImageScore {
    let mut matched = vec![false; label.bibs.len()];
    let mut wrong = Vec::new();
    let mut correct = 0;
    let mut confidences = Vec::new();
    for d in detections {
        let hit =
            label.bibs.iter().enumerate().position(|(i, t)| {
                !matched[i] && t.number == d.number && overlaps(t.bbox, &d.bbox)
            });
        match hit {
            Some(i) => {
                matched[i] = true;
                correct += 1;
            }
            None => wrong.push(format!(
                "{}@{},{},{},{}",
                d.number, d.bbox.x, d.bbox.y, d.bbox.width, d.bbox.height
            )),
        }
        confidences.push((d.confidence, hit.is_some()));
    }
    let missed = label
        .bibs
        .iter()
        .zip(&matched)
        .filter(|(_, m)| !**m)
        .map(|(t, _)| t.number.clone())
        .collect();
    ImageScore {
        file: label.file.clone(),
        truth: label.bibs.len(),
        found: detections.len(),
        correct,
        missed,
        wrong,
        confidences,
        lost: Vec::new(),
    }
}

/// [`score_image`], with each missed bib's stage found in the detector's trace.
pub fn score_traced(label: &Label, detections: &[Detection], lines: &[TracedLine]) -> ImageScore {
    let mut score = score_image(label, detections);
    let mut missed = score.missed.clone();
    for truth in &label.bibs {
        if let Some(i) = missed.iter().position(|m| *m == truth.number)
            && !detections
                .iter()
                .any(|d| d.number == truth.number && overlaps(truth.bbox, &d.bbox))
        {
            missed.remove(i);
            score
                .lost
                .push((truth.number.clone(), lost_at(truth, lines)));
        }
    }
    score
}

fn overlaps(truth: [u32; 4], found: &crate::BoundingBox) -> bool {
    let [x, y, w, h] = truth;
    x < found.x + found.width && found.x < x + w && y < found.y + found.height && found.y < y + h
}

/// Totals over a set.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub images: usize,
    pub truth: usize,
    pub found: usize,
    pub correct: usize,
    pub candidates: Duration,
    pub ocr: Duration,
    /// Every detection's confidence and whether it was right.
    pub confidences: Vec<(f32, bool)>,
    /// Missed bibs by the stage where they were lost.
    pub lost: Vec<Stage>,
}

impl Summary {
    /// Adds one photo's score and timings.
    pub fn add(&mut self, score: &ImageScore, timings: &crate::Timings) {
        self.images += 1;
        self.truth += score.truth;
        self.found += score.found;
        self.correct += score.correct;
        self.candidates += timings.candidates;
        self.ocr += timings.ocr;
        self.confidences.extend_from_slice(&score.confidences);
        self.lost.extend(score.lost.iter().map(|(_, stage)| *stage));
    }

    /// `lost search=… shape=… … dedup=… candidates_recall=…`: missed bibs by the
    /// stage where they were lost, and the share of true bibs that became a
    /// candidate (reached the cap or later, or were found).
    pub fn stage_line(&self) -> String {
        let mut line = String::from("lost");
        for stage in Stage::ALL {
            let n = self.lost.iter().filter(|s| **s == stage).count();
            line.push_str(&format!(" {}={n}", stage.name()));
        }
        let before = self.lost.iter().filter(|s| **s < Stage::Cap).count();
        let recall = if self.truth == 0 {
            1.0
        } else {
            (self.truth - before.min(self.truth)) as f64 / self.truth as f64
        };
        line.push_str(&format!(" candidates_recall={recall:.3}"));
        line
    }

    /// Share of detections that are right (1.0 when nothing was found).
    pub fn precision(&self) -> f64 {
        if self.found == 0 {
            1.0
        } else {
            self.correct as f64 / self.found as f64
        }
    }

    /// Share of true bibs found (1.0 when there were none).
    pub fn recall(&self) -> f64 {
        if self.truth == 0 {
            1.0
        } else {
            self.correct as f64 / self.truth as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Mean milliseconds per photo of candidate search and of OCR.
    pub fn ms_per_photo(&self) -> (f64, f64) {
        let n = self.images.max(1) as f64;
        (
            self.candidates.as_secs_f64() * 1000.0 / n,
            self.ocr.as_secs_f64() * 1000.0 / n,
        )
    }

    /// `precision=… recall=… f1=… images=… truth=… found=…`
    pub fn score_line(&self) -> String {
        format!(
            "precision={:.2} recall={:.2} f1={:.2} images={} truth={} found={}",
            self.precision(),
            self.recall(),
            self.f1(),
            self.images,
            self.truth,
            self.found
        )
    }

    /// Precision and recall had `min_confidence` been `threshold`:
    /// `min_confidence=0.70 precision=… recall=…`.
    pub fn at_confidence(&self, threshold: f32) -> String {
        let kept: Vec<bool> = self
            .confidences
            .iter()
            .filter(|(c, _)| *c >= threshold)
            .map(|(_, right)| *right)
            .collect();
        let right = kept.iter().filter(|r| **r).count();
        let precision = if kept.is_empty() {
            1.0
        } else {
            right as f64 / kept.len() as f64
        };
        let recall = if self.truth == 0 {
            1.0
        } else {
            right as f64 / self.truth as f64
        };
        format!("min_confidence={threshold:.2} precision={precision:.3} recall={recall:.3}")
    }

    /// `candidates_ms=… ocr_ms=…`
    pub fn timing_line(&self) -> String {
        let (c, o) = self.ms_per_photo();
        format!("candidates_ms={c:.1} ocr_ms={o:.1}")
    }
}

/// Runs `detector` over the set in `dir` on `threads` threads; returns every photo's
/// score (in label order) and the totals.
pub fn evaluate(
    detector: &Detector,
    dir: &Path,
    threads: usize,
) -> Result<(Vec<ImageScore>, Summary), EvalError> {
    let labels = read_labels(dir)?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(label) = labels.get(i) else { break };
                    match detect_one(detector, dir, label) {
                        Ok(r) => results.lock().expect("no panics while held").push((i, r)),
                        Err(e) => {
                            *failure.lock().expect("no panics while held") = Some(e);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("threads joined") {
        return Err(e);
    }
    let mut results = results.into_inner().expect("threads joined");
    results.sort_by_key(|(i, _)| *i);
    let mut summary = Summary::default();
    let scores = results
        .into_iter()
        .map(|(_, (score, timings))| {
            summary.add(&score, &timings);
            score
        })
        .collect();
    Ok((scores, summary))
}

fn detect_one(
    detector: &Detector,
    dir: &Path,
    label: &Label,
) -> Result<(ImageScore, crate::Timings), EvalError> {
    let path = dir.join(&label.file);
    let image = image::open(&path).map_err(|source| EvalError::Decode { path, source })?;
    let (found, lines) = detector.trace(&image)?;
    Ok((score_traced(label, &found.bibs, &lines), found.timings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoundingBox;

    fn detection(number: &str, x: u32) -> Detection {
        Detection {
            number: number.to_owned(),
            confidence: 0.9,
            bbox: BoundingBox {
                x,
                y: 10,
                width: 20,
                height: 10,
            },
        }
    }

    #[test]
    fn a_number_counts_once_and_only_where_the_bib_is() {
        let label = Label {
            file: "a.jpg".into(),
            bibs: vec![
                TruthBib {
                    number: "12".into(),
                    bbox: [0, 10, 20, 10],
                },
                TruthBib {
                    number: "7".into(),
                    bbox: [100, 10, 20, 10],
                },
            ],
        };
        let found = [detection("12", 5), detection("12", 8), detection("7", 500)];
        let score = score_image(&label, &found);
        assert_eq!(score.correct, 1);
        assert_eq!(
            score.wrong,
            vec!["12@8,10,20,10".to_owned(), "7@500,10,20,10".to_owned()]
        );
        assert_eq!(score.missed, vec!["7".to_owned()]);
    }

    fn line(x: u32, fate: Fate) -> TracedLine {
        TracedLine {
            bbox: BoundingBox {
                x,
                y: 10,
                width: 20,
                height: 10,
            },
            fate,
        }
    }

    #[test]
    fn a_missed_bib_is_lost_at_the_furthest_stage_a_line_over_it_reached() {
        let truth = TruthBib {
            number: "123".into(),
            bbox: [0, 10, 30, 10],
        };
        assert_eq!(lost_at(&truth, &[]), Stage::Search);
        let lines = [
            line(0, Fate::Surround),
            line(5, Fate::Vote(vec!["123".into(), "128".into()])),
            line(500, Fate::Read("999".into())),
        ];
        assert_eq!(
            lost_at(&truth, &lines),
            Stage::Vote,
            "the far line is elsewhere"
        );
        let read_wrong = [line(0, Fate::Surround), line(2, Fate::Read("128".into()))];
        assert_eq!(lost_at(&truth, &read_wrong), Stage::Misread);
        let read_right = [line(2, Fate::Read("123".into()))];
        assert_eq!(lost_at(&truth, &read_right), Stage::Dedup);
    }

    #[test]
    fn the_stage_line_counts_misses_by_stage() {
        let summary = Summary {
            truth: 4,
            lost: vec![Stage::Surround, Stage::Vote],
            ..Summary::default()
        };
        assert_eq!(
            summary.stage_line(),
            "lost search=0 shape=0 surround=1 cap=0 words=0 vote=1 misread=0 dedup=0 \
             candidates_recall=0.750"
        );
    }

    #[test]
    fn the_score_line_has_the_documented_shape() {
        let summary = Summary {
            images: 2,
            truth: 4,
            found: 2,
            correct: 2,
            ..Summary::default()
        };
        assert_eq!(
            summary.score_line(),
            "precision=1.00 recall=0.50 f1=0.67 images=2 truth=4 found=2"
        );
    }
}
