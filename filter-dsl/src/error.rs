//! Compile errors: a stable code, a position (line, column, byte) and a human message.
//!
//! Owns `FilterError`, `ErrorCode`, `Position` and the translation of pest's "expected
//! rules" into words a person writing a filter understands. Never exposes pest rule
//! names. Evaluation has no errors: a filter that compiled always yields a bool.

use std::fmt;

use crate::parser::Rule;

/// Where in the source an error is (all 1-based except `offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line number, starting at 1.
    pub line: usize,
    /// Column in characters (not bytes), starting at 1.
    pub column: usize,
    /// Byte offset into the source, starting at 0.
    pub offset: usize,
}

impl Position {
    /// The position of byte `offset` in `src` (clamped to the source, and to a char
    /// boundary).
    pub fn at(src: &str, offset: usize) -> Position {
        let mut offset = offset.min(src.len());
        while !src.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &src[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            offset,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// The kind of a compile error; `code()` is its stable, documented name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    SyntaxError,
    ExpressionTooLong,
    NestingTooDeep,
    TooManyNodes,
    ChainTooLong,
    PathTooLong,
    ListTooLong,
    StringTooLong,
    TooManyRegexes,
    RegexInvalid,
    RegexTooBig,
    TypeError,
    InvalidArgument,
    InvalidNumber,
    UnknownFunction,
    UnknownName,
    ItOutsideQuantifier,
    NestedQuantifier,
}

impl ErrorCode {
    /// Stable machine-readable code (documented in docs/filter-dsl.md).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SyntaxError => "syntax_error",
            ErrorCode::ExpressionTooLong => "expression_too_long",
            ErrorCode::NestingTooDeep => "nesting_too_deep",
            ErrorCode::TooManyNodes => "too_many_nodes",
            ErrorCode::ChainTooLong => "chain_too_long",
            ErrorCode::PathTooLong => "path_too_long",
            ErrorCode::ListTooLong => "list_too_long",
            ErrorCode::StringTooLong => "string_too_long",
            ErrorCode::TooManyRegexes => "too_many_regexes",
            ErrorCode::RegexInvalid => "regex_invalid",
            ErrorCode::RegexTooBig => "regex_too_big",
            ErrorCode::TypeError => "type_error",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::InvalidNumber => "invalid_number",
            ErrorCode::UnknownFunction => "unknown_function",
            ErrorCode::UnknownName => "unknown_name",
            ErrorCode::ItOutsideQuantifier => "it_outside_quantifier",
            ErrorCode::NestedQuantifier => "nested_quantifier",
        }
    }
}

/// Why a filter (or expression) did not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {position})")]
pub struct FilterError {
    code: ErrorCode,
    message: String,
    position: Position,
    /// The offending source line (bounded), kept for `caret_excerpt`.
    line_text: String,
    /// Column of the caret inside `line_text`, 1-based, in chars.
    caret_column: usize,
}

/// Longest excerpt kept around the error column, in chars on each side.
const EXCERPT_RADIUS: usize = 60;

impl FilterError {
    pub(crate) fn new(code: ErrorCode, src: &str, offset: usize, message: String) -> Self {
        let position = Position::at(src, offset);
        let line_start = src[..position.offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[position.offset..]
            .find('\n')
            .map_or(src.len(), |i| position.offset + i);
        let line = &src[line_start..line_end];
        // Keep at most EXCERPT_RADIUS chars either side of the column.
        let skip = position.column.saturating_sub(1 + EXCERPT_RADIUS);
        let line_text: String = line
            .chars()
            .skip(skip)
            .take(2 * EXCERPT_RADIUS + 1)
            .map(|c| if c == '\r' || c == '\t' { ' ' } else { c })
            .collect();
        FilterError {
            code,
            message,
            position,
            line_text,
            caret_column: position.column - skip,
        }
    }

    /// The error kind.
    pub fn kind(&self) -> ErrorCode {
        self.code
    }

    /// Stable machine-readable code, e.g. `syntax_error`, `nesting_too_deep`.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// Where the problem is.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The human message, without the position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The offending line with a `^` under the column, e.g.
    ///
    /// ```text
    /// payload.amount 100
    ///                ^
    /// ```
    pub fn caret_excerpt(&self) -> String {
        let mut out = String::with_capacity(self.line_text.len() * 2 + 2);
        out.push_str(&self.line_text);
        out.push('\n');
        out.extend(std::iter::repeat_n(
            ' ',
            self.caret_column.saturating_sub(1),
        ));
        out.push('^');
        out
    }
}

// ---------------------------------------------------------------------------
// pest errors → friendly messages.

/// What a group of grammar rules means to a reader, in the order messages list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expected {
    Condition,
    Operator,
    Arith,
    Value,
    Path,
    Literal,
    String,
    List,
    Segment,
    Index,
    And,
    Or,
    CloseParen,
    OpenParen,
    CloseBracket,
    Comma,
    End,
}

