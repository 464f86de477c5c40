//! GatePulse: a self-hosted webhook and event router.
//!
//! Entry point: [`server::run`]. Map of the code: `ARCHITECTURE.md` at the repository
//! root. Subsystems, one module each: [`config`], [`api`] (HTTP, the only module that
//! knows axum), [`auth`], [`ingest`], [`store`] (the only module that knows redb),
//! [`stream`] (the tenant stream behind SSE), [`crypto`], [`destination`], [`telemetry`] (every metric name), [`cli`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod cron;
pub mod crypto;
pub mod destination;
pub mod dispatch;
pub mod ids;
pub mod ingest;
pub mod otel;
pub mod pipeline;
pub mod retention;
pub mod secrets;
pub mod server;
pub mod store;
pub mod stream;
pub mod telemetry;

pub use server::run;
