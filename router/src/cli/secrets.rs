//! `gp secrets`: master keys. `generate-key` runs locally; `status` and `rotate` call
//! the server (admin token) and `rotate` follows the job until it ends.

use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::Client;

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Print a new master key entry, `<version>:<base64>`, for `master_key` or a key
    /// file. Add it with a version above the current one, then run `gp secrets rotate`.
    GenerateKey {
        /// The key's version (1 for the first key).
        #[arg(long, default_value_t = 1)]
        version: u32,
    },
    /// Which key versions are configured and how many stored secrets each seals.
    Status,
    /// Re-encrypt every stored secret under the newest configured key, online; prints
    /// progress until done. Afterwards older keys can be removed from the configuration.
    Rotate {
        /// Start the job and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

pub(super) fn run(cmd: SecretsCmd) -> i32 {
    match cmd {
        SecretsCmd::GenerateKey { version } => {
            if version == 0 {
                eprintln!("gp secrets generate-key: versions start at 1");
                return 2;
            }
            println!("{}", crate::crypto::generate_key(version));
            0
        }
        SecretsCmd::Status => {
            super::client::run_with(async |c| c.call(Method::GET, "/v1/admin/secrets", None).await)
        }
        SecretsCmd::Rotate { no_wait } => {
            super::client::run_with(async move |c| rotate(c, no_wait).await)
        }
    }
}

async fn rotate(c: &Client, no_wait: bool) -> Result<Value, String> {
    let mut status = c
        .call(Method::POST, "/v1/admin/secrets/rotate", None)
        .await?;
    if no_wait {
        return Ok(status);
    }
    let mut shown = None;
    loop {
        let job = &status["rotation"];
        let done = job["endpoints_done"].as_u64().unwrap_or(0);
        let total = job["endpoints_total"].as_u64().unwrap_or(0);
        if shown != Some(done) {
            eprintln!(
                "rotating to key version {}: {done}/{total} endpoints, {} resealed",
                job["key_version"],
                job["endpoints_resealed"].as_u64().unwrap_or(0)
            );
            shown = Some(done);
        }
        match job["state"].as_str() {
            Some("running") => {}
            Some("failed") => {
                return Err(format!(
                    "rotation failed: {}",
                    job["error"].as_str().unwrap_or("unknown error")
                ));
            }
            _ => return Ok(status),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        status = c.call(Method::GET, "/v1/admin/secrets", None).await?;
    }
}
