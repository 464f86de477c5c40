//! `gp-bench`: the GatePulse load harness.
//!
//! `cargo run --release -p gatepulse-bench -- run` builds the release `gp`, then for
//! each scenario starts it on a temporary store with a local receiver and a load
//! generator, and writes a report with charts to `benchmarks/results/<UTC time>/`.
//! See `benchmarks/README.md`.

mod backlog;
mod load;
mod machine;
mod plugins;
mod receiver;
mod report;
mod scenarios;
mod server;
mod snapshot;
mod sse_client;
mod stream;
mod svg;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use crate::load::{GroupSpec, LoadSpec};
use crate::report::{Params, Results, SCHEMA, ScenarioResult, Status};
use crate::scenarios::{Kind, Options, Scenario};

#[derive(Debug, Parser)]
#[command(name = "gp-bench", about = "GatePulse load harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a set of scenarios and write a report (markdown, JSON, SVG charts).
    Run(RunArgs),
    /// Put two result folders side by side (B relative to A).
    Compare(CompareArgs),
    /// List the scenarios and their defaults.
    List,
    /// Rewrite report.md and the charts of a results folder from its results.json.
    Report { dir: PathBuf },
    /// One ingest run, printed as a table (endpoints disabled: ingest alone).
    Ingest(IngestArgs),
    /// One publish → receiver run, printed as a table.
    Deliver(DeliverArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Comma-separated scenario names (default: all; see `gp-bench list`).
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Results folder (default: benchmarks/results/<UTC timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Approximate payload size of every published event.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Measured seconds per scenario (default 10; 2 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
    /// Short runs for smoke testing.
    #[arg(long)]
    quick: bool,
    /// Payload MiB the recovery scenario stores before restarting (default 1024; 16 with --quick).
    #[arg(long)]
    recovery_mb: Option<u64>,
    /// Payload MiB the snapshot scenario stores before publishing and snapshotting (default 1024; 16 with --quick).
    #[arg(long)]
    snapshot_mb: Option<u64>,
    /// SSE clients of the stream_fanout scenario.
    #[arg(long, default_value_t = 1000)]
    stream_clients: usize,
    /// Events/s published in the stream_fanout scenario.
    #[arg(long, default_value_t = 1000)]
    stream_rate: u64,
    /// Compare two result folders instead of running (same as `gp-bench compare`).
    #[arg(long, num_args = 2, value_names = ["DIR_A", "DIR_B"])]
    compare: Option<Vec<PathBuf>>,
    #[command(flatten)]
    gp: GpArgs,
}

#[derive(Debug, clap::Args)]
struct GpArgs {
    /// The gp binary (default: target/release/gp next to this binary).
    #[arg(long)]
    gp: Option<PathBuf>,
    /// Do not run `cargo build --release -p gatepulse --bin gp` first.
    #[arg(long)]
    no_build: bool,
    /// The store every server runs on: `redb` (a fresh temporary file) or `postgres`
    /// (a fresh schema per server on `GATEPULSE_TEST_POSTGRES`, default
    /// postgres://postgres@127.0.0.1:5432/test, dropped afterwards).
    #[arg(long, default_value = "redb")]
    store: String,
    /// Run each server as this many nodes on one PostgreSQL schema (needs
    /// `--store postgres`); publishers spread over every node.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The nodes' `cluster.mode`: `leader` (the elected leader dispatches) or
    /// `active-active` (every node does).
    #[arg(long, default_value = "leader")]
    cluster_mode: String,
    /// Extra environment for every server, `KEY=VALUE` (repeatable): a configuration
    /// override to measure, e.g. `GATEPULSE_REDB__CACHE_SIZE_MIB=64`.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct CompareArgs {
    dir_a: PathBuf,
    dir_b: PathBuf,
    /// Where to write the comparison (default: DIR_B/compare.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct IngestArgs {
    /// Concurrent publishers (each with its own keep-alive connection).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Measured duration, after a 2-second warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Subscriptions matching every event (each adds one stored delivery per event).
    #[arg(long, default_value_t = 1)]
    subscriptions: usize,
    #[command(flatten)]
    gp: GpArgs,
}

#[derive(Debug, clap::Args)]
struct DeliverArgs {
    /// Concurrent publishers (each waits for its 202 before publishing again).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Publish at this many events/s in total instead of as fast as possible.
    #[arg(long)]
    rate: Option<u64>,
    /// Measured duration, after a 2-second warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Endpoints subscribed to every event (fan-out).
    #[arg(long, default_value_t = 1)]
    fanout: usize,
    /// Publish through POST /v1/events/batch with this many events per call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[command(flatten)]
    gp: GpArgs,
}

/// `YYYY-MM-DDTHH-MM-SSZ` (file-name safe) and `YYYY-MM-DD HH:MM:SS` for a Unix time.
fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z"),
        format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn prepare_gp(args: &GpArgs) -> Result<PathBuf> {
    server::use_store(&args.store)?;
    server::use_cluster(args.nodes, &args.cluster_mode)?;
    server::use_env(&args.server_env)?;
    let gp = server::gp_path(args.gp.as_deref())?;
    if !args.no_build && args.gp.is_none() {
        server::build_gp(&gp)?;
    }
    if !gp.exists() {
        bail!(
            "{} not found; build it with `cargo build --release -p gatepulse`",
            gp.display()
        );
    }
    Ok(gp)
}

fn select(all: Vec<Scenario>, wanted: &[String]) -> Result<Vec<Scenario>> {
    if wanted.is_empty() {
        return Ok(all);
    }
    let known: Vec<&str> = all.iter().map(|s| s.name).collect();
    for w in wanted {
        if !known.contains(&w.as_str()) {
            bail!("unknown scenario `{w}`; known: {}", known.join(", "));
        }
    }
    Ok(all
        .into_iter()
        .filter(|s| wanted.iter().any(|w| w == s.name))
        .collect())
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes `report.md`, `results.json`, `machine.md` and the SVG charts.
fn write_results(dir: &Path, results: &Results, machine_md: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write(dir, "results.json", &results.to_json()?)?;
    write(dir, "machine.md", machine_md)?;
    let ok: Vec<&ScenarioResult> = results
        .scenarios
        .iter()
        .filter(|s| s.status == Status::Ok && s.concurrency > 0)
        .collect();
    let mut charts = Vec::new();
    let latency: Vec<(String, report::Latency)> = ok
        .iter()
        .filter_map(|s| s.headline_latency().map(|(l, _)| (s.name.clone(), l)))
        .collect();
    write(
        dir,
        "latency.svg",
        &svg::latency_bars(
            "Latency per scenario, ms (ingest: publish → 202; others: publish → receipt)",
            &latency,
        ),
    )?;
    charts.push(("Latency percentiles".to_owned(), "latency.svg".to_owned()));
    let deliveries: Vec<(String, Vec<u64>)> = ok
        .iter()
        .filter(|s| s.fanout > 0 && !s.is_stream())
        .map(|s| (s.name.clone(), s.delivery_timeline.clone()))
        .collect();
    write(
        dir,
        "throughput.svg",
        &svg::line_chart(
            "Deliveries per second over each run",
            "deliveries/s",
            &deliveries,
        ),
    )?;
    charts.push((
        "Deliveries/s over time".to_owned(),
        "throughput.svg".to_owned(),
    ));
    for s in &ok {
        let mut series = vec![("publishes/s".to_owned(), s.publish_timeline.clone())];
        if s.is_stream() {
            series.push(("receipts/s".to_owned(), s.delivery_timeline.clone()));
        } else if s.fanout > 0 {
            series.push(("deliveries/s".to_owned(), s.delivery_timeline.clone()));
        }
        let file = format!("throughput-{}.svg", s.name);
        write(
            dir,
            &file,
            &svg::line_chart(&format!("{}: per second", s.name), "per second", &series),
        )?;
        charts.push((format!("{} over time", s.name), file));
    }
    write(dir, "report.md", &report::markdown(results, &charts))?;
    Ok(())
}

fn compare(a: &Path, b: &Path, out: Option<PathBuf>) -> Result<()> {
    let (ra, rb) = (Results::load(a)?, Results::load(b)?);
    let md = report::compare(&ra, &rb, &a.display().to_string(), &b.display().to_string());
    let out = out.unwrap_or_else(|| b.join("compare.md"));
    std::fs::write(&out, &md).with_context(|| format!("writing {}", out.display()))?;
    println!("{md}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

async fn run(args: RunArgs) -> Result<()> {
    if let Some(dirs) = &args.compare {
        if let [a, b] = dirs.as_slice() {
            return compare(a, b, None);
        }
        bail!("--compare takes two result folders");
    }
    let gp = prepare_gp(&args.gp)?;
    let mut opts = Options::new(
        args.payload_bytes,
        args.seconds,
        args.quick,
        args.recovery_mb,
        args.snapshot_mb,
    );
    opts.stream_clients = args.stream_clients;
    opts.stream_rate = args.stream_rate;
    let chosen = select(scenarios::catalog(&opts), &args.scenarios)?;
    let started = Instant::now();
    let (stamp, started_utc) = utc(unix_now());
    let out = args.out.unwrap_or_else(|| {
        server::workspace_root()
            .join("benchmarks/results")
            .join(&stamp)
    });
    let gp_version = server::gp_version(&gp);
    let probe = std::time::Duration::from_secs(if args.quick { 2 } else { 20 });
    let (machine, machine_md) = machine::describe(&gp_version, &std::env::temp_dir(), probe);
    let mut results = Results {
        schema: SCHEMA,
        started_utc,
        duration_secs: 0.0,
        params: Params {
            payload_bytes: opts.payload_bytes,
            seconds: opts.seconds,
            quick: args.quick,
            scenarios: chosen.iter().map(|s| s.name.to_owned()).collect(),
        },
        machine,
        scenarios: Vec::new(),
    };
    for s in &chosen {
        eprintln!("[{:>5.0} s] {} …", started.elapsed().as_secs_f64(), s.name);
        let r = scenarios::run(&gp, s).await;
        if let Status::Failed(e) = &r.status {
            eprintln!("  failed: {e}");
        }
        results.scenarios.push(r);
        results.duration_secs = started.elapsed().as_secs_f64();
        // Write after every scenario so an interrupted run still leaves a report.
        write_results(&out, &results, &machine_md)?;
    }
    println!("{}", report::table(&results));
    print!("{}", report::stream_section(&results));
    print!("{}", report::snapshot_section(&results));
    eprintln!(
        "done in {:.0} s; report: {}",
        results.duration_secs,
        out.join("report.md").display()
    );
    Ok(())
}

/// Runs one load spec and prints its row (the `ingest` and `deliver` commands).
async fn single(
    gp_args: &GpArgs,
    name: &'static str,
    description: &'static str,
    spec: LoadSpec,
) -> Result<()> {
    let gp = prepare_gp(gp_args)?;
    let s = Scenario {
        name,
        description,
        kind: Kind::Load(spec),
    };
    let r = scenarios::run(&gp, &s).await;
    let results = Results {
        schema: SCHEMA,
        started_utc: utc(unix_now()).1,
        duration_secs: 0.0,
        params: Params::default(),
        machine: report::Machine::default(),
        scenarios: vec![r],
    };
    println!("## {name}: {description}\n");
    println!("{}", report::table(&results));
    for s in &results.scenarios {
        for (k, v) in &s.metrics {
            println!("- {k}: {v}");
        }
        for n in &s.notes {
            println!("- {n}");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // The workspace's reqwest has no default TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Compare(a) => compare(&a.dir_a, &a.dir_b, a.out),
        Command::Report { dir } => {
            let results = Results::load(&dir)?;
            let machine_md = std::fs::read_to_string(dir.join("machine.md")).unwrap_or_default();
            write_results(&dir, &results, &machine_md)?;
            eprintln!("wrote {}", dir.join("report.md").display());
            Ok(())
        }
        Command::List => {
            let o = Options::new(1024, None, false, None, None);
            println!(
                "Default: 1024-byte payloads, {} s measured per scenario after {} s warm-up.\n",
                o.seconds, o.warmup_secs
            );
            for s in scenarios::catalog(&o) {
                let shape = match &s.kind {
                    Kind::Load(l) => format!(
                        "{} publishers, {}, batch {}, fan-out {}{}{}",
                        l.concurrency,
                        l.rate
                            .map_or("closed loop".to_owned(), |r| format!("{r} events/s")),
                        l.batch,
                        l.fanout(),
                        l.filter
                            .map_or(String::new(), |f| format!(", filter `{}`", f.expr)),
                        l.transform
                            .map_or(String::new(), |t| format!(", transform: {}", t.label()))
                    ),
                    Kind::Recovery { target_mb } => format!("fills {target_mb} MiB"),
                    Kind::Snapshot(sp) => format!(
                        "fills {} MiB, then {} publishers × {} events/s, batch 1; snapshot after {} s + {} s",
                        sp.target_mb, sp.publishers, sp.rate_each, sp.warmup_secs, sp.baseline_secs
                    ),
                    Kind::Stream(st) => format!(
                        "{} SSE clients, {} publishers, {} events/s, batch 1",
                        st.clients, st.publishers, st.rate
                    ),
                    Kind::Backlog { events } => {
                        format!("{events} pending deliveries, batches of 500, then a drain")
                    }
                    Kind::NotAvailable(_) => "not available in this build".to_owned(),
                };
                println!("{:<24} {shape}\n{:<24} {}\n", s.name, "", s.description);
            }
            Ok(())
        }
        Command::Ingest(a) => {
            let spec = LoadSpec {
                concurrency: a.concurrency,
                rate: None,
                batch: 1,
                payload_bytes: a.payload_bytes,
                warmup_secs: 2,
                seconds: a.seconds,
                groups: vec![GroupSpec {
                    name: "disabled",
                    enabled: false,
                    drain: false,
                    ..GroupSpec::healthy(a.subscriptions)
                }],
                filter: None,
                payload: load::PayloadShape::Filler,
                transform: None,
                max_backlog: None,
                drain_secs: 0,
            };
            single(
                &a.gp,
                "ingest",
                "durable publishes (endpoints disabled)",
                spec,
            )
            .await
        }
        Command::Deliver(a) => {
            let spec = LoadSpec {
                concurrency: a.concurrency,
                rate: a.rate,
                batch: a.batch,
                payload_bytes: a.payload_bytes,
                warmup_secs: 2,
                seconds: a.seconds,
                groups: vec![GroupSpec::healthy(a.fanout)],
                filter: None,
                payload: load::PayloadShape::Filler,
                transform: None,
                max_backlog: None,
                drain_secs: 30,
            };
            single(&a.gp, "deliver", "publish → receiver", spec).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0).0, "1970-01-01T00-00-00Z");
        assert_eq!(utc(1_795_000_000).1, "2026-11-18 11:06:40");
        assert_eq!(utc(951_782_400).1, "2000-02-29 00:00:00");
    }

    #[test]
    fn scenario_selection() {
        let o = Options::new(1024, None, true, None, None);
        let all = scenarios::catalog(&o);
        let picked = select(all.clone(), &["fanout-10".into(), "ingest".into()]).unwrap();
        assert_eq!(
            picked.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["ingest", "fanout-10"]
        );
        assert!(select(all.clone(), &["nope".into()]).is_err());
        let stream = select(all.clone(), &["stream_fanout".into()]).unwrap();
        assert!(matches!(&stream[0].kind, Kind::Stream(s) if s.clients == 1000 && s.rate == 1000));
        let snap = select(all.clone(), &["snapshot".into()]).unwrap();
        assert!(
            matches!(&snap[0].kind, Kind::Snapshot(s) if s.target_mb == 16 && s.publishers * s.rate_each as usize == 200)
        );
        let full = Options::new(1024, None, false, None, Some(64));
        assert_eq!((full.recovery_mb, full.snapshot_mb), (1024, 64));
        assert_eq!(
            select(all, &[]).unwrap().len(),
            scenarios::catalog(&o).len()
        );
    }
}
