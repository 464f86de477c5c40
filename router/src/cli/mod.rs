//! The `gp` command line. `gp serve` runs the server; `gp filter` works locally; every
//! other command is a client of the HTTP API (`--server`/`GATEPULSE_URL`,
//! `GATEPULSE_TOKEN`, or a profile written by `gp init`: `profile.rs`).

mod audit;
mod client;
mod cluster;
mod doctor;
mod filter;
mod init;
mod output;
mod plugins;
mod profile;
mod secrets;
mod store;
mod tail;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{CliOverrides, Config};

#[derive(Debug, Parser)]
#[command(
    name = "gp",
    version,
    about = "GatePulse: a self-hosted webhook and event router"
)]
pub struct Cli {
    /// Client profile to use (also GATEPULSE_PROFILE; default "default"); `gp init`
    /// writes one.
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Server URL for client commands; wins over GATEPULSE_URL and the profile.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,
    /// How answers print: `json` (the client commands' default) or `text` (tables
    /// and fields for people; `gp doctor`'s default).
    #[arg(long, global = true, value_enum)]
    pub output: Option<output::Output>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Write a commented server configuration and a client profile (generating the
    /// admin token and the master key), check the connection, print what to run next.
    Init(init::InitArgs),
    /// Manage tenants (admin token).
    #[command(subcommand)]
    Tenants(client::TenantsCmd),
    /// Manage API keys of a tenant (admin token).
    #[command(subcommand)]
    Keys(client::KeysCmd),
    /// Manage endpoints.
    #[command(subcommand)]
    Endpoints(client::EndpointsCmd),
    /// Manage subscriptions.
    #[command(subcommand)]
    Subscriptions(client::SubscriptionsCmd),
    /// Publish and read events.
    #[command(subcommand)]
    Events(client::EventsCmd),
    /// Upload, list and delete WASM plugins; `test` runs one locally.
    #[command(subcommand)]
    Plugins(plugins::PluginsCmd),
    /// Follow the stream live: the delivery attempt log (of one endpoint with
    /// --endpoint), or events with --topic. Reconnects by itself.
    Tail(tail::TailArgs),
    /// Check or evaluate a filter expression locally (no server needed).
    #[command(subcommand)]
    Filter(filter::FilterCmd),
    /// Print the OpenAPI document this build serves.
    Openapi,
    /// Offline store maintenance (the server must be stopped).
    #[command(subcommand)]
    Store(store::StoreCmd),
    /// Master keys: generate one, see how stored secrets are sealed, re-encrypt them
    /// under the newest key (admin token).
    #[command(subcommand)]
    Secrets(secrets::SecretsCmd),
    /// The nodes sharing the server's store and the leadership (admin token).
    #[command(subcommand)]
    Cluster(cluster::ClusterCmd),
    /// Read the audit log and verify its hash chains.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Find the usual setup problems (configuration, data directory, disk, store,
    /// database, master key, server health, clock, token) and say how to fix each.
    /// Exit code 0: no problem, 1: problems found, 2: usage.
    Doctor(doctor::DoctorArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (also GATEPULSE_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8080 (also GATEPULSE_LISTEN).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (also GATEPULSE_DATA_DIR).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Development mode: embedded store in ./gatepulse-data, private destinations
    /// allowed, a default tenant and all-scopes key created and printed.
    #[arg(long)]
    pub dev: bool,
}

/// Runs a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    crate::dispatch::client::install_crypto_provider();
    output::select(cli.output);
    profile::select(profile::Selection {
        profile: cli.profile,
        url: cli.server,
    });
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve(args),
        Command::Filter(cmd) => filter::run(cmd),
        Command::Store(cmd) => store::run(cmd),
        Command::Tail(args) => tail::run(args),
        Command::Plugins(cmd) => plugins::run(cmd),
        Command::Secrets(cmd) => secrets::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Openapi => {
            println!("{}", crate::api::openapi::document_json());
            0
        }
        other => client::run(other),
    }
}

fn serve(args: ServeArgs) -> i32 {
    let overrides = CliOverrides {
        listen: args.listen,
        data_dir: args.data_dir,
    };
    let config = match Config::load(args.config.as_deref(), &overrides, args.dev) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gp serve: {e}");
            return 2;
        }
    };
    crate::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gp serve: cannot start the async runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let listener = match crate::api::listener::bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gp serve: cannot listen on {}: {e}", config.listen);
                return 1;
            }
        };
        match crate::server::run(config, listener, shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gp serve: {e}");
                1
            }
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
