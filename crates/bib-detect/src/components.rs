//! Connected blobs of pixels: the one flood fill the candidate search (ink
//! blobs of the photo), the crops (ink blobs of a crop, holes of a digit)
//! share.

/// Which neighbours join a blob: ink is usually 8-connected (a diagonal step
/// of a stroke stays one stroke), paper 4-connected (a diagonal gap in a
/// stroke does not let the paper through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    Four,
    Eight,
}

/// A blob's box, ends exclusive, in pixels of its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
}

impl Component {
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }

    /// Touches the border of a `w` x `h` grid.
    pub fn touches_border(&self, w: usize, h: usize) -> bool {
        self.x0 == 0 || self.y0 == 0 || self.x1 == w || self.y1 == h
    }
}

/// Calls `each` with every connected blob of the pixels of a `w` x `h` grid
/// (row-major indices) for which `set` holds, in the order of their first
/// pixel, with the blob's pixel indices.
pub fn for_each(
    w: usize,
    h: usize,
    connectivity: Connectivity,
    set: impl Fn(usize) -> bool,
    mut each: impl FnMut(&Component, &[usize]),
) {
    let mut seen = vec![false; w * h];
    let mut stack = Vec::new();
    let mut members = Vec::new();
    let four: &[(i64, i64)] = &[(-1, 0), (1, 0), (0, -1), (0, 1)];
    let eight: &[(i64, i64)] = &[
        (-1, -1),
        (0, -1),
        (1, -1),
        (-1, 0),
        (1, 0),
        (-1, 1),
        (0, 1),
        (1, 1),
    ];
    let steps = match connectivity {
        Connectivity::Four => four,
        Connectivity::Eight => eight,
    };
    for start in 0..w * h {
        if seen[start] || !set(start) {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        members.clear();
        let mut c = Component {
            x0: usize::MAX,
            x1: 0,
            y0: usize::MAX,
            y1: 0,
        };
        while let Some(i) = stack.pop() {
            members.push(i);
            let (x, y) = (i % w, i / w);
            c.x0 = c.x0.min(x);
            c.x1 = c.x1.max(x + 1);
            c.y0 = c.y0.min(y);
            c.y1 = c.y1.max(y + 1);
            for &(dx, dy) in steps {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if !seen[j] && set(j) {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        each(&c, &members);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagonal_step_joins_eight_connected_pixels_only() {
        // Two pixels touching at a corner, and one apart.
        let (w, h) = (5, 3);
        let set = |i: usize| [0, 6, 4].contains(&i);
        let mut four = Vec::new();
        for_each(w, h, Connectivity::Four, set, |c, m| {
            four.push((*c, m.len()))
        });
        let mut eight = Vec::new();
        for_each(w, h, Connectivity::Eight, set, |c, m| {
            eight.push((*c, m.len()))
        });
        assert_eq!(four.len(), 3);
        assert_eq!(eight.len(), 2);
        let joined = Component {
            x0: 0,
            x1: 2,
            y0: 0,
            y1: 2,
        };
        assert_eq!(eight[0], (joined, 2));
        assert!(joined.touches_border(w, h));
        assert_eq!((joined.width(), joined.height()), (2, 2));
    }
}
