//! Candidate search: where in a photo a bib number may be.
//!
//! A bib is dark digit strokes on a pale patch. Rather than look for the patch's
//! edges (often lost against a white shirt, a crease or a shadow), the search looks
//! for the strokes: pixels darker than their neighbourhood, joined into blobs of a
//! digit's shape, chained into lines of blobs of one height. A line is a candidate
//! when what surrounds its strokes is pale, unsaturated and bounded (a bib ends a
//! digit-height or so above and below its number; sky and walls do not).
//! The local threshold runs at two window sizes because one window cannot serve
//! both 10 px digits on a dark shirt and 150 px digits with 25 px strokes.

use crate::components::{self, Connectivity};
use image::{GrayImage, RgbImage};

/// Where a number may be, in the coordinates of the searched image.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Centre of the digit line.
    pub cx: f32,
    pub cy: f32,
    /// Direction of the line in radians (positive: clockwise in image coordinates).
    pub angle: f32,
    /// Extent of the strokes along and across the line.
    pub length: f32,
    pub height: f32,
    /// Axis-aligned box of the strokes: x0, y0, x1, y1.
    pub bbox: [f32; 4],
    /// Number of blobs in the line (digits, unless some touch or break).
    pub blobs: usize,
    /// How bib-like the line's surround is: the share of its paper that is
    /// uniformly paper-coloured (0.7 to 1). When a photo holds more candidates
    /// than OCR may read, the highest scores are read.
    pub score: f32,
    /// Its paper is a coloured (or deeply shaded) card rather than pale paper:
    /// fewer than three digits on it are not taken for a bib (see `read`) unless
    /// the card is `outlined`.
    pub coloured: bool,
    /// The coloured paper's outline was found: its colour stops at a straight
    /// edge on all four sides, and it is wider than tall. A card, not a shirt
    /// with a number printed on it.
    pub outlined: bool,
}

/// A connected blob of dark pixels.
#[derive(Debug, Clone, Copy)]
struct Blob {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    area: u32,
}

impl Blob {
    fn w(&self) -> u32 {
        self.x1 - self.x0
    }
    fn h(&self) -> u32 {
        self.y1 - self.y0
    }
    fn cx(&self) -> f32 {
        (self.x0 + self.x1) as f32 / 2.0
    }
    fn cy(&self) -> f32 {
        (self.y0 + self.y1) as f32 / 2.0
    }
}

/// Why a digit line did not become a candidate (for [`find_traced`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// More blobs than a bib's digits, or a lone blob under 15 px.
    Shape,
    /// A blob touches the photo's border.
    Border,
    /// The surround is not a bib's paper (no trim of the line passed).
    Surround,
}

/// Finds candidate digit lines in `rgb` (with `gray` its luma).
#[cfg(test)]
pub fn find(rgb: &RgbImage, gray: &GrayImage, max_blobs: usize) -> Vec<Candidate> {
    find_traced(rgb, gray, max_blobs, None)
}

