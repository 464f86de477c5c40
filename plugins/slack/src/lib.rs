//! `slack`: reshapes an event into a Slack incoming-webhook message, for an endpoint
//! whose URL is a Slack webhook.
//!
//! ```json
//! {"title": "New order {payload.id}", "fields": ["payload.amount", {"path": "payload.customer.name", "label": "Customer"}]}
//! ```
//!
//! - `title` (default `"{topic}"`): a template; `{path}` is replaced by the value at a
//!   dotted path into the input document (`topic`, `event_id`, `created_at`,
//!   `payload.…`), `{{` and `}}` are literal braces. Missing values render as `—`.
//! - `fields`: paths shown as label/value pairs; a path alone is labelled with the
//!   path without its `payload.` prefix.
//!
//! Emits `{"text": <title>, "blocks": [header, section(s) of up to 10 fields,
//! context: topic · event id · time]}`, within Slack's length limits.

use gatepulse_plugin_sdk::prelude::*;

/// Slack's limits: header text, section field text, fields per section.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const FIELDS_PER_SECTION: usize = 10;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SlackConfig {
    title: String,
    fields: Vec<Field>,
}

impl Default for SlackConfig {
    fn default() -> Self {
        Self {
            title: "{topic}".into(),
            fields: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Field {
    Path(String),
    Labelled { path: String, label: String },
}

impl Field {
    fn path(&self) -> &str {
        match self {
            Field::Path(path) | Field::Labelled { path, .. } => path,
        }
    }

    fn label(&self) -> &str {
        match self {
            Field::Path(path) => path.strip_prefix("payload.").unwrap_or(path),
            Field::Labelled { label, .. } => label,
        }
    }
}

fn transform(event: Event, config: SlackConfig) -> Result<Output, Error> {
    let mut title = render(&config.title, &event)?;
    if title.trim().is_empty() {
        title.clone_from(&event.topic);
    }
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&title, HEADER_MAX), "emoji": true}
    })];
    let fields: Vec<Value> = config
        .fields
        .iter()
        .map(|field| {
            let value = display(event.get(field.path()).as_deref());
            let text = format!("*{}*\n{}", escape(field.label()), escape(&value));
            json!({"type": "mrkdwn", "text": truncate(&text, FIELD_MAX)})
        })
        .collect();
    for chunk in fields.chunks(FIELDS_PER_SECTION) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("`{}` · {} · {}", escape(&event.topic), escape(&event.event_id), escape(&event.created_at))
        }]
    }));
    Ok(Output::Emit(
        json!({"text": escape(&title), "blocks": blocks}),
    ))
}

/// Fills `{path}` placeholders from the event.
fn render(template: &str, event: &Event) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(open) = tail.strip_prefix('{') {
            let close = open.find('}').ok_or_else(|| {
                Error::msg(format!("title template: unclosed `{{` in {template:?}"))
            })?;
            let path = open[..close].trim();
            out.push_str(&display(event.get(path).as_deref()));
            rest = &open[close + 1..];
        } else {
            return Err(Error::msg(format!(
                "title template: `}}` without `{{` in {template:?} (write `}}}}` for a brace)"
            )));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A value as text: strings as they are, `—` for nothing, other values as JSON.
fn display(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Slack's mrkdwn control characters.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars - 1).collect();
    cut.push('…');
    cut
}

gatepulse_plugin_sdk::export_transform!(transform, name = "slack");

#[cfg(test)]
mod tests {
    use super::*;
    use gatepulse_plugin_sdk::testing;

    fn order() -> String {
        testing::event(
            "orders.created",
            json!({"id": 42, "amount": 1999, "customer": {"name": "Ada <CEO> & co"}, "note": null}),
        )
    }

    fn check(config: Value) -> Value {
        match testing::run(transform, &order(), &config.to_string()) {
            Ok(Output::Emit(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn builds_a_message_with_header_fields_and_context() {
        let message = check(json!({
            "title": "New order {payload.id}",
            "fields": ["payload.amount", {"path": "payload.customer.name", "label": "Customer"}]
        }));
        assert_eq!(
            message,
            json!({
                "text": "New order 42",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "New order 42", "emoji": true}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*amount*\n1999"},
                        {"type": "mrkdwn", "text": "*Customer*\nAda &lt;CEO&gt; &amp; co"}
                    ]},
                    {"type": "context", "elements": [
                        {"type": "mrkdwn", "text": "`orders.created` · evt_test · 2026-01-01T00:00:00Z"}
                    ]}
                ]
            })
        );
    }

    #[test]
    fn without_config_the_title_is_the_topic() {
        let message = check(json!({}));
        assert_eq!(message["text"], "orders.created");
        assert_eq!(message["blocks"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn templates_fill_paths_and_keep_escaped_braces() {
        let event: Event = gatepulse_plugin_sdk::serde_json::from_str(&order()).unwrap();
        let cases = [
            ("{topic}: {payload.id}", "orders.created: 42"),
            ("{{literal}} {event_id}", "{literal} evt_test"),
            ("{payload.missing} {payload.note}", "— —"),
            ("{payload.customer}", r#"{"name":"Ada <CEO> & co"}"#),
            ("{ payload.amount }", "1999"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &event), Ok(want.to_owned()), "{template}");
        }
        assert!(render("{payload.id", &event).is_err());
        assert!(render("a } b", &event).is_err());
    }

    #[test]
    fn many_fields_are_split_into_sections_of_ten() {
        let fields: Vec<String> = (0..23).map(|i| format!("payload.f{i}")).collect();
        let message = check(json!({"fields": fields}));
        let sizes: Vec<usize> = message["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "section")
            .map(|b| b["fields"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, vec![10, 10, 3]);
    }

    #[test]
    fn long_titles_are_cut_to_slack_limits() {
        let message = check(json!({"title": "x".repeat(500)}));
        let header = message["blocks"][0]["text"]["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), HEADER_MAX);
        assert!(header.ends_with('…'));
    }

    #[test]
    fn a_broken_template_fails_the_delivery() {
        let out = testing::run(transform, &order(), r#"{"title": "{oops"}"#);
        assert!(out.unwrap_err().message().contains("unclosed"));
    }
}
