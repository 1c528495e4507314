//! Latency plots: HdrHistogram's percentile-distribution chart as one
//! self-contained SVG (no fonts, scripts or links to fetch). Latency runs
//! up the y axis; the percentile runs along x on the usual log scale of
//! 1/(1-p), labelled 0%, 90%, 99%, 99.9%... One panel per command group,
//! one line per core and a thicker one for all cores merged; or, to
//! compare two dumps, each dump's merged line (the second dashed).

use hdrhistogram::Histogram;
use std::fmt::Write as _;

/// A distribution: (percentile in 0..=1, latency in milliseconds), in
/// rising percentile order.
pub type Points = Vec<(f64, f64)>;

/// One line of a panel.
pub struct Series {
    pub label: String,
    pub points: Points,
    /// The merged line (drawn thicker, in black).
    pub merged: bool,
    /// Drawn dashed (the second dump of a comparison).
    pub dashed: bool,
}

/// One chart: a command group's lines.
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Why an `.hgrm` file gives no distribution.
#[derive(Debug, PartialEq, Eq)]
pub enum PlotError {
    /// A row that is not `value percentile count [1/(1-p)]`.
    Row { line: usize },
    /// No row at all.
    Empty,
}

impl std::fmt::Display for PlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlotError::Row { line } => write!(f, "line {line} is not a percentile row"),
            PlotError::Empty => f.write_str("no percentile rows (an empty histogram)"),
        }
    }
}

/// The distribution of `h` (microseconds) as HdrHistogram prints it.
pub fn points_of(h: &Histogram<u64>) -> Points {
    if h.is_empty() {
        return Vec::new();
    }
    (h.iter_quantiles(5))
        .map(|v| {
            let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            (v.quantile_iterated_to(), ms)
        })
        .collect()
}

/// The distribution an `.hgrm` file (`latency::hgrm`'s text, or
/// HdrHistogram's own) holds.
pub fn parse_hgrm(text: &str) -> Result<Points, PlotError> {
    let mut points = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("Value") {
            continue;
        }
        let mut cols = line.split_whitespace();
        let parse = |c: Option<&str>| c.and_then(|c| c.parse::<f64>().ok());
        match (parse(cols.next()), parse(cols.next())) {
            (Some(ms), Some(p)) if (0.0..=1.0).contains(&p) => points.push((p, ms)),
            _ => return Err(PlotError::Row { line: n + 1 }),
        }
    }
    if points.is_empty() {
        return Err(PlotError::Empty);
    }
    Ok(points)
}

const WIDTH: f64 = 820.0;
const PANEL: f64 = 340.0;
/// Plot area margins: left (y labels), right (legend), top, bottom.
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Line colours of the cores (the merged line is black).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// How far along x a percentile sits: the nines of 1/(1-p), capped at
/// `nines` (p = 1 is the right edge).
fn x_of(p: f64, nines: f64) -> f64 {
    if p >= 1.0 {
        return nines;
    }
    (1.0 / (1.0 - p)).log10().min(nines)
}

/// `0%`, `90%`, `99%`, `99.9%`... for 0, 1, 2, 3... nines.
fn nines_label(n: usize) -> String {
    match n {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        _ => format!("99.{}%", "9".repeat(n - 2)),
    }
}

/// A tick step giving about five ticks up to `max`.
fn step_for(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-6);
    let magnitude = 10f64.powf(raw.log10().floor());
    let scaled = raw / magnitude;
    let nice = if scaled <= 1.0 {
        1.0
    } else if scaled <= 2.0 {
        2.0
    } else if scaled <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `panels`, under `title`, as an SVG document.
pub fn svg(title: &str, panels: &[Panel]) -> String {
    let height = TOP + PANEL * panels.len() as f64 + 10.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="24" font-size="16" font-weight="bold">{}</text>"#,
        escaped(title)
    );
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut out, panel, TOP + PANEL * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

