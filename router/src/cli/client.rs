//! Client commands: thin wrappers over the HTTP API that print JSON.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Command;

#[derive(Debug, Subcommand)]
pub enum TenantsCmd {
    /// Create a tenant.
    Create { name: String },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Create a key; prints its secret once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Repeat for several scopes, e.g. --scope events:write --scope events:read.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// RFC 3339 time after which the key stops working, e.g. 2027-06-30T00:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List a tenant's keys.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        tenant: String,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCmd {
    /// Create an endpoint.
    Create {
        #[arg(long)]
        url: Option<String>,
        /// Capture deliveries instead of sending them.
        #[arg(long)]
        inbox: bool,
        #[arg(long)]
        description: Option<String>,
        /// Signature schemes: `v1` (HMAC, the default), `v1a` (Ed25519); repeat for
        /// both.
        #[arg(long = "signature-scheme", value_parser = ["v1", "v1a"])]
        signature_schemes: Vec<String>,
    },
    List,
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
    /// Print the signing secret.
    Secret {
        id: String,
    },
    /// Rotate the signing secret.
    Rotate {
        id: String,
    },
    /// Print the Ed25519 public keys `v1a` signatures verify with.
    PublicKey {
        id: String,
    },
    /// Rotate the Ed25519 key pair (`v1a`).
    RotatePublicKey {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCmd {
    /// Subscribe an endpoint to topic patterns.
    Create {
        #[arg(long)]
        endpoint: String,
        /// Repeat for several patterns.
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        #[arg(long)]
        filter: Option<String>,
    },
    List,
    Get {
        id: String,
    },
    Delete {
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// Publish one event.
    Publish {
        #[arg(long)]
        topic: String,
        /// The payload, a JSON object.
        #[arg(long)]
        data: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    List {
        #[arg(long)]
        topic: Option<String>,
        #[arg(long)]
        after_cursor: Option<u64>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    Get {
        id: String,
    },
}

pub(super) struct Client {
    pub(super) base: String,
    pub(super) token: String,
    pub(super) tenant: Option<String>,
    pub(super) http: reqwest::Client,
}

impl Client {
    /// The server and token the command line, the environment and the profile name
    /// ([`super::profile`]).
    pub(super) fn configured() -> Result<Self, String> {
        let resolved = super::profile::resolve()?;
        let token = resolved.token.ok_or_else(|| {
            "no token: set GATEPULSE_TOKEN to an API key or the admin token, or write a \
             profile with `gp init`"
                .to_owned()
        })?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| format!("http client: {e}"))?;
        Ok(Self {
            base: resolved
                .url
                .unwrap_or_else(|| super::profile::DEFAULT_URL.to_owned()),
            token,
            tenant: resolved.tenant,
            http,
        })
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(t) = &self.tenant {
            req = req.header("GatePulse-Tenant", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("reading response: {e}"))?;
        let value: Value = if text.is_empty() {
            json!({"status": status.as_u16()})
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(value)
        } else {
            Err(serde_json::to_string_pretty(&value).unwrap_or_default())
        }
    }
}

pub(super) fn run(command: Command) -> i32 {
    run_with(async |client| execute(client, command).await)
}

/// Runs one client call against the server named by the environment and prints its
/// JSON answer (or the error); returns the exit code.
pub(super) fn run_with(f: impl AsyncFnOnce(&Client) -> Result<Value, String>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gp: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async move {
        let client = Client::configured()?;
        f(&client).await
    });
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

async fn execute(c: &Client, command: Command) -> Result<Value, String> {
    use reqwest::Method as M;
    match command {
        Command::Tenants(TenantsCmd::Create { name }) => {
            c.call(M::POST, "/v1/tenants", Some(json!({"name": name})))
                .await
        }
        Command::Tenants(TenantsCmd::List) => c.call(M::GET, "/v1/tenants", None).await,
        Command::Keys(KeysCmd::Create {
            tenant,
            name,
            scopes,
            expires_at,
        }) => {
            let mut body = json!({"name": name, "scopes": scopes});
            if let Some(at) = expires_at {
                body["expires_at"] = json!(at);
            }
            c.call(M::POST, &format!("/v1/tenants/{tenant}/keys"), Some(body))
                .await
        }
        Command::Keys(KeysCmd::List { tenant }) => {
            c.call(M::GET, &format!("/v1/tenants/{tenant}/keys"), None)
                .await
        }
        Command::Keys(KeysCmd::Revoke { tenant, key_id }) => {
            c.call(
                M::DELETE,
                &format!("/v1/tenants/{tenant}/keys/{key_id}"),
                None,
            )
            .await
        }
        Command::Endpoints(cmd) => match cmd {
            EndpointsCmd::Create {
                url,
                inbox,
                description,
                signature_schemes,
            } => {
                let mut body = json!({"kind": if inbox { "inbox" } else { "http" }});
                if !signature_schemes.is_empty() {
                    body["signature_schemes"] = json!(signature_schemes);
                }
                if let Some(u) = url {
                    body["url"] = json!(u);
                }
                if let Some(d) = description {
                    body["description"] = json!(d);
                }
                c.call(M::POST, "/v1/endpoints", Some(body)).await
            }
            EndpointsCmd::List => c.call(M::GET, "/v1/endpoints", None).await,
            EndpointsCmd::Get { id } => c.call(M::GET, &format!("/v1/endpoints/{id}"), None).await,
            EndpointsCmd::Delete { id } => {
                c.call(M::DELETE, &format!("/v1/endpoints/{id}"), None)
                    .await
            }
            EndpointsCmd::Secret { id } => {
                c.call(M::GET, &format!("/v1/endpoints/{id}/secret"), None)
                    .await
            }
            EndpointsCmd::Rotate { id } => {
                c.call(
                    M::POST,
                    &format!("/v1/endpoints/{id}/secret/rotate"),
                    Some(json!({})),
                )
                .await
            }
            EndpointsCmd::PublicKey { id } => {
                c.call(M::GET, &format!("/v1/endpoints/{id}/public-key"), None)
                    .await
            }
            EndpointsCmd::RotatePublicKey { id } => {
                c.call(
                    M::POST,
                    &format!("/v1/endpoints/{id}/public-key/rotate"),
                    None,
                )
                .await
            }
        },
        Command::Subscriptions(cmd) => match cmd {
            SubscriptionsCmd::Create {
                endpoint,
                topics,
                filter,
            } => {
                let mut body = json!({"endpoint_id": endpoint, "topics": topics});
                if let Some(f) = filter {
                    body["filter"] = json!(f);
                }
                c.call(M::POST, "/v1/subscriptions", Some(body)).await
            }
            SubscriptionsCmd::List => c.call(M::GET, "/v1/subscriptions", None).await,
            SubscriptionsCmd::Get { id } => {
                c.call(M::GET, &format!("/v1/subscriptions/{id}"), None)
                    .await
            }
            SubscriptionsCmd::Delete { id } => {
                c.call(M::DELETE, &format!("/v1/subscriptions/{id}"), None)
                    .await
            }
        },
        Command::Events(cmd) => match cmd {
            EventsCmd::Publish {
                topic,
                data,
                idempotency_key,
            } => {
                let payload: Value =
                    serde_json::from_str(&data).map_err(|e| format!("--data is not JSON: {e}"))?;
                let mut body = json!({"topic": topic, "payload": payload});
                if let Some(k) = idempotency_key {
                    body["idempotency_key"] = json!(k);
                }
                c.call(M::POST, "/v1/events", Some(body)).await
            }
            EventsCmd::List {
                topic,
                after_cursor,
                limit,
            } => {
                let mut q = vec![format!("limit={limit}")];
                if let Some(t) = topic {
                    q.push(format!("topic={t}"));
                }
                if let Some(a) = after_cursor {
                    q.push(format!("after_cursor={a}"));
                }
                c.call(M::GET, &format!("/v1/events?{}", q.join("&")), None)
                    .await
            }
            EventsCmd::Get { id } => c.call(M::GET, &format!("/v1/events/{id}"), None).await,
        },
        Command::Serve(_)
        | Command::Filter(_)
        | Command::Store(_)
        | Command::Secrets(_)
        | Command::Audit(_)
        | Command::Cluster(_)
        | Command::Doctor(_)
        | Command::Init(_)
        | Command::Tail(_)
        | Command::Plugins(_)
        | Command::Openapi => Err("not a client command".into()),
    }
}
