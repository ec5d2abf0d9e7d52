//! Straightened, scaled crops of a candidate line and their binarisations.
//!
//! Tesseract reads best level text with a cap height of a few dozen pixels,
//! black on white, with a quiet margin and nothing touching the edges; each
//! function here turns a candidate into one such picture.

use image::{GrayImage, Luma};

use crate::candidates::Candidate;
use crate::components::{self, Connectivity};

/// Digit height the crops are scaled to: Tesseract's LSTM is most accurate near it.
pub const TEXT_HEIGHT: f32 = 48.0;

/// The widest gap between glyphs of one line: a word space is a third to
/// two thirds of a digit's height.
const LINE_GAP: f32 = TEXT_HEIGHT * 0.9;

/// The candidate's digits, rotated level and scaled to [`TEXT_HEIGHT`], with a margin
/// of a third of a digit height above and below and `margin` digit heights before and
/// after. `scale` maps candidate coordinates to `gray`'s (candidates may come from a
/// reduced copy of the photo).
pub fn straighten(gray: &GrayImage, c: &Candidate, scale: f32, margin: f32) -> GrayImage {
    let height = c.height * scale;
    let length = c.length * scale;
    let zoom = (TEXT_HEIGHT / height.max(1.0)).clamp(0.25, 8.0);
    let (pad_l, pad_h) = (height * margin, height * 0.3);
    let out_w = ((length + 2.0 * pad_l) * zoom).ceil().max(8.0) as u32;
    let out_h = ((height + 2.0 * pad_h) * zoom).ceil().max(8.0) as u32;
    let (s, co) = c.angle.sin_cos();
    let (cx, cy) = (c.cx * scale, c.cy * scale);
    let mut out = GrayImage::new(out_w, out_h);
    for oy in 0..out_h {
        for ox in 0..out_w {
            let along = (ox as f32 + 0.5) / zoom - (length / 2.0 + pad_l);
            let across = (oy as f32 + 0.5) / zoom - (height / 2.0 + pad_h);
            let x = cx + along * co - across * s;
            let y = cy + along * s + across * co;
            out.put_pixel(ox, oy, Luma([bilinear(gray, x, y)]));
        }
    }
    out
}

fn bilinear(gray: &GrayImage, x: f32, y: f32) -> u8 {
    let (w, h) = gray.dimensions();
    let x = (x - 0.5).clamp(0.0, (w - 1) as f32);
    let y = (y - 0.5).clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as u32, y as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x, y| f32::from(gray.get_pixel(x, y).0[0]);
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    (top * (1.0 - fy) + bottom * fy).round() as u8
}

/// The crop divided by its paper: a shadow or a lighting gradient across the bib
/// would otherwise pull a global threshold into the paper on its dark side.
///
/// The paper level is a grey closing (maximum, then minimum, over a window wider
/// than a stroke) of the crop, which erases the dark strokes and keeps the slow light.
pub fn flatten(gray: &GrayImage) -> GrayImage {
    let radius = (TEXT_HEIGHT * 0.3) as u32;
    let paper = filter(&filter(gray, radius, u8::max), radius, u8::min);
    // Only paper is lifted: a dark shirt beside the bib must stay dark, or its noise
    // would be stretched into specks that read as letters.
    let mut levels: Vec<u8> = paper.pixels().map(|p| p.0[0]).collect();
    levels.sort_unstable();
    let floor = (f32::from(levels[levels.len() * 9 / 10]) * 0.6).max(1.0);
    let mut out = gray.clone();
    for (p, bg) in out.pixels_mut().zip(paper.pixels()) {
        let v = f32::from(p.0[0]) * 255.0 / f32::from(bg.0[0]).max(floor);
        p.0[0] = v.min(255.0) as u8;
    }
    out
}