impl Expected {
    fn of(rule: Rule, formula: bool) -> Option<Expected> {
        Some(match rule {
            // In a formula, `!` starts a value like any other prefix.
            Rule::not_op if formula => Expected::Value,
            Rule::f_or
            | Rule::f_and
            | Rule::f_not
            | Rule::f_cmp
            | Rule::f_sum
            | Rule::f_prod
            | Rule::f_neg
            | Rule::f_group
            | Rule::f_call
            | Rule::neg_op => Expected::Value,
            Rule::add_op | Rule::mul_op => Expected::Arith,
            Rule::or_expr
            | Rule::and_expr
            | Rule::unary
            | Rule::not_op
            | Rule::group
            | Rule::comparison => Expected::Condition,
            Rule::cmp_op | Rule::in_op | Rule::not_in_op | Rule::str_op => Expected::Operator,
            Rule::path | Rule::name => Expected::Path,
            Rule::number | Rule::true_lit | Rule::false_lit | Rule::null_lit => Expected::Literal,
            Rule::string | Rule::string_body => Expected::String,
            Rule::list | Rule::lbracket => Expected::List,
            Rule::field_seg | Rule::key_seg | Rule::index_seg => Expected::Segment,
            Rule::index => Expected::Index,
            Rule::and_op => Expected::And,
            Rule::or_op => Expected::Or,
            Rule::rparen => Expected::CloseParen,
            Rule::lparen => Expected::OpenParen,
            Rule::rbracket => Expected::CloseBracket,
            Rule::comma => Expected::Comma,
            Rule::EOI => Expected::End,
            _ => return None,
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Expected::Condition => {
                "a condition (a comparison, `!`, `(`, or a function such as exists(...))"
            }
            Expected::Operator => {
                "a comparison operator (==, !=, <, <=, >, >=, in, not in, starts_with, ends_with, contains, istarts_with, iends_with, icontains)"
            }
            Expected::Arith => "an arithmetic operator (+, -, *, /, %)",
            Expected::Value => {
                "a value (a path such as payload.x, or a string, number, true, false, null or list)"
            }
            Expected::Path => "a path (topic, payload…, headers[\"…\"], meta…)",
            Expected::Literal => "a literal",
            Expected::String => "a string in double quotes",
            Expected::List => "a list `[…]`",
            Expected::Segment => "a path segment (`.name`, `[\"key\"]` or `[0]`)",
            Expected::Index => "an array index",
            Expected::And => "`&&`",
            Expected::Or => "`||`",
            Expected::CloseParen => "`)`",
            Expected::OpenParen => "`(`",
            Expected::CloseBracket => "`]`",
            Expected::Comma => "`,`",
            Expected::End => "the end of the expression",
        }
    }
}

/// Turns pest's failure into a `syntax_error` with a "expected X after `Y`" message.
/// In a formula (`formula`), `!` and `-` start values rather than conditions.
pub(crate) fn from_pest_in(
    src: &str,
    err: &pest::error::Error<Rule>,
    formula: bool,
) -> FilterError {
    let offset = match err.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((start, _)) => start,
    };
    let mut expected: Vec<Expected> = match &err.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives
            .iter()
            .filter_map(|r| Expected::of(*r, formula))
            .collect(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    expected.sort();
    expected.dedup();
    // Collapse the operand alternatives into one phrase.
    let has = |e: &[Expected], x: Expected| e.contains(&x);
    if has(&expected, Expected::Path)
        && (has(&expected, Expected::Literal) || has(&expected, Expected::String))
    {
        expected.retain(|e| {
            !matches!(
                e,
                Expected::Path | Expected::Literal | Expected::String | Expected::List
            )
        });
        expected.push(Expected::Value);
    }
    if has(&expected, Expected::Literal) {
        // Literal without path: inside a list.
        expected.retain(|e| !matches!(e, Expected::Literal | Expected::String));
        expected.push(Expected::Literal);
    }
    if has(&expected, Expected::Condition) {
        // A condition starts with a value; saying both is noise.
        expected.retain(|e| {
            !matches!(
                e,
                Expected::Value | Expected::Path | Expected::Literal | Expected::OpenParen
            )
        });
    }
    if has(&expected, Expected::Operator) {
        // "a comparison operator" is the useful hint after a complete path.
        expected.retain(|e| *e != Expected::Segment);
        if !has(&expected, Expected::Comma) {
            // Outside call arguments a bare value is never a condition, so after a value
            // only an operator can help; after a call (`exists(x)`) an operator cannot.
            let after_call = src
                .get(..offset)
                .is_some_and(|before| before.trim_end().ends_with(')'));
            if after_call && !formula {
                expected.retain(|e| !matches!(e, Expected::Operator | Expected::Arith));
            } else {
                expected.retain(|e| matches!(e, Expected::Operator | Expected::Arith));
            }
        }
    }
    expected.sort();
    expected.dedup();
    compose(src, offset, &expected)
}

/// "expected a comparison operator after `payload.amount`, found …" at `offset`.
pub(crate) fn expected_operator(src: &str, offset: usize) -> FilterError {
    compose(src, offset, &[Expected::Operator])
}

fn compose(src: &str, offset: usize, expected: &[Expected]) -> FilterError {
    let what = match expected {
        [] => "something else".to_string(),
        [one] => one.describe().to_string(),
        [init @ .., last] => {
            // In a list, the operator is named briefly so the other options stay visible.
            let brief = |e: &Expected| match e {
                Expected::Operator => "a comparison operator (==, <, in, starts_with, …)",
                other => other.describe(),
            };
            let init: Vec<&str> = init.iter().map(brief).collect();
            format!("{} or {}", init.join(", "), brief(last))
        }
    };
    let context = match previous_token(src, offset) {
        Some(tok) => format!(" after `{tok}`"),
        None => " at the start of the expression".to_string(),
    };
    let found = found_here(src, offset);
    let message = format!("expected {what}{context}, found {found}");
    FilterError::new(ErrorCode::SyntaxError, src, offset, message)
}

/// The last whitespace-separated word before `offset`, shortened to 40 chars.
fn previous_token(src: &str, offset: usize) -> Option<String> {
    let before = src.get(..offset)?.trim_end();
    if before.is_empty() {
        return None;
    }
    let word = before
        .rsplit(|c: char| c.is_whitespace())
        .next()
        .unwrap_or(before);
    // `(payload.x` reads better as `payload.x`.
    let word = match word.trim_start_matches(['(', '!']) {
        "" => word,
        trimmed => trimmed,
    };
    let count = word.chars().count();
    if count > 40 {
        let tail: String = word.chars().skip(count - 39).collect();
        Some(format!("…{tail}"))
    } else {
        Some(word.to_string())
    }
}

/// What the parser met at `offset`, for "found …".
fn found_here(src: &str, offset: usize) -> String {
    let rest = src.get(offset..).unwrap_or("");
    if rest.trim().is_empty() {
        return "the end of the expression".to_string();
    }
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace())
        .take(20)
        .collect();
    format!("`{word}`")
}
