//! Tesseract, one handle per thread.
//!
//! Starting Tesseract loads its model (tens of milliseconds), far more than reading
//! one crop, and a handle must not be used by two threads at once: each thread keeps
//! its own in a thread-local and reuses it for every crop it reads.

use std::cell::RefCell;

use image::GrayImage;
pub use tesseract::PageSegMode;
use tesseract::Tesseract;

use crate::Error;

/// Characters for the reading that checks for letters: digits, letters and the
/// separators of times and plates.
pub const ALPHANUMERIC: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:-";
/// Characters of a bib number.
pub const DIGITS: &str = "0123456789";

thread_local! {
    static HANDLE: RefCell<Option<Tesseract>> = const { RefCell::new(None) };
}

/// Starts a Tesseract handle with English data.
pub fn init() -> Result<Tesseract, Error> {
    Tesseract::new(None, Some("eng"))
        .map_err(|e| Error::Init(e.to_string()))?
        // Tesseract prints statistics of blank crops to stderr unless told otherwise.
        .set_variable("debug_file", "/dev/null")
        .map_err(|e| Error::Init(e.to_string()))
}

/// What Tesseract read in a crop and its mean confidence (0..1).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub text: String,
    pub confidence: f32,
}

/// Reads `image` (black text on white) segmented as `mode` (one line, word or
/// character) with only the characters in `whitelist`.
pub fn read(image: &GrayImage, whitelist: &str, mode: PageSegMode) -> Result<Reading, Error> {
    HANDLE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let handle = match slot.take() {
            Some(handle) => handle,
            None => init()?,
        };
        let mut handle = handle
            .set_variable("tessedit_char_whitelist", whitelist)
            .map_err(|e| Error::Ocr(e.to_string()))?;
        handle.set_page_seg_mode(mode);
        let (w, h) = image.dimensions();
        let w = i32::try_from(w).map_err(|e| Error::Ocr(e.to_string()))?;
        let h = i32::try_from(h).map_err(|e| Error::Ocr(e.to_string()))?;
        // A failed step consumes the handle; the next read starts a fresh one.
        let mut handle = handle
            .set_frame(image.as_raw(), w, h, 1, w)
            .map_err(|e| Error::Ocr(e.to_string()))?
            // Crops are scaled to ~48 px digits, what a 300 dpi scan of 12 pt text has;
            // saying so keeps Tesseract from guessing (and warning).
            .set_source_resolution(300)
            .recognize()
            .map_err(|e| Error::Ocr(e.to_string()))?;
        let text = handle.get_text().map_err(|e| Error::Ocr(e.to_string()))?;
        let confidence = handle.mean_text_conf().clamp(0, 100) as f32 / 100.0;
        *slot = Some(handle);
        Ok(Reading {
            text: text.trim().to_owned(),
            confidence,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn a_blank_crop_reads_as_nothing() {
        let blank = GrayImage::from_pixel(120, 60, Luma([255]));
        let reading =
            read(&blank, DIGITS, PageSegMode::PsmSingleLine).expect("tesseract-ocr-eng installed");
        assert_eq!(reading.text, "");
    }
}