/// A separable square rank filter (`pick` is `max` or `min`) of half-width `radius`.
fn filter(gray: &GrayImage, radius: u32, pick: fn(u8, u8) -> u8) -> GrayImage {
    let (w, h) = gray.dimensions();
    let mut across = gray.clone();
    for y in 0..h {
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(radius), (x + radius).min(w - 1));
            let v = (x0..=x1)
                .map(|i| gray.get_pixel(i, y).0[0])
                .reduce(pick)
                .unwrap_or(0);
            across.put_pixel(x, y, Luma([v]));
        }
    }
    let mut out = across.clone();
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(radius), (y + radius).min(h - 1));
        for x in 0..w {
            let v = (y0..=y1)
                .map(|j| across.get_pixel(x, j).0[0])
                .reduce(pick)
                .unwrap_or(0);
            out.put_pixel(x, y, Luma([v]));
        }
    }
    out
}

/// Otsu's threshold of the crop: the level that best splits ink from paper.
pub fn otsu(gray: &GrayImage) -> u8 {
    let mut histogram = [0u64; 256];
    for p in gray.pixels() {
        histogram[p.0[0] as usize] += 1;
    }
    let total: u64 = histogram.iter().sum();
    let sum: f64 = histogram
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut weight_low, mut sum_low) = (0u64, 0.0f64);
    let (mut best, mut best_var) = (0u8, -1.0f64);
    for (t, &n) in histogram.iter().enumerate() {
        weight_low += n;
        if weight_low == 0 {
            continue;
        }
        let weight_high = total - weight_low;
        if weight_high == 0 {
            break;
        }
        sum_low += t as f64 * n as f64;
        let mean_low = sum_low / weight_low as f64;
        let mean_high = (sum - sum_low) / weight_high as f64;
        let var = weight_low as f64 * weight_high as f64 * (mean_low - mean_high).powi(2);
        if var > best_var {
            best_var = var;
            best = t as u8;
        }
    }
    best
}

/// Black ink on white at `threshold`, without ink blobs that touch the crop's edge
/// (the bib's border, the shirt, a neighbour's arm) or are specks, plus a white margin.
/// With `context` (a crop wider than the number, read for what surrounds it), colons
/// stay and only blobs on the top or bottom edge go: a letter cut by the side of
/// the crop still tells a plate or a sign from a bib.
pub fn binarise(gray: &GrayImage, threshold: u8, context: bool) -> GrayImage {
    let (w, h) = gray.dimensions();
    let ink: Vec<bool> = gray.pixels().map(|p| p.0[0] <= threshold).collect();
    let keep = clean(&ink, w as usize, h as usize, context);
    let margin = 12;
    let mut out = GrayImage::from_pixel(w + 2 * margin, h + 2 * margin, Luma([255]));
    for y in 0..h {
        for x in 0..w {
            if keep[(y * w + x) as usize] {
                out.put_pixel(x + margin, y + margin, Luma([0]));
            }
        }
    }
    out
}

