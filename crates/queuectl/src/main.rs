use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use queue_core::CancellationToken;
use queuectl::{Cli, Console, exit};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let redis_url = cli.redis_url.expose().to_owned();
    let database_url = cli
        .database_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded tokio runtime can always be built");
    let stdout = std::io::stdout();
    let ansi = stdout.is_terminal();
    let mut out = stdout.lock();
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        let on_ctrl_c = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_ctrl_c.cancel();
            }
        });
        let mut console = Console {
            out: &mut out,
            ansi,
        };
        queuectl::run(cli, &mut console, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`queuectl stats | head`): nothing left to say.
        Err(e) if exit::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!(
                "queuectl: {}",
                exit::message(&e, &[&redis_url, &database_url])
            );
            ExitCode::from(exit::code(&e))
        }
    }
}
