//! `like(path, "orders.*")`: glob patterns with `*` (any run of characters, dots
//! included) and `?` (exactly one character); `\` makes the next character literal.
//!
//! Matching is iterative with a single backtrack point, so it is O(text × pattern) in
//! the worst case and never exponential, and it never allocates.

/// One compiled pattern element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A run of literal characters.
    Text(Box<str>),
    AnyOne,
    AnyRun,
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Box<[Token]>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        let mut tokens = Vec::new();
        let mut text = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let wildcard = match c {
                '*' => Token::AnyRun,
                '?' => Token::AnyOne,
                // A trailing backslash is a literal backslash.
                '\\' => {
                    text.push(chars.next().unwrap_or('\\'));
                    continue;
                }
                c => {
                    text.push(c);
                    continue;
                }
            };
            if !text.is_empty() {
                tokens.push(Token::Text(std::mem::take(&mut text).into_boxed_str()));
            }
            // `**` means the same as `*`.
            if wildcard == Token::AnyRun && tokens.last() == Some(&Token::AnyRun) {
                continue;
            }
            tokens.push(wildcard);
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text.into_boxed_str()));
        }
        Glob {
            tokens: tokens.into_boxed_slice(),
        }
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        let tokens = &self.tokens;
        let (mut t, mut i) = (0usize, 0usize);
        // After the last `*`: (token index after it, byte index it currently covers up to).
        let mut star: Option<(usize, usize)> = None;
        loop {
            let rest = text.get(i..).unwrap_or("");
            if let Some(token) = tokens.get(t) {
                match token {
                    Token::AnyRun => {
                        star = Some((t + 1, i));
                        t += 1;
                        continue;
                    }
                    Token::AnyOne => {
                        if let Some(c) = rest.chars().next() {
                            i += c.len_utf8();
                            t += 1;
                            continue;
                        }
                    }
                    Token::Text(want) => {
                        if rest.starts_with(&**want) {
                            i += want.len();
                            t += 1;
                            continue;
                        }
                    }
                }
            } else if rest.is_empty() {
                return true;
            }
            // Mismatch: let the last `*` swallow one more character, or fail.
            let Some((after_star, covered)) = star else {
                return false;
            };
            let Some(c) = text.get(covered..).and_then(|r| r.chars().next()) else {
                return false;
            };
            let covered = covered + c.len_utf8();
            star = Some((after_star, covered));
            t = after_star;
            i = covered;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn glob_matches_stars_and_question_marks() {
        let cases = [
            ("orders.*", "orders.created", true),
            ("orders.*", "orders.", true),
            ("orders.*", "order.created", false),
            ("*.created", "orders.created", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("?", "é", true),
            ("??", "é", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("", "", true),
            ("*", "", true),
            (
                "a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Glob::new(pattern).is_match(text),
                want,
                "{pattern} vs {text}"
            );
        }
    }
}
