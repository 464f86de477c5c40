//! Hand-written SVG charts: grouped latency bars (log scale) and throughput lines.

use std::fmt::Write as _;

use crate::report::Latency;

const PALETTE: [&str; 12] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
];
const PERCENTILE_COLORS: [&str; 3] = ["#4c78a8", "#f58518", "#e45756"];

/// Escapes text for XML content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn header(width: f64, height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        width / 2.0,
        escape(title)
    )
}

/// A "nice" value ≥ `v` (1, 2 or 5 × 10^k).
pub fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let exp = v.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * base * (1.0 + 1e-9) {
            return m * base;
        }
    }
    10.0 * base
}

fn fmt_tick(v: f64) -> String {
    if v >= 1000.0 {
        let mut s = format!("{}", v.round() as i64);
        if v >= 1_000_000.0 && v % 1_000_000.0 == 0.0 {
            s = format!("{}M", (v / 1_000_000.0) as i64);
        } else if v % 1000.0 == 0.0 {
            s = format!("{}k", (v / 1000.0) as i64);
        }
        s
    } else if v == 0.0 {
        "0".to_owned()
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.2}").trim_end_matches('0').to_owned()
    }
}

/// Grouped bars (p50, p95, p99) per scenario on a log-scale millisecond axis.
pub fn latency_bars(title: &str, rows: &[(String, Latency)]) -> String {
    let (left, right, top, bottom) = (100.0, 20.0, 50.0, 120.0);
    let group_w = 66.0;
    let width = (left + right + group_w * rows.len().max(1) as f64).max(720.0);
    let height = 380.0;
    let plot_h = height - top - bottom;
    let max = rows.iter().map(|(_, l)| l.p99_ms).fold(1.0f64, f64::max);
    let min = rows
        .iter()
        .map(|(_, l)| l.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .min(1.0);
    let lo = 10f64.powf(min.max(1e-3).log10().floor());
    let hi = 10f64.powf(max.log10().ceil()).max(lo * 10.0);
    let y = |v: f64| {
        let v = v.max(lo);
        top + plot_h - (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * plot_h
    };
    let mut out = header(width, height, title);
    // Grid and ticks at powers of ten.
    let mut t = lo;
    while t <= hi * 1.0001 {
        let ty = y(t);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            width - right,
            left - 6.0,
            ty + 4.0,
            fmt_tick(t)
        );
        t *= 10.0;
    }
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">milliseconds (log scale)</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0
    );
    for (i, (name, l)) in rows.iter().enumerate() {
        let gx = left + group_w * i as f64 + 8.0;
        for (j, (v, color)) in [l.p50_ms, l.p95_ms, l.p99_ms]
            .iter()
            .zip(PERCENTILE_COLORS)
            .enumerate()
        {
            let x = gx + j as f64 * 16.0;
            let by = y(*v);
            let _ = writeln!(
                out,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{by:.1}\" width=\"15\" height=\"{:.1}\" fill=\"{color}\"><title>{} p{}: {v:.2} ms</title></rect>",
                (top + plot_h - by).max(0.5),
                escape(name),
                [50, 95, 99][j]
            );
        }
        let lx = gx + 30.0;
        let ly = top + plot_h + 10.0;
        let _ = writeln!(
            out,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.1} {ly:.1})\">{}</text>",
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
        top + plot_h,
        width - right,
        top + plot_h
    );
    for (j, label) in ["p50", "p95", "p99"].iter().enumerate() {
        let x = left + 10.0 + j as f64 * 60.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.1}\" y=\"30\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"39\">{label}</text>",
            PERCENTILE_COLORS[j],
            x + 14.0
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Lines of per-second counts (x: seconds since the scenario started).
pub fn line_chart(title: &str, y_label: &str, series: &[(String, Vec<u64>)]) -> String {
    let (left, right, top, bottom) = (70.0, 180.0, 40.0, 45.0);
    let (width, height) = (820.0, 340.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let max_len = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let max_v = nice_ceil(
        series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .max()
            .unwrap_or(0) as f64,
    );
    let x = |i: usize| left + plot_w * i as f64 / (max_len - 1) as f64;
    let y = |v: f64| top + plot_h - v / max_v * plot_h;
    let mut out = header(width, height, title);
    for k in 0..=4 {
        let v = max_v * k as f64 / 4.0;
        let ty = y(v);
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            ty + 4.0,
            fmt_tick(v)
        );
    }
    let step = (max_len / 10).max(1);
    for i in (0..max_len).step_by(step) {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{i}</text>",
            x(i),
            top + plot_h + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the scenario started</text>",
        left + plot_w / 2.0,
        height - 8.0
    );
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(y_label)
    );
    for (k, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v as f64)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"series\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            escape(name)
        );
        let ly = top + 4.0 + k as f64 * 16.0;
        let lx = left + plot_w + 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{color}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 18.0,
            lx + 22.0,
            ly + 4.0,
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "<line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal well-formedness check: tags balance, attributes are quoted, no raw `&`.
    fn well_formed(xml: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            if text.contains('>') {
                return Err(format!("stray > in {text:?}"));
            }
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                if !["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("raw & in {text:?}"));
                }
            }
            let end = rest[start..].find('>').ok_or("unclosed tag")? + start;
            let tag = &rest[start + 1..end];
            if !tag.matches('"').count().is_multiple_of(2) {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("</{name}> without opening"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                stack.push(name.to_owned());
            }
            rest = &rest[end + 1..];
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed: {stack:?}"))
        }
    }

    fn lat(p50: f64) -> Latency {
        Latency {
            p50_ms: p50,
            p95_ms: p50 * 2.0,
            p99_ms: p50 * 4.0,
            max_ms: p50 * 8.0,
            samples: 10,
        }
    }

    #[test]
    fn latency_chart_has_three_bars_per_scenario() {
        let rows = vec![
            ("ingest".to_owned(), lat(1.2)),
            ("fan-out <100> & more".to_owned(), lat(80.0)),
            ("slow".to_owned(), lat(0.4)),
        ];
        let svg = latency_bars("Latency", &rows);
        well_formed(&svg).unwrap();
        assert!(svg.starts_with("<svg "));
        assert_eq!(svg.matches("<rect class=\"bar\"").count(), 9);
        assert!(svg.contains("fan-out &lt;100&gt; &amp; more"));
    }

    #[test]
    fn line_chart_has_one_point_per_second() {
        let series = vec![
            ("a".to_owned(), vec![0, 10, 20, 30, 25]),
            ("b".to_owned(), vec![5, 5, 5]),
        ];
        let svg = line_chart("Throughput", "deliveries/s", &series);
        well_formed(&svg).unwrap();
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), 2);
        let points: Vec<usize> = svg
            .split("points=\"")
            .skip(1)
            .map(|p| p.split('"').next().unwrap_or("").split(' ').count())
            .collect();
        assert_eq!(points, vec![5, 3]);
    }

    #[test]
    fn empty_charts_are_still_valid() {
        well_formed(&latency_bars("none", &[])).unwrap();
        well_formed(&line_chart("none", "y", &[])).unwrap();
    }

    #[test]
    fn nice_numbers() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(1500.0), 2000.0);
        assert_eq!(nice_ceil(4000.0), 5000.0);
        assert_eq!(nice_ceil(10_000.0), 10_000.0);
    }
}