/// [`find`], also noting in `rejected` the box (x0, y0, x1, y1) of every digit line
/// that did not become a candidate, and why: where a missed bib was lost.
pub fn find_traced(
    rgb: &RgbImage,
    gray: &GrayImage,
    max_blobs: usize,
    mut rejected: Option<&mut Vec<([f32; 4], Rejected)>>,
) -> Vec<Candidate> {
    let (w, h) = gray.dimensions();
    let integral = Integral::new(gray);
    let short = w.min(h);
    let mut out: Vec<Candidate> = Vec::new();
    for radius in [(short / 60).max(5), (short / 14).max(12)] {
        let dark = dark_mask(gray, &integral, radius);
        let blobs = blobs(&dark, w, h);
        let digit_like: Vec<Blob> = blobs.into_iter().filter(|b| digit_shaped(b, h)).collect();
        for line in lines(&digit_like) {
            // A lone blob must be big enough to be read as a digit with any certainty.
            let members: Vec<Blob> = line.iter().map(|&i| digit_like[i]).collect();
            let mut reject = |why: Rejected| {
                if let Some(sink) = rejected.as_deref_mut() {
                    sink.push((candidate(&members).bbox, why));
                }
            };
            if line.len() > max_blobs || (line.len() == 1 && digit_like[line[0]].h() < 15) {
                reject(Rejected::Shape);
                continue;
            }
            // A number cut by the frame cannot be read whole.
            if line.iter().any(|&i| {
                let b = digit_like[i];
                b.x0 == 0 || b.y0 == 0 || b.x1 >= w || b.y1 >= h
            }) {
                reject(Rejected::Border);
                continue;
            }
            // A line can pick up a stray blob at an end (the shirt's edge beside the bib,
            // a pin): when the whole line fails, try it without its ends.
            let n = members.len();
            let trims: &[(usize, usize)] = if n >= 3 {
                &[(0, n), (1, n), (0, n - 1), (1, n - 1)]
            } else if n == 2 {
                &[(0, 2), (1, 2), (0, 1)]
            } else {
                &[(0, 1)]
            };
            // Of the passing versions, one on a card whose outline shows (a stray blob
            // at an end hides the card's edge there), then the longest, then the one
            // on the most uniform paper. A lone blob left by a trim is held to the
            // same height as any lone blob.
            let Some(candidate) = trims
                .iter()
                .filter(|&&(from, to)| to - from > 1 || members[from].h() >= 15)
                .filter_map(|&(from, to)| {
                    let c = candidate(&members[from..to]);
                    bib_surround(rgb, gray, &dark, &c).map(|paper| Candidate {
                        score: paper.score,
                        coloured: paper.coloured,
                        outlined: paper.outlined,
                        ..c
                    })
                })
                .max_by(|a, b| {
                    (a.outlined, a.blobs)
                        .cmp(&(b.outlined, b.blobs))
                        .then(a.score.total_cmp(&b.score))
                })
            else {
                reject(Rejected::Surround);
                continue;
            };
            // The two window sizes often find the same line: keep the one with more
            // blobs (part of a number can pass on its own), else the first.
            match out.iter_mut().find(|c| same_place(c, &candidate)) {
                Some(kept) if candidate.blobs > kept.blobs => *kept = candidate,
                Some(_) => {}
                None => out.push(candidate),
            }
        }
    }
    out
}

/// Summed-area table for window means in constant time.
struct Integral {
    w: usize,
    sums: Vec<u64>,
}

impl Integral {
    fn new(gray: &GrayImage) -> Self {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        let mut sums = vec![0u64; (w + 1) * (h + 1)];
        let raw = gray.as_raw();
        for y in 0..h {
            let mut row = 0u64;
            for x in 0..w {
                row += u64::from(raw[y * w + x]);
                sums[(y + 1) * (w + 1) + x + 1] = sums[y * (w + 1) + x + 1] + row;
            }
        }
        Self { w, sums }
    }

    /// Mean over the half-open rectangle [x0, x1) x [y0, y1).
    fn mean(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> f32 {
        let s = |x: usize, y: usize| self.sums[y * (self.w + 1) + x];
        let total = s(x1, y1) + s(x0, y0) - s(x1, y0) - s(x0, y1);
        total as f32 / ((x1 - x0) * (y1 - y0)).max(1) as f32
    }
}

/// Pixels clearly darker than the mean of the window around them (Bradley's method,
/// with an absolute margin so flat regions and noise stay clear).
fn dark_mask(gray: &GrayImage, integral: &Integral, radius: u32) -> Vec<bool> {
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let r = radius as usize;
    let raw = gray.as_raw();
    let mut mask = vec![false; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let mean = integral.mean(x0, y0, x1, y1);
            let p = f32::from(raw[y * w + x]);
            mask[y * w + x] = p < mean * 0.85 && mean - p > 20.0;
        }
    }
    mask
}

/// 8-connected blobs of `mask`.
fn blobs(mask: &[bool], w: u32, h: u32) -> Vec<Blob> {
    let mut out = Vec::new();
    let (w, h) = (w as usize, h as usize);
    components::for_each(
        w,
        h,
        Connectivity::Eight,
        |i| mask[i],
        |c, members| {
            out.push(Blob {
                x0: c.x0 as u32,
                y0: c.y0 as u32,
                x1: c.x1 as u32,
                y1: c.y1 as u32,
                area: members.len() as u32,
            });
        },
    );
    out
}

