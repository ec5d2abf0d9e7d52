//! `bib-detect generate --seed N --count M --out DIR [--fonts held-out|tuning|all|wide-tuning|wide-held-out] [--style standard|two-tone|low-res|vivid|race]`
//! `bib-detect eval DIR [--threads N]`
//! `bib-detect trace PHOTO`

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use bib_detect::eval::{self, Label};
use bib_detect::generate::{self, FontChoice, FontSet, Style};
use bib_detect::{Detector, DetectorConfig};

const USAGE: &str = "usage:
  bib-detect generate --seed N --count M --out DIR [--fonts held-out|tuning|all|wide-tuning|wide-held-out] [--style standard|two-tone|low-res|vivid|race]
  bib-detect eval DIR [--threads N]
  bib-detect trace PHOTO";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => parse_generate(&args[1..]).and_then(run_generate),
        Some("eval") => parse_eval(&args[1..]).and_then(|(dir, threads)| run_eval(dir, threads)),
        Some("trace") => match &args[1..] {
            [photo] => run_trace(PathBuf::from(photo)),
            _ => Err(Failure::Usage(format!("trace needs one photo\n{USAGE}"))),
        },
        _ => Err(Failure::Usage(USAGE.to_owned())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("{message}");
            ExitCode::from(64)
        }
        Err(Failure::Run(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Run(String),
}

struct GenerateArgs {
    seed: u64,
    count: u32,
    out: PathBuf,
    fonts: FontChoice,
    style: Style,
}

fn value<'a>(args: &'a [String], i: usize, flag: &str) -> Result<&'a str, Failure> {
    args.get(i + 1)
        .map(String::as_str)
        .ok_or_else(|| Failure::Usage(format!("{flag} needs a value\n{USAGE}")))
}

fn parse_generate(args: &[String]) -> Result<GenerateArgs, Failure> {
    let (mut seed, mut count, mut out) = (None, None, None);
    let (mut fonts, mut style) = (FontChoice::HeldOut, Style::Standard);
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let v = value(args, i, flag)?;
        let bad = || Failure::Usage(format!("{flag}: invalid value {v:?}\n{USAGE}"));
        match flag {
            "--seed" => seed = Some(v.parse().map_err(|_| bad())?),
            "--count" => count = Some(v.parse().map_err(|_| bad())?),
            "--out" => out = Some(PathBuf::from(v)),
            "--fonts" => fonts = FontChoice::parse(v).ok_or_else(bad)?,
            "--style" => style = Style::parse(v).ok_or_else(bad)?,
            _ => return Err(Failure::Usage(format!("unknown flag {flag}\n{USAGE}"))),
        }
        i += 2;
    }
    let missing = |name: &str| Failure::Usage(format!("{name} is required\n{USAGE}"));
    Ok(GenerateArgs {
        seed: seed.ok_or_else(|| missing("--seed"))?,
        count: count.ok_or_else(|| missing("--count"))?,
        out: out.ok_or_else(|| missing("--out"))?,
        fonts,
        style,
    })
}

fn run_generate(args: GenerateArgs) -> Result<(), Failure> {
    let run = |e: &dyn std::fmt::Display| Failure::Run(e.to_string());
    let fonts = FontSet::load(args.fonts).map_err(|e| run(&e))?;
    std::fs::create_dir_all(&args.out).map_err(|e| run(&e))?;
    let mut labels = String::new();
    for index in 0..args.count {
        let scene = generate::scene(args.seed, index, &fonts, args.style);
        let file = format!("{index:04}.jpg");
        // JPEG quality varies with the scene like the rest of it: artefacts are part of the test.
        let quality = 68 + (args.seed.wrapping_add(u64::from(index)) % 20) as u8;
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
            .encode_image(&scene.image)
            .map_err(|e| run(&e))?;
        std::fs::write(args.out.join(&file), bytes).map_err(|e| run(&e))?;
        let label: Label = scene.label(&file);
        labels.push_str(&serde_json::to_string(&label).map_err(|e| run(&e))?);
        labels.push('\n');
    }
    std::fs::write(args.out.join("labels.jsonl"), labels).map_err(|e| run(&e))?;
    println!("wrote {} images to {}", args.count, args.out.display());
    Ok(())
}

fn parse_eval(args: &[String]) -> Result<(PathBuf, usize), Failure> {
    let dir = args
        .first()
        .ok_or_else(|| Failure::Usage(format!("eval needs a directory\n{USAGE}")))?;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.get(1).map(String::as_str) == Some("--threads") {
        threads = value(args, 1, "--threads")?
            .parse()
            .map_err(|_| Failure::Usage(format!("--threads needs a number\n{USAGE}")))?;
    }
    Ok((PathBuf::from(dir), threads))
}

fn run_eval(dir: PathBuf, threads: usize) -> Result<(), Failure> {
    let run = |e: &dyn std::fmt::Display| Failure::Run(e.to_string());
    let detector = Detector::new(DetectorConfig::default()).map_err(|e| run(&e))?;
    let (scores, summary) = eval::evaluate(&detector, &dir, threads).map_err(|e| run(&e))?;
    let mut out = std::io::stdout().lock();
    for s in scores
        .iter()
        .filter(|s| !s.missed.is_empty() || !s.wrong.is_empty())
    {
        let lost: Vec<String> = s
            .lost
            .iter()
            .map(|(n, stage)| format!("{n}:{}", stage.name()))
            .collect();
        writeln!(
            out,
            "{}: missed {:?} wrong {:?} lost {:?}",
            s.file, s.missed, s.wrong, lost
        )
        .map_err(|e| run(&e))?;
    }
    // What a stricter `min_confidence` would trade, for choosing one.
    for threshold in [0.6, 0.7, 0.8, 0.9] {
        writeln!(out, "# {}", summary.at_confidence(threshold)).map_err(|e| run(&e))?;
    }
    writeln!(out, "# {}", summary.stage_line()).map_err(|e| run(&e))?;
    writeln!(out, "{}", summary.score_line()).map_err(|e| run(&e))?;
    writeln!(out, "{}", summary.timing_line()).map_err(|e| run(&e))?;
    Ok(())
}

/// Every digit line the detector saw in one photo and what became of it, for
/// finding why a bib a person reads was missed.
fn run_trace(photo: PathBuf) -> Result<(), Failure> {
    let run = |e: &dyn std::fmt::Display| Failure::Run(e.to_string());
    let detector = Detector::new(DetectorConfig::default()).map_err(|e| run(&e))?;
    let image = image::open(&photo).map_err(|e| run(&e))?;
    let (found, lines) = detector.trace(&image).map_err(|e| run(&e))?;
    let mut out = std::io::stdout().lock();
    for line in &lines {
        let b = line.bbox;
        writeln!(
            out,
            "line {},{},{},{} {:?}",
            b.x, b.y, b.width, b.height, line.fate
        )
        .map_err(|e| run(&e))?;
    }
    for bib in &found.bibs {
        let b = bib.bbox;
        writeln!(
            out,
            "bib {} {:.2} {},{},{},{}",
            bib.number, bib.confidence, b.x, b.y, b.width, b.height
        )
        .map_err(|e| run(&e))?;
    }
    Ok(())
}
