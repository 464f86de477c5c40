//! `template("Hello {payload.name}")`: splitting the text into literal pieces and holes,
//! and mapping positions in the decoded string back to the source (so an error inside
//! a hole points at the right column even when the string has escapes).

/// A piece of a template's decoded text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'t> {
    Text(String),
    /// A hole's formula source and its byte offset in the decoded text.
    Hole(&'t str, usize),
}

/// Splits a template: `{expr}` is a hole, `{{` and `}}` are literal braces. A `}`
/// inside a string literal in a hole does not close it. Errors carry the byte offset
/// in the decoded text.
pub(crate) fn split(text: &str) -> Result<Vec<Piece<'_>>, (usize, String)> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    let mut run = 0; // start of the pending run of plain text
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => {
                literal.push_str(&text[run..i]);
                literal.push('{');
                i += 2;
                run = i;
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => {
                literal.push_str(&text[run..i]);
                literal.push('}');
                i += 2;
                run = i;
            }
            b'}' => {
                return Err((
                    i,
                    "unmatched `}` in template: write `}}` for a literal brace".into(),
                ));
            }
            b'{' => {
                literal.push_str(&text[run..i]);
                let start = i + 1;
                let end = hole_end(bytes, start).ok_or_else(|| {
                    (
                        i,
                        "unclosed `{` in template: close the expression with `}`, or write `{{` for a literal brace".to_string(),
                    )
                })?;
                let src = &text[start..end];
                if src.trim().is_empty() {
                    return Err((i, "empty `{}` in template: put an expression inside".into()));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Hole(src, start));
                i = end + 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    literal.push_str(&text[run..]);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// The index of the `}` closing a hole that starts at `start`, skipping string literals.
fn hole_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut in_string = false;
    while i < bytes.len() {
        match (in_string, bytes[i]) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Maps byte offsets of a decoded JSON string body back to offsets in its source text.
pub(crate) struct OffsetMap {
    /// `raw[i]` is the source offset of decoded byte `i`; one extra entry for the end.
    raw: Vec<usize>,
}

impl OffsetMap {
    /// `body` is the source between the quotes (JSON escapes not yet decoded).
    pub(crate) fn new(body: &str) -> OffsetMap {
        let bytes = body.as_bytes();
        let mut raw = Vec::with_capacity(body.len() + 1);
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' {
                let (decoded_len, source_len) = escape_lengths(body, i);
                raw.extend(std::iter::repeat_n(i, decoded_len));
                i += source_len;
            } else {
                let len = utf8_len(bytes[i]);
                raw.extend(std::iter::repeat_n(i, len));
                i += len;
            }
        }
        raw.push(body.len());
        OffsetMap { raw }
    }

    /// The source offset of decoded byte `offset` (clamped to the end).
    pub(crate) fn source(&self, offset: usize) -> usize {
        self.raw
            .get(offset)
            .or(self.raw.last())
            .copied()
            .unwrap_or(0)
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// (decoded bytes, source bytes) of the escape at `i` (a `\`).
fn escape_lengths(body: &str, i: usize) -> (usize, usize) {
    let bytes = body.as_bytes();
    if bytes.get(i + 1) != Some(&b'u') {
        return (1, 2);
    }
    let code = |at: usize| {
        body.get(at..at + 4)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
    };
    match code(i + 2) {
        Some(high @ 0xD800..=0xDBFF) => {
            if bytes.get(i + 6) == Some(&b'\\')
                && bytes.get(i + 7) == Some(&b'u')
                && let Some(low @ 0xDC00..=0xDFFF) = code(i + 8)
            {
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return (char::from_u32(c).map_or(4, char::len_utf8), 12);
            }
            (3, 6)
        }
        Some(c) => (char::from_u32(c).map_or(3, char::len_utf8), 6),
        None => (1, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_text_and_holes() {
        assert_eq!(
            split("Hi {payload.name}!").unwrap(),
            vec![
                Piece::Text("Hi ".into()),
                Piece::Hole("payload.name", 4),
                Piece::Text("!".into())
            ]
        );
        assert_eq!(
            split("{{literal}} {a}{b}").unwrap(),
            vec![
                Piece::Text("{literal} ".into()),
                Piece::Hole("a", 13),
                Piece::Hole("b", 16)
            ]
        );
        assert_eq!(
            split(r#"{concat("}", x)}"#).unwrap(),
            vec![Piece::Hole(r#"concat("}", x)"#, 1)]
        );
        assert_eq!(split("").unwrap(), vec![]);
    }

    #[test]
    fn reports_unbalanced_braces() {
        assert_eq!(split("a } b").unwrap_err().0, 2);
        assert_eq!(split("a {b").unwrap_err().0, 2);
        assert_eq!(split("a { } b").unwrap_err().0, 2);
    }

    #[test]
    fn offsets_map_through_escapes() {
        // Decoded: `é"x` (é is 2 bytes); source: `\u00e9\"x`.
        let map = OffsetMap::new(r#"\u00e9\"x"#);
        assert_eq!(map.source(0), 0);
        assert_eq!(map.source(1), 0);
        assert_eq!(map.source(2), 6);
        assert_eq!(map.source(3), 8);
        assert_eq!(map.source(4), 9);
        // A surrogate pair: one 4-byte char from 12 source bytes.
        let map = OffsetMap::new(r#"\ud83c\udf89z"#);
        assert_eq!(map.source(4), 12);
    }
}