/// Could this blob be a digit (or two touching digits)?
fn digit_shaped(b: &Blob, image_height: u32) -> bool {
    let (w, h) = (b.w() as f32, b.h() as f32);
    if b.h() < 7 || b.h() > image_height / 3 {
        return false;
    }
    let aspect = w / h;
    let fill = b.area as f32 / (w * h);
    // A "1" can be a bare bar; blur fuses up to five digits into one blob 4 heights wide.
    (0.08..=4.5).contains(&aspect) && (0.15..=0.95).contains(&fill)
}

/// Chains blobs of about one height, side by side, into lines; returns index lists
/// ordered left to right.
fn lines(blobs: &[Blob]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| blobs[i].x0);
    let mut parent: Vec<usize> = (0..blobs.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (k, &a) in order.iter().enumerate() {
        let ba = blobs[a];
        let ha = ba.h() as f32;
        for &b in &order[k + 1..] {
            let bb = blobs[b];
            let hb = bb.h() as f32;
            let gap = bb.x0 as f32 - ba.x1 as f32;
            if gap > ha * 1.6 {
                break;
            }
            let hmax = ha.max(hb);
            let similar = ha.min(hb) / hmax > 0.6;
            let beside = gap < hmax * 1.2 && gap > -hmax * 0.3 && bb.cx() > ba.cx();
            let level = (ba.cy() - bb.cy()).abs() < hmax * 0.5;
            if similar && beside && level {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra] = rb;
            }
        }
    }
    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for &i in &order {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().collect()
}