/// One panel at vertical offset `top`.
fn draw_panel(out: &mut String, panel: &Panel, top: f64) {
    let (x0, x1) = (LEFT, WIDTH - RIGHT);
    let (y0, y1) = (top + PANEL - BOTTOM, top + 24.0);
    let points = panel.series.iter().flat_map(|s| &s.points);
    let top_p = points.clone().map(|&(p, _)| p).filter(|&p| p < 1.0);
    let seen = top_p.map(|p| (1.0 / (1.0 - p)).log10()).fold(0.0, f64::max);
    let nines = seen.ceil().clamp(3.0, 7.0);
    let max_ms = points.map(|&(_, ms)| ms).fold(0.0, f64::max);
    let step = step_for(max_ms);
    let y_max = ((max_ms / step).ceil() * step).max(step);
    let px = |p: f64| x0 + (x1 - x0) * x_of(p, nines) / nines;
    let py = |ms: f64| y0 - (y0 - y1) * ms / y_max;
    let _ = writeln!(
        out,
        r#"<g class="panel"><text x="{x0}" y="{}" font-size="14" class="panel-title">{}</text>"#,
        top + 16.0,
        escaped(&panel.title)
    );
    // Axes, grid and labels.
    for n in 0..=nines as usize {
        let x = x0 + (x1 - x0) * n as f64 / nines;
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="x-label">{}</text>"##,
            y0 + 16.0,
            nines_label(n)
        );
    }
    let mut v = 0.0;
    while v <= y_max + step / 2.0 {
        let y = py(v);
        let _ = writeln!(
            out,
            r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="y-label">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            trimmed(v)
        );
        v += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        (x0 + x1) / 2.0,
        y0 + 36.0,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0
    );
    // The lines, then the legend.
    let mut core = 0;
    let drawn = panel.series.iter().filter(|s| !s.points.is_empty());
    for (i, s) in drawn.enumerate() {
        let colour = if s.merged {
            "#000"
        } else {
            core += 1;
            COLOURS[(core - 1) % COLOURS.len()]
        };
        let path: Vec<String> = (s.points.iter())
            .map(|&(p, ms)| format!("{:.1},{:.1}", px(p), py(ms)))
            .collect();
        let width = if s.merged { 2.5 } else { 1.2 };
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline class="series" data-label="{}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} points="{}"/>"#,
            escaped(&s.label),
            path.join(" ")
        );
        let ly = y1 + 16.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="{width}"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x1 + 12.0,
            x1 + 36.0,
            x1 + 42.0,
            ly + 4.0,
            escaped(&s.label)
        );
    }
    out.push_str("</g>\n");
}

/// `v` without trailing zeros (0.5, 2, 12.5).
fn trimmed(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn an_hgrm_dump_reads_back_as_the_histogram_it_was_written_from() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).expect("in range");
        }
        let text = crate::stats::latency::hgrm(&h);
        let read = parse_hgrm(&text).expect("parses");
        let direct = points_of(&h);
        assert_eq!(read.len(), direct.len());
        for ((p, ms), (q, ns)) in read.iter().zip(&direct) {
            assert!(
                (p - q).abs() < 1e-9 && (ms - ns).abs() < 0.001,
                "{p} {ms} {q} {ns}"
            );
        }
        assert_eq!(read.last().map(|r| r.0), Some(1.0));
        assert_eq!(parse_hgrm("#[Max = 1]\n"), Err(PlotError::Empty));
        assert_eq!(
            parse_hgrm("Value\n\n1.0 x 3\n"),
            Err(PlotError::Row { line: 3 })
        );
    }

    #[test]
    fn percentiles_sit_on_a_log_scale_of_nines() {
        assert_eq!(x_of(0.0, 5.0), 0.0);
        assert!((x_of(0.99, 5.0) - 2.0).abs() < 1e-9);
        assert!((x_of(0.999, 5.0) - 3.0).abs() < 1e-9);
        assert_eq!(x_of(1.0, 5.0), 5.0);
        let labels: Vec<String> = (0..5).map(nines_label).collect();
        assert_eq!(labels, ["0%", "90%", "99%", "99.9%", "99.99%"]);
        assert_eq!(step_for(12.0), 5.0);
        assert_eq!(step_for(0.8), 0.2);
        assert_eq!(trimmed(2.5), "2.5");
        assert_eq!(trimmed(10.0), "10");
    }

    #[test]
    fn the_chart_has_a_line_per_series_and_escapes_its_labels() {
        let line = |label: &str, merged| Series {
            label: label.into(),
            points: vec![(0.0, 0.1), (0.9, 0.4), (0.99, 1.5), (1.0, 3.0)],
            merged,
            dashed: false,
        };
        let panels = [Panel {
            title: "all <commands>".into(),
            series: vec![
                line("core0", false),
                line("core1", false),
                line("all", true),
            ],
        }];
        let text = svg("keyway latency", &panels);
        assert_eq!(text.matches("class=\"series\"").count(), 3);
        assert!(text.contains("all &lt;commands&gt;"));
        assert!(text.contains(">99.9%<") && text.contains("latency (ms)"));
        assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    }
}
