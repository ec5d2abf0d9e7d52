//! QR code rendering: a content string to PNG or SVG bytes.
//!
//! The modules come from `qrcode`; the raster and the vector output are drawn here
//! rather than by `qrcode`'s renderers, so that the margin is exactly the configured
//! number of modules and each module is a whole number of pixels (a sharp image
//! that scanners and `rqrr` read reliably). The image is the smallest multiple of
//! the module count that is at least `size` pixels wide.

use std::fmt::Write as _;
use std::str::FromStr;

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use qrcode::{Color, EcLevel, QrCode};

/// How much of the code may be damaged and still read: about 7, 15, 25 or 30 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EccLevel {
    L,
    #[default]
    M,
    Q,
    H,
}

impl EccLevel {
    fn to_qrcode(self) -> EcLevel {
        match self {
            EccLevel::L => EcLevel::L,
            EccLevel::M => EcLevel::M,
            EccLevel::Q => EcLevel::Q,
            EccLevel::H => EcLevel::H,
        }
    }
}

impl FromStr for EccLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "L" => Ok(EccLevel::L),
            "M" => Ok(EccLevel::M),
            "Q" => Ok(EccLevel::Q),
            "H" => Ok(EccLevel::H),
            _ => Err("must be one of L, M, Q, H".into()),
        }
    }
}

impl std::fmt::Display for EccLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EccLevel::L => "L",
            EccLevel::M => "M",
            EccLevel::Q => "Q",
            EccLevel::H => "H",
        })
    }
}

/// How a QR code is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Minimum width and height in pixels (the PNG is at least this big; the SVG
    /// declares exactly this size).
    pub size: u32,
    /// Quiet zone around the code, in modules (the QR standard asks for 4).
    pub margin: u32,
    pub ecc: EccLevel,
}

impl RenderOptions {
    /// Smallest accepted `size`: one pixel per module of the smallest code.
    pub const MIN_SIZE: u32 = 21;
    /// Largest accepted `size`: bounds the memory of one rendering (16 MiB at 4096).
    pub const MAX_SIZE: u32 = 4096;
    pub const MAX_MARGIN: u32 = 64;

    /// Checks the ranges; the error names the rule.
    pub fn validate(&self) -> Result<(), String> {
        Self::check_size(self.size)?;
        Self::check_margin(self.margin)
    }

    /// The rule of `size`, on its own so a config error can name its variable.
    pub fn check_size(size: u32) -> Result<(), String> {
        if !(Self::MIN_SIZE..=Self::MAX_SIZE).contains(&size) {
            return Err(format!(
                "size must be between {} and {} pixels, got {size}",
                Self::MIN_SIZE,
                Self::MAX_SIZE,
            ));
        }
        Ok(())
    }

    /// The rule of `margin`.
    pub fn check_margin(margin: u32) -> Result<(), String> {
        if margin > Self::MAX_MARGIN {
            return Err(format!(
                "margin must be at most {} modules, got {margin}",
                Self::MAX_MARGIN,
            ));
        }
        Ok(())
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            size: 512,
            margin: 4,
            ecc: EccLevel::M,
        }
    }
}

/// The file format, decided by the storage path's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// `.png` or `.svg` (any case); anything else is refused.
    pub fn from_path(path: &str) -> Result<Self, RenderError> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(RenderError::UnsupportedFormat(path.to_owned())),
        }
    }
}

/// Why a QR code could not be rendered. None of these is fixed by retrying.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Neither the error message nor the logs carry the content (it may be personal).
    #[error("the content ({bytes} bytes) does not fit in a QR code at error correction {ecc}")]
    TooLong { bytes: usize, ecc: EccLevel },
    #[error("cannot encode the QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("unsupported QR file type for {0:?}: the path must end in .png or .svg")]
    UnsupportedFormat(String),
    #[error("PNG encoding: {0}")]
    Png(#[from] image::ImageError),
}

/// Renders `content` in `format`.
pub fn render(
    content: &str,
    format: Format,
    options: &RenderOptions,
) -> Result<Vec<u8>, RenderError> {
    match format {
        Format::Png => png(content, options),
        Format::Svg => svg(content, options),
    }
}

/// The modules of `content`, row by row (`true` = dark), and the side in modules.
fn modules(content: &str, ecc: EccLevel) -> Result<(Vec<bool>, usize), RenderError> {
    let code =
        QrCode::with_error_correction_level(content.as_bytes(), ecc.to_qrcode()).map_err(|e| {
            match e {
                qrcode::types::QrError::DataTooLong => RenderError::TooLong {
                    bytes: content.len(),
                    ecc,
                },
                other => RenderError::Encode(other),
            }
        })?;
    let width = code.width();
    let dark = code
        .into_colors()
        .into_iter()
        .map(|c| c == Color::Dark)
        .collect();
    Ok((dark, width))
}