fn candidate(members: &[Blob]) -> Candidate {
    // The line's direction from the blobs' centres (least squares), level for one blob.
    let n = members.len() as f32;
    let mx = members.iter().map(Blob::cx).sum::<f32>() / n;
    let my = members.iter().map(Blob::cy).sum::<f32>() / n;
    let sxx: f32 = members.iter().map(|b| (b.cx() - mx).powi(2)).sum();
    let sxy: f32 = members.iter().map(|b| (b.cx() - mx) * (b.cy() - my)).sum();
    let angle = if members.len() >= 2 && sxx > 1.0 {
        (sxy / sxx).atan().clamp(-0.45, 0.45)
    } else {
        0.0
    };
    let (s, c) = angle.sin_cos();
    let (mut a0, mut a1, mut n0, mut n1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for b in members {
        for (x, y) in [(b.x0, b.y0), (b.x1, b.y0), (b.x0, b.y1), (b.x1, b.y1)] {
            let (x, y) = (x as f32, y as f32);
            let (dx, dy) = (x - mx, y - my);
            let along = dx * c + dy * s;
            let across = -dx * s + dy * c;
            a0 = a0.min(along);
            a1 = a1.max(along);
            n0 = n0.min(across);
            n1 = n1.max(across);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    // The rotated box of axis-aligned blob boxes is a little tall: shrink it by the
    // share the rotation added, so the crop stays tight on the digits.
    let height = ((n1 - n0) - (a1 - a0) * s.abs() * 0.5).max((n1 - n0) * 0.7);
    let (am, nm) = ((a0 + a1) / 2.0, (n0 + n1) / 2.0);
    Candidate {
        cx: mx + am * c - nm * s,
        cy: my + am * s + nm * c,
        angle,
        length: a1 - a0,
        height,
        bbox: [x0, y0, x1, y1],
        blobs: members.len(),
        score: 0.0,
        coloured: false,
        outlined: false,
    }
}

/// What the paper around a line that passed [`bib_surround`] is.
struct Paper {
    /// The share of the paper that is uniformly paper-coloured.
    score: f32,
    /// A coloured card (or one in deep shade) rather than pale paper.
    coloured: bool,
    /// A coloured card whose outline was found on all four sides.
    outlined: bool,
}

/// Is the line's surround a pale, unsaturated patch that ends above and below it,
/// or a coloured card?
fn bib_surround(rgb: &RgbImage, gray: &GrayImage, dark: &[bool], c: &Candidate) -> Option<Paper> {
    let (w, h) = gray.dimensions();
    let (s, co) = c.angle.sin_cos();
    let at = |along: f32, across: f32| -> Option<(u32, u32)> {
        let x = c.cx + along * co - across * s;
        let y = c.cy + along * s + across * co;
        (x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32).then_some((x as u32, y as u32))
    };
    // Paper: the non-stroke pixels of the box around the digits, a quarter digit taller
    // and only a little longer (numbers can fill their bib's width).
    let (half_l, half_h) = (
        c.length / 2.0 + c.height * 0.1,
        c.height / 2.0 + c.height * 0.25,
    );
    let mut paper = Vec::new();
    let mut ink = Vec::new();
    let mut saturations = Vec::new();
    let mut colours: [Vec<u8>; 3] = Default::default();
    let steps = 24;
    for i in 0..=steps {
        for j in 0..=steps {
            let along = -half_l + 2.0 * half_l * i as f32 / steps as f32;
            let across = -half_h + 2.0 * half_h * j as f32 / steps as f32;
            let Some((x, y)) = at(along, across) else {
                continue;
            };
            let v = gray.get_pixel(x, y).0[0];
            if dark[(y * w + x) as usize] {
                ink.push(v);
            } else {
                paper.push(v);
                let [r, g, b] = rgb.get_pixel(x, y).0;
                for (channel, v) in colours.iter_mut().zip([r, g, b]) {
                    channel.push(v);
                }
                let (max, min) = (r.max(g).max(b), r.min(g).min(b));
                saturations.push(
                    u8::try_from(u16::from(max - min) * 255 / u16::from(max.max(1))).unwrap_or(255),
                );
            }
        }
    }
    if paper.len() < 20 || ink.is_empty() {
        return None;
    }
    let saturation = f32::from(median(&mut saturations)) / 255.0;
    let paper_level = median(&mut paper);
    let ink_level = median(&mut ink);
    // A pale patch: light enough, clearly lighter than the strokes, mostly uniform,
    // and unsaturated unless it is bright (yellow, orange and green bibs exist).
    let uniform = paper
        .iter()
        .filter(|&&v| f32::from(v) > f32::from(paper_level) * 0.75)
        .count() as f32
        / paper.len() as f32;
    if uniform < 0.7 {
        return None;
    }
    let pale = paper_level >= 85
        && paper_level >= ink_level.saturating_add(45)
        && (saturation <= 0.5 || paper_level >= 165);
    // A coloured card (red, blue, green, orange in shade) or any card in deep shade:
    // not pale, but its ink is far darker than it, and the card ends close to the
    // digits. A banner or a wall goes on well past its number.
    let mut outlined = false;
    // Bright saturated paper (a yellow or orange card, or a yellow shirt) passes as
    // pale, but one or two digits on it are a card's only as on any coloured paper.
    let bright_colour = pale && saturation > 0.5;
    let paper_colour = colours.clone().map(|mut channel| median(&mut channel));
    if bright_colour {
        outlined = card_outline(rgb, &at, c, paper_colour).is_some_and(|o| o.is_card());
        if !outlined && c.length < 1.6 * c.height {
            return None;
        }
    }
    if !pale {
        // One colour, not just one lightness: a pale patch's luma test lets white
        // beside red pass, a card's must not. Only the paper's light samples count
        // (those beside the strokes are blurred into them).
        let light: Vec<[u8; 3]> = (0..colours[0].len())
            .map(|i| [colours[0][i], colours[1][i], colours[2][i]])
            .filter(|&[r, g, b]| {
                let luma = (u32::from(r) * 77 + u32::from(g) * 150 + u32::from(b) * 29) >> 8;
                luma as f32 > f32::from(paper_level) * 0.85
            })
            .collect();
        let same_colour = light
            .iter()
            .filter(|&&p| like_colour(p, paper_colour))
            .count();
        // The ink's contrast is a ratio: in deep shade (paper at luma 50) the ink
        // keeps its share of the light, not its distance in levels; 20 levels stay
        // clear of JPEG noise.
        // The card ends close above or below the digits, or its whole outline
        // shows (a big number's card can have wider margins than the near band).
        // Three digits or more: a patch bounded all round is a card, whatever its
        // shape (in deep shade a shirt's colour is hard to tell from the card's).
        let outline = card_outline(rgb, &at, c, paper_colour);
        outlined = outline.as_ref().is_some_and(Outline::is_card);
        let card = same_colour as f32 >= 0.6 * light.len().max(1) as f32
            && u16::from(ink_level) * 5 <= u16::from(paper_level) * 3
            && paper_level >= ink_level.saturating_add(20)
            && (outline.is_some() || card_edge_near(rgb, &at, c, paper_colour));
        if !card {
            return None;
        }
        // Fewer than three digits on coloured paper are a bib's only on a card
        // whose whole outline shows (see `read`): a line shorter than 1.6 heights
        // cannot hold three, and is not worth reading otherwise.
        if !outlined && c.length < 1.6 * c.height {
            return None;
        }
    }
    let like_paper = |v: u8| f32::from(v) > f32::from(paper_level) * 0.85;
    // A lone digit sits in the middle of its bib, with paper well to either side of it;
    // a dark blob between crowd heads or in a sign's corner has not.
    if c.blobs == 1 {
        // And its card's outline shows: a gap between heads in a crowd or a
        // patch of sky has paper beside it too, but no edge all round.
        if !outlined && !card_outline(rgb, &at, c, paper_colour).is_some_and(|o| o.is_card()) {
            return None;
        }
        let mut beside = 0;
        for side in [-1.0f32, 1.0] {
            for across in [-0.25f32, 0.0, 0.25] {
                let along = side * (c.length / 2.0 + c.height * 0.4);
                if let Some((x, y)) = at(along, across * c.height)
                    // Within the card's outline, shade or a gradient across it
                    // can darken one side by a third.
                    && f32::from(gray.get_pixel(x, y).0[0]) > f32::from(paper_level) * 0.6
                    && !dark[(y * w + x) as usize]
                {
                    beside += 1;
                }
            }
        }
        if beside < 5 {
            return None;
        }
    }
    // Bounded: two and a half digit heights above and below, most pixels are not paper.
    let mut bounded_sides = 0;
    for side in [-1.0f32, 1.0] {
        let mut light = 0;
        let mut total = 0;
        for i in 0..=16 {
            let along = -c.length / 2.0 + c.length * i as f32 / 16.0;
            for k in [2.3f32, 2.8] {
                if let Some((x, y)) = at(along, side * c.height * k) {
                    total += 1;
                    let v = gray.get_pixel(x, y).0[0];
                    let [r, g, b] = rgb.get_pixel(x, y).0;
                    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
                    let sat = f32::from(max - min) / f32::from(max.max(1));
                    if like_paper(v) && sat < 0.5 {
                        light += 1;
                    }
                }
            }
        }
        if total == 0 || (light as f32) < 0.6 * total as f32 {
            bounded_sides += 1;
        }
    }
    (bounded_sides >= 1).then_some(Paper {
        score: uniform,
        coloured: !pale || bright_colour,
        outlined,
    })
}

/// The outline of the coloured paper around a line, when its colour stops at a
/// straight edge on all four sides (before and after the number too, not only
/// above or below it).
struct Outline {
    /// Width over height of the patch the edges enclose.
    aspect: f32,
}

impl Outline {
    /// A bib card's, not a shirt's: a number printed on a shirt has colour that
    /// runs on into the torso, below it most of all; a bib card is a landscape
    /// rectangle pinned on it, 1.25 to 1.6 times as wide as tall. (A neighbour's
    /// shirt of a like colour can hide a jersey's edge and make it look squarer.)
    fn is_card(&self) -> bool {
        self.aspect >= 1.15
    }
}

fn card_outline(
    rgb: &RgbImage,
    at: &impl Fn(f32, f32) -> Option<(u32, u32)>,
    c: &Candidate,
    paper: [u8; 3],
) -> Option<Outline> {
    let step = c.height * 0.1;
    // How far past `start` (in digit heights) the paper's colour runs along the ray
    // from (along, across) in direction (da, dn): where four samples in a row (0.4
    // digit heights; a name line's strokes are thinner) are not the paper's colour.
    // The colour is followed along the ray: lighting changes it gradually
    // across a card (a gradient of 30% moves an orange card's red by 60
    // levels), the card's edge at once.
    let reach = |along: f32, across: f32, (da, dn): (f32, f32), limit: f32| -> Option<f32> {
        let mut unlike = 0;
        let mut colour = paper;
        for i in 0..=(limit / 0.1) as usize {
            let d = i as f32 * step;
            let (x, y) = at(along + da * d, across + dn * d)?;
            let p = rgb.get_pixel(x, y).0;
            if like_colour(p, colour) && (i > 0 || like_colour(p, paper)) {
                colour = p;
                unlike = 0;
            } else if i == 0 && like_shaded(p, paper) {
                colour = p;
            } else {
                unlike += 1;
                if unlike == 4 {
                    return Some((i + 1 - 4) as f32 * 0.1);
                }
            }
        }
        None
    };
    // One side's edge: most rays stop, at about one distance (a straight edge
    // parallel to the line; a number can fill its card's width, so right beside
    // the digits counts).
    let edge = |reaches: Vec<Option<f32>>| -> Option<f32> {
        let mut stops: Vec<f32> = reaches.into_iter().flatten().collect();
        stops.sort_by(f32::total_cmp);
        let median = *stops.get(stops.len() / 2)?;
        let straight = stops
            .iter()
            .filter(|&&d| (d - median).abs() <= 0.35)
            .count();
        (straight + 1 >= stops.len().max(3)).then_some(median)
    };
    let (half_l, half_h) = (c.length / 2.0 + step * 0.5, c.height / 2.0 + step * 0.5);
    let mut sides = [0.0f32; 4];
    for (k, side) in [-1.0f32, 1.0].into_iter().enumerate() {
        let across =
            [-0.3f32, 0.0, 0.3].map(|f| reach(side * half_l, f * c.height, (side, 0.0), 3.5));
        sides[k] = edge(across.to_vec())?;
        let along = [-0.5f32, -0.25, 0.0, 0.25, 0.5]
            .map(|f| reach(f * c.length, side * half_h, (0.0, side), 2.5));
        sides[2 + k] = edge(along.to_vec())?;
    }
    let wide = c.length / c.height + 0.1 + sides[0] + sides[1];
    let tall = 1.1 + sides[2] + sides[3];
    Some(Outline {
        aspect: wide / tall,
    })
}

/// Does the paper colour around a line stop within about a digit height of its
/// digits, above or below? A bib card's margins are narrower than that (a sponsor
/// band or the card's edge comes first); a banner or a wall carries on.
fn card_edge_near(
    rgb: &RgbImage,
    at: &impl Fn(f32, f32) -> Option<(u32, u32)>,
    c: &Candidate,
    paper: [u8; 3],
) -> bool {
    // A long number's height is set by the card's width, not its height, so its
    // margins above and below are wider: look a little further out too. (One or
    // two digits, a shirt's number, keep to the near band.)
    let bands: &[[f32; 2]] = if c.length >= 3.0 * c.height {
        &[[1.5, 1.65], [1.9, 2.2]]
    } else {
        &[[1.5, 1.65]]
    };
    [-1.0f32, 1.0].into_iter().any(|side| {
        bands.iter().any(|band| {
            let (mut same, mut total) = (0, 0);
            for i in 0..=16 {
                let along = -c.length / 2.0 + c.length * i as f32 / 16.0;
                for k in band {
                    if let Some((x, y)) = at(along, side * c.height * k) {
                        total += 1;
                        if like_colour(rgb.get_pixel(x, y).0, paper) {
                            same += 1;
                        }
                    }
                }
            }
            total > 0 && (same as f32) < 0.5 * total as f32
        })
    })
}

/// `paper` in more or less light: within 30 levels in each channel once
/// brought to the same brightness, and no more than 30% lighter or darker.
fn like_shaded(p: [u8; 3], paper: [u8; 3]) -> bool {
    let sum = |c: [u8; 3]| c.iter().map(|&v| f32::from(v)).sum::<f32>().max(1.0);
    let k = sum(paper) / sum(p);
    (0.7..=1.43).contains(&k)
        && p.iter()
            .zip(paper)
            .all(|(&v, q)| (f32::from(v) * k - f32::from(q)).abs() <= 30.0)
}

/// Within 30 levels of `paper` in each channel.
fn like_colour(p: [u8; 3], paper: [u8; 3]) -> bool {
    p.iter()
        .zip(paper)
        .all(|(&v, q)| (i16::from(v) - i16::from(q)).abs() <= 30)
}

fn median(values: &mut [u8]) -> u8 {
    let mid = values.len() / 2;
    *values.select_nth_unstable(mid).1
}

/// Do two candidates cover the same digits? Overlapping boxes of different heights
/// do not: a bogus tall "line" across a torso must not hide the bib on it.
fn same_place(a: &Candidate, b: &Candidate) -> bool {
    let ratio = a.height.min(b.height) / a.height.max(b.height).max(1e-3);
    ratio > 0.67 && overlap(&a.bbox, &b.bbox) > 0.5
}

/// Intersection over the smaller box's area.
pub fn overlap(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f32; 4]| ((r[2] - r[0]) * (r[3] - r[1])).max(1.0);
    iw * ih / area(a).min(area(b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{Luma, Rgb};

    /// Draws a white patch with three crude dark "7"s into the 200 x 150 cell
    /// of `rgb` at (`left`, `top`); the rest of the cell is left as it is.
    pub(crate) fn draw_bib_like(rgb: &mut RgbImage, left: u32, top: u32) {
        for y in 40..110 {
            for x in 40..160 {
                rgb.put_pixel(left + x, top + y, Rgb([245, 245, 245]));
            }
        }
        draw_sevens(rgb, left + 65, top + 55, 3);
    }

    /// `count` crude dark "7"s, 20 x 40 px at 25 px pitch, from (`left`, `top`).
    fn draw_sevens(rgb: &mut RgbImage, left: u32, top: u32, count: u32) {
        for k in 0..count {
            let x0 = left + k * 25;
            for y in 0..40 {
                for x in x0..x0 + 20 {
                    let bar = y < 6;
                    let stem = x >= x0 + 13 - y / 6 && x < x0 + 19 - y / 6;
                    if bar || stem {
                        rgb.put_pixel(x, top + y, Rgb([20, 20, 20]));
                    }
                }
            }
        }
    }

    /// `count` "7"s in the middle of a `w` x `h` patch of `card` on `ground`.
    fn sevens_on(card: [u8; 3], ground: [u8; 3], w: u32, h: u32, count: u32) -> Vec<Candidate> {
        let mut rgb = RgbImage::from_pixel(w + 120, h + 120, Rgb(ground));
        for y in 60..60 + h {
            for x in 60..60 + w {
                rgb.put_pixel(x, y, Rgb(card));
            }
        }
        draw_sevens(
            &mut rgb,
            60 + (w - count * 25 + 5) / 2,
            60 + h / 2 - 20,
            count,
        );
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        find(&rgb, &gray, 8)
    }

    /// "77" in the middle of a `w` x `h` patch of orange on a grey ground.
    fn two_digits_on_orange(w: u32, h: u32) -> Vec<Candidate> {
        sevens_on([240, 120, 20], [90, 90, 100], w, h, 2)
    }

    #[test]
    fn three_digits_on_a_card_in_deep_shade_are_a_coloured_candidate() {
        // Paper at luma 50, ink at 10 (40 levels: a fifth of the light), on a
        // dark blue shirt.
        let found = sevens_on([50, 50, 50], [10, 10, 70], 160, 110, 3);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].coloured, "{found:?}");
        assert_eq!(found[0].blobs, 3);
    }

    #[test]
    fn a_coloured_card_lit_unevenly_still_shows_its_whole_outline() {
        // The orange card of the test below, lit 35% less at its left edge than
        // at its right (issue 17: a lighting gradient hid the edge of "45").
        let (w, h) = (160u32, 110u32);
        let mut rgb = RgbImage::from_pixel(w + 120, h + 120, Rgb([90, 90, 100]));
        for y in 60..60 + h {
            for x in 60..60 + w {
                let light = 0.65 + 0.35 * (x - 60) as f32 / w as f32;
                let [r, g, b] = [240.0f32, 120.0, 20.0].map(|v| (v * light) as u8);
                rgb.put_pixel(x, y, Rgb([r, g, b]));
            }
        }
        draw_sevens(&mut rgb, 60 + (w - 45) / 2, 60 + h / 2 - 20, 2);
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let found = find(&rgb, &gray, 8);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].coloured && found[0].outlined, "{found:?}");
    }

    #[test]
    fn a_lone_digit_needs_a_card_around_it_not_open_pale_ground() {
        // One 7 on a white card on a dark shirt, and the same 7 on a pale band
        // that runs on to either side (sky between heads, a banner), bounded
        // above and below but not before and after.
        let pale_from = |x0: u32, x1: u32| {
            let mut rgb = RgbImage::from_pixel(400, 260, Rgb([60, 40, 90]));
            for y in 80..180 {
                for x in x0..x1 {
                    rgb.put_pixel(x, y, Rgb([235, 235, 230]));
                }
            }
            draw_sevens(&mut rgb, 195, 110, 1);
            rgb
        };
        let on_card = pale_from(140, 270);
        let open = pale_from(0, 400);
        for rgb in [&on_card, &open] {
            let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
            let found = find(rgb, &gray, 8);
            let expected = usize::from(std::ptr::eq(rgb, &on_card));
            assert_eq!(found.len(), expected, "{found:?}");
        }
    }

    #[test]
    fn two_digits_on_a_coloured_card_with_its_whole_outline_are_a_candidate() {
        // A card 160 x 110 px: its colour stops on all four sides, wider than tall.
        let found = two_digits_on_orange(160, 110);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].coloured && found[0].outlined, "{found:?}");
        assert_eq!(found[0].blobs, 2);
    }

    #[test]
    fn two_digits_on_a_shirt_taller_than_wide_are_no_candidate() {
        // A jersey's number: the colour runs on below it, into the torso.
        assert!(two_digits_on_orange(110, 200).is_empty());
        // A banner: the colour runs on past either end.
        let found = two_digits_on_orange(460, 110);
        assert!(found.iter().all(|c| !c.outlined), "{found:?}");
        assert!(found.is_empty(), "{found:?}");
    }

    /// A white patch with three crude dark "7"s on a red shirt.
    fn bib_like() -> (RgbImage, GrayImage) {
        let mut rgb = RgbImage::from_pixel(200, 150, Rgb([180, 30, 30]));
        draw_bib_like(&mut rgb, 0, 0);
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        (rgb, gray)
    }

    #[test]
    fn dark_bars_on_a_pale_patch_make_one_candidate_line() {
        let (rgb, gray) = bib_like();
        let found = find(&rgb, &gray, 8);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c.blobs, 3);
        assert!(
            (c.cx - 99.0).abs() < 3.0 && (c.cy - 75.0).abs() < 3.0,
            "{c:?}"
        );
        assert!(c.angle.abs() < 0.05);
    }

    #[test]
    fn the_same_bars_printed_on_a_saturated_shirt_are_no_candidate() {
        // The shirt goes on past the digits: no card edge near them.
        let (mut rgb, _) = bib_like();
        for p in rgb.pixels_mut() {
            if p.0 != [20, 20, 20] {
                *p = Rgb([240, 120, 20]);
            }
        }
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        assert!(find(&rgb, &gray, 8).is_empty());
    }

    #[test]
    fn the_same_bars_on_a_coloured_card_are_a_coloured_candidate() {
        // An orange card (too dark and saturated for pale paper) on a red shirt.
        let (mut rgb, _) = bib_like();
        for p in rgb.pixels_mut() {
            if p.0 == [245, 245, 245] {
                *p = Rgb([240, 120, 20]);
            }
        }
        let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
        let found = find(&rgb, &gray, 8);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].coloured);
        let (white, white_gray) = bib_like();
        assert!(!find(&white, &white_gray, 8)[0].coloured);
    }

    #[test]
    fn the_window_mean_is_exact() {
        let mut gray = GrayImage::new(4, 3);
        for (i, p) in gray.pixels_mut().enumerate() {
            *p = Luma([i as u8]);
        }
        let integral = Integral::new(&gray);
        assert_eq!(integral.mean(1, 1, 3, 3), (5.0 + 6.0 + 9.0 + 10.0) / 4.0);
    }

    #[test]
    fn a_tilted_line_reports_its_angle() {
        let members: Vec<Blob> = (0..4)
            .map(|i| Blob {
                x0: 10 + i * 20,
                y0: 10 + i * 5,
                x1: 22 + i * 20,
                y1: 40 + i * 5,
                area: 200,
            })
            .collect();
        let c = candidate(&members);
        assert!((c.angle - (5.0f32 / 20.0).atan()).abs() < 1e-3, "{c:?}");
        assert_eq!(c.blobs, 4);
    }
}
