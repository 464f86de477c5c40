//! `gp init`: a working setup in one command.
//!
//! Writes a commented server configuration (`./gatepulse.toml` or `--config`; mode
//! 0600: it holds the admin token) and a client profile (`profile.rs`; mode 0600),
//! generating the admin token and a master key (kept in its own file beside the
//! configuration, never inside it) unless told otherwise, checks whether a server
//! answers at the profile's URL and accepts its token, and prints the next command.
//! Without a terminal, or with `--yes`, it asks nothing; on a terminal it asks for the
//! values not given as flags.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::profile::{self, Profile};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the server configuration.
    #[arg(long, value_name = "PATH", default_value = "gatepulse.toml")]
    pub config: PathBuf,
    /// Address the server will listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The server's data directory (default: gatepulse-data beside the configuration).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Store backend: `redb` (embedded) or a postgres:// URL.
    #[arg(long, default_value = "redb")]
    pub store: String,
    /// Use this admin token instead of generating one.
    #[arg(long, conflicts_with = "no_admin_token")]
    pub admin_token: Option<String>,
    /// Write no admin token: the server reads GATEPULSE_ADMIN_TOKEN.
    #[arg(long)]
    pub no_admin_token: bool,
    /// Write no master key: the server reads GATEPULSE_MASTER_KEY (or an existing
    /// master_key_file you add).
    #[arg(long)]
    pub no_master_key: bool,
    /// The client profile's token (default: the admin token written here).
    #[arg(long)]
    pub token: Option<String>,
    /// The tenant the profile's admin token acts in (GatePulse-Tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Write only the client profile.
    #[arg(long, conflicts_with = "no_profile")]
    pub client_only: bool,
    /// Write only the server configuration.
    #[arg(long)]
    pub no_profile: bool,
    /// Replace files or a profile that already exist.
    #[arg(long)]
    pub force: bool,
    /// Ask nothing, even on a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// What a run wrote and found, for the closing summary.
#[derive(Debug, Default)]
struct Outcome {
    lines: Vec<String>,
    next: Vec<String>,
}

pub fn run(args: InitArgs) -> i32 {
    match init(args) {
        Ok(out) => {
            for l in &out.lines {
                println!("{l}");
            }
            if !out.next.is_empty() {
                println!("\nNext:");
                for n in &out.next {
                    println!("  {n}");
                }
            }
            0
        }
        Err(e) => {
            eprintln!("gp init: {e}");
            1
        }
    }
}

fn init(mut args: InitArgs) -> Result<Outcome, String> {
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let mut out = Outcome::default();
    let config_path = std::path::absolute(&args.config).map_err(|e| e.to_string())?;
    let mut admin_token = None;
    if !args.client_only {
        if config_path.exists() && !args.force {
            return Err(format!(
                "{} already exists: keep it, or add --force to replace it \
                 (gp doctor --config {0} checks it)",
                config_path.display()
            ));
        }
        if interactive {
            let listen = ask("Listen address", &args.listen.to_string())?;
            args.listen = listen
                .parse()
                .map_err(|e| format!("listen address {listen:?}: {e}"))?;
        }
        let written = write_server_config(&args, &config_path)?;
        out.lines.extend(written.lines);
        admin_token = written.admin_token;
        out.next
            .push(format!("gp serve --config {}", shell_path(&config_path)));
    }
    if !args.no_profile {
        let default_url = profile::local_url(args.listen);
        let url = match profile::given_url() {
            Some(u) => u,
            None if interactive => ask("Server URL for the client profile", &default_url)?,
            None => default_url,
        };
        let mut token = args.token.clone().or_else(|| admin_token.clone());
        if token.is_none() && interactive {
            let given = ask("Token for the profile (an API key or the admin token)", "")?;
            token = (!given.is_empty()).then_some(given);
        }
        let (name, _) = profile::name();
        let path = write_profile(
            &name,
            Profile {
                url: Some(url.clone()),
                token: token.clone(),
                tenant: args.tenant.clone(),
            },
            args.force,
        )?;
        out.lines.push(format!(
            "wrote client profile {name:?} to {} (mode 0600)",
            path.display()
        ));
        match check(&url, token.as_deref(), args.tenant.as_deref()) {
            Check::Accepted(who) => out
                .lines
                .push(format!("{url} answers and accepts the token ({who})")),
            Check::NoToken => out.lines.push(format!(
                "{url} answers; the profile has no token yet (gp init --client-only --token …)"
            )),
            Check::Refused(why) => {
                return Err(format!(
                    "{url} refuses the profile's token: {why}. The profile is written; \
                     run gp init --client-only --force --token <a valid key>"
                ));
            }
            Check::Down(why) => {
                out.lines
                    .push(format!("no server answers at {url} yet ({why})"));
            }
        }
        out.next.push(match args.client_only {
            true => "gp doctor".to_owned(),
            false => format!("gp doctor --config {}", shell_path(&config_path)),
        });
    }
    Ok(out)
}