/// Pixels per module so that the image is at least `size` wide.
fn scale(options: &RenderOptions, total_modules: u32) -> u32 {
    options.size.div_ceil(total_modules).max(1)
}

/// An 8-bit grayscale PNG, black on white.
pub fn png(content: &str, options: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let (dark, width) = modules(content, options.ecc)?;
    let margin = options.margin as usize;
    let total = width + 2 * margin;
    let scale = scale(options, total as u32) as usize;
    let side = total * scale;

    let mut pixels = vec![255u8; side * side];
    let mut row = vec![255u8; side];
    for (y, modules) in dark.chunks_exact(width).enumerate() {
        row.fill(255);
        for (x, _) in modules.iter().enumerate().filter(|(_, d)| **d) {
            let start = (margin + x) * scale;
            row[start..start + scale].fill(0);
        }
        // A module row is `scale` identical pixel rows.
        let top = (margin + y) * scale * side;
        for line in pixels[top..top + scale * side].chunks_exact_mut(side) {
            line.copy_from_slice(&row);
        }
    }

    let mut out = Vec::with_capacity(4096);
    // `Up` turns every repeated pixel row into zeros, which deflate shrinks to nothing.
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Up).write_image(
        &pixels,
        side as u32,
        side as u32,
        image::ExtendedColorType::L8,
    )?;
    Ok(out)
}

