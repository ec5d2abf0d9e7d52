//! `cargo bench -p qr-worker --bench qr [-- SECONDS]`: renders and PNG-encodes QR
//! codes of typical content on one thread for SECONDS (default 5) with the
//! default options, then prints `qr_per_s_per_core=N` and `qr_png_bytes=N` on
//! stdout (details on stderr as `# ...`); then the render bound, the same on
//! `QR_RENDER_THREADS` threads at once (default: the machine's cores, the
//! worker's default), as `qr_render_threads=N` and `qr_render_bound_per_s=N`:
//! what a worker rendering and doing nothing else could drain.
//! `scripts/bench.sh gateway` and `scripts/bench-qr.sh` run it.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use qr_worker::render::{self, RenderOptions};

fn main() -> ExitCode {
    // `cargo bench` passes `--bench` to every benchmark; it is no SECONDS.
    let seconds = match std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map(|s| s.parse::<f64>())
    {
        None => 5.0,
        Some(Ok(s)) if s > 0.0 && s.is_finite() => s,
        Some(_) => {
            eprintln!(
                "usage: cargo bench -p qr-worker --bench qr [-- SECONDS]   (a positive number, default 5)"
            );
            return ExitCode::from(64);
        }
    };
    let options = RenderOptions::default();
    let budget = Duration::from_secs_f64(seconds);

    // Warm-up: allocator, caches, CPU frequency.
    let warmup = Instant::now();
    while warmup.elapsed() < Duration::from_millis(200) {
        black_box(render::png("PERSON:V-10000000", &options).expect("renders"));
    }

    let (count, bytes, elapsed) = render_for(budget, &options, 0);
    eprintln!(
        "# {count} QR PNGs in {elapsed:.2} s on one thread ({}x{} px target, margin {}, ECC {})",
        options.size, options.size, options.margin, options.ecc
    );
    println!("qr_per_s_per_core={:.0}", count as f64 / elapsed);
    println!("qr_png_bytes={}", bytes / count.max(1));

    let threads = std::env::var("QR_RENDER_THREADS")
        .ok()
        .and_then(|t| t.trim().parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || render_for(budget, &options, t as u64 * 1_000_000).0))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a render thread"))
            .sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("# {total} QR PNGs in {elapsed:.2} s on {threads} threads at once");
    println!("qr_render_threads={threads}");
    println!("qr_render_bound_per_s={:.0}", total as f64 / elapsed);
    ExitCode::SUCCESS
}

/// Renders for `budget`, contents numbered from `first`; (count, bytes, seconds).
fn render_for(budget: Duration, options: &RenderOptions, first: u64) -> (u64, u64, f64) {
    let started = Instant::now();
    let (mut count, mut bytes) = (0u64, 0u64);
    while started.elapsed() < budget {
        // Vary the content like real registrations do.
        let content = format!("PERSON:V-{}", 12_345_678 + (first + count) % 10_000_000);
        let png = render::png(&content, options).expect("renders");
        bytes += png.len() as u64;
        count += 1;
        black_box(png);
    }
    (count, bytes, started.elapsed().as_secs_f64())
}
