//! `gp store …`: offline maintenance of a stopped node's store (redb allows one
//! process per file, so these refuse to run while `gp serve` has it open).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{CliOverrides, Config};

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Row counts per table, file size, store version and last compaction.
    Stats(StoreArgs),
    /// Apply retention now, then give free space back to the file system.
    Compact(StoreArgs),
    /// Online snapshots and offline restore.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Copy a stopped node's embedded store into an empty PostgreSQL database
    /// (offline; row counts verified before the commit).
    Copy {
        /// The data directory of the redb store to copy (the node must be stopped).
        #[arg(long)]
        from: PathBuf,
        /// The target database, postgres://user:password@host:port/database.
        #[arg(long)]
        to: String,
        /// The schema to create the tables in (default: [postgres] schema, else the
        /// connection's default).
        #[arg(long)]
        schema: Option<String>,
        /// Configuration file (the [postgres] settings).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Ask the running server (GATEPULSE_URL, admin GATEPULSE_TOKEN) to write a
    /// consistent snapshot into DIR on its host, while it keeps serving.
    Create {
        /// Directory for the snapshot (created; must not hold one).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a snapshot and install it into a stopped node's data dir.
    Restore {
        /// The snapshot directory (with manifest.json).
        snapshot: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        /// Replace an existing store (kept beside it as gatepulse.redb.before-restore).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Configuration file (retention settings, data dir).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Data directory (also GATEPULSE_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

fn load(args: &StoreArgs) -> Result<Config, String> {
    let overrides = CliOverrides {
        listen: None,
        data_dir: args.data_dir.clone(),
    };
    // Offline tools need no admin token: load as `--dev` would validate.
    Config::load(args.config.as_deref(), &overrides, true).map_err(|e| e.to_string())
}

pub(super) fn run(cmd: StoreCmd) -> i32 {
    let result = match cmd {
        StoreCmd::Stats(args) => stats(&args),
        StoreCmd::Compact(args) => compact(&args),
        StoreCmd::Snapshot(SnapshotCmd::Create { out }) => snapshot_create(&out),
        StoreCmd::Copy {
            from,
            to,
            schema,
            config,
        } => copy(&from, to, schema, config),
        StoreCmd::Snapshot(SnapshotCmd::Restore {
            snapshot,
            data_dir,
            force,
        }) => crate::store::restore_offline(&snapshot, &data_dir, force)
            .map_err(|e| e.to_string())
            .and_then(|m| serde_json::to_string_pretty(&m).map_err(|e| e.to_string())),
    };
    match result {
        Ok(out) => {
            println!("{out}");
            0
        }
        Err(e) => {
            eprintln!("gp store: {e}");
            1
        }
    }
}

fn copy(
    from: &std::path::Path,
    to: String,
    schema: Option<String>,
    config: Option<PathBuf>,
) -> Result<String, String> {
    let mut config = load(&StoreArgs {
        config,
        data_dir: Some(from.to_path_buf()),
    })?;
    config.store = to;
    if let Some(schema) = schema {
        config.postgres.schema = schema;
    }
    if config.postgres_url().is_none() {
        return Err("--to must be a postgres:// URL".into());
    }
    let report = runtime()?
        .block_on(crate::store::copy::redb_to_postgres(from, &config))
        .map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&serde_json::json!({ "copied": report }))
        .map_err(|e| e.to_string())
}

fn snapshot_create(out: &std::path::Path) -> Result<String, String> {
    let dir = std::path::absolute(out).map_err(|e| e.to_string())?;
    let server = super::profile::resolve()?;
    let token = server.token.ok_or_else(|| {
        "no token: set GATEPULSE_TOKEN to the admin token (or use a profile: gp init)".to_owned()
    })?;
    runtime()?.block_on(async move {
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/v1/admin/snapshots",
                server.url.as_deref().unwrap_or(super::profile::DEFAULT_URL)
            ))
            .bearer_auth(token)
            .json(&serde_json::json!({"path": dir}))
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let ok = resp.status().is_success();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if ok { Ok(text) } else { Err(text) }
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn stats(args: &StoreArgs) -> Result<String, String> {
    let config = load(args)?;
    let rt = runtime()?;
    let store = rt
        .block_on(crate::store::open(
            &config,
            crate::store::feed::CommitFeed::new(),
        ))
        .map_err(|e| e.to_string())?;
    let stats = rt.block_on(store.storage_stats());
    store.close();
    let stats = stats.map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())
}

fn compact(args: &StoreArgs) -> Result<String, String> {
    let config = load(args)?;
    if config.postgres_url().is_some() {
        return Err(crate::store::StoreError::Unsupported(
            "compaction is a redb feature; PostgreSQL reclaims space with VACUUM \
             (autovacuum does it; see docs/production/postgres.md)",
        )
        .to_string());
    }
    let rt = runtime()?;
    let store = rt
        .block_on(crate::store::open(
            &config,
            crate::store::feed::CommitFeed::new(),
        ))
        .map_err(|e| e.to_string())?;
    let pass = rt.block_on(crate::retention::run_pass(
        store.as_ref(),
        &config.retention,
        || true,
    ));
    store.close();
    drop(store);
    let pass = pass.map_err(|e| e.to_string())?;
    let (before, after) = crate::store::compact_offline(&config).map_err(|e| e.to_string())?;
    Ok(serde_json::json!({
        "deleted": {"events": pass.events, "deliveries": pass.deliveries, "attempts": pass.attempts},
        "file_bytes_before": before,
        "file_bytes_after": after,
    })
    .to_string())
}
