//! Reading one candidate: crops, Tesseract readings and a vote.
//!
//! The first reading allows letters: a line that holds words ("KM 21", a plate's
//! "AB 123 CD", a sponsor) is not a bib, whatever a digits-only reading would force
//! out of it. Digits-only readings of differently prepared crops then vote; a bib is
//! accepted when two readings agree, so a single confident misreading cannot pass.

use image::GrayImage;

use crate::candidates::Candidate;
use crate::ocr::{self, PageSegMode, Reading};
use crate::{DetectorConfig, Error, crop};

/// Margin of the wide crop, in digit heights, on either end of the line.
const WIDE_MARGIN: f32 = 1.6;

/// Why a read candidate was not taken for a bib (for the detector's trace).
#[derive(Debug, Clone, PartialEq)]
pub enum NotABib {
    /// The wide reading, letters allowed, held words, a colon or a plate.
    Words(String),
    /// The digits-only readings did not agree (or the winner was too short, long
    /// or unsure): every reading's text.
    Vote(Vec<String>),
}

/// Reads the candidate's number, or says why it is not a bib.
pub fn read_traced(
    gray: &GrayImage,
    c: &Candidate,
    scale: f32,
    config: &DetectorConfig,
) -> Result<Result<Reading, NotABib>, Error> {
    // The line with room on both sides: a number that continues into words, a colon
    // or a plate's letters shows it there, though the digits alone look like a bib.
    let wide_raw = crop::straighten(gray, c, scale, WIDE_MARGIN);
    let wide_gray = crop::flatten(&wide_raw);
    let wide = crop::binarise(&wide_gray, crop::otsu(&wide_gray), true);
    let words = ocr::read(
        &crop::on_its_paper(&wide_raw, &wide, WIDE_MARGIN),
        ocr::ALPHANUMERIC,
        PageSegMode::PsmSingleLine,
    )?;
    // Words need two glyphs: letters read from a crop holding one glyph are
    // Tesseract's guesses at a lone digit, and that reading abstains.
    let as_digits = match digits_of_words(&words.text) {
        Some(digits) => digits,
        None if !words.text.contains(':') && crop::glyph_count(&wide) <= 1 => String::new(),
        None => return Ok(Err(NotABib::Words(words.text))),
    };

    // The tight crop: the digit line as the wide crop shows it, plus a third of a digit.
    let pad = crop::TEXT_HEIGHT * 0.35;
    let (w, h) = wide_gray.dimensions();
    let (x0, x1) = match crop::digit_span(&wide) {
        // `binarise` added a 12 px margin.
        Some((x0, x1)) => (
            x0.saturating_sub(12) as f32 - pad,
            x1.saturating_sub(12) as f32 + pad,
        ),
        None => {
            let outside = crop::TEXT_HEIGHT * (WIDE_MARGIN - 0.35);
            (outside, w as f32 - outside)
        }
    };
    let (x0, x1) = (
        x0.max(0.0) as u32,
        (x1.min(w as f32) as u32).max(x0.max(0.0) as u32 + 8).min(w),
    );
    let straight = image::imageops::crop_imm(&wide_gray, x0, 0, x1 - x0, h).to_image();
    let threshold = crop::otsu(&straight);
    let binary = crop::binarise(&straight, threshold, false);
    let (line, word) = (PageSegMode::PsmSingleLine, PageSegMode::PsmSingleWord);
    let mut readings = vec![
        Reading {
            text: as_digits,
            confidence: words.confidence,
        },
        digits(ocr::read(&binary, ocr::DIGITS, line)?),
    ];
    let agreed = readings[1].text == readings[0].text && readings[1].confidence >= 0.8;
    // A lone digit of a bib's size (32 px or more in the photo) that the search
    // found as one blob, so its card's outline was checked: Tesseract finds
    // digits in small blobs of foliage or crowd too, and a line of several
    // blobs skipped the lone digit's checks, so those keep the stricter rule
    // of four readings (see `vote`).
    let lone = crop::glyph_count(&binary) == 1;
    let lone_glyph = lone && c.blobs == 1 && c.height * scale >= 32.0;
    if lone_glyph {
        // Tesseract's line mode often returns nothing for a lone digit, or takes
        // it for another: two more opinions, the glyph as a raw line (PSM 13),
        // and the glyph set twice side by side, read as a line of two.
        readings.push(digits(ocr::read(
            &binary,
            ocr::DIGITS,
            PageSegMode::PsmRawLine,
        )?));
        let twice = digits(ocr::read(&side_by_side(&binary), ocr::DIGITS, line)?);
        readings.push(once_of_twice(twice));
    }
    // A single digit always hears all opinions (see `vote`).
    if !agreed || readings[1].text.len() < 2 || lone_glyph {
        // No quick agreement: two more opinions, from the grey crop and from thinner ink
        // (blur and JPEG fuse neighbouring digits at Otsu's level).
        readings.push(digits(ocr::read(
            &crop::stretched(&straight),
            ocr::DIGITS,
            line,
        )?));
        let thinner = crop::binarise(&straight, (f32::from(threshold) * 0.7) as u8, false);
        readings.push(digits(ocr::read(&thinner, ocr::DIGITS, word)?));
    }
    // A coloured card is told from other coloured patches by its edge close to the
    // digits; a number printed on a shirt (a player's one or two digits) can have
    // that too, so a coloured card's number needs three digits or more unless the
    // card's whole outline was found.
    let short_on_colour = |text: &str| c.coloured && !c.outlined && text.len() < 3;
    // Digits under 24 px tall in the photo are not held to their holes: a hole
    // there is a few pixels across, and blur and JPEG close it (the low-res
    // style lost 284, 801 and 320, 9 to 12 px tall, when they were).
    let holes = || (c.height * scale >= 24.0).then(|| crop::digit_holes(&binary));
    // One digit is read only where the crop shows one glyph: a line of several
    // blobs read as one digit is a misreading of something else.
    let lone_confidence = match (lone, lone_glyph) {
        (_, true) => Some(0.7),
        (true, false) => Some(0.8),
        (false, _) => None,
    };
    let checked = vote(&readings, config, lone_confidence)
        .and_then(|won| match holes() {
            Some(holes) => as_shapes_allow(won, &holes),
            None => Some(won),
        })
        .or_else(|| {
            lone_glyph
                .then(|| lone_by_its_holes(&readings, &binary))
                .flatten()
        });
    match checked {
        Some(won) if !short_on_colour(&won.text) => Ok(Ok(won)),
        _ => Ok(Err(NotABib::Vote(
            readings.iter().map(|r| r.text.clone()).collect(),
        ))),
    }
}

