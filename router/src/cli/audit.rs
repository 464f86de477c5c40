//! `gp audit`: read the audit log and check its hash chains (scope `audit:read`, or the
//! admin token for every tenant).

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Audit records, oldest first (one page; --cursor for the next).
    List {
        /// e.g. endpoint.delete, api_key.revoke, dlq.requeue.
        #[arg(long)]
        action: Option<String>,
        /// A resource kind (endpoint) or id (ep_…).
        #[arg(long)]
        resource: Option<String>,
        /// admin, system or a key id.
        #[arg(long)]
        actor: Option<String>,
        /// RFC 3339: records at or after.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: records before.
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Recompute every record's hash and link; exits 1 naming the first broken one.
    Verify,
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            url.append_pair(k, v);
        }
    }
    let q = url.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

pub(super) fn run(cmd: AuditCmd) -> i32 {
    match cmd {
        AuditCmd::List {
            action,
            resource,
            actor,
            since,
            until,
            limit,
            cursor,
        } => {
            let q = query(&[
                ("action", action),
                ("resource", resource),
                ("actor", actor),
                ("since", since),
                ("until", until),
                ("limit", limit.map(|l| l.to_string())),
                ("cursor", cursor),
            ]);
            super::client::run_with(async move |c| {
                c.call(Method::GET, &format!("/v1/audit{q}"), None).await
            })
        }
        AuditCmd::Verify => super::client::run_with(async |c| {
            let report = c.call(Method::GET, "/v1/audit/verify", None).await?;
            if report["ok"] == Value::Bool(true) {
                Ok(report)
            } else {
                Err(format!(
                    "the audit log is broken: {}",
                    serde_json::to_string_pretty(&report["first_broken"]).unwrap_or_default()
                ))
            }
        }),
    }
}
