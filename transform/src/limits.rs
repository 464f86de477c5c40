//! The bounds of a mapping: compile-time limits on its size and complexity, run-time
//! limits on what one apply may build and spend. Plain data with safe defaults.

use gatepulse_filter_dsl::Limits;

/// Limits for [`Mapping::compile`](crate::Mapping::compile) and every apply of the
/// compiled mapping. All are inclusive maxima. The defaults are safe for untrusted
/// specs; the router can expose every field in its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingLimits {
    /// Ops in the whole mapping, those inside `map` included (`too_many_ops`).
    /// Default 64.
    pub max_ops: usize,
    /// Paths in one `remove`, `keep` or `coalesce` list (`too_many_paths`). Default 64.
    pub max_paths: usize,
    /// Bytes of one literal `value`, as compact JSON (`literal_too_large`). Default
    /// 16384.
    pub max_literal_bytes: usize,
    /// Expression nodes in the whole mapping, summed over every `expr`, `when` and
    /// `where` (`too_complex`). Default 1024.
    pub max_total_nodes: usize,
    /// Run time: the output, as compact JSON, in bytes; also the most bytes the ops of
    /// one apply may write in total (`output_too_large`). Default 262144 (256 KiB, the
    /// router's default largest payload).
    pub max_output_bytes: usize,
    /// Run time: elements a `map` or `filter` op processes; a longer array stops the
    /// mapping (`array_too_long`). Default 1000.
    pub max_array_len: usize,
    /// Run time: the largest string or array one expression may build, in bytes
    /// (`value_too_large`). Default 65536.
    pub max_value_bytes: usize,
    /// Run time: evaluation steps per apply — one per op run (per element inside a
    /// `map`/`filter`), one per expression node evaluated, one per array element an
    /// expression examines (`steps_exhausted`). Default 100000.
    pub max_steps: u64,
    /// Limits on each expression (the filter language's): length, nesting, nodes,
    /// paths, lists, strings, regexes, and elements `any`/`all`/`in` examine.
    pub expr: Limits,
}

impl Default for MappingLimits {
    fn default() -> Self {
        MappingLimits {
            max_ops: 64,
            max_paths: 64,
            max_literal_bytes: 16 * 1024,
            max_total_nodes: 1024,
            max_output_bytes: 256 * 1024,
            max_array_len: 1000,
            max_value_bytes: 64 * 1024,
            max_steps: 100_000,
            expr: Limits::default(),
        }
    }
}