/// `binary` twice, side by side: a line of two glyphs, which Tesseract's line
/// mode reads more surely than one.
fn side_by_side(binary: &GrayImage) -> GrayImage {
    let (w, h) = binary.dimensions();
    let mut out = GrayImage::new(w * 2, h);
    for (x, y, p) in binary.enumerate_pixels() {
        out.put_pixel(x, y, *p);
        out.put_pixel(x + w, y, *p);
    }
    out
}

/// The digit a reading of [`side_by_side`] saw twice ("44" is 4); anything
/// else is kept as read and so dissents.
fn once_of_twice(reading: Reading) -> Reading {
    let mut chars = reading.text.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some(a), Some(b), None) if a == b => Reading {
            text: a.to_string(),
            ..reading
        },
        _ => reading,
    }
}

/// A lone bib-sized digit that every reading that saw ink read alike, three
/// readings at least, whose blob has the holes that digit has (a 0, 6, 8 or 9,
/// or a closed 4): Tesseract gives a lone glyph confidences of 0.5 and under
/// for plain 0s and 8s, where the topology of the blob is evidence enough.
fn lone_by_its_holes(readings: &[Reading], binary: &GrayImage) -> Option<Reading> {
    let heard: Vec<&Reading> = readings.iter().filter(|r| !r.text.is_empty()).collect();
    let first = heard.first()?;
    let digit = first.text.chars().next()?;
    let holes = crop::digit_holes(binary);
    let alike = heard.iter().all(|r| r.text == first.text);
    let best = heard.iter().map(|r| r.confidence).fold(0.0f32, f32::max);
    (heard.len() >= 3
        && alike
        && first.text.len() == 1
        && best >= 0.5
        && holes.len() == 1
        && holes[0] >= 1
        && holes_of(digit).contains(&holes[0]))
    .then(|| Reading {
        text: first.text.clone(),
        confidence: best,
    })
}

