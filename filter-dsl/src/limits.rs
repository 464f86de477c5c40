//! Complexity limits and the cheap pre-scan that enforces the structural ones.
//!
//! Owns `Limits` (plain data, safe defaults) and `prescan`, which runs in one pass over
//! the bytes *before* pest sees the input: length, bracket nesting depth, list sizes and
//! unterminated strings. That is what lets a 1 MB expression or 10,000 nested
//! parentheses be refused in microseconds with no recursion at all. The remaining
//! limits (nodes, chains, paths, strings, regexes) are checked while building the tree.

use crate::error::{ErrorCode, FilterError};

/// Nesting depth is clamped to this, whatever `Limits::max_depth` says, so that pest's
/// recursive descent and the evaluator's recursion always fit on a thread stack. Pest
/// uses ~20 KiB of stack per nesting level in unoptimised builds (overflowing a 2 MiB
/// thread near 100 levels); 64 keeps a 2x margin there and far more in release.
pub const HARD_MAX_DEPTH: usize = 64;

/// Compile-time limits on a filter or expression. All are inclusive maxima.
///
/// The defaults are safe for untrusted input; raise them only for trusted sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Source length in bytes (`expression_too_long`). Default 4096.
    pub max_source_len: usize,
    /// Nesting depth of parentheses, brackets, `!` and `&&`/`||` levels
    /// (`nesting_too_deep`). Default 32; never more than [`HARD_MAX_DEPTH`].
    pub max_depth: usize,
    /// Syntax-tree nodes: conditions, operands and list literals (`too_many_nodes`).
    /// Default 256.
    pub max_nodes: usize,
    /// Terms in one `&&` or `||` chain (`chain_too_long`). Default 64.
    pub max_chain_terms: usize,
    /// Segments in one path, root excluded (`path_too_long`). Default 16.
    pub max_path_segments: usize,
    /// Elements in one list literal (`list_too_long`). Default 256.
    pub max_list_len: usize,
    /// Bytes in one decoded string literal (`string_too_long`). Default 1024.
    pub max_string_len: usize,
    /// `matches(...)` calls per filter (`too_many_regexes`). Default 4.
    pub max_regexes: usize,
    /// Compiled size of one regex, bytes, passed to `RegexBuilder::size_limit`
    /// (`regex_too_big`). Default 256 KiB. Also bounds the case-insensitive string tests.
    pub max_regex_size: usize,
    /// Lazy-DFA cache per regex, bytes, passed to `RegexBuilder::dfa_size_limit`.
    /// Default 1 MiB.
    pub max_regex_dfa_size: usize,
    /// Array elements `any`/`all`/`in path` may examine at evaluation time. An array
    /// longer than this makes the condition false (it is not examined at all).
    /// Default 1000.
    pub max_array_iterations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_source_len: 4096,
            max_depth: 32,
            max_nodes: 256,
            max_chain_terms: 64,
            max_path_segments: 16,
            max_list_len: 256,
            max_string_len: 1024,
            max_regexes: 4,
            max_regex_size: 256 * 1024,
            max_regex_dfa_size: 1024 * 1024,
            max_array_iterations: 1000,
        }
    }
}

impl Limits {
    /// `max_depth` clamped to [`HARD_MAX_DEPTH`].
    pub(crate) fn depth(&self) -> usize {
        self.max_depth.min(HARD_MAX_DEPTH)
    }
}

/// One pass over the bytes, before any parsing. Structural characters are ASCII and
/// UTF-8 continuation bytes are never ASCII, so scanning bytes is exact.
pub(crate) fn prescan(src: &str, limits: &Limits) -> Result<(), FilterError> {
    if src.len() > limits.max_source_len {
        return Err(FilterError::new(
            ErrorCode::ExpressionTooLong,
            src,
            limits.max_source_len,
            format!(
                "expression is {} bytes long; the limit is {} bytes",
                src.len(),
                limits.max_source_len
            ),
        ));
    }
    let max_depth = limits.depth();
    // One entry per open bracket: (is_list_bracket, elements so far). Bounded by
    // max_depth because we fail as soon as the depth is exceeded.
    let mut stack: Vec<(bool, usize)> = Vec::new();
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(FilterError::new(
                                ErrorCode::SyntaxError,
                                src,
                                start,
                                "unterminated string: expected a closing `\"`".to_string(),
                            ));
                        }
                        Some(b'\\') => i += 2,
                        Some(b'"') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            open @ (b'(' | b'[') => {
                if stack.len() >= max_depth {
                    return Err(FilterError::new(
                        ErrorCode::NestingTooDeep,
                        src,
                        i,
                        format!("expression is nested more than {max_depth} levels deep"),
                    ));
                }
                stack.push((open == b'[', 1));
            }
            b')' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some((true, elements)) = stack.last_mut() {
                    *elements += 1;
                    if *elements > limits.max_list_len {
                        return Err(list_too_long(src, i, limits.max_list_len));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

pub(crate) fn list_too_long(src: &str, offset: usize, max: usize) -> FilterError {
    FilterError::new(
        ErrorCode::ListTooLong,
        src,
        offset,
        format!("list has more than {max} elements"),
    )
}