/// Keeps the ink blobs that neither touch the edge nor are much smaller than a digit's stroke.
fn clean(ink: &[bool], w: usize, h: usize, context: bool) -> Vec<bool> {
    let mut keep = vec![false; w * h];
    let min_area = (h * h / 150).max(4);
    // Dots wait for a partner above or below them: two make a colon, one is dust.
    let mut dots: Vec<(f32, f32, Vec<usize>)> = Vec::new();
    components::for_each(
        w,
        h,
        Connectivity::Four,
        |i| ink[i],
        |c, members| {
            // A blob touching left or right edge only at the corners is a bib border, and
            // any blob on the top or bottom edge is not a digit: digits sit inside the margin.
            let edge = c.y0 == 0 || c.y1 == h || (!context && (c.x0 == 0 || c.x1 == w));
            // Small blobs are specks, short ones are underlines or dust.
            let tall_enough = c.height() * 4 >= h;
            // A solid patch wider than a stroke (shirt or shade beside a card) is
            // no glyph; Tesseract would read it as a letter ("m5", "y161").
            let (bw, bh) = (c.width(), c.height());
            let solid = context && members.len() * 100 > bw * bh * 85 && bw * 2 > bh;
            let stroke = members.len() >= min_area && tall_enough && !solid;
            // A dot counts only inside the digits' band: pins and dust sit above or below.
            let dot =
                context && is_dot(members, w, h) && c.y0 * 20 >= h * 3 && (c.y1 - 1) * 20 <= h * 17;
            if !edge && stroke {
                for &i in members {
                    keep[i] = true;
                }
            } else if !edge && dot {
                let cx = members.iter().map(|i| (i % w) as f32).sum::<f32>() / members.len() as f32;
                dots.push((cx, (c.y0 + c.y1 - 1) as f32 / 2.0, members.to_vec()));
            }
        },
    );
    let hf = h as f32;
    for (i, (cx, cy, members)) in dots.iter().enumerate() {
        // The two dots of a colon: one above the other, alike in size, a few strokes apart.
        let paired = dots.iter().enumerate().any(|(j, (ox, oy, other))| {
            let size =
                members.len().min(other.len()) as f32 / members.len().max(other.len()) as f32;
            i != j
                && (cx - ox).abs() < hf / 10.0
                && (cy - oy).abs() > hf / 10.0
                && (cy - oy).abs() < hf / 2.0
                && size > 0.5
        });
        if paired {
            for &i in members {
                keep[i] = true;
            }
        }
    }
    keep
}

/// A solid, round-ish blob about a stroke wide: a colon's or a hyphen's part, not dust.
fn is_dot(members: &[usize], w: usize, h: usize) -> bool {
    let stroke = h as f32 / 16.0;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for &i in members {
        x0 = x0.min(i % w);
        x1 = x1.max(i % w + 1);
        y0 = y0.min(i / w);
        y1 = y1.max(i / w + 1);
    }
    let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let fill = members.len() as f32 / (bw * bh);
    // A colon's dot is about a stroke across: far larger is a shape, not a dot.
    bw.min(bh) >= stroke * 0.4
        && bw.max(bh) <= stroke * 4.0
        && fill > 0.6
        && bh <= bw * 1.6
        && bw <= bh * 1.6
}

/// The holes of each digit-sized ink blob of `binary` (from [`binarise`]), left
/// to right: the enclosed paper a 0, 6, 9 (one) or 8 (two) has and a 1, 2, 3, 5
/// or 7 has not. Whatever face the number is set in, that topology holds, so it
/// can check a reading (Tesseract's LSTM reads some bold serif 5s as 9s, with
/// confidence). Ink is 8-connected and paper 4-connected (a diagonal gap in a
/// stroke does not open a hole); holes smaller than a dot of JPEG noise
/// (under 1/100 of the digit height squared) do not count.
pub fn digit_holes(binary: &GrayImage) -> Vec<u32> {
    let (w, h) = binary.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let raw = binary.as_raw();
    let mut digits: Vec<(usize, u32)> = Vec::new();
    components::for_each(
        wu,
        hu,
        Connectivity::Eight,
        |i| raw[i] == 0,
        |c, members| {
            let height = c.height() as f32;
            if !(TEXT_HEIGHT * 0.55..=TEXT_HEIGHT * 1.6).contains(&height) {
                return;
            }
            // The blob in its box, one pixel larger all round: the box's paper not
            // reached from the box's edge is enclosed by the blob.
            let (bx0, by0) = (c.x0.saturating_sub(1), c.y0.saturating_sub(1));
            let (bw, bh) = ((c.x1 + 1).min(wu) - bx0, (c.y1 + 1).min(hu) - by0);
            let mut ink = vec![false; bw * bh];
            for &i in members {
                ink[(i / wu - by0) * bw + i % wu - bx0] = true;
            }
            let min_hole = (height * height / 100.0) as usize;
            let mut holes = 0;
            components::for_each(
                bw,
                bh,
                Connectivity::Four,
                |i| !ink[i],
                |paper, area| {
                    if !paper.touches_border(bw, bh) && area.len() >= min_hole {
                        holes += 1;
                    }
                },
            );
            digits.push((c.x0, holes));
        },
    );
    digits.sort_by_key(|d| d.0);
    digits.into_iter().map(|d| d.1).collect()
}