/// The reading's digits with spaces removed.
fn digits(reading: Reading) -> Reading {
    Reading {
        text: reading.text.chars().filter(char::is_ascii_digit).collect(),
        confidence: reading.confidence,
    }
}

/// Holes each digit has: a 4 is drawn open or closed, a monospace face's
/// slashed 0 has two, a blurred 8 can lose one.
fn holes_of(digit: char) -> std::ops::RangeInclusive<u32> {
    match digit {
        '6' | '9' => 1..=1,
        '0' => 1..=2,
        // A closed 4's counter is small and pointed: blur can pinch it in two.
        '4' => 0..=2,
        '8' => 1..=2,
        _ => 0..=0,
    }
}

/// The winning reading checked against the holes of the crop's digit blobs
/// ([`crop::digit_holes`]), when there is one blob per digit (fused or broken
/// digits cannot be checked): a 9 without a hole is a 5 (Tesseract's LSTM reads
/// a bold serif 5's ball terminal as a 9's loop, confidently and in every
/// preparation of the crop); any other digit whose blob has the wrong number
/// of holes means the reading is not that number.
fn as_shapes_allow(won: Reading, holes: &[u32]) -> Option<Reading> {
    if holes.len() != won.text.chars().count() {
        return Some(won);
    }
    let mut text = String::with_capacity(won.text.len());
    for (digit, &n) in won.text.chars().zip(holes) {
        match digit {
            _ if holes_of(digit).contains(&n) => text.push(digit),
            '9' if n == 0 => text.push('5'),
            _ => return None,
        }
    }
    Some(Reading { text, ..won })
}

/// The digits a free reading stands for, or `None` when it holds words.
///
/// Tesseract sometimes reads a bold 0 as O or a 1 as I; those are mapped back, but a
/// reading made mostly of such letters ("BIOS", "ZOO") is a word, not a number.
fn digits_of_words(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut letters = 0;
    // A dash at either end is a speck beside the number (a pin, the bib's edge);
    // between digits it makes a plate. A colon between digits makes a time; one at
    // an end is a time's only beside one or two digits ("2:", ":05" of "2:05:02"):
    // after three or more it is the bib's edge or a pair of specks.
    let text = text.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let core = text.trim_matches(|c: char| c == ':' || c.is_whitespace());
    let text = if core.chars().filter(char::is_ascii_alphanumeric).count() >= 3 {
        core
    } else {
        text
    };
    for ch in text.chars().filter(|c| !c.is_whitespace()) {
        let digit = match ch {
            '0'..='9' => ch,
            'O' | 'o' | 'D' | 'Q' => {
                letters += 1;
                '0'
            }
            'I' | 'l' | 'i' | '|' | 'J' => {
                letters += 1;
                '1'
            }
            'S' | 's' => {
                letters += 1;
                '5'
            }
            'B' => {
                letters += 1;
                '8'
            }
            'Z' | 'z' => {
                letters += 1;
                '2'
            }
            'G' | 'b' => {
                letters += 1;
                '6'
            }
            'g' | 'q' => {
                letters += 1;
                '9'
            }
            // Specks at the ends of a line come out as dashes.
            '-' => continue,
            _ => return None,
        };
        out.push(digit);
    }
    if letters * 2 > out.len() {
        return None;
    }
    Some(out)
}

