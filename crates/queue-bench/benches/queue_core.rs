//! The queue-core benchmark suite ([`queue_bench::suite`]): one `key=value` line
//! per figure on stdout, progress as `# ...` lines on stderr.
//!
//! `cargo bench -p queue-bench --bench queue_core -- [suite options]`, or
//! `scripts/bench.sh queue-core [suite options]`, which also starts a private
//! Redis. Workers whose cost is measured run as `queue-bench worker` processes:
//! the binary of this package, built by `cargo bench` in the same profile.

use clap::Parser;
use queue_bench::suite::{self, SuiteArgs};

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench` to every benchmark; the suite has no such option.
    let args = SuiteArgs::parse_from(std::env::args_os().filter(|a| a != "--bench"));
    let worker_exe = env!("CARGO_BIN_EXE_queue-bench").into();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(suite::run(args, worker_exe))
}
