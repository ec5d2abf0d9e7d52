//! The commands over PostgreSQL (`keys`, `audit`) and the database behind the
//! audit log of the queue actions.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use store::PgPool;
use store::keys::ApiKey;

use crate::commands::op_error;
use crate::render::{Align, Table};
use crate::{Console, DatabaseUrl, KeysCommand, exit};

/// PostgreSQL could not be reached; exits with [`exit::UNAVAILABLE`].
#[derive(Debug)]
pub struct DatabaseUnavailable(pub String);

impl std::fmt::Display for DatabaseUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DatabaseUnavailable {}

/// Connects (applying pending migrations, as every binary does at start).
pub(crate) async fn connect(url: &DatabaseUrl) -> anyhow::Result<PgPool> {
    let config = store::StoreConfig {
        max_connections: 2,
        ..store::StoreConfig::new(url.expose())
    };
    store::connect(&config).await.map_err(|e| {
        DatabaseUnavailable(format!(
            "cannot reach PostgreSQL at {}: {e}",
            queue_core::broker::redact_url(url.expose())
        ))
        .into()
    })
}

/// Who the audit log says acted: `queuectl:$USER`.
pub(crate) fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("queuectl:{user}")
}

pub(crate) fn require(pool: Option<PgPool>) -> anyhow::Result<PgPool> {
    pool.ok_or_else(|| {
        exit::Usage("this command needs PostgreSQL: give --database-url or DATABASE_URL".into())
            .into()
    })
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A key just created, as `--json` prints it.
#[derive(Serialize)]
struct Created<'a> {
    key: &'a str,
    #[serde(flatten)]
    stored: &'a ApiKey,
}

pub(crate) async fn keys(
    console: &mut Console<'_>,
    pool: PgPool,
    auditor: &ops::Auditor,
    command: KeysCommand,
) -> anyhow::Result<()> {
    let out = &mut *console.out;
    match command {
        KeysCommand::Create {
            name,
            role,
            expires,
            json: as_json,
        } => {
            let expires_at = expires
                .map(|e| ops::parse_expiry(&e, Utc::now()))
                .transpose()
                .map_err(exit::Usage)?;
            if expires_at.is_some_and(|at| at <= Utc::now()) {
                return Err(exit::Usage("--expires must be in the future".into()).into());
            }
            let created = ops::keys::create(auditor, &pool, &name, role, expires_at)
                .await
                .map_err(op_error)?;
            if as_json {
                json(
                    out,
                    &Created {
                        key: &created.key,
                        stored: &created.stored,
                    },
                )?;
            } else {
                let k = &created.stored;
                writeln!(
                    out,
                    "created key {} {:?} ({}, {}), expires {}\n{}\nstore it now: it is shown this once",
                    k.id,
                    k.name,
                    k.role,
                    k.prefix,
                    k.expires_at.map_or_else(|| "never".to_owned(), time),
                    created.key
                )?;
            }
        }
        KeysCommand::List { json: as_json } => {
            let keys = {
                let mut conn = pool.acquire().await.context("listing keys")?;
                store::keys::list(&mut conn).await?
            };
            if as_json {
                json(out, &keys)?;
            } else if keys.is_empty() {
                writeln!(out, "no API keys (the bootstrap tokens still work)")?;
            } else {
                write!(out, "{}", keys_table(&keys, Utc::now()).render())?;
            }
        }
        KeysCommand::Revoke { id } => {
            let k = ops::keys::revoke(auditor, &pool, id)
                .await
                .map_err(op_error)?;
            writeln!(
                out,
                "revoked key {} {:?} ({}) at {}; gateways refuse it within API_KEY_CACHE_TTL",
                k.id,
                k.name,
                k.prefix,
                maybe_time(k.revoked_at)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn keys_table(keys: &[ApiKey], now: DateTime<Utc>) -> Table {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("NAME", Align::Left),
        ("PREFIX", Align::Left),
        ("ROLE", Align::Left),
        ("STATE", Align::Left),
        ("CREATED", Align::Left),
        ("EXPIRES", Align::Left),
        ("LAST USED", Align::Left),
        ("CREATED BY", Align::Left),
    ]);
    for k in keys {
        let state = if k.revoked_at.is_some() {
            "revoked"
        } else if k.is_usable(now) {
            "active"
        } else {
            "expired"
        };
        table.row(vec![
            k.id.to_string(),
            k.name.clone(),
            k.prefix.clone(),
            k.role.to_string(),
            state.to_owned(),
            time(k.created_at),
            maybe_time(k.expires_at),
            maybe_time(k.last_used_at),
            k.created_by.clone(),
        ]);
    }
    table
}

pub(crate) async fn audit(
    console: &mut Console<'_>,
    pool: PgPool,
    limit: i64,
    before: Option<i64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let entries = {
        let mut conn = pool.acquire().await.context("reading the audit log")?;
        store::audit::list(&mut conn, before, limit).await?
    };
    let out = &mut *console.out;
    if as_json {
        json(out, &entries)?;
    } else if entries.is_empty() {
        writeln!(out, "no audit entries")?;
    } else {
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("AT", Align::Left),
            ("ACTOR", Align::Left),
            ("ACTION", Align::Left),
            ("TARGET", Align::Left),
            ("OUTCOME", Align::Left),
        ]);
        for e in &entries {
            table.row(vec![
                e.id.to_string(),
                time(e.at),
                e.actor.clone(),
                e.action.clone(),
                e.target.clone(),
                crate::render::one_line(&e.outcome, 60),
            ]);
        }
        write!(out, "{}", table.render())?;
        if entries.len() as i64 == limit
            && let Some(last) = entries.last()
        {
            writeln!(out, "older: queuectl audit --before {}", last.id)?;
        }
    }
    out.flush()?;
    Ok(())
}
