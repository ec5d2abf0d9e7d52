//! A generator of photo-like race scenes with labelled bib numbers.
//!
//! Every scene is drawn from its own seed (`seed`, `index`), so one image can be
//! regenerated alone and a set is the same on every run and machine (ChaCha8 is
//! specified bit for bit; floats only go through `+ - * /`, `sqrt`, `sin`/`cos`).
//! Bibs are drawn upright on their own canvas and then warped onto the runner by a
//! homography (rotation plus perspective), so the label's box is the warped box of
//! the digits' ink. Distractors are the things a bib detector confuses with bibs in
//! real photos: signs and banners with numbers, clocks, car plates, words and
//! numbers printed straight on shirts.

use std::path::{Path, PathBuf};

use ab_glyph::{Font as _, FontVec, PxScale, ScaleFont as _};
use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::eval::{Label, TruthBib};

/// What can stop the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read font directory {path}: {source}")]
    FontDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no usable {0} fonts under /usr/share/fonts (install the fonts in scripts/lib.sh ensure_ocr)"
    )]
    NoFonts(&'static str),
}

/// Which fonts the generator draws with. Families are split so that the detector
/// can be tuned on one half and measured on fonts it never saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FontChoice {
    /// DejaVu, Liberation, FreeFont, Croscore (Arimo, Tinos, Cousine).
    Tuning,
    /// Roboto, Open Sans, Lato, Cantarell.
    HeldOut,
    All,
    /// For the `race` style, which draws bibs in serif, monospace and condensed
    /// faces too: DejaVu, Liberation and FreeFont (each with a serif, a monospace
    /// and a sans; DejaVu also condensed).
    WideTuning,
    /// Held out from `WideTuning`: Croscore (Arimo, Tinos serif, Cousine monospace),
    /// Roboto (with Roboto Condensed), Open Sans (with its condensed bold), Lato,
    /// Cantarell.
    WideHeldOut,
}

impl FontChoice {
    /// Parses `tuning`, `held-out`, `all`, `wide-tuning` or `wide-held-out`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "tuning" => Some(Self::Tuning),
            "held-out" => Some(Self::HeldOut),
            "all" => Some(Self::All),
            "wide-tuning" => Some(Self::WideTuning),
            "wide-held-out" => Some(Self::WideHeldOut),
            _ => None,
        }
    }

    fn admits(self, path: &Path) -> bool {
        const HELD_OUT: [&str; 4] = ["roboto", "open-sans", "lato", "cantarell"];
        let text = path.to_string_lossy().to_ascii_lowercase();
        let held_out = HELD_OUT.iter().any(|family| text.contains(family));
        let wide_held_out = held_out || text.contains("croscore");
        match self {
            Self::Tuning => !held_out,
            Self::HeldOut => held_out,
            Self::All => true,
            Self::WideTuning => !wide_held_out,
            Self::WideHeldOut => wide_held_out,
        }
    }
}

/// Scene variations the detector was not designed around, to test how it generalises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Standard,
    /// Digits drawn in two colours (top and bottom halves), as some races print them.
    TwoTone,
    /// Half the resolution: bibs of 7 to 40 px digit height.
    LowRes,
    /// Bibs printed on vivid paper (saturated yellow, orange, light green, sky blue).
    Vivid,
    /// A race scene as another generator might draw it: 2 to 4 runners side by
    /// side in a larger photo, bib cards 120 to 260 px wide, half of them coloured
    /// (orange, red, green, blue, yellow, pink), digits in any upright face of the
    /// font set (regular and bold; serif, monospace and condensed where the set
    /// has them), stronger lighting gradients, and more numbered jerseys.
    Race,
}

impl Style {
    /// Parses `standard`, `two-tone`, `low-res`, `vivid` or `race`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "standard" => Some(Self::Standard),
            "two-tone" => Some(Self::TwoTone),
            "low-res" => Some(Self::LowRes),
            "vivid" => Some(Self::Vivid),
            "race" => Some(Self::Race),
            _ => None,
        }
    }
}

struct NamedFont {
    font: FontVec,
}

/// Whether a font file (its lowercase name) is a face numbers and signs are
/// set in: symbol and maths faces lack ordinary digits, and light, thin and
/// hairline weights are not printed on bibs or signs (Lato Hairline's strokes
/// are a pixel or two wide on a bib in a photo).
fn is_text_face(name: &str) -> bool {
    !["math", "light", "thin", "hairline"]
        .iter()
        .any(|w| name.contains(w))
}

/// The fonts of one [`FontChoice`]: bold faces for bib numbers, upright faces of
/// any weight for the `race` style's numbers, any face for other text.
pub struct FontSet {
    bold: Vec<NamedFont>,
    upright: Vec<NamedFont>,
    any: Vec<NamedFont>,
}

impl std::fmt::Debug for FontSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontSet")
            .field("bold", &self.bold.len())
            .field("any", &self.any.len())
            .finish()
    }
}

impl FontSet {
    /// Loads the TTF/OTF files under `/usr/share/fonts` that `choice` admits, in path order.
    pub fn load(choice: FontChoice) -> Result<Self, GenerateError> {
        let mut paths = Vec::new();
        collect_fonts(Path::new("/usr/share/fonts"), &mut paths)?;
        paths.sort();
        let mut bold = Vec::new();
        let mut upright_faces = Vec::new();
        let mut any = Vec::new();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if !choice.admits(&path) || !is_text_face(&name) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(font) = FontVec::try_from_vec(bytes.clone()) else {
                continue;
            };
            let upright = !name.contains("italic") && !name.contains("oblique");
            let heavy = ["bold", "black", "heavy", "semibold"]
                .iter()
                .any(|w| name.contains(w));
            if upright
                && !name.contains("medium")
                && let Ok(copy) = FontVec::try_from_vec(bytes.clone())
            {
                upright_faces.push(NamedFont { font: copy });
            }
            if heavy
                && upright
                && let Ok(copy) = FontVec::try_from_vec(bytes)
            {
                bold.push(NamedFont { font: copy });
            }
            any.push(NamedFont { font });
        }
        if bold.is_empty() || any.is_empty() {
            return Err(GenerateError::NoFonts(match choice {
                FontChoice::Tuning => "tuning",
                FontChoice::HeldOut => "held-out",
                FontChoice::All => "any",
                FontChoice::WideTuning => "wide-tuning",
                FontChoice::WideHeldOut => "wide-held-out",
            }));
        }
        Ok(Self {
            bold,
            upright: upright_faces,
            any,
        })
    }
}