/// A standalone SVG, `size` pixels wide, one path of horizontal runs of dark modules.
pub fn svg(content: &str, options: &RenderOptions) -> Result<Vec<u8>, RenderError> {
    let (dark, width) = modules(content, options.ecc)?;
    let margin = options.margin as usize;
    let total = width + 2 * margin;
    let mut out = String::with_capacity(256 + dark.len() * 4);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{size}" height="{size}" viewBox="0 0 {total} {total}" shape-rendering="crispEdges"><rect width="{total}" height="{total}" fill="#fff"/><path fill="#000" d=""##,
        size = options.size,
    );
    for (y, modules) in dark.chunks_exact(width).enumerate() {
        let mut x = 0;
        while x < width {
            if !modules[x] {
                x += 1;
                continue;
            }
            let run = modules[x..].iter().take_while(|d| **d).count();
            let _ = write!(out, "M{},{}h{run}v1h-{run}z", margin + x, margin + y);
            x += run;
        }
    }
    out.push_str("\"/></svg>\n");
    Ok(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "PERSON:V-12345678";

    /// Decodes a PNG with `rqrr`: (content, rqrr's raw ECC bits, width in pixels).
    fn decode_png(bytes: &[u8]) -> (String, u16, u32) {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
            .expect("a valid PNG")
            .to_luma8();
        let width = img.width();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "exactly one QR code in the image");
        let (meta, content) = grids[0].decode().expect("the QR code decodes");
        (content, meta.ecc_level, width)
    }

    /// Modules per side of the code of `content` at `ecc`, margin excluded.
    fn code_width(content: &str, ecc: EccLevel) -> u32 {
        modules(content, ecc).expect("encodes").1 as u32
    }

    fn luma(bytes: &[u8]) -> image::GrayImage {
        image::load_from_memory(bytes).expect("PNG").to_luma8()
    }

    #[test]
    fn a_png_decodes_back_to_exactly_the_content() {
        for content in [
            CONTENT,
            "",
            "Ñandú ü 東京 https://example.com/p?id=1&x=2",
            &"x".repeat(500),
        ] {
            let png = png(content, &RenderOptions::default()).expect("renders");
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
            let (decoded, _, _) = decode_png(&png);
            assert_eq!(decoded, content);
        }
    }

    #[test]
    fn the_image_is_at_least_the_configured_size_and_a_multiple_of_the_modules() {
        let total = code_width(CONTENT, EccLevel::M) + 2 * 4;
        for size in [21, 100, 512, 1000] {
            let options = RenderOptions {
                size,
                ..RenderOptions::default()
            };
            let img = luma(&png(CONTENT, &options).expect("renders"));
            assert_eq!(img.width(), img.height());
            assert!(img.width() >= size, "{} < {size}", img.width());
            assert_eq!(img.width() % total, 0, "{}", img.width());
            assert!(
                img.width() < size + total,
                "at most one pixel per module too big"
            );
        }
    }

    #[test]
    fn the_margin_is_that_many_white_modules_around_the_code() {
        for margin in [0, 1, 4, 10] {
            let options = RenderOptions {
                margin,
                ..RenderOptions::default()
            };
            let img = luma(&png(CONTENT, &options).expect("renders"));
            let scale = img.width() / (code_width(CONTENT, EccLevel::M) + 2 * margin);
            let quiet = margin * scale;
            // The top-left finder pattern starts with a dark module right after the margin.
            let first_dark = (0..img.width())
                .find(|&x| img.get_pixel(x, quiet).0[0] == 0)
                .expect("a dark pixel on the first code row");
            assert_eq!(first_dark, quiet, "margin {margin}");
            assert!((0..quiet).all(|y| (0..img.width()).all(|x| img.get_pixel(x, y).0[0] == 255)));
            if margin >= 1 {
                let (decoded, _, _) = decode_png(&png(CONTENT, &options).expect("renders"));
                assert_eq!(decoded, CONTENT);
            }
        }
    }

    #[test]
    fn the_error_correction_level_changes_the_code() {
        // rqrr reports the raw format bits: L = 1, M = 0, Q = 3, H = 2.
        let mut seen = Vec::new();
        for (ecc, bits) in [
            (EccLevel::L, 1),
            (EccLevel::M, 0),
            (EccLevel::Q, 3),
            (EccLevel::H, 2),
        ] {
            let options = RenderOptions {
                ecc,
                ..RenderOptions::default()
            };
            let bytes = png(CONTENT, &options).expect("renders");
            let (decoded, level, _) = decode_png(&bytes);
            assert_eq!((decoded.as_str(), level), (CONTENT, bits), "{ecc}");
            assert!(!seen.contains(&bytes), "{ecc} renders like another level");
            seen.push(bytes);
        }
    }

    /// Reads the SVG path back into modules and decodes them with `rqrr`.
    fn decode_svg(svg: &str, margin: usize) -> String {
        let view = svg.split("viewBox=\"0 0 ").nth(1).expect("viewBox");
        let total: usize = view
            .split(' ')
            .next()
            .expect("width")
            .parse()
            .expect("number");
        let side = total - 2 * margin;
        let d = svg
            .split(" d=\"")
            .nth(1)
            .expect("path")
            .split('"')
            .next()
            .expect("path end");
        let mut dark = vec![false; side * side];
        for run in d.split('M').filter(|r| !r.is_empty()) {
            let (xy, rest) = run.split_once('h').expect("h");
            let (x, y) = xy.split_once(',').expect("x,y");
            let (x, y): (usize, usize) = (x.parse().expect("x"), y.parse().expect("y"));
            let len: usize = rest.split('v').next().expect("len").parse().expect("len");
            for dx in 0..len {
                dark[(y - margin) * side + x - margin + dx] = true;
            }
        }
        let grid = rqrr::SimpleGrid::from_func(side, |x, y| dark[y * side + x]);
        rqrr::Grid::new(grid)
            .decode()
            .expect("the SVG modules decode")
            .1
    }

    #[test]
    fn an_svg_has_the_configured_size_and_its_modules_decode_to_the_content() {
        let options = RenderOptions {
            size: 300,
            margin: 2,
            ..RenderOptions::default()
        };
        let svg = String::from_utf8(svg(CONTENT, &options).expect("renders")).expect("utf8");
        assert!(svg.starts_with("<?xml"), "{svg}");
        let total = code_width(CONTENT, EccLevel::M) + 2 * 2;
        let header = format!(r#"width="300" height="300" viewBox="0 0 {total} {total}""#);
        assert!(svg.contains(&header), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(decode_svg(&svg, 2), CONTENT);
    }

    #[test]
    fn the_format_follows_the_extension() {
        assert_eq!(Format::from_path("qr/V-1.png").expect("png"), Format::Png);
        assert_eq!(Format::from_path("qr/V-1.SVG").expect("svg"), Format::Svg);
        for bad in ["qr/V-1.jpg", "qr/V-1", "qr.png/V-1"] {
            let err = Format::from_path(bad).expect_err(bad);
            assert!(err.to_string().contains(".png or .svg"), "{err}");
        }
    }

    #[test]
    fn content_too_long_is_an_error_that_does_not_contain_the_content() {
        let content = "V-12345678 ".repeat(400);
        let err = png(&content, &RenderOptions::default()).expect_err("too long");
        assert!(matches!(err, RenderError::TooLong { .. }), "{err}");
        assert!(!err.to_string().contains("V-1234"), "{err}");
    }

    #[test]
    fn options_out_of_range_are_refused_and_levels_parse() {
        let small = RenderOptions {
            size: 20,
            ..RenderOptions::default()
        };
        assert!(small.validate().expect_err("too small").contains("size"));
        let wide = RenderOptions {
            margin: 65,
            ..RenderOptions::default()
        };
        assert!(wide.validate().expect_err("too wide").contains("margin"));
        assert!(RenderOptions::default().validate().is_ok());
        assert_eq!("h".parse::<EccLevel>(), Ok(EccLevel::H));
        assert!("X".parse::<EccLevel>().is_err());
    }
}