/// The number most readings (weighted by confidence) agree on, if at least two agree
/// and it is a bib's length and confident enough.
fn vote(
    readings: &[Reading],
    config: &DetectorConfig,
    lone_confidence: Option<f32>,
) -> Option<Reading> {
    let mut tally: Vec<(&str, usize, f32)> = Vec::new();
    for r in readings.iter().filter(|r| !r.text.is_empty()) {
        match tally.iter_mut().find(|(t, _, _)| *t == r.text) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += r.confidence;
            }
            None => tally.push((&r.text, 1, r.confidence)),
        }
    }
    // Most votes first, then the greater total confidence.
    let (text, votes, _) = tally
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)))?;
    let len = text.chars().count();
    if votes < 2 || len < config.min_digits || len > config.max_digits {
        return None;
    }
    // Confidence: the best agreeing reading's, discounted by dissent. (Not the mean:
    // Tesseract gives a right reading of a crop with specks a confidence near zero.)
    let best = readings
        .iter()
        .filter(|r| r.text == text)
        .map(|r| r.confidence)
        .fold(0.0f32, f32::max);
    // Empty readings (a variant that lost the ink) abstain rather than dissent.
    let heard = readings.iter().filter(|r| !r.text.is_empty()).count();
    let confidence = best * (0.6 + 0.4 * votes as f32 / heard as f32);
    // One digit alone is easy to conjure from a blob (a gap in a crowd, the hole of a
    // light "0"): all readings that saw ink but one must agree, confidently.
    let needed = if len == 1 {
        // Two thirds of the readings that saw ink.
        if votes < 2 || votes < 2 * (heard - votes) {
            return None;
        }
        config.min_confidence.max(lone_confidence?)
    } else {
        config.min_confidence
    };
    // Tesseract's mean confidence is sometimes 0 for a right reading (a speck
    // beside the number, an unusual face): four differently prepared crops all
    // read alike are evidence enough for two digits or more.
    let unanimous = len >= 2 && votes >= 4 && votes == readings.len();
    if unanimous && confidence < needed {
        return Some(Reading {
            text: text.to_owned(),
            confidence: needed,
        });
    }
    (confidence >= needed).then(|| Reading {
        text: text.to_owned(),
        confidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str, confidence: f32) -> Reading {
        Reading {
            text: text.to_owned(),
            confidence,
        }
    }

    #[test]
    fn words_are_not_numbers_but_misread_digits_are() {
        assert_eq!(digits_of_words("1O4"), Some("104".to_owned()));
        assert_eq!(digits_of_words("KM 21"), None);
        assert_eq!(digits_of_words("BIOS"), None);
        assert_eq!(digits_of_words("12:05"), None);
        assert_eq!(digits_of_words("-4821"), Some("4821".to_owned()));
        assert_eq!(digits_of_words("1:05"), None);
        assert_eq!(digits_of_words("4622:"), Some("4622".to_owned()));
        assert_eq!(digits_of_words("2:"), None);
    }

    #[test]
    fn two_agreeing_readings_win_the_vote() {
        let config = DetectorConfig::default();
        let won = vote(
            &[r("123", 0.9), r("128", 0.95), r("123", 0.8)],
            &config,
            Some(0.8),
        );
        assert_eq!(won.map(|w| w.text), Some("123".to_owned()));
    }

    #[test]
    fn four_alike_readings_win_whatever_tesseract_s_confidence() {
        let config = DetectorConfig::default();
        let zero = [r("302", 0.0), r("302", 0.0), r("302", 0.0), r("302", 0.0)];
        let won = vote(&zero, &config, Some(0.8)).expect("unanimous");
        assert_eq!(won.text, "302");
        assert_eq!(won.confidence, config.min_confidence);
        // Three of four, or a single digit, still need Tesseract's confidence.
        let three = [r("302", 0.0), r("302", 0.0), r("302", 0.0), r("362", 0.0)];
        assert_eq!(vote(&three, &config, Some(0.8)), None);
        let one = [r("1", 0.6), r("1", 0.6), r("1", 0.6), r("1", 0.6)];
        assert_eq!(vote(&one, &config, Some(0.8)), None);
    }

    #[test]
    fn a_reading_is_held_to_the_holes_of_its_digit_blobs() {
        // Tesseract's "9" over a blob without a hole is a bold serif 5.
        let won = as_shapes_allow(r("9285", 0.93), &[0, 0, 2, 0]).map(|w| w.text);
        assert_eq!(won.as_deref(), Some("5285"));
        let won = as_shapes_allow(r("99768", 0.9), &[0, 0, 0, 1, 2]).map(|w| w.text);
        assert_eq!(won.as_deref(), Some("55768"));
        // A 0 without a hole, a 7 with one: not that number at all.
        assert_eq!(as_shapes_allow(r("000", 0.6), &[0, 1, 1]), None);
        assert_eq!(as_shapes_allow(r("17", 0.9), &[0, 1]), None);
        // A 4 open or closed, an 8 blurred to one hole, a slashed 0, pass as read.
        let won = as_shapes_allow(r("48480", 0.9), &[0, 2, 1, 1, 2]).map(|w| w.text);
        assert_eq!(won.as_deref(), Some("48480"));
        // Fused or broken digits (blobs != digits) cannot be checked.
        let won = as_shapes_allow(r("9036", 0.9), &[0, 1, 1]).map(|w| w.text);
        assert_eq!(won.as_deref(), Some("9036"));
    }

    #[test]
    fn a_glyph_read_twice_side_by_side_is_one_digit() {
        assert_eq!(once_of_twice(r("44", 0.8)).text, "4");
        // Anything but a pair of one digit is kept as read, and so dissents.
        assert_eq!(once_of_twice(r("14", 0.8)).text, "14");
        assert_eq!(once_of_twice(r("444", 0.8)).text, "444");
        assert_eq!(once_of_twice(r("", 0.0)).text, "");
    }

    #[test]
    fn one_digit_needs_a_lone_glyph_and_two_thirds_of_the_readings() {
        let config = DetectorConfig::default();
        let fours = [r("4", 0.75), r("4", 0.74), r("4", 0.7), r("", 0.0)];
        // A bib-sized lone glyph is taken at 0.7, a small one at 0.8.
        assert_eq!(
            vote(&fours, &config, Some(0.7)).map(|w| w.text).as_deref(),
            Some("4")
        );
        assert_eq!(vote(&fours, &config, Some(0.8)), None);
        // A crop of several blobs read as one digit is no bib.
        assert_eq!(vote(&fours, &config, None), None);
        // Four of six readings agree: two thirds.
        let split = [
            r("5", 0.96),
            r("5", 0.96),
            r("7", 0.0),
            r("5", 0.4),
            r("5", 0.9),
            r("7", 0.2),
        ];
        assert_eq!(
            vote(&split, &config, Some(0.7)).map(|w| w.text).as_deref(),
            Some("5")
        );
        let split = [r("1", 0.9), r("1", 0.9), r("4", 0.5), r("14", 0.7)];
        assert_eq!(vote(&split, &config, Some(0.7)), None);
    }

    #[test]
    fn a_lone_digit_read_alike_at_low_confidence_is_taken_when_its_holes_agree() {
        // One blob with one hole: a 0 read alike three times at Tesseract's
        // confidence 0.5 is taken; a blob without a hole (a 1 or a crowd's
        // blob read "0") or a dissenting reading is not.
        let mut one_hole = GrayImage::from_pixel(72, 72, image::Luma([255]));
        for y in 12..60 {
            for x in 20..52 {
                let ring = !(28..44).contains(&x) || !(20..52).contains(&y);
                if ring {
                    one_hole.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        let zeros = [r("0", 0.5), r("0", 0.54), r("", 0.0), r("0", 0.1)];
        let won = lone_by_its_holes(&zeros, &one_hole).map(|w| w.text);
        assert_eq!(won.as_deref(), Some("0"));
        let mut solid = one_hole.clone();
        for y in 20..52 {
            for x in 28..44 {
                solid.put_pixel(x, y, image::Luma([0]));
            }
        }
        assert_eq!(lone_by_its_holes(&zeros, &solid), None);
        let split = [r("0", 0.5), r("0", 0.54), r("6", 0.3), r("0", 0.1)];
        assert_eq!(lone_by_its_holes(&split, &one_hole), None);
        let low = [r("0", 0.3), r("0", 0.2), r("0", 0.1)];
        assert_eq!(lone_by_its_holes(&low, &one_hole), None);
    }

    #[test]
    fn a_lone_reading_is_not_enough() {
        let config = DetectorConfig::default();
        assert_eq!(
            vote(&[r("123", 0.99), r("", 0.0)], &config, Some(0.8)),
            None
        );
        assert_eq!(
            vote(&[r("1234567", 0.9), r("1234567", 0.9)], &config, Some(0.8)),
            None
        );
    }
}
