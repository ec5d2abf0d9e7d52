//! `queue-bench worker|enqueue`: the stand-alone test worker and the synthetic
//! producer of [`queue_bench::worker`]. The benchmark suite is the bench target
//! `queue_core` (`cargo bench -p queue-bench --bench queue_core`).

use clap::{Parser, Subcommand};
use queue_bench::worker;

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
        }
    })
}
