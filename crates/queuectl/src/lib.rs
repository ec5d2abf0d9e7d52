#![doc = include_str!("../README.md")]

pub mod cli;
mod commands;
mod db;
pub mod exit;
pub mod render;

use std::io::Write;

use anyhow::anyhow;
use queue_core::{Admin, Broker, BrokerConfig, CancellationToken};

pub use cli::{Cli, Command, DatabaseUrl, KeysCommand, RedisUrl};

/// Where a command writes its output.
pub struct Console<'a> {
    pub out: &'a mut dyn Write,
    /// Whether `out` is a terminal: `monitor` then clears the screen between refreshes.
    pub ansi: bool,
}

/// Runs one command. `shutdown` (Ctrl-C) ends `monitor` normally and any other
/// command with [`exit::Interrupted`]. Map an error to its exit code with
/// [`exit::code`] and to its line with [`exit::message`].
pub async fn run(
    cli: Cli,
    console: &mut Console<'_>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    cli.redis_url.validate().map_err(exit::Usage)?;
    let is_monitor = matches!(cli.command, Command::Monitor { .. });
    let work = async {
        let pool = match &cli.database_url {
            Some(url) => Some(db::connect(url).await?),
            None => None,
        };
        let auditor = match &pool {
            Some(pool) => ops::Auditor::new(pool.clone(), db::actor()),
            None => ops::Auditor::unaudited(db::actor()),
        };
        let command = match cli.command {
            Command::Keys { command } => {
                return db::keys(console, db::require(pool)?, &auditor, command).await;
            }
            Command::Audit {
                limit,
                before,
                json,
            } => return db::audit(console, db::require(pool)?, limit, before, json).await,
            other => other,
        };
        let broker = Broker::connect(BrokerConfig {
            pool_size: 1,
            ..BrokerConfig::new(cli.redis_url.expose())
                .cluster(cli.redis_cluster)
                .prefix(&cli.prefix)
        })
        .await?;
        let admin = Admin::new(broker.clone()).with_group(&cli.group);
        let ctx = commands::Ctx {
            broker: &broker,
            admin: &admin,
            console,
            shutdown: &shutdown,
            auditor: &auditor,
        };
        commands::dispatch(ctx, command).await
    };
    tokio::select! {
        result = work => result,
        () = shutdown.cancelled(), if !is_monitor => Err(anyhow!(exit::Interrupted)),
    }
}
