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

use bib_detect::Detector;
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

/// What a photo's header says, read without decoding a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: PhotoFormat,
    pub width: u32,
    pub height: u32,
    /// Channels of the 8-bit image [`decode`] makes of it (1 grey, 2 grey and
    /// alpha, 3 RGB, 4 RGBA), whatever its bit depth.
    pub channels: u8,
}

impl Header {
    /// About the most memory processing this photo holds at once, in bytes: the
    /// file, the decoded 8-bit pixels, then either the copy an EXIF rotation
    /// makes or the detector's working memory (one after the other), and a
    /// thumbnail's worth of slack.
    pub fn working_bytes(&self, file_bytes: u64, detector: &Detector) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height) * u64::from(self.channels);
        let detect = detector.working_bytes(self.width, self.height, self.channels);
        file_bytes + pixels + pixels.max(detect) + THUMBNAIL_SLACK
    }
}

/// Room for the thumbnail's buffers (a 2048 px RGB image at most, twice) and the JPEG.
const THUMBNAIL_SLACK: u64 = 2 * 2048 * 2048 * 3 + (1 << 20);

/// [`Header::working_bytes`] of the largest photo `limits` let through: a
/// square RGBA image of `max_pixels` (a square costs the detector's resize the
/// most for its pixel count), no side over `max_dimension`, from a file of
/// `max_file_bytes`.
pub fn largest_working_bytes(limits: &ImageLimits, max_file_bytes: u64) -> u64 {
    let side = limits.max_pixels.isqrt();
    let side = u32::try_from(side)
        .unwrap_or(u32::MAX)
        .min(limits.max_dimension)
        .max(1);
    let other = u32::try_from(limits.max_pixels / u64::from(side))
        .unwrap_or(u32::MAX)
        .min(limits.max_dimension);
    Header {
        format: PhotoFormat::Png,
        width: side,
        height: other,
        channels: 4,
    }
    .working_bytes(max_file_bytes, &Detector::default())
}

/// Reads the header of a JPEG or PNG and checks its size against `limits`.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<Header, ImageError> {
    let (format, decoder) = open(bytes, limits)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    Ok(Header {
        format,
        width,
        height,
        channels: decoder.color_type().channel_count(),
    })
}

fn check_size(width: u32, height: u32, limits: &ImageLimits) -> Result<(), ImageError> {
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
    Ok(())
}

/// The decoder of `bytes`, given the limits, with its header read.
fn open<'a>(
    bytes: &'a [u8],
    limits: &ImageLimits,
) -> Result<(PhotoFormat, Box<dyn ImageDecoder + 'a>), ImageError> {
    let format = PhotoFormat::sniff(bytes).ok_or_else(|| {
        let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        ImageError::Unsupported(if head.is_empty() {
            "nothing: the file is empty".into()
        } else {
            head.join(" ")
        })
    })?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    decoder_limits.max_alloc = Some(limits.max_decode_bytes);
    reader.limits(decoder_limits);
    let decoder = reader.into_decoder().map_err(|e| corrupt(e, limits))?;
    Ok((format, Box::new(decoder)))
}

fn corrupt(e: image::ImageError, limits: &ImageLimits) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::Corrupt(format!(
            "{l} (PHOTO_MAX_DIMENSION {}, PHOTO_MAX_DECODE_BYTES {})",
            limits.max_dimension, limits.max_decode_bytes
        )),
        other => ImageError::Corrupt(other.to_string()),
    }
}

/// Decodes a JPEG or PNG within `limits` to 8 bits per channel, turned
/// upright by its EXIF orientation.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, ImageError> {
    let (format, mut decoder) = open(bytes, limits)?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    let orientation = decoder.orientation().map_err(|e| corrupt(e, limits))?;
    let mut image = match format {
        PhotoFormat::Jpeg => DynamicImage::from_decoder(decoder).map_err(|e| corrupt(e, limits))?,
        PhotoFormat::Png => {
            drop(decoder);
            decode_png(bytes, limits)?
        }
    };
    image.apply_orientation(orientation);
    Ok(image)
}

/// A PNG decoded straight to 8 bits per channel: each 16-bit row is stripped
/// as it is decoded, so the image never exists at 16 bits (`image` would keep
/// them: 8 bytes a pixel for RGBA, twice the memory for nothing OCR can use).
fn decode_png(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, ImageError> {
    let failed = |e: png::DecodingError| ImageError::Corrupt(e.to_string());
    let max_bytes = usize::try_from(limits.max_decode_bytes).unwrap_or(usize::MAX);
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: max_bytes });
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(failed)?;
    let size = reader
        .output_buffer_size()
        .filter(|&n| n <= max_bytes)
        .ok_or_else(|| {
            ImageError::Corrupt(format!(
                "the image needs more than PHOTO_MAX_DECODE_BYTES ({})",
                limits.max_decode_bytes
            ))
        })?;
    let mut pixels = vec![0; size];
    let frame = reader.next_frame(&mut pixels).map_err(failed)?;
    pixels.truncate(frame.buffer_size());
    let (w, h) = (frame.width, frame.height);
    let short = || ImageError::Corrupt("the decoded PNG is shorter than its header says".into());
    Ok(match frame.color_type {
        png::ColorType::Grayscale => {
            DynamicImage::ImageLuma8(image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        png::ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        png::ColorType::Rgb => {
            DynamicImage::ImageRgb8(image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        png::ColorType::Rgba => {
            DynamicImage::ImageRgba8(image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?)
        }
        png::ColorType::Indexed => {
            return Err(ImageError::Corrupt(
                "an indexed PNG was not expanded to colours".into(),
            ));
        }
    })
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
    fn a_16_bit_png_decodes_to_8_bits_per_channel() {
        let wide = image::ImageBuffer::from_fn(40, 30, |x, _| {
            image::Rgba([0xFFFF_u16, 0x8080, (x * 1000) as u16, 0xFFFF])
        });
        let mut png = Vec::new();
        DynamicImage::ImageRgba16(wide)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .expect("png");
        let header = probe(&png, &ImageLimits::default()).expect("header");
        assert_eq!((header.width, header.height, header.channels), (40, 30, 4));
        let image = decode(&png, &ImageLimits::default()).expect("decodes");
        assert_eq!(image.color(), image::ColorType::Rgba8);
        assert_eq!(
            image.as_rgba8().expect("rgba8").get_pixel(10, 5).0,
            [255, 128, 39, 255]
        );
    }

    #[test]
    fn the_working_memory_of_a_photo_is_known_from_its_header() {
        // The bomb: 7071 x 7071 RGBA, 200 MB of 8-bit pixels.
        let header = Header {
            format: PhotoFormat::Png,
            width: 7071,
            height: 7071,
            channels: 4,
        };
        let bytes = header.working_bytes(400_000, &Detector::default());
        let pixels = 7071 * 7071 * 4;
        assert!(bytes > 2 * pixels, "{bytes}");
        assert!(bytes < 4 * pixels, "{bytes}");
        assert_eq!(
            largest_working_bytes(
                &ImageLimits {
                    max_pixels: 7071 * 7071,
                    ..ImageLimits::default()
                },
                400_000
            ),
            bytes
        );
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