/// The columns of `binary` (from [`binarise`], margin included) that hold the digit
/// line through its centre: ink blobs of about a digit's height, chained from the one
/// nearest the middle across gaps narrower than a digit. The candidate line that the
/// crop was cut around may have missed a digit at one end; this finds it again.
pub fn digit_span(binary: &GrayImage) -> Option<(u32, u32)> {
    let w = binary.width();
    let mut spans: Vec<(f32, f32)> = ink_boxes(binary)
        .into_iter()
        .filter(is_glyph_height)
        .map(|b| (b[0] as f32, b[1] as f32))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let middle = w as f32 / 2.0;
    let distance = |s: &(f32, f32)| {
        if s.0 <= middle && middle <= s.1 {
            0.0
        } else {
            (s.0 - middle).abs().min((s.1 - middle).abs())
        }
    };
    let centre =
        (0..spans.len()).min_by(|&a, &b| distance(&spans[a]).total_cmp(&distance(&spans[b])))?;
    if distance(&spans[centre]) > TEXT_HEIGHT {
        return None;
    }
    let (mut lo, mut hi) = spans[centre];
    let gap = LINE_GAP;
    for s in spans[centre + 1..].iter() {
        if s.0 - hi > gap {
            break;
        }
        hi = hi.max(s.1);
    }
    for s in spans[..centre].iter().rev() {
        if lo - s.1 > gap {
            break;
        }
        lo = lo.min(s.0);
    }
    Some((lo as u32, hi as u32))
}

/// `binary` (from [`binarise`] of `raw`, the straightened crop before
/// [`flatten`], with `margin` digit heights either side of the candidate's
/// line) without the ink blobs past the edge of the paper the line is
/// printed on: a sign or a clock beyond the card's edge is not on the
/// number's line ("1." of a clock read "n698"), while a plate's or a sign's
/// letters share its paper. The edge is where a column's paper level (its
/// 75th percentile) jumps by a quarter within a sixth of a digit height and
/// stays off for a tenth (a soft shadow changes it slowly).
pub fn on_its_paper(raw: &GrayImage, binary: &GrayImage, margin: f32) -> GrayImage {
    const MARGIN: usize = 12;
    let (w, h) = raw.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    // Where the candidate's line and the digit line found again agree: the
    // first can hold a stray blob of the card's edge, the second chains a
    // clock's digits beside the card into the line.
    let mut lo = (TEXT_HEIGHT * margin) as usize;
    let mut hi = wu.saturating_sub(lo);
    if let Some((x0, x1)) = digit_span(binary) {
        lo = lo.max((x0 as usize).saturating_sub(MARGIN));
        hi = hi.min((x1 as usize).saturating_sub(MARGIN));
    }
    let mut column = vec![0u8; hu];
    let level: Vec<f32> = (0..wu)
        .map(|x| {
            for (y, v) in column.iter_mut().enumerate() {
                *v = raw.get_pixel(x as u32, y as u32).0[0];
            }
            f32::from(*column.select_nth_unstable(hu * 3 / 4).1)
        })
        .collect();
    if lo >= hi {
        return binary.clone();
    }
    let mut inside: Vec<f32> = level[lo..hi].to_vec();
    inside.sort_by(f32::total_cmp);
    let paper = inside[inside.len() / 2].max(1.0);
    let step = (TEXT_HEIGHT / 6.0) as usize;
    let hold = (TEXT_HEIGHT / 10.0) as usize;
    let off = |v: f32| (v - paper).abs() > paper * 0.25;
    let edge_at =
        |x: usize, from: usize| off(level[x]) && (level[x] - level[from]).abs() > paper * 0.25;
    let mut right = wu;
    for x in hi + step..wu.saturating_sub(hold) {
        if edge_at(x, x - step) && (x..x + hold).all(|k| off(level[k])) {
            right = x;
            break;
        }
    }
    let mut left = 0;
    for x in (hold..lo.saturating_sub(step)).rev() {
        if edge_at(x, x + step) && (x + 1 - hold..=x).all(|k| off(level[k])) {
            left = x + 1;
            break;
        }
    }
    let (left, right) = (left + MARGIN, right + MARGIN);
    let mut out = binary.clone();
    for b in ink_boxes(binary) {
        if b[1] <= left || b[0] >= right {
            for y in b[2]..b[3] {
                for x in b[0]..b[1] {
                    out.put_pixel(x as u32, y as u32, Luma([255]));
                }
            }
        }
    }
    out
}