/// Asks on the terminal; an empty answer takes `default`.
fn ask(question: &str, default: &str) -> Result<String, String> {
    let mut stdout = std::io::stdout().lock();
    if default.is_empty() {
        let _ = write!(stdout, "{question}: ");
    } else {
        let _ = write!(stdout, "{question} [{default}]: ");
    }
    let _ = stdout.flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let answer = line.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_owned())
}

fn shell_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@".contains(c))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

struct ServerWritten {
    lines: Vec<String>,
    admin_token: Option<String>,
}

/// Writes the configuration (and the master key file beside it).
fn write_server_config(args: &InitArgs, path: &Path) -> Result<ServerWritten, String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let data_dir = match &args.data_dir {
        Some(d) => std::path::absolute(d).map_err(|e| e.to_string())?,
        None => dir.join("gatepulse-data"),
    };
    if args.store != "redb"
        && !args.store.starts_with("postgres://")
        && !args.store.starts_with("postgresql://")
    {
        return Err(format!(
            "--store {:?}: expected \"redb\" or a postgres:// URL",
            args.store
        ));
    }
    let mut lines = Vec::new();
    let admin_token = match (&args.admin_token, args.no_admin_token) {
        (Some(t), _) if t.len() < 16 => {
            return Err("--admin-token: at least 16 characters".to_owned());
        }
        (Some(t), _) => Some(t.clone()),
        (None, true) => None,
        (None, false) => Some(crate::crypto::generate_admin_token()),
    };
    let key_file = dir.join("master.key");
    if !args.no_master_key {
        if key_file.exists() && !args.force {
            return Err(format!(
                "{} already exists: it may protect a store; keep it (add --no-master-key and \
                 reference it as master_key_file) or add --force",
                key_file.display()
            ));
        }
        let entry = format!(
            "# GatePulse master key (gp init). Keep it out of the data dir and the backups,\n\
             # and keep a copy in your secret store: without it the stored secrets are lost.\n{}\n",
            crate::crypto::generate_key(1)
        );
        crate::server::write_private(&key_file, entry.as_bytes())
            .map_err(|e| format!("writing {}: {e}", key_file.display()))?;
        lines.push(format!(
            "wrote master key version 1 to {} (mode 0600)",
            key_file.display()
        ));
    }
    let text = config_text(
        args,
        &data_dir,
        admin_token.as_deref(),
        (!args.no_master_key).then_some(&key_file),
    );
    crate::server::write_private(path, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    lines.push(format!(
        "wrote server configuration to {} (mode 0600)",
        path.display()
    ));
    Ok(ServerWritten { lines, admin_token })
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The configuration file: the settings chosen, and pointers to the rest.
fn config_text(
    args: &InitArgs,
    data_dir: &Path,
    admin_token: Option<&str>,
    key_file: Option<&Path>,
) -> String {
    let token_line = match admin_token {
        Some(t) => format!("admin_token = {}", toml_string(t)),
        None => "# admin_token comes from GATEPULSE_ADMIN_TOKEN (at least 16 characters).\n# admin_token = \"\"".to_owned(),
    };
    let key_line = match key_file {
        Some(p) => format!("master_key_file = {}", toml_string(&p.display().to_string())),
        None => "# The master key comes from GATEPULSE_MASTER_KEY (gp secrets generate-key).\n# master_key_file = \"/run/secrets/gatepulse-master-key\"".to_owned(),
    };
    format!(
        "# GatePulse server configuration, written by `gp init`. Every key and its default\n\
         # is in docs/configuration.md; GATEPULSE_* variables override this file\n\
         # (`__` between nested keys, e.g. GATEPULSE_DELIVERY__DEFAULT_TIMEOUT_MS).\n\
         # Check it with: gp doctor --config <this file>\n\
         \n\
         # Address the HTTP API listens on.\n\
         listen = {listen}\n\
         # The embedded store's directory (with store = \"redb\").\n\
         data_dir = {data_dir}\n\
         # \"redb\" (embedded) or postgres://user:password@host:5432/database.\n\
         store = {store}\n\
         # Manages tenants and API keys (Authorization: Bearer <token>). This file holds\n\
         # it: keep it readable by the server's user only.\n\
         {token_line}\n\
         # The file holding the master keys that encrypt secrets at rest, one\n\
         # `<version>:<base64>` per line (not in the data dir, not in backups).\n\
         # Add a version to rotate, then `gp secrets rotate` (docs/security.md).\n\
         {key_line}\n\
         \n\
         [log]\n\
         # \"text\" or \"json\" (for a log pipeline).\n\
         format = \"text\"\n\
         level = \"info\"\n\
         \n\
         [delivery]\n\
         # Deliveries to private, loopback and link-local addresses are refused unless\n\
         # this is true (leave it false in production: docs/delivery.md).\n\
         allow_private_destinations = false\n\
         # How long to wait for a receiver before the attempt counts as failed.\n\
         default_timeout_ms = 15000\n\
         \n\
         # More: [api] limits, [retention], [stream], [plugins], [postgres], [redb]\n\
         # (docs/configuration.md; recommended values: docs/production/checklist.md).\n",
        listen = toml_string(&args.listen.to_string()),
        data_dir = toml_string(&data_dir.display().to_string()),
        store = toml_string(&args.store),
    )
}

/// Adds (or, with `force`, replaces) profile `name` in the client configuration.
fn write_profile(name: &str, profile: Profile, force: bool) -> Result<PathBuf, String> {
    let path = profile::path().ok_or(
        "no place for the client profile: set HOME, XDG_CONFIG_HOME or GATEPULSE_CLIENT_CONFIG",
    )?;
    let mut file = profile::read_file()?;
    if file.profiles.contains_key(name) && !force {
        return Err(format!(
            "profile {name:?} already exists in {}: add --force to replace it, or name \
             another with --profile",
            path.display()
        ));
    }
    file.profiles.insert(name.to_owned(), profile);
    let body = toml::to_string(&file).map_err(|e| e.to_string())?;
    let text = format!(
        "# GatePulse client profiles (gp init). Client commands use the profile named by\n\
         # --profile or GATEPULSE_PROFILE (default \"default\"); --server, GATEPULSE_URL,\n\
         # GATEPULSE_TOKEN and GATEPULSE_TENANT override its values. Holds tokens: mode 0600.\n\n{body}"
    );
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    crate::server::write_private(&path, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

enum Check {
    Accepted(String),
    NoToken,
    Refused(String),
    Down(String),
}

/// Whether a server answers at `url` and takes `token`.
fn check(url: &str, token: Option<&str>, tenant: Option<&str>) -> Check {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return Check::Down(e.to_string()),
    };
    runtime.block_on(async {
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => return Check::Down(e.to_string()),
        };
        if let Err(e) = http.get(format!("{url}/healthz")).send().await {
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            return Check::Down(cause.to_string());
        }
        let Some(token) = token else {
            return Check::NoToken;
        };
        let mut req = http.get(format!("{url}/v1/whoami")).bearer_auth(token);
        if let Some(t) = tenant {
            req = req.header("GatePulse-Tenant", t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let me: Value = r.json().await.unwrap_or(Value::Null);
                Check::Accepted(match me["kind"].as_str() {
                    Some("admin") => "the admin token".to_owned(),
                    _ => format!("API key {}", me["key_id"].as_str().unwrap_or("?")),
                })
            }
            Ok(r) => {
                let status = r.status();
                let p: Value = r.json().await.unwrap_or(Value::Null);
                Check::Refused(format!(
                    "{status} {}",
                    p["detail"].as_str().unwrap_or_default()
                ))
            }
            Err(e) => Check::Down(e.to_string()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        init: InitArgs,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type
    fn the_written_configuration_loads_as_gp_serve_loads_it() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let dir = jail.directory().to_path_buf();
            let args = T::parse_from(["t", "--listen", "127.0.0.1:9999"]).init;
            let key = dir.join("master.key");
            std::fs::write(&key, format!("{}\n", crate::crypto::generate_key(1))).unwrap();
            let text = config_text(
                &args,
                &dir.join("data"),
                Some("0123456789abcdef-x"),
                Some(&key),
            );
            let file = dir.join("gatepulse.toml");
            std::fs::write(&file, &text).unwrap();
            let fig = crate::config::Config::figment(Some(&file), &Default::default());
            let config = crate::config::Config::from_figment(fig, false).unwrap();
            assert_eq!(config.listen.to_string(), "127.0.0.1:9999");
            assert_eq!(config.data_dir, dir.join("data"));
            assert_eq!(config.master_key_file(), Some(key.as_path()));
            assert!(!config.delivery.allow_private_destinations);
            Ok(())
        });
        assert_eq!(shell_path(Path::new("/a b/c")), "'/a b/c'");
    }
}
