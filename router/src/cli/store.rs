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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn stats(args: &StoreArgs) -> Result<String, String> {
    let config = load(args)?;
    let store = crate::store::open(&config).map_err(|e| e.to_string())?;
    let stats = runtime()?.block_on(store.storage_stats());
    store.close();
    let stats = stats.map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())
}

fn compact(args: &StoreArgs) -> Result<String, String> {
    let config = load(args)?;
    let store = crate::store::open(&config).map_err(|e| e.to_string())?;
    let pass = runtime()?.block_on(crate::retention::run_pass(
        store.as_ref(),
        &config.retention,
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