/// How many glyphs the glyph-sized ink blobs of `binary` (from [`binarise`])
/// hold: a letters-allowed reading of a crop with one glyph in it cannot be a
/// word, whatever letter Tesseract took that glyph for (a lone serif 4 reads
/// "A", a 5 "is"). A blob wider than tall is counted as two: blur fuses a
/// small plate's or sign's glyphs into one.
pub fn glyph_count(binary: &GrayImage) -> usize {
    ink_boxes(binary)
        .iter()
        .filter(|b| is_glyph_height(b))
        .map(|b| if b[1] - b[0] > b[3] - b[2] { 2 } else { 1 })
        .sum()
}

/// About a digit's height at [`TEXT_HEIGHT`]: not a speck, a rule or a patch.
fn is_glyph_height(b: &[usize; 4]) -> bool {
    (TEXT_HEIGHT * 0.55..=TEXT_HEIGHT * 1.6).contains(&((b[3] - b[2]) as f32))
}

/// The boxes `[x0, x1, y0, y1]` (ends exclusive) of the 4-connected ink blobs of `binary`.
fn ink_boxes(binary: &GrayImage) -> Vec<[usize; 4]> {
    let (w, h) = binary.dimensions();
    let raw = binary.as_raw();
    let mut boxes = Vec::new();
    components::for_each(
        w as usize,
        h as usize,
        Connectivity::Four,
        |i| raw[i] == 0,
        |c, _| {
            boxes.push([c.x0, c.x1, c.y0, c.y1]);
        },
    );
    boxes
}

