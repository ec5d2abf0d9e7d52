#![doc = include_str!("../README.md")]

//! Load generator and stand-alone worker for queue-core.
//!
//! - `worker`: a worker process with a configurable synthetic handler (sleep,
//!   random failures, run counting). Tests kill it with SIGKILL; benchmarks
//!   measure its memory and CPU.
//! - `enqueue`: puts N synthetic jobs on a queue (used by `scripts/run.sh`).
//! - `suite`: the benchmark suite behind `scripts/bench.sh queue-core`.

mod measure;
mod suite;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "queue-bench",
    about = "Load generator and test worker for queue-core"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a worker process with a synthetic handler until SIGTERM/SIGINT.
    Worker(worker::WorkerArgs),
    /// Enqueue synthetic jobs.
    Enqueue(worker::EnqueueArgs),
    /// Run the benchmark suite and print one `key=value` line per figure.
    Suite(suite::SuiteArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Worker(args) = &cli.command {
        // A no-op worker beside Redis on a small machine turns faster on one
        // thread: Redis needs the other core. Handlers that compute want more.
        builder.worker_threads(args.threads.max(1));
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Worker(args) => worker::run(args).await,
            Command::Enqueue(args) => worker::enqueue(args).await,
            Command::Suite(args) => suite::run(args).await,
        }
    })
}
