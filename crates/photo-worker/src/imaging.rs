//! Decoding a photo within limits and making its thumbnail.
//!
//! A photo comes from strangers: a small file can declare a huge image (a
//! decompression bomb). The header is read first and the image refused when its
//! width, height or pixel count is over the limits; the decoder itself is given
//! the same limits and an allocation cap, so no decode allocates more than
//! `max_decode_bytes` whatever the file claims. Only JPEG and PNG are accepted,
//! recognised by their bytes, never by a name or a declared type.

use std::io::Cursor;
use std::num::NonZero;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// How big an image may be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// `PHOTO_MAX_PIXELS`: width × height, default 50 million (a 50 MP camera).
    pub max_pixels: u64,
    /// `PHOTO_MAX_DIMENSION`: the longest side, default 12,000 pixels.
    pub max_dimension: u32,
    /// `PHOTO_MAX_DECODE_BYTES`: what a decoder may allocate, default 512 MiB.
    pub max_decode_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self {
            max_pixels: 50_000_000,
            max_dimension: 12_000,
            max_decode_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why a photo could not be decoded. None of these is fixed by retrying.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a JPEG or PNG image (the file starts with {0})")]
    Unsupported(String),
    #[error("the image is too large to decode: {width}x{height} pixels is over {rule}")]
    TooLarge {
        width: u32,
        height: u32,
        rule: String,
    },
    #[error("not a decodable image: {0}")]
    Corrupt(String),
    #[error("encoding the thumbnail: {0}")]
    Thumbnail(String),
}

/// The two types accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFormat {
    Jpeg,
    Png,
}

impl PhotoFormat {
    /// Recognises JPEG and PNG by their first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
        }
    }
}

/// Decodes a JPEG or PNG within `limits`, turned upright by its EXIF orientation.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, ImageError> {
    let format = PhotoFormat::sniff(bytes).ok_or_else(|| {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        ImageError::Unsupported(if head.is_empty() {
            "nothing: the file is empty".into()
        } else {
            head.join(" ")
        })
    })?;
    let reader = || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
        let mut decoder_limits = Limits::default();
        decoder_limits.max_image_width = Some(limits.max_dimension);
        decoder_limits.max_image_height = Some(limits.max_dimension);
        decoder_limits.max_alloc = Some(limits.max_decode_bytes);
        reader.limits(decoder_limits);
        reader
    };
    let corrupt = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => ImageError::Corrupt(format!(
            "{l} (PHOTO_MAX_DIMENSION {}, PHOTO_MAX_DECODE_BYTES {})",
            limits.max_dimension, limits.max_decode_bytes
        )),
        other => ImageError::Corrupt(other.to_string()),
    };
    let mut decoder = reader().into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    let too_large = |rule: String| ImageError::TooLarge {
        width,
        height,
        rule,
    };
    if width.max(height) > limits.max_dimension {
        return Err(too_large(format!(
            "PHOTO_MAX_DIMENSION ({})",
            limits.max_dimension
        )));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large(format!(
            "PHOTO_MAX_PIXELS ({})",
            limits.max_pixels
        )));
    }
    let orientation = decoder.orientation().map_err(corrupt)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A JPEG thumbnail whose longest side is at most `size`.
pub fn thumbnail(image: &DynamicImage, size: u32) -> Result<Vec<u8>, ImageError> {
    let size = NonZero::new(size).map_or(1, NonZero::get);
    let small = image.thumbnail(size, size).to_rgb8();
    let mut out = Vec::with_capacity(32 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
        .encode_image(&small)
        .map_err(|e| ImageError::Thumbnail(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use image::{GrayImage, ImageEncoder, Luma};

    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = GrayImage::from_pixel(width, height, Luma([200]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::L8)
            .expect("png");
        out
    }

    #[test]
    fn a_png_and_a_jpeg_decode_and_their_thumbnail_fits_the_size() {
        let img = decode(&png(800, 400), &ImageLimits::default()).expect("png decodes");
        assert_eq!((img.width(), img.height()), (800, 400));
        let thumb = thumbnail(&img, 320).expect("thumbnail");
        assert_eq!(PhotoFormat::sniff(&thumb), Some(PhotoFormat::Jpeg));
        let back = decode(&thumb, &ImageLimits::default()).expect("jpeg decodes");
        assert_eq!((back.width(), back.height()), (320, 160));
    }

    #[test]
    fn a_file_that_is_not_an_image_or_is_cut_short_is_refused_with_a_readable_reason() {
        let err = decode(b"GIF89a....", &ImageLimits::default()).expect_err("gif");
        assert!(
            err.to_string().starts_with("not a JPEG or PNG image"),
            "{err}"
        );
        let err = decode(b"", &ImageLimits::default()).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let whole = png(100, 100);
        let err = decode(&whole[..whole.len() / 2], &ImageLimits::default()).expect_err("cut");
        assert!(
            err.to_string().starts_with("not a decodable image: "),
            "{err}"
        );
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
        jpeg.extend_from_slice(b"garbage garbage garbage");
        let err = decode(&jpeg, &ImageLimits::default()).expect_err("garbage");
        assert!(
            err.to_string().starts_with("not a decodable image: "),
            "{err}"
        );
    }

    #[test]
    fn an_image_over_the_pixel_or_side_limit_is_refused_before_it_is_decoded() {
        let small = ImageLimits {
            max_pixels: 10_000,
            max_dimension: 1000,
            max_decode_bytes: 1 << 20,
        };
        let err = decode(&png(200, 100), &small).expect_err("too many pixels");
        assert!(
            matches!(err, ImageError::TooLarge { .. })
                && err.to_string().contains("PHOTO_MAX_PIXELS"),
            "{err}"
        );
        let err = decode(&png(1001, 1), &small).expect_err("too wide");
        assert!(err.to_string().contains("PHOTO_MAX_DIMENSION"), "{err}");
    }

    #[test]
    fn a_bomb_that_declares_a_huge_image_in_a_tiny_file_is_refused_without_decoding_it() {
        // A PNG header declaring 100,000 x 100,000 pixels (10 gigapixels), and
        // nothing else: decoding it would try to allocate 10 GB.
        let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
        bomb.extend_from_slice(&13u32.to_be_bytes());
        bomb.extend_from_slice(&ihdr);
        bomb.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        let err = decode(&bomb, &ImageLimits::default()).expect_err("bomb");
        assert!(
            err.to_string().contains("too large") || err.to_string().contains("PHOTO_MAX"),
            "{err}"
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn formats_are_recognised_by_their_bytes() {
        assert_eq!(PhotoFormat::sniff(&png(1, 1)), Some(PhotoFormat::Png));
        assert_eq!(
            PhotoFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xDB]),
            Some(PhotoFormat::Jpeg)
        );
        assert_eq!(PhotoFormat::sniff(b"<svg"), None);
    }
}
