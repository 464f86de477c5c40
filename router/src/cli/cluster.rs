//! `gp cluster status`: the nodes sharing the server's store and the leadership, as
//! `GET /v1/admin/cluster` answers (admin token). `--output text` prints the
//! leadership and a table of the nodes.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{self, Output};

#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Which nodes are alive, which one leads (and for which term), and how many
    /// leases each holds.
    Status,
}

pub(super) fn run(cmd: ClusterCmd) -> i32 {
    match cmd {
        ClusterCmd::Status => {
            super::client::run_with(async |c| {
                let answer = c.call(Method::GET, "/v1/admin/cluster", None).await?;
                Ok(match output::chosen(Output::Json) {
                    // Printed as it is: a string answer is one text cell.
                    Output::Text => Value::String(status_text(&answer).trim_end().to_owned()),
                    Output::Json => answer,
                })
            })
        }
    }
}

/// The leadership as lines, then one row per node.
fn status_text(answer: &Value) -> String {
    let leader = &answer["leader"];
    let mut out = format!(
        "self    {}\nmode    {}\nleader  {}\n\n",
        answer["self"].as_str().unwrap_or("-"),
        answer["mode"].as_str().unwrap_or("-"),
        match leader["id"].as_str() {
            Some(id) => format!(
                "{id} (term {}, until {})",
                leader["term"],
                leader["expires_at"].as_str().unwrap_or("-")
            ),
            None => "none (an election is due)".to_owned(),
        },
    );
    let rows: Vec<Value> = answer["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .map(|n| {
            json!({
                "id": n["id"],
                "role": n["role"],
                "alive": n["alive"],
                "leases": n["leases"],
                "heartbeat_age_ms": n["heartbeat_age_ms"],
                "address": n["address"],
                "version": n["version"],
            })
        })
        .collect();
    out.push_str(&output::text(&Value::Array(rows)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_leader_and_every_node() {
        let answer = json!({
            "self": "b", "mode": "leader",
            "leader": {"id": "a", "term": 4, "elected_at": "x", "expires_at": "2026-12-07T10:00:05Z"},
            "nodes": [
                {"id": "a", "role": "leader", "alive": true, "leases": 2, "heartbeat_age_ms": 300, "address": "a:8080", "version": "1.3.0"},
                {"id": "b", "role": "follower", "alive": true, "leases": 0, "heartbeat_age_ms": 120, "address": "b:8080", "version": "1.3.0"}
            ]
        });
        let text = status_text(&answer);
        assert!(
            text.contains("leader  a (term 4, until 2026-12-07T10:00:05Z)"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("b ") && l.contains("follower")),
            "{text}"
        );
        let none =
            status_text(&json!({"self": "a", "mode": "leader", "leader": null, "nodes": []}));
        assert!(none.contains("none (an election is due)"), "{none}");
    }
}
