//! `gp plugins upload|list|delete|test`. `test` runs a module locally on an event
//! file, in the same sandbox and with the same limits the server uses (the
//! configuration's `[plugins]` section: `GATEPULSE_CONFIG` and `GATEPULSE_PLUGINS__*`
//! apply), so a plugin can be tried before it is uploaded.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;
use crate::config::{CliOverrides, Config};

#[derive(Debug, Subcommand)]
pub enum PluginsCmd {
    /// Upload a module as NAME@VERSION.
    Upload {
        /// The `.wasm` file.
        file: PathBuf,
        #[arg(long)]
        name: String,
        /// A semantic version, e.g. 1.0.0.
        #[arg(long)]
        version: String,
    },
    /// List the uploaded plugins.
    List,
    /// Delete one version.
    Delete { name: String, version: String },
    /// Run a module locally on an event, with the server's limits.
    Test {
        /// The `.wasm` file.
        file: PathBuf,
        /// A JSON file: either an event `{"topic", "payload"}` or a bare payload.
        #[arg(long)]
        event: PathBuf,
        /// The plugin's configuration (JSON object).
        #[arg(long, default_value = "{}")]
        config: String,
        /// Topic to use when the event file is a bare payload.
        #[arg(long, default_value = "test.event")]
        topic: String,
        /// Run on a fresh instance (the strict tier) instead of a warm one.
        #[arg(long)]
        fresh: bool,
    },
}

pub(super) fn run(cmd: PluginsCmd) -> i32 {
    let result = match cmd {
        PluginsCmd::Test {
            file,
            event,
            config,
            topic,
            fresh,
        } => test(&file, &event, &config, &topic, fresh),
        remote => remote_command(remote),
    };
    match result {
        Ok(v) => {
            super::output::print(&v);
            0
        }
        Err(e) => {
            eprintln!("gp: {e}");
            1
        }
    }
}

fn remote_command(cmd: PluginsCmd) -> Result<Value, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let c = Client::configured()?;
        match cmd {
            PluginsCmd::Upload {
                file,
                name,
                version,
            } => {
                let wasm =
                    std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
                let mut req = c
                    .http
                    .post(format!("{}/v1/plugins", c.base))
                    .query(&[("name", &name), ("version", &version)])
                    .bearer_auth(&c.token)
                    .header("content-type", "application/wasm")
                    .body(wasm);
                if let Some(t) = &c.tenant {
                    req = req.header("GatePulse-Tenant", t);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("request failed: {e}"))?;
                let ok = resp.status().is_success();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if ok {
                    Ok(body)
                } else {
                    Err(serde_json::to_string_pretty(&body).unwrap_or_default())
                }
            }
            PluginsCmd::List => c.call(reqwest::Method::GET, "/v1/plugins", None).await,
            PluginsCmd::Delete { name, version } => {
                c.call(
                    reqwest::Method::DELETE,
                    &format!("/v1/plugins/{name}/{version}"),
                    None,
                )
                .await
            }
            PluginsCmd::Test { .. } => Err("not a remote command".into()),
        }
    })
}

fn test(
    file: &std::path::Path,
    event: &std::path::Path,
    config: &str,
    topic: &str,
    fresh: bool,
) -> Result<Value, String> {
    let settings = Config::load(None, &CliOverrides::default(), true).map_err(|e| e.to_string())?;
    let wasm = std::fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let raw =
        std::fs::read_to_string(event).map_err(|e| format!("reading {}: {e}", event.display()))?;
    let doc: Value = serde_json::from_str(&raw).map_err(|e| format!("{}: {e}", event.display()))?;
    let (topic, payload) = match (doc.get("topic"), doc.get("payload")) {
        (Some(Value::String(t)), Some(p)) => (t.clone(), p.clone()),
        _ => (topic.to_owned(), doc),
    };
    let config: Value =
        serde_json::from_str(config).map_err(|e| format!("--config is not JSON: {e}"))?;
    if !config.is_object() {
        return Err("--config must be a JSON object".into());
    }
    let host = gatepulse_plugin_host::Host::new(
        settings
            .plugins
            .limits(settings.api.max_payload_bytes.saturating_mul(2)),
    )
    .map_err(|e| e.to_string())?;
    let plugin = host.load(&wasm).map_err(|e| format!("refused: {e}"))?;
    let input = json!({
        "topic": topic,
        "event_id": "evt_test",
        "created_at": crate::clock::rfc3339(crate::clock::now_ms()),
        "payload": payload,
    });
    let input = serde_json::to_vec(&input).map_err(|e| e.to_string())?;
    let config = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let report = if fresh {
        plugin.call_fresh(&input, &config)
    } else {
        plugin.call(&input, &config)
    };
    let logs: Vec<Value> = report
        .logs
        .iter()
        .map(|l| json!({"level": l.level, "message": l.message}))
        .collect();
    let mut out = json!({
        "plugin": {"name": plugin.meta.name, "sdk": plugin.meta.sdk, "abi": plugin.meta.abi,
                   "sha256": plugin.sha256, "size": plugin.size},
        "fuel_used": report.fuel_used,
        "took_us": u64::try_from(report.took.as_micros()).unwrap_or(u64::MAX),
        "logs": logs,
    });
    match report.outcome {
        Ok(gatepulse_plugin_host::Outcome::Emit(body)) => {
            out["outcome"] = json!("emit");
            out["body"] = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Ok(out)
        }
        Ok(gatepulse_plugin_host::Outcome::Drop) => {
            out["outcome"] = json!("drop");
            Ok(out)
        }
        Ok(gatepulse_plugin_host::Outcome::Pass) => {
            out["outcome"] = json!("pass");
            out["body"] = input_payload(&input);
            Ok(out)
        }
        Err(e) => Err(format!(
            "{} ({}): {e}\n{}",
            plugin.meta.name.as_deref().unwrap_or("plugin"),
            e.kind(),
            serde_json::to_string_pretty(&out).unwrap_or_default()
        )),
    }
}

fn input_payload(input: &[u8]) -> Value {
    serde_json::from_slice::<Value>(input)
        .ok()
        .and_then(|v| v.get("payload").cloned())
        .unwrap_or(Value::Null)
}
