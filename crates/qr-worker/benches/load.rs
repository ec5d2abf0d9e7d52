//! `cargo bench -p qr-worker --bench load -- ADDR TOKEN RATE SECONDS PREFIX [CONNECTIONS]`:
//! registers persons (POST /api/persons) on the gateway at ADDR at a FIXED
//! rate of RATE per second for SECONDS, open loop: request i is due at
//! start + i / RATE whatever the answers before it, and its latency is
//! measured from that due time, so a slow gateway shows as latency, not as a
//! lower rate the generator quietly slipped to (wrk, closed loop, does the
//! latter). Documents are `PREFIX-i`. Prints on stdout `rate_target_per_s`,
//! `rate_sent`, `rate_ok`, `rate_errors`, `rate_req_per_s`,
//! `rate_latency_p50_ms`, `rate_latency_p99_ms`, `rate_latency_max_ms`;
//! progress on stderr as `# ...`. `scripts/bench-qr.sh` runs it.
//!
//! A plain HTTP/1.1 keep-alive client over CONNECTIONS (default 64) sockets:
//! the generator must cost little CPU, as it shares the machine with what it
//! measures.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Plan {
    addr: String,
    token: String,
    rate: f64,
    total: u64,
    prefix: String,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let parsed = (|| {
        let [addr, token, rate, seconds, prefix, rest @ ..] = args.as_slice() else {
            return None;
        };
        let rate: f64 = rate.parse().ok().filter(|r: &f64| *r > 0.0)?;
        let seconds: f64 = seconds.parse().ok().filter(|s: &f64| *s > 0.0)?;
        let connections: usize = match rest.first() {
            Some(c) => c.parse().ok().filter(|c| *c > 0)?,
            None => 64,
        };
        let plan = Plan {
            addr: addr.clone(),
            token: token.clone(),
            rate,
            total: (rate * seconds).round() as u64,
            prefix: prefix.clone(),
        };
        Some((plan, connections))
    })();
    let Some((plan, connections)) = parsed else {
        eprintln!(
            "usage: cargo bench -p qr-worker --bench load -- ADDR TOKEN RATE SECONDS PREFIX [CONNECTIONS]"
        );
        return ExitCode::from(64);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run(plan, connections))
}

#[derive(Default)]
struct Tally {
    /// Latency of each answered request from its due time, in microseconds.
    latencies_us: Vec<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn run(plan: Plan, connections: usize) -> ExitCode {
    let plan = Arc::new(plan);
    let next = Arc::new(AtomicU64::new(0));
    eprintln!(
        "# {} requests at {}/s over {connections} connections to {}",
        plan.total, plan.rate, plan.addr
    );
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (plan, next) = (Arc::clone(&plan), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            connection(&plan, &next, start).await
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        let t = task.await.expect("a connection task");
        tally.latencies_us.extend(t.latencies_us);
        tally.ok += t.ok;
        tally.errors += t.errors;
        if tally.first_error.is_none() {
            tally.first_error = t.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = &tally.first_error {
        eprintln!("# first error: {e}");
    }
    let mut l = tally.latencies_us;
    l.sort_unstable();
    let pct = |p: f64| {
        if l.is_empty() {
            return 0.0;
        }
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        l[i] as f64 / 1000.0
    };
    println!("rate_target_per_s={}", plan.rate);
    println!("rate_sent={}", l.len() as u64 + tally.errors);
    println!("rate_ok={}", tally.ok);
    println!("rate_errors={}", tally.errors);
    println!("rate_req_per_s={:.0}", tally.ok as f64 / elapsed);
    println!("rate_latency_p50_ms={:.2}", pct(0.50));
    println!("rate_latency_p99_ms={:.2}", pct(0.99));
    println!("rate_latency_max_ms={:.2}", pct(1.0));
    ExitCode::SUCCESS
}

/// One keep-alive connection taking the next due request until all are taken.
async fn connection(plan: &Plan, next: &AtomicU64, start: tokio::time::Instant) -> Tally {
    let mut tally = Tally::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= plan.total {
            return tally;
        }
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due).await;
        let body = format!(
            r#"{{"document":"{}-{i}","first_name":"Bench","last_name":"Load"}}"#,
            plan.prefix
        );
        let request = format!(
            "POST /api/persons HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            plan.addr,
            plan.token,
            body.len()
        );
        let result = async {
            if stream.is_none() {
                let s = TcpStream::connect(&plan.addr).await?;
                s.set_nodelay(true)?;
                stream = Some(s);
            }
            let s = stream.as_mut().expect("connected");
            s.write_all(request.as_bytes()).await?;
            read_response(s, &mut buf).await
        }
        .await;
        let latency = Instant::now().saturating_duration_since(due.into_std());
        match result {
            Ok(status) if (200..300).contains(&status) => {
                tally.ok += 1;
                tally.latencies_us.push(latency.as_micros() as u64);
            }
            Ok(status) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(format!("HTTP {status}"));
            }
            Err(e) => {
                stream = None;
                tally.errors += 1;
                tally.first_error.get_or_insert(e.to_string());
            }
        }
    }
}

/// Reads one response (status line, headers, a Content-Length body); its status.
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let bad = |what: &str| std::io::Error::other(what.to_owned());
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("non-UTF-8 head"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| bad("no Content-Length"))?;
    let mut have = buf.len() - head_end;
    while have < length {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed mid-body"));
        }
        have += n;
    }
    Ok(status)
}