/// The grey crop stretched to full contrast, with a paper-coloured margin: a second,
/// unthresholded opinion for Tesseract's own binarisation.
pub fn stretched(gray: &GrayImage) -> GrayImage {
    let mut values: Vec<u8> = gray.pixels().map(|p| p.0[0]).collect();
    values.sort_unstable();
    let lo = f32::from(values[values.len() / 50]);
    let hi = f32::from(values[values.len() * 49 / 50]).max(lo + 1.0);
    let margin = 12;
    let (w, h) = gray.dimensions();
    let mut out = GrayImage::from_pixel(w + 2 * margin, h + 2 * margin, Luma([255]));
    for (x, y, p) in gray.enumerate_pixels() {
        let v = ((f32::from(p.0[0]) - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0);
        out.put_pixel(x + margin, y + margin, Luma([v as u8]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws a 24 x 48 digit-sized shape at `left` from rows of `#` (ink) and
    /// `.` (paper), each cell 4 x 4 px, into a white crop.
    fn draw(crop: &mut GrayImage, left: u32, rows: &[&str]) {
        for (y, row) in rows.iter().enumerate() {
            for (x, cell) in row.chars().enumerate() {
                if cell == '#' {
                    for (dx, dy) in (0..4).flat_map(|dx| (0..4).map(move |dy| (dx, dy))) {
                        crop.put_pixel(left + x as u32 * 4 + dx, 12 + y as u32 * 4 + dy, Luma([0]));
                    }
                }
            }
        }
    }

    /// Paints the rectangle `xs` by `ys` of `image` at `level`.
    fn fill(image: &mut GrayImage, xs: std::ops::Range<u32>, ys: std::ops::Range<u32>, level: u8) {
        for y in ys {
            for x in xs.clone() {
                image.put_pixel(x, y, Luma([level]));
            }
        }
    }

    #[test]
    fn digit_blobs_count_their_enclosed_paper_left_to_right() {
        let five = [
            "######", "#.....", "#.....", "#.....", "#####.", ".....#", ".....#", ".....#",
            ".....#", ".....#", "#....#", "#####.",
        ];
        let nine = [
            "######", "#....#", "#....#", "#....#", "######", ".....#", ".....#", ".....#",
            ".....#", ".....#", ".....#", "######",
        ];
        let eight = [
            "######", "#....#", "#....#", "#....#", "######", "#....#", "#....#", "#....#",
            "#....#", "#....#", "#....#", "######",
        ];
        let mut crop = GrayImage::from_pixel(130, 72, Luma([255]));
        // Out of order on purpose: the result is left to right.
        draw(&mut crop, 70, &five);
        draw(&mut crop, 40, &eight);
        draw(&mut crop, 10, &nine);
        // A speck of paper inside a stroke is JPEG noise, not a hole.
        crop.put_pixel(72, 13, Luma([255]));
        // A short blob (a dash) is no digit.
        for x in 100..120 {
            crop.put_pixel(x, 40, Luma([0]));
        }
        assert_eq!(digit_holes(&crop), [1, 2, 0]);
    }

    #[test]
    fn flattening_lifts_a_shadowed_half_to_paper_white() {
        let mut gray = GrayImage::from_pixel(120, 60, Luma([220]));
        fill(&mut gray, 0..60, 0..60, 150);
        gray.put_pixel(30, 30, Luma([40]));
        let flat = flatten(&gray);
        assert!(flat.get_pixel(10, 10).0[0] > 240);
        assert!(flat.get_pixel(100, 10).0[0] > 240);
        assert!(flat.get_pixel(30, 30).0[0] < 100);
    }

    #[test]
    fn the_digit_span_chains_neighbours_and_skips_far_ink() {
        let mut binary = GrayImage::from_pixel(600, 100, Luma([255]));
        // Three "digits" 48 tall from x=200 to 330, a speck and a far blob.
        for (x0, x1) in [(200, 230), (240, 270), (300, 330), (560, 580)] {
            fill(&mut binary, x0..x1, 26..74, 0);
        }
        binary.put_pixel(100, 50, Luma([0]));
        assert_eq!(digit_span(&binary), Some((200, 330)));
    }

    #[test]
    fn glyphs_are_counted_by_their_blobs_and_a_wide_blob_is_two() {
        let one = [
            "######", "#....#", "#....#", "#....#", "######", ".....#", ".....#", ".....#",
            ".....#", ".....#", ".....#", "######",
        ];
        let mut crop = GrayImage::from_pixel(200, 72, Luma([255]));
        draw(&mut crop, 20, &one);
        // A speck and a dash are no glyphs.
        crop.put_pixel(100, 40, Luma([0]));
        for x in 120..140 {
            crop.put_pixel(x, 40, Luma([0]));
        }
        assert_eq!(glyph_count(&crop), 1);
        // Three glyphs fused by blur into one blob wider than tall.
        fill(&mut crop, 120..190, 12..60, 0);
        assert_eq!(glyph_count(&crop), 3);
    }

    #[test]
    fn a_solid_patch_beside_the_digits_is_dropped_from_the_wide_crop() {
        // A wide crop: a dark patch (shirt beside the card) and a digit-like bar.
        let mut gray = GrayImage::from_pixel(240, 72, Luma([230]));
        fill(&mut gray, 20..70, 16..56, 30);
        fill(&mut gray, 150..160, 16..56, 30);
        let binary = binarise(&gray, 128, true);
        // `binarise` adds a 12 px margin.
        assert_eq!(binary.get_pixel(12 + 40, 12 + 30).0[0], 255, "patch kept");
        assert_eq!(binary.get_pixel(12 + 155, 12 + 30).0[0], 0, "stroke lost");
        // A tight crop keeps what is not on its edge: only context crops judge patches.
        let tight = binarise(&gray, 128, false);
        assert_eq!(tight.get_pixel(12 + 40, 12 + 30).0[0], 0);
    }

    #[test]
    fn ink_past_the_edge_of_the_card_is_not_on_the_line() {
        // A card (paper 200) from x = 100 on a darker shirt (90); digits in
        // the middle, a letter on the card beside them, a sign's glyph on the
        // shirt. Coordinates are the raw crop's; `binarise` adds 12 px.
        let (w, h) = (400u32, 80u32);
        let card = GrayImage::from_fn(w, h, |x, _| Luma([if x >= 100 { 200 } else { 90 }]));
        let mut binary = GrayImage::from_pixel(w + 24, h + 24, Luma([255]));
        for (x0, x1) in [(40, 60), (110, 130), (150, 170), (190, 210), (230, 250)] {
            fill(&mut binary, x0 + 12..x1 + 12, 28..76, 0);
        }
        let ink = |b: &GrayImage, x: u32| b.get_pixel(x + 12, 40 + 12).0[0] == 0;
        let kept = on_its_paper(&card, &binary, 1.6);
        assert!(!ink(&kept, 50), "the sign's glyph beyond the card stayed");
        assert!(ink(&kept, 120) && ink(&kept, 160) && ink(&kept, 240));
        // A plate: one paper from end to end, its letters stay.
        let plate = GrayImage::from_pixel(w, h, Luma([200]));
        let kept = on_its_paper(&plate, &binary, 1.6);
        assert!(ink(&kept, 50) && ink(&kept, 120));
    }

    #[test]
    fn otsu_splits_two_levels_between_them() {
        let mut gray = GrayImage::from_pixel(10, 10, Luma([200]));
        for x in 0..4 {
            for y in 0..10 {
                gray.put_pixel(x, y, Luma([40]));
            }
        }
        let t = otsu(&gray);
        assert!((40..200).contains(&t), "{t}");
    }

    #[test]
    fn binarising_drops_ink_on_the_edge_and_keeps_ink_inside() {
        let mut gray = GrayImage::from_pixel(40, 40, Luma([230]));
        for y in 0..40 {
            gray.put_pixel(0, y, Luma([10]));
        }
        for y in 10..30 {
            for x in 15..20 {
                gray.put_pixel(x, y, Luma([10]));
            }
        }
        let out = binarise(&gray, 100, false);
        assert_eq!(out.get_pixel(12, 12 + 20).0[0], 255, "edge blob kept");
        assert_eq!(out.get_pixel(12 + 17, 12 + 20).0[0], 0, "digit stroke lost");
    }

    #[test]
    fn a_tilted_candidate_comes_out_level_at_text_height() {
        // A dark bar along a 0.2 rad line: after straightening its rows are level.
        let angle = 0.2f32;
        let mut gray = GrayImage::from_pixel(200, 200, Luma([240]));
        for t in -40..40 {
            for k in -5..5 {
                let (s, c) = angle.sin_cos();
                let x = 100.0 + t as f32 * c - k as f32 * s;
                let y = 100.0 + t as f32 * s + k as f32 * c;
                gray.put_pixel(x as u32, y as u32, Luma([10]));
            }
        }
        let c = Candidate {
            cx: 100.0,
            cy: 100.0,
            angle,
            length: 80.0,
            height: 10.0,
            bbox: [60.0, 85.0, 140.0, 115.0],
            blobs: 1,
            score: 1.0,
            coloured: false,
            outlined: false,
        };
        let out = straighten(&gray, &c, 1.0, 0.35);
        let (w, h) = out.dimensions();
        assert!((h as f32 - TEXT_HEIGHT * 1.6).abs() < 3.0, "{h}");
        // The middle row is dark across most of its length.
        let dark = (0..w)
            .filter(|&x| out.get_pixel(x, h / 2).0[0] < 100)
            .count();
        assert!(dark as f32 > w as f32 * 0.7, "{dark} of {w}");
    }
}