fn collect_fonts(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), GenerateError> {
    let entries = std::fs::read_dir(dir).map_err(|source| GenerateError::FontDir {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_fonts(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// One generated photo and its ground truth.
#[derive(Debug)]
pub struct Scene {
    pub image: RgbImage,
    pub bibs: Vec<TruthBib>,
}

impl Scene {
    /// The label line of this scene for a file name.
    pub fn label(&self, file: &str) -> Label {
        Label {
            file: file.to_owned(),
            bibs: self.bibs.clone(),
        }
    }
}

/// Draws scene `index` of the set with `seed`.
pub fn scene(seed: u64, index: u32, fonts: &FontSet, style: Style) -> Scene {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(index.into()));
    let sizes = if style == Style::Race {
        [(1500, 1000), (1600, 1067), (1440, 1080), (1620, 1080)]
    } else {
        [(960, 640), (1024, 683), (900, 675), (1080, 720)]
    };
    let (w, h) = sizes[rng.random_range(0..sizes.len())];
    let mut canvas = Canvas::new(w, h);
    background(&mut canvas, &mut rng);

    let distractors = rng.random_range(1..=3);
    for _ in 0..distractors {
        distractor(&mut canvas, &mut rng, fonts);
    }

    // Sometimes, behind the runners, a spectator in a numbered jersey without a bib.
    if rng.random_bool(if style == Style::Race { 0.6 } else { 0.35 }) {
        let cx = rng.random_range(0.1..0.9) * w as f32;
        jersey(&mut canvas, &mut rng, fonts, cx);
    }

    // Runners from back to front: smaller (farther) first, so nearer ones may overlap them.
    let runners = if style == Style::Race {
        rng.random_range(2..=4)
    } else {
        rng.random_range(1..=5)
    };
    let near = if style == Style::Race { 0.45 } else { 0.25 };
    let mut scales: Vec<f32> = (0..runners).map(|_| rng.random_range(near..1.0)).collect();
    scales.sort_by(f32::total_cmp);
    let mut bibs = Vec::new();
    let slot = w as f32 / runners as f32;
    for (i, scale) in scales.iter().enumerate() {
        let cx = slot * (i as f32 + rng.random_range(0.45..0.55));
        if let Some(bib) = runner(&mut canvas, &mut rng, fonts, style, cx, *scale, slot * 0.7) {
            bibs.push(bib);
        }
    }
    lighting(&mut canvas, &mut rng, style);
    let sigma = rng.random_range(0.0..1.3f32);
    canvas.blur(sigma);
    let noise = rng.random_range(1.0..7.0f32);
    canvas.noise(&mut rng, noise);

    let mut image = canvas.into_image();
    if style == Style::LowRes {
        image =
            image::imageops::resize(&image, w / 2, h / 2, image::imageops::FilterType::Triangle);
        for bib in &mut bibs {
            bib.bbox = bib.bbox.map(|v| v / 2);
        }
    }
    Scene { image, bibs }
}

/// A float RGB canvas; blending in floats keeps anti-aliased edges smooth.
struct Canvas {
    w: u32,
    h: u32,
    px: Vec<[f32; 3]>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self {
            w,
            h,
            px: vec![[0.0; 3]; (w * h) as usize],
        }
    }

    fn blend(&mut self, x: i64, y: i64, colour: [f32; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.w) || y >= i64::from(self.h) || alpha <= 0.0 {
            return;
        }
        let p = &mut self.px[(y as u32 * self.w + x as u32) as usize];
        let a = alpha.min(1.0);
        for c in 0..3 {
            p[c] = p[c] * (1.0 - a) + colour[c] * a;
        }
    }

    fn fill_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, colour: [f32; 3]) {
        let (x0, x1) = ((cx - rx).floor() as i64, (cx + rx).ceil() as i64);
        let (y0, y1) = ((cy - ry).floor() as i64, (cy + ry).ceil() as i64);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let dx = (x as f32 + 0.5 - cx) / rx;
                let dy = (y as f32 + 0.5 - cy) / ry;
                let d = (dx * dx + dy * dy).sqrt();
                // One pixel of soft edge.
                let a = ((1.0 - d) * rx.min(ry)).clamp(0.0, 1.0);
                self.blend(x, y, colour, a);
            }
        }
    }

    /// Fills a convex quad (corners in order) with `colour(u, v)`, u and v in 0..1 across it.
    fn fill_quad(&mut self, quad: [[f32; 2]; 4], colour: impl Fn(f32, f32) -> [f32; 4]) {
        let (sw, sh) = (1000.0, 1000.0);
        let src = [[0.0, 0.0], [sw, 0.0], [sw, sh], [0.0, sh]];
        let Some(inverse) = Homography::between(quad, src) else {
            return;
        };
        let (x0, y0, x1, y1) = quad_bounds(&quad);
        for y in y0.max(0)..=y1.min(i64::from(self.h) - 1) {
            for x in x0.max(0)..=x1.min(i64::from(self.w) - 1) {
                let [u, v] = inverse.apply([x as f32 + 0.5, y as f32 + 0.5]);
                let (u, v) = (u / sw, v / sh);
                if (0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v) {
                    let [r, g, b, a] = colour(u, v);
                    self.blend(x, y, [r, g, b], a);
                }
            }
        }
    }

    /// Draws an RGBA layer through the homography mapping layer coordinates to the canvas.
    fn draw_layer(&mut self, layer: &Layer, quad: [[f32; 2]; 4]) {
        let (lw, lh) = (layer.w as f32, layer.h as f32);
        let src = [[0.0, 0.0], [lw, 0.0], [lw, lh], [0.0, lh]];
        let Some(inverse) = Homography::between(quad, src) else {
            return;
        };
        let (x0, y0, x1, y1) = quad_bounds(&quad);
        for y in y0.max(0)..=y1.min(i64::from(self.h) - 1) {
            for x in x0.max(0)..=x1.min(i64::from(self.w) - 1) {
                // Four samples per pixel: digits shrunk by the warp stay anti-aliased.
                let mut acc = [0.0f32; 4];
                for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                    let [u, v] = inverse.apply([x as f32 + ox, y as f32 + oy]);
                    let s = layer.sample(u, v);
                    for c in 0..3 {
                        acc[c] += s[c] * s[3];
                    }
                    acc[3] += s[3];
                }
                if acc[3] > 0.0 {
                    let colour = [acc[0] / acc[3], acc[1] / acc[3], acc[2] / acc[3]];
                    self.blend(x, y, colour, acc[3] / 4.0);
                }
            }
        }
    }

    fn blur(&mut self, sigma: f32) {
        if sigma < 0.3 {
            return;
        }
        let radius = (sigma * 2.5).ceil() as i64;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
            .collect();
        let total: f32 = kernel.iter().sum();
        let (w, h) = (i64::from(self.w), i64::from(self.h));
        for pass in 0..2 {
            let src = self.px.clone();
            for y in 0..h {
                for x in 0..w {
                    let mut acc = [0.0f32; 3];
                    for (k, weight) in kernel.iter().enumerate() {
                        let d = k as i64 - radius;
                        let (sx, sy) = if pass == 0 {
                            ((x + d).clamp(0, w - 1), y)
                        } else {
                            (x, (y + d).clamp(0, h - 1))
                        };
                        let s = src[(sy * w + sx) as usize];
                        for c in 0..3 {
                            acc[c] += s[c] * weight;
                        }
                    }
                    self.px[(y * w + x) as usize] = acc.map(|v| v / total);
                }
            }
        }
    }

    fn noise(&mut self, rng: &mut ChaCha8Rng, amount: f32) {
        for p in &mut self.px {
            // Sum of uniforms: close enough to Gaussian, and portable.
            let n: f32 = (0..3).map(|_| rng.random_range(-1.0..1.0f32)).sum::<f32>() * amount;
            let chroma = rng.random_range(-0.3..0.3f32) * amount;
            p[0] += n + chroma;
            p[1] += n;
            p[2] += n - chroma;
        }
    }

    fn into_image(self) -> RgbImage {
        let mut image = RgbImage::new(self.w, self.h);
        for (p, out) in self.px.iter().zip(image.pixels_mut()) {
            *out = Rgb(p.map(|v| v.clamp(0.0, 255.0) as u8));
        }
        image
    }
}

