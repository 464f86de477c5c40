//! How commands print their answers: `--output json` (the client commands' default:
//! the API's JSON as it came) or `--output text` (for people: a list as a table, one
//! record as aligned fields; `gp doctor`'s default).

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// How a command prints its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For scripts.
    Json,
}

static CHOSEN: OnceLock<Option<Output>> = OnceLock::new();

/// Records the command line's `--output`.
pub fn select(output: Option<Output>) {
    let _ = CHOSEN.set(output);
}

/// The `--output` given, else the command's own default.
pub fn chosen(default: Output) -> Output {
    CHOSEN.get().copied().flatten().unwrap_or(default)
}

/// Prints an API answer the chosen way (JSON unless `--output text`).
pub fn print(value: &Value) {
    match chosen(Output::Json) {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Text => print!("{}", text(value)),
    }
}

/// Columns a table shows at most, and characters per cell.
const MAX_COLUMNS: usize = 7;
const MAX_CELL: usize = 40;

/// An API answer for people: a list (`{"data": [...]}` or an array) as a table, an
/// object as `field  value` lines.
pub fn text(value: &Value) -> String {
    match value {
        Value::Object(m) if m.get("data").is_some_and(Value::is_array) => {
            let items = m["data"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut out = table(items);
            if let Some(next) = m.get("next_cursor").and_then(Value::as_str) {
                out.push_str(&format!("(more: --cursor {next})\n"));
            }
            out
        }
        Value::Array(items) => table(items),
        Value::Object(m) => fields(m),
        other => format!("{}\n", cell(other, usize::MAX)),
    }
}

/// A cell: strings as they are, null as `-`, lists of scalars joined, anything
/// nested as compact JSON; cut to `max` characters.
fn cell(v: &Value, max: usize) -> String {
    let s = match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(is_scalar) => a
            .iter()
            .map(|x| cell(x, usize::MAX))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    if s.chars().count() > max {
        let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    } else {
        s
    }
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

fn table(items: &[Value]) -> String {
    if items.is_empty() {
        return "(none)\n".to_owned();
    }
    // The first record's short fields, `id` first.
    let mut columns: Vec<String> = Vec::new();
    if let Some(Value::Object(first)) = items.first() {
        if first.contains_key("id") {
            columns.push("id".into());
        }
        for (k, v) in first {
            let short = is_scalar(v) || v.as_array().is_some_and(|a| a.iter().all(is_scalar));
            if k != "id" && short && columns.len() < MAX_COLUMNS {
                columns.push(k.clone());
            }
        }
    }
    if columns.is_empty() {
        return items
            .iter()
            .map(|v| format!("{}\n", cell(v, usize::MAX)))
            .collect();
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            columns
                .iter()
                .map(|c| cell(item.get(c).unwrap_or(&Value::Null), MAX_CELL))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

fn fields(m: &Map<String, Value>) -> String {
    let width = m.keys().map(String::len).max().unwrap_or(0);
    m.iter()
        .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v, usize::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_are_tables_with_the_id_first_and_records_are_fields() {
        let list = json!({"data": [
            {"name": "acme", "id": "ten_1", "retention": {"a": 1}, "tags": ["x", "y"]},
            {"name": "a much longer name", "id": "ten_2", "retention": null, "tags": []},
        ], "next_cursor": "c2"});
        assert_eq!(
            text(&list),
            "ID     NAME                TAGS\n\
             ten_1  acme                x,y\n\
             ten_2  a much longer name\n\
             (more: --cursor c2)\n"
        );
        let one = json!({"id": "ep_1", "enabled": true, "url": null});
        assert_eq!(text(&one), "enabled  true\nid       ep_1\nurl      -\n");
        assert_eq!(text(&json!({"data": []})), "(none)\n");
        assert_eq!(cell(&json!("x".repeat(50)), 10).chars().count(), 10);
    }
}
