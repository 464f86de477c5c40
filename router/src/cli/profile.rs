//! Client profiles: which server the client commands talk to, with which token.
//!
//! A profile is a `[profiles.<name>]` table (`url`, `token`, `tenant`) in
//! `$XDG_CONFIG_HOME/gatepulse/config.toml` (else `~/.config/gatepulse/config.toml`;
//! `GATEPULSE_CLIENT_CONFIG` names another file), written by `gp init` with mode 0600.
//! Each value is taken from, in order: the command line (`--url`), the environment
//! (`GATEPULSE_URL`, `GATEPULSE_TOKEN`, `GATEPULSE_TENANT`), the profile chosen by
//! `--profile` or `GATEPULSE_PROFILE` (default `default`), then the built-in default
//! (`http://127.0.0.1:8080`; no token).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_PROFILE: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

/// The whole client configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

/// The address a local client reaches a server listening on `listen` at.
pub fn local_url(listen: std::net::SocketAddr) -> String {
    let host = if listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}", listen.port())
}

/// What the command line asked for; set once by `cli::main`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub profile: Option<String>,
    pub url: Option<String>,
}

static SELECTION: OnceLock<Selection> = OnceLock::new();

/// Records the command line's `--profile` and `--url` for every client command.
pub fn select(selection: Selection) {
    let _ = SELECTION.set(selection);
}

fn selection() -> Selection {
    SELECTION.get().cloned().unwrap_or_default()
}

/// Where the client configuration lives.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GATEPULSE_CLIENT_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("gatepulse").join("config.toml"))
}

/// Reads the client configuration file; empty when there is none.
pub fn read_file() -> Result<ClientFile, String> {
    let Some(path) = path() else {
        return Ok(ClientFile::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            format!(
                "{}: {}",
                path.display(),
                e.message().replace('\n', " ").trim()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientFile::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The profile's name: `--profile`, else `GATEPULSE_PROFILE`, else `default`; and
/// whether it was asked for by name (then it must exist).
pub fn name() -> (String, bool) {
    match selection()
        .profile
        .or_else(|| std::env::var("GATEPULSE_PROFILE").ok())
    {
        Some(n) => (n, true),
        None => (DEFAULT_PROFILE.to_owned(), false),
    }
}

/// Server, token and tenant for a client command, each from the first layer that has
/// it (command line, environment, profile, default).
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `None` when no layer names a server (clients then use [`DEFAULT_URL`]).
    pub url: Option<String>,
    pub token: Option<String>,
    pub tenant: Option<String>,
    /// The profile used, if one was found.
    pub profile: Option<String>,
}

/// The server named on the command line (`--server`) or in `GATEPULSE_URL`.
pub fn given_url() -> Option<String> {
    selection()
        .url
        .or_else(|| {
            std::env::var("GATEPULSE_URL")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .map(|u| u.trim_end_matches('/').to_owned())
}

pub fn resolve() -> Result<Resolved, String> {
    let (name, named) = name();
    let file = read_file()?;
    let profile = match file.profiles.get(&name) {
        Some(p) => Some(p.clone()),
        None if named => {
            let where_ = path().map_or_else(
                || "no client config".to_owned(),
                |p| p.display().to_string(),
            );
            return Err(format!(
                "no profile {name:?} in {where_} (gp init --profile {name} writes one)"
            ));
        }
        None => None,
    };
    let from = |env: &str, field: fn(&Profile) -> Option<String>| {
        std::env::var(env)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| profile.as_ref().and_then(field))
    };
    let url = given_url().or_else(|| {
        profile
            .as_ref()
            .and_then(|p| p.url.as_deref())
            .map(|u| u.trim_end_matches('/').to_owned())
    });
    Ok(Resolved {
        url,
        token: from("GATEPULSE_TOKEN", |p| p.token.clone()),
        tenant: from("GATEPULSE_TENANT", |p| p.tenant.clone()),
        profile: profile.map(|_| name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format_round_trips_and_refuses_unknown_keys() {
        let mut file = ClientFile::default();
        file.profiles.insert(
            "default".into(),
            Profile {
                url: Some("http://gp:8080".into()),
                token: Some("gpk_x".into()),
                tenant: None,
            },
        );
        let text = toml::to_string(&file).unwrap();
        assert!(text.contains("[profiles.default]"), "{text}");
        let back: ClientFile = toml::from_str(&text).unwrap();
        assert_eq!(back.profiles, file.profiles);
        assert!(toml::from_str::<ClientFile>("[profiles.a]\ntokn = \"x\"\n").is_err());
        assert_eq!(
            local_url("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            local_url("[::1]:9000".parse().unwrap()),
            "http://[::1]:9000"
        );
    }
}