fn quad_bounds(quad: &[[f32; 2]; 4]) -> (i64, i64, i64, i64) {
    let xs = quad.iter().map(|p| p[0]);
    let ys = quad.iter().map(|p| p[1]);
    (
        xs.clone().fold(f32::MAX, f32::min).floor() as i64,
        ys.clone().fold(f32::MAX, f32::min).floor() as i64,
        xs.fold(f32::MIN, f32::max).ceil() as i64,
        ys.fold(f32::MIN, f32::max).ceil() as i64,
    )
}

/// A projective map of the plane.
#[derive(Debug, Clone, Copy)]
struct Homography([f32; 9]);

impl Homography {
    /// The map taking each `from` corner to the matching `to` corner.
    fn between(from: [[f32; 2]; 4], to: [[f32; 2]; 4]) -> Option<Self> {
        // Eight equations in eight unknowns (h33 = 1), solved by Gaussian elimination in f64.
        let mut a = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = (f64::from(from[i][0]), f64::from(from[i][1]));
            let (u, v) = (f64::from(to[i][0]), f64::from(to[i][1]));
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        for col in 0..8 {
            let pivot = (col..8).max_by(|&r, &s| a[r][col].abs().total_cmp(&a[s][col].abs()))?;
            if a[pivot][col].abs() < 1e-12 {
                return None;
            }
            a.swap(col, pivot);
            for row in 0..8 {
                if row != col {
                    let pivot_row = a[col];
                    let f = a[row][col] / pivot_row[col];
                    for (v, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
        let mut h = [1.0f32; 9];
        for i in 0..8 {
            h[i] = (a[i][8] / a[i][i]) as f32;
        }
        Some(Self(h))
    }

    fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        let h = &self.0;
        let d = h[6] * p[0] + h[7] * p[1] + h[8];
        [
            (h[0] * p[0] + h[1] * p[1] + h[2]) / d,
            (h[3] * p[0] + h[4] * p[1] + h[5]) / d,
        ]
    }
}

/// An upright RGBA drawing (a bib, a sign) before it is warped into the scene.
struct Layer {
    w: u32,
    h: u32,
    px: Vec<[f32; 4]>,
}

impl Layer {
    fn new(w: u32, h: u32, fill: [f32; 3]) -> Self {
        Self {
            w,
            h,
            px: vec![[fill[0], fill[1], fill[2], 1.0]; (w * h) as usize],
        }
    }

    fn sample(&self, u: f32, v: f32) -> [f32; 4] {
        if u < 0.0 || v < 0.0 || u >= self.w as f32 || v >= self.h as f32 {
            return [0.0; 4];
        }
        let (x, y) = ((u - 0.5).max(0.0), (v - 0.5).max(0.0));
        let (x0, y0) = (x as u32, y as u32);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |x: u32, y: u32| self.px[(y * self.w + x) as usize];
        let (a, b, c, d) = (at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1));
        let mut out = [0.0; 4];
        for k in 0..4 {
            out[k] =
                (a[k] * (1.0 - fx) + b[k] * fx) * (1.0 - fy) + (c[k] * (1.0 - fx) + d[k] * fx) * fy;
        }
        out
    }

    fn fill_rect(&mut self, x0: u32, y0: u32, x1: u32, y1: u32, colour: [f32; 3]) {
        for y in y0..y1.min(self.h) {
            for x in x0..x1.min(self.w) {
                self.px[(y * self.w + x) as usize] = [colour[0], colour[1], colour[2], 1.0];
            }
        }
    }

    /// Draws a text mask at (x, y) with a colour per row (for two-tone digits).
    fn draw_mask(&mut self, mask: &Mask, x: i64, y: i64, colour: impl Fn(f32) -> [f32; 3]) {
        for my in 0..mask.h {
            let c = colour(my as f32 / mask.h as f32);
            for mx in 0..mask.w {
                let a = mask.cov[(my * mask.w + mx) as usize];
                let (lx, ly) = (x + i64::from(mx), y + i64::from(my));
                if a <= 0.0
                    || lx < 0
                    || ly < 0
                    || lx >= i64::from(self.w)
                    || ly >= i64::from(self.h)
                {
                    continue;
                }
                let p = &mut self.px[(ly as u32 * self.w + lx as u32) as usize];
                for k in 0..3 {
                    p[k] = p[k] * (1.0 - a) + c[k] * a;
                }
            }
        }
    }
}

/// Coverage of rendered text, cropped to its ink.
struct Mask {
    w: u32,
    h: u32,
    cov: Vec<f32>,
}

/// Renders `text` with glyph height `px` (the font's em size scaled so that digits are
/// about `px` tall) and crops the result to its ink.
fn render(font: &FontVec, text: &str, px: f32, tracking: f32) -> Mask {
    // Digits are about 0.72 em in most faces: measure this face's "0" to hit `px` exactly.
    let probe = font.as_scaled(PxScale::from(100.0));
    let zero_height = font
        .outline_glyph(probe.scaled_glyph('0'))
        .map(|g| g.px_bounds().height())
        .filter(|h| *h > 1.0)
        .unwrap_or(72.0);
    let scale = PxScale::from(px * 100.0 / zero_height);
    let scaled = font.as_scaled(scale);
    let mut glyphs = Vec::new();
    let mut caret = 0.0f32;
    let mut previous = None;
    for ch in text.chars() {
        let id = scaled.glyph_id(ch);
        if let Some(prev) = previous {
            caret += scaled.kern(prev, id);
        }
        glyphs.push(id.with_scale_and_position(scale, ab_glyph::point(caret, scaled.ascent())));
        caret += scaled.h_advance(id) + tracking * px;
        previous = Some(id);
    }
    let w = (caret + px).ceil().max(1.0) as u32 + 4;
    let h = (scaled.height() + px * 0.2).ceil().max(1.0) as u32 + 4;
    let mut cov = vec![0.0f32; (w * h) as usize];
    for glyph in glyphs {
        if let Some(outline) = font.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|x, y, c| {
                let (gx, gy) = (
                    b.min.x as i64 + i64::from(x) + 2,
                    b.min.y as i64 + i64::from(y) + 2,
                );
                if gx >= 0 && gy >= 0 && gx < i64::from(w) && gy < i64::from(h) {
                    let p = &mut cov[(gy as u32 * w + gx as u32) as usize];
                    *p = (*p + c).min(1.0);
                }
            });
        }
    }
    // Crop to ink.
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if cov[(y * w + x) as usize] > 0.05 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x1 <= x0 || y1 <= y0 {
        return Mask {
            w: 1,
            h: 1,
            cov: vec![0.0],
        };
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    let mut cropped = vec![0.0; (cw * ch) as usize];
    for y in 0..ch {
        for x in 0..cw {
            cropped[(y * cw + x) as usize] = cov[((y + y0) * w + x + x0) as usize];
        }
    }
    Mask {
        w: cw,
        h: ch,
        cov: cropped,
    }
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn jitter(rng: &mut ChaCha8Rng, base: [f32; 3], amount: f32) -> [f32; 3] {
    base.map(|c| (c + rng.random_range(-amount..amount)).clamp(0.0, 255.0))
}

fn jitter_pick(rng: &mut ChaCha8Rng, items: &[[f32; 3]], amount: f32) -> [f32; 3] {
    let base = *pick(rng, items);
    jitter(rng, base, amount)
}

/// Uniform in -amount..amount (zero when amount is zero).
fn spread(rng: &mut ChaCha8Rng, amount: f32) -> f32 {
    if amount > 0.0 {
        rng.random_range(-amount..amount)
    } else {
        0.0
    }
}

fn rotate(p: [f32; 2], angle: f32) -> [f32; 2] {
    let (s, c) = angle.sin_cos();
    [p[0] * c - p[1] * s, p[0] * s + p[1] * c]
}

/// Corners of a w x h rectangle centred at (cx, cy), rotated and with each corner moved
/// by up to `skew` of its height (perspective).
fn placed_quad(
    rng: &mut ChaCha8Rng,
    cx: f32,
    cy: f32,
    w: f32,
    h: f32,
    angle: f32,
    skew: f32,
) -> [[f32; 2]; 4] {
    let corners = [
        [-w / 2.0, -h / 2.0],
        [w / 2.0, -h / 2.0],
        [w / 2.0, h / 2.0],
        [-w / 2.0, h / 2.0],
    ];
    // A sideways view narrows one side: move that side's corners towards each other.
    let narrow = spread(rng, skew);
    corners.map(|[x, y]| {
        let side = if x < 0.0 { -narrow } else { narrow };
        let y = y * (1.0 + side);
        let jx = spread(rng, skew) * h * 0.3;
        let jy = spread(rng, skew) * h * 0.3;
        let [rx, ry] = rotate([x + jx, y + jy], angle);
        [cx + rx, cy + ry]
    })
}

const SKY: [[f32; 3]; 4] = [
    [150.0, 190.0, 235.0],
    [200.0, 210.0, 220.0],
    [120.0, 160.0, 210.0],
    [230.0, 225.0, 215.0],
];
const SHIRTS: [[f32; 3]; 10] = [
    [200.0, 30.0, 40.0],
    [30.0, 60.0, 170.0],
    [20.0, 20.0, 25.0],
    [240.0, 120.0, 20.0],
    [40.0, 150.0, 60.0],
    [120.0, 40.0, 150.0],
    [20.0, 160.0, 190.0],
    [90.0, 90.0, 95.0],
    [230.0, 60.0, 150.0],
    [170.0, 200.0, 40.0],
];
const BIB_PAPER: [[f32; 3]; 6] = [
    [250.0, 250.0, 248.0],
    [245.0, 245.0, 240.0],
    [252.0, 240.0, 170.0],
    [215.0, 235.0, 250.0],
    [250.0, 220.0, 225.0],
    [225.0, 245.0, 215.0],
];
const VIVID_PAPER: [[f32; 3]; 4] = [
    [255.0, 225.0, 30.0],
    [255.0, 170.0, 60.0],
    [170.0, 235.0, 120.0],
    [140.0, 210.0, 250.0],
];
/// Coloured cards of the `race` style: the vivid papers and deeper orange, red,
/// green, blue and pink.
const RACE_CARDS: [[f32; 3]; 9] = [
    [255.0, 225.0, 30.0],
    [255.0, 170.0, 60.0],
    [170.0, 235.0, 120.0],
    [140.0, 210.0, 250.0],
    [245.0, 130.0, 35.0],
    [235.0, 90.0, 80.0],
    [90.0, 190.0, 110.0],
    [100.0, 160.0, 235.0],
    [245.0, 150.0, 190.0],
];
const INKS: [[f32; 3]; 4] = [
    [15.0, 15.0, 15.0],
    [10.0, 20.0, 90.0],
    [130.0, 10.0, 20.0],
    [20.0, 70.0, 30.0],
];
const WORDS: [&str; 16] = [
    "RUN", "CITY", "MARATHON", "ENERGY", "SPORT", "FINISH", "TEAM", "ACME", "VOLTA", "NORDIC",
    "BANK", "SPRINT", "TRAIL", "FRESH", "GO", "AQUA",
];

fn background(canvas: &mut Canvas, rng: &mut ChaCha8Rng) {
    let (w, h) = (canvas.w as f32, canvas.h as f32);
    let horizon = rng.random_range(0.25..0.5) * h;
    let sky = *pick(rng, &SKY);
    let road = jitter(rng, [110.0, 108.0, 105.0], 30.0);
    for y in 0..canvas.h {
        for x in 0..canvas.w {
            let fy = y as f32;
            let colour = if fy < horizon {
                let t = fy / horizon;
                sky.map(|c| c * (0.85 + 0.15 * t))
            } else {
                let t = (fy - horizon) / (h - horizon);
                road.map(|c| c * (0.8 + 0.3 * t))
            };
            canvas.px[(y * canvas.w + x) as usize] = colour;
        }
    }
    // Trees and buildings along the horizon, then a crowd of blobs.
    for _ in 0..rng.random_range(3..8) {
        let cx = rng.random_range(0.0..w);
        let r = rng.random_range(0.05..0.15) * h;
        let green = jitter(rng, [50.0, 100.0, 45.0], 25.0);
        canvas.fill_ellipse(cx, horizon - r * 0.3, r * 1.2, r, green);
    }
    for _ in 0..rng.random_range(1..4) {
        let x0 = rng.random_range(0.0..w);
        let bw = rng.random_range(0.08..0.25) * w;
        let bh = rng.random_range(0.1..0.3) * h;
        let colour = jitter(rng, [160.0, 140.0, 120.0], 50.0);
        canvas.fill_quad(
            [
                [x0, horizon - bh],
                [x0 + bw, horizon - bh],
                [x0 + bw, horizon],
                [x0, horizon],
            ],
            |_, _| [colour[0], colour[1], colour[2], 1.0],
        );
    }
    for _ in 0..rng.random_range(20..70) {
        let cx = rng.random_range(0.0..w);
        let cy = horizon + rng.random_range(-0.05..0.12) * h;
        let r = rng.random_range(0.01..0.03) * h;
        let colour = [
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
            rng.random_range(0.0..255.0),
        ];
        canvas.fill_ellipse(cx, cy, r, r * 2.0, colour);
        canvas.fill_ellipse(
            cx,
            cy - r * 2.3,
            r * 0.7,
            r * 0.8,
            jitter(rng, [200.0, 160.0, 130.0], 50.0),
        );
    }
    // Road texture: darker patches.
    for _ in 0..rng.random_range(5..20) {
        let cx = rng.random_range(0.0..w);
        let cy = rng.random_range(horizon..h);
        let r = rng.random_range(0.01..0.06) * h;
        let colour = road.map(|c| c * rng.random_range(0.7..1.1));
        canvas.fill_ellipse(cx, cy, r * 2.0, r, colour);
    }
}

/// A sign, banner, clock or car plate: text with digits that is not a bib.
fn distractor(canvas: &mut Canvas, rng: &mut ChaCha8Rng, fonts: &FontSet) {
    let (w, h) = (canvas.w as f32, canvas.h as f32);
    let kind = rng.random_range(0..4);
    let font = &pick(rng, &fonts.any).font;
    let year = rng.random_range(2019..2031);
    let (text, paper, ink, text_px) = match kind {
        0 => {
            let texts = [
                format!("FINISH {year}"),
                format!("KM {}", rng.random_range(1..43)),
                format!("{} KM", rng.random_range(1..43)),
                format!("START {}K", rng.random_range(5..22)),
                format!("CITY RUN {year}"),
                format!("WATER {} M", rng.random_range(1..9) * 100),
            ];
            let paper = if rng.random_bool(0.5) {
                [245.0, 245.0, 245.0]
            } else {
                *pick(rng, &SHIRTS)
            };
            let ink = if paper[0] > 200.0 {
                *pick(rng, &INKS)
            } else {
                [250.0, 250.0, 250.0]
            };
            (
                pick(rng, &texts).clone(),
                paper,
                ink,
                rng.random_range(18.0..45.0),
            )
        }
        1 => {
            let text = format!(
                "{}:{:02}:{:02}",
                rng.random_range(0..5),
                rng.random_range(0..60),
                rng.random_range(0..60)
            );
            let ink = *pick(
                rng,
                &[
                    [255.0, 60.0, 40.0],
                    [255.0, 200.0, 40.0],
                    [240.0, 240.0, 240.0],
                    [40.0, 30.0, 30.0],
                ],
            );
            let paper = if ink[0] < 100.0 {
                [230.0, 230.0, 225.0]
            } else {
                [25.0, 25.0, 30.0]
            };
            (text, paper, ink, rng.random_range(18.0..40.0))
        }
        2 => {
            let letters = b"ABCDEFGHJKLMNPRSTVWXYZ";
            let l: Vec<char> = (0..4)
                .map(|_| char::from(letters[rng.random_range(0..letters.len())]))
                .collect();
            let text = format!(
                "{}{} {} {}{}",
                l[0],
                l[1],
                rng.random_range(100..1000),
                l[2],
                l[3]
            );
            let paper = *pick(rng, &[[245.0, 245.0, 245.0], [250.0, 215.0, 40.0]]);
            (
                text,
                paper,
                [20.0, 20.0, 20.0],
                rng.random_range(12.0..26.0),
            )
        }
        _ => {
            // A sponsor board: words only, but words OCR might read as digits (O, I, S, B).
            let text = format!(
                "{} {}",
                pick(rng, &WORDS),
                pick(rng, &["BIOS", "ZOO", "LOGO", "SOLO", "BOB", "OIL"])
            );
            let paper = if rng.random_bool(0.6) {
                [248.0, 248.0, 245.0]
            } else {
                *pick(rng, &SHIRTS)
            };
            let ink = if paper[0] > 200.0 && paper[1] > 200.0 {
                *pick(rng, &INKS)
            } else {
                [250.0, 250.0, 250.0]
            };
            (text, paper, ink, rng.random_range(18.0..45.0))
        }
    };
    let mask = render(font, &text, text_px, 0.05);
    let pad = (text_px * 0.5) as u32;
    let mut layer = Layer::new(mask.w + 2 * pad, mask.h + 2 * pad, paper);
    layer.draw_mask(&mask, i64::from(pad), i64::from(pad), |_| ink);
    let (lw, lh) = (layer.w as f32, layer.h as f32);
    let cx = rng.random_range(0.1..0.9) * w;
    let cy = rng.random_range(0.08..0.7) * h;
    let angle = rng.random_range(-0.08..0.08f32);
    let quad = placed_quad(rng, cx, cy, lw, lh, angle, 0.05);
    // A post or frame under signs and plates.
    canvas.fill_quad(
        [
            [cx - lw * 0.55, cy - lh * 0.6],
            [cx + lw * 0.55, cy - lh * 0.6],
            [cx + lw * 0.55, cy + lh * 0.6],
            [cx - lw * 0.55, cy + lh * 0.6],
        ],
        |_, _| [60.0, 60.0, 65.0, 1.0],
    );
    canvas.draw_layer(&layer, quad);
}

/// Draws a runner around `cx` at `scale` (1.0 = near the camera) with a bib; returns its label.
fn runner(
    canvas: &mut Canvas,
    rng: &mut ChaCha8Rng,
    fonts: &FontSet,
    style: Style,
    cx: f32,
    scale: f32,
    max_width: f32,
) -> Option<TruthBib> {
    let h = canvas.h as f32;
    // Runners keep to their slot so that no bib is hidden behind a neighbour.
    // A race scene chooses the bib card's width first (120 to 260 px) and fits the
    // runner around it; the torso is narrowed to the slot, the card with it.
    let race_bib = (style == Style::Race).then(|| rng.random_range(120.0..260.0f32));
    let torso_w = match race_bib {
        Some(card) => (card / rng.random_range(0.7..0.85)).min(max_width),
        None => (scale * h * rng.random_range(0.3..0.42)).min(max_width),
    };
    let torso_h = torso_w * rng.random_range(1.2..1.45);
    let cy = h * rng.random_range(0.5..0.68) + scale * h * 0.05;
    let lean = rng.random_range(-0.12..0.12f32);
    let shirt = jitter_pick(rng, &SHIRTS, 20.0);
    let skin = jitter_pick(
        rng,
        &[
            [230.0, 190.0, 160.0],
            [160.0, 110.0, 80.0],
            [100.0, 65.0, 45.0],
        ],
        15.0,
    );
    let shorts = jitter(rng, [30.0, 30.0, 40.0], 20.0);

    // Legs, torso (shaded like a cylinder), arms, head.
    for side in [-1.0f32, 1.0] {
        let lx = cx + side * torso_w * 0.22;
        let top = cy + torso_h * 0.45;
        canvas.fill_quad(
            [
                [lx - torso_w * 0.15, top],
                [lx + torso_w * 0.15, top],
                [lx + torso_w * 0.12 + side * 10.0, top + torso_h * 1.3],
                [lx - torso_w * 0.12 + side * 10.0, top + torso_h * 1.3],
            ],
            |_, v| {
                let c = if v < 0.3 { shorts } else { skin };
                [c[0], c[1], c[2], 1.0]
            },
        );
    }
    let torso = placed_quad(rng, cx, cy, torso_w, torso_h, lean, 0.03);
    canvas.fill_quad(torso, |u, _| {
        let shade = 0.75 + 0.35 * (1.0 - (2.0 * u - 1.0).powi(2)).sqrt();
        [shirt[0] * shade, shirt[1] * shade, shirt[2] * shade, 1.0]
    });
    let head_r = torso_w * 0.22;
    let [hx, hy] = rotate([0.0, -torso_h * 0.5 - head_r * 1.1], lean);
    canvas.fill_ellipse(cx + hx, cy + hy, head_r, head_r * 1.15, skin);
    canvas.fill_ellipse(
        cx + hx,
        cy + hy - head_r * 0.5,
        head_r * 1.02,
        head_r * 0.7,
        jitter(rng, [50.0, 35.0, 25.0], 20.0),
    );
    for side in [-1.0f32, 1.0] {
        let [sx, sy] = rotate([side * torso_w * 0.5, -torso_h * 0.4], lean);
        let (sx, sy) = (cx + sx, cy + sy);
        // Arms hang close to the body: a neighbour's arm must not hide a bib's digits.
        let ex = sx + side * torso_w * rng.random_range(0.02..0.12);
        let ey = sy + torso_h * rng.random_range(0.4..0.7);
        thick_line(canvas, [sx, sy], [ex, ey], torso_w * 0.12, shirt);
    }
    // Text printed straight on the shirt (a club name) above the bib.
    if rng.random_bool(0.3) {
        let word = *pick(rng, &WORDS);
        let mask = render(&pick(rng, &fonts.any).font, word, torso_w * 0.09, 0.05);
        let mut layer = Layer::new(mask.w + 2, mask.h + 2, shirt);
        for p in &mut layer.px {
            p[3] = 0.0;
        }
        let ink = if shirt.iter().sum::<f32>() > 400.0 {
            [20.0, 20.0, 20.0]
        } else {
            [245.0, 245.0, 245.0]
        };
        layer.draw_mask(&mask, 1, 1, |_| ink);
        for p in &mut layer.px {
            p[3] = if p[0] == shirt[0] && p[1] == shirt[1] {
                0.0
            } else {
                1.0
            };
        }
        let [ox, oy] = rotate([0.0, -torso_h * 0.36], lean);
        let quad = placed_quad(
            rng,
            cx + ox,
            cy + oy,
            layer.w as f32,
            layer.h as f32,
            lean,
            0.0,
        );
        canvas.draw_layer(&layer, quad);
    }

    // The bib.
    let digits = *pick(rng, &[1usize, 2, 3, 3, 4, 4, 4, 5]);
    let mut number = String::new();
    for i in 0..digits {
        let d = if i == 0 && digits > 1 {
            rng.random_range(1..10)
        } else {
            rng.random_range(0..10)
        };
        number.push(char::from(b'0' + d as u8));
    }
    // At least ~11 px per digit: smaller numbers are unreadable and would not be labelled by a person.
    let bib_w = match race_bib {
        Some(card) => card.min(torso_w * 0.9),
        None => torso_w * rng.random_range(0.62..0.82),
    }
    .max(digits as f32 * 11.0 + 12.0)
    .round();
    let bib_h = (bib_w * rng.random_range(0.62..0.8)).round().max(14.0);
    let paper = if style == Style::Race && rng.random_bool(0.5) {
        jitter_pick(rng, &RACE_CARDS, 5.0)
    } else if style == Style::Vivid {
        jitter_pick(rng, &VIVID_PAPER, 5.0)
    } else {
        jitter_pick(rng, &BIB_PAPER, 5.0)
    };
    let mut bib = Layer::new(bib_w as u32, bib_h as u32, paper);
    let mut top = 0.0f32;
    if rng.random_bool(0.6) {
        // A coloured header band with the sponsor's word in it.
        let band_h = bib_h * rng.random_range(0.14..0.22);
        let band = *pick(rng, &SHIRTS);
        bib.fill_rect(0, 0, bib.w, band_h as u32, band);
        let word = *pick(rng, &WORDS);
        let mask = render(&pick(rng, &fonts.any).font, word, band_h * 0.6, 0.05);
        if mask.w < bib.w {
            bib.draw_mask(
                &mask,
                i64::from((bib.w - mask.w) / 2),
                (band_h * 0.2) as i64,
                |_| [250.0, 250.0, 250.0],
            );
        }
        top = band_h;
    }
    let mut bottom = bib_h;
    if rng.random_bool(0.4) {
        // A small line under the number: a name or a sponsor.
        let word = *pick(rng, &WORDS);
        let px = bib_h * 0.08;
        let mask = render(&pick(rng, &fonts.any).font, word, px.max(3.0), 0.05);
        if mask.w < bib.w {
            let y = bib_h - px * 1.7;
            bib.draw_mask(&mask, i64::from((bib.w - mask.w) / 2), y as i64, |_| {
                [40.0, 40.0, 40.0]
            });
            bottom = y - px * 0.3;
        }
    }
    let font = if style == Style::Race {
        &pick(rng, &fonts.upright).font
    } else {
        &pick(rng, &fonts.bold).font
    };
    let space = bottom - top;
    let mut digit_px = space * rng.random_range(0.5..0.68);
    let tracking = rng.random_range(0.0..0.12);
    let mut mask = render(font, &number, digit_px, tracking);
    let max_w = bib_w * 0.88;
    if mask.w as f32 > max_w {
        digit_px *= max_w / mask.w as f32;
        mask = render(font, &number, digit_px, tracking);
    }
    let mx = ((bib_w - mask.w as f32) / 2.0).round();
    let my = (top + (space - mask.h as f32) / 2.0).round();
    let ink = *pick(rng, &INKS);
    let ink2 = *pick(rng, &INKS);
    bib.draw_mask(&mask, mx as i64, my as i64, |t| {
        if style == Style::TwoTone && t > 0.5 {
            [200.0, 40.0, 30.0]
        } else if style == Style::TwoTone {
            ink2
        } else {
            ink
        }
    });
    // Pins and a crease shadow.
    for (px, py) in [(0.06, 0.06), (0.94, 0.06), (0.06, 0.94), (0.94, 0.94)] {
        let (x, y) = ((px * bib_w) as u32, (py * bib_h) as u32);
        bib.fill_rect(x, y, x + 2, y + 2, [150.0, 150.0, 150.0]);
    }
    let crease = rng.random_range(0.2..0.8) * bib_w;
    for y in 0..bib.h {
        for x in 0..bib.w {
            let d = (x as f32 - crease).abs() / bib_w;
            let p = &mut bib.px[(y * bib.w + x) as usize];
            let f = 0.92 + 0.08 * (d * 6.0).min(1.0);
            for c in p.iter_mut().take(3) {
                *c *= f;
            }
        }
    }

    let angle = lean + rng.random_range(-0.2..0.2f32);
    let angle = angle.clamp(-0.26, 0.26);
    let [ox, oy] = rotate([0.0, torso_h * rng.random_range(-0.05..0.12)], lean);
    let quad = placed_quad(rng, cx + ox, cy + oy, bib_w, bib_h, angle, 0.08);
    canvas.draw_layer(&bib, quad);

    // Mild occlusion: a hand over a corner of the bib, never over the digits' middle.
    if rng.random_bool(0.2) {
        let corner = quad[rng.random_range(0..4)];
        canvas.fill_ellipse(corner[0], corner[1], bib_w * 0.09, bib_w * 0.08, skin);
    }

    let to_scene = Homography::between(
        [[0.0, 0.0], [bib_w, 0.0], [bib_w, bib_h], [0.0, bib_h]],
        quad,
    )?;
    let ink_box = [
        [mx, my],
        [mx + mask.w as f32, my],
        [mx + mask.w as f32, my + mask.h as f32],
        [mx, my + mask.h as f32],
    ]
    .map(|p| to_scene.apply(p));
    let (x0, y0, x1, y1) = quad_bounds(&ink_box);
    let (x0, y0) = (x0.max(0), y0.max(0));
    let (x1, y1) = (x1.min(i64::from(canvas.w)), y1.min(i64::from(canvas.h)));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    Some(TruthBib {
        number,
        bbox: [x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32],
    })
}

/// A spectator in a jersey with a number printed straight on the coloured shirt (no bib).
fn jersey(canvas: &mut Canvas, rng: &mut ChaCha8Rng, fonts: &FontSet, cx: f32) {
    let h = canvas.h as f32;
    let torso_w = h * rng.random_range(0.12..0.3);
    let torso_h = torso_w * 1.3;
    let cy = h * rng.random_range(0.45..0.6);
    // Saturated or dark shirts: a number on a white shirt would be a bib in all but name.
    let shirt = jitter_pick(rng, &SHIRTS, 15.0);
    let tilt = rng.random_range(-0.1..0.1);
    let quad = placed_quad(rng, cx, cy, torso_w, torso_h, tilt, 0.03);
    canvas.fill_quad(quad, |_, _| [shirt[0], shirt[1], shirt[2], 1.0]);
    let number = rng.random_range(1..100).to_string();
    let mask = render(&pick(rng, &fonts.bold).font, &number, torso_h * 0.4, 0.05);
    let bright = shirt[0] * 0.3 + shirt[1] * 0.59 + shirt[2] * 0.11 > 120.0;
    let ink = if bright {
        [20.0, 20.0, 20.0]
    } else {
        [245.0, 245.0, 245.0]
    };
    let mut layer = Layer::new(mask.w, mask.h, shirt);
    layer.draw_mask(&mask, 0, 0, |_| ink);
    let quad = placed_quad(rng, cx, cy, mask.w as f32, mask.h as f32, 0.0, 0.02);
    canvas.draw_layer(&layer, quad);
}

fn thick_line(canvas: &mut Canvas, a: [f32; 2], b: [f32; 2], width: f32, colour: [f32; 3]) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len = (dx * dx + dy * dy).sqrt().max(1e-3);
    let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
    canvas.fill_quad(
        [
            [a[0] + nx, a[1] + ny],
            [b[0] + nx, b[1] + ny],
            [b[0] - nx, b[1] - ny],
            [a[0] - nx, a[1] - ny],
        ],
        |_, _| [colour[0], colour[1], colour[2], 1.0],
    );
}

/// Uneven light: a smooth gradient across the frame and a few soft shadows.
fn lighting(canvas: &mut Canvas, rng: &mut ChaCha8Rng, style: Style) {
    let (w, h) = (canvas.w as f32, canvas.h as f32);
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let (gx, gy) = (angle.cos(), angle.sin());
    let strongest = if style == Style::Race { 0.6 } else { 0.35 };
    let strength = rng.random_range(0.0..strongest);
    let shadows: Vec<(f32, f32, f32, f32)> = (0..rng.random_range(0..4))
        .map(|_| {
            (
                rng.random_range(0.0..w),
                rng.random_range(0.0..h),
                rng.random_range(0.05..0.25) * w,
                rng.random_range(0.3..0.6f32),
            )
        })
        .collect();
    for y in 0..canvas.h {
        for x in 0..canvas.w {
            let (fx, fy) = (x as f32 / w - 0.5, y as f32 / h - 0.5);
            let mut f = 1.0 + strength * (fx * gx + fy * gy);
            for &(sx, sy, r, depth) in &shadows {
                let d = ((x as f32 - sx).powi(2) + (y as f32 - sy).powi(2)).sqrt() / r;
                if d < 1.0 {
                    // Soft edge over the outer 30% of the shadow.
                    f *= 1.0 - depth * ((1.0 - d) / 0.3).min(1.0);
                }
            }
            let p = &mut canvas.px[(y * canvas.w + x) as usize];
            *p = p.map(|v| v * f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_homography_maps_each_corner_to_its_partner() {
        let from = [[0.0, 0.0], [10.0, 0.0], [10.0, 5.0], [0.0, 5.0]];
        let to = [[3.0, 1.0], [14.0, 2.0], [12.0, 9.0], [2.0, 7.0]];
        let h = Homography::between(from, to).expect("corners in general position");
        for (f, t) in from.iter().zip(to) {
            let p = h.apply(*f);
            assert!(
                (p[0] - t[0]).abs() < 1e-3 && (p[1] - t[1]).abs() < 1e-3,
                "{p:?} != {t:?}"
            );
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_scene() {
        let fonts = FontSet::load(FontChoice::All).expect("fonts installed by scripts/lib.sh");
        let a = scene(7, 3, &fonts, Style::Standard);
        let b = scene(7, 3, &fonts, Style::Standard);
        assert_eq!(a.bibs, b.bibs);
        assert!(a.image == b.image);
        let c = scene(8, 3, &fonts, Style::Standard);
        assert!(a.image != c.image);
    }

    #[test]
    fn every_bib_box_lies_inside_the_image() {
        let fonts = FontSet::load(FontChoice::Tuning).expect("fonts installed by scripts/lib.sh");
        for index in 0..3 {
            let s = scene(1, index, &fonts, Style::Standard);
            assert!(!s.bibs.is_empty());
            for bib in &s.bibs {
                let [x, y, w, h] = bib.bbox;
                assert!(x + w <= s.image.width() && y + h <= s.image.height());
                assert!(bib.number.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn a_race_scene_has_two_to_four_bibs_on_cards_at_most_260_px_wide() {
        let fonts =
            FontSet::load(FontChoice::WideTuning).expect("fonts installed by scripts/lib.sh");
        for index in 0..2 {
            let s = scene(3, index, &fonts, Style::Race);
            assert!((2..=4).contains(&s.bibs.len()), "{:?}", s.bibs);
            for bib in &s.bibs {
                // The digits' box: the card's width, rotated a little, bounds it.
                assert!(bib.bbox[2] <= 275, "{bib:?}");
            }
        }
    }

    #[test]
    fn wide_held_out_fonts_are_not_wide_tuning_fonts() {
        let tinos = Path::new("/usr/share/fonts/truetype/croscore/Tinos-Bold.ttf");
        let dejavu = Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf");
        assert!(FontChoice::WideHeldOut.admits(tinos));
        assert!(!FontChoice::WideTuning.admits(tinos));
        assert!(FontChoice::WideTuning.admits(dejavu));
        assert!(!FontChoice::WideHeldOut.admits(dejavu));
    }

    #[test]
    fn hairline_thin_and_light_faces_are_not_drawn() {
        assert!(is_text_face("lato-heavy.ttf"));
        assert!(is_text_face("lato-regular.ttf"));
        for name in ["lato-hairline.ttf", "roboto-thin.ttf", "opensans-light.ttf"] {
            assert!(!is_text_face(name), "{name}");
        }
    }

    #[test]
    fn held_out_fonts_are_not_tuning_fonts() {
        let path = Path::new("/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf");
        assert!(FontChoice::HeldOut.admits(path));
        assert!(!FontChoice::Tuning.admits(path));
    }
}
