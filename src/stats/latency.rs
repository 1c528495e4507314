//! Latency dumps: per core and merged, each as a percentile table in
//! HdrHistogram's percentile-distribution text format (the `.hgrm` files
//! HdrHistogram's plotter reads), plus a one-line summary per core.

use super::{CoreSnapshot, GROUPS};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::Path;

/// HdrHistogram's percentile distribution, values in milliseconds (the
/// histogram holds microseconds), 5 ticks per half distance.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / 1000.0,
        h.stdev() / 1000.0
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    out
}

/// What every latency report shows of a histogram: count, then p50, p90,
/// p99, p99.9 and max in microseconds.
pub fn percentiles(h: &Histogram<u64>) -> [u64; 6] {
    let q = |x| h.value_at_quantile(x);
    [h.len(), q(0.5), q(0.9), q(0.99), q(0.999), h.max()]
}

/// `count p50 p90 p99 p99.9 max` in microseconds.
pub fn summary(label: &str, h: &Histogram<u64>) -> String {
    let [n, p50, p90, p99, p999, max] = percentiles(h);
    format!("{label:<8} count={n} p50={p50}us p90={p90}us p99={p99}us p99.9={p999}us max={max}us")
}

/// Writes `core<N>.hgrm` per core, `all.hgrm` merged, and `summary.txt`;
/// returns the summary (the overall "all" group per core, then merged).
pub fn dump(dir: &Path, cores: &[CoreSnapshot]) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let all = GROUPS.len() - 1;
    for c in cores {
        std::fs::write(
            dir.join(format!("core{}.hgrm", c.core)),
            hgrm(&c.latency[all]),
        )?;
    }
    if let Some(t) = CoreSnapshot::total(cores) {
        std::fs::write(dir.join("all.hgrm"), hgrm(&t.latency[all]))?;
    }
    let text = summary_text(cores);
    std::fs::write(dir.join("summary.txt"), &text)?;
    Ok(text)
}

/// The percentiles of every core, of all of them, and of each group.
pub fn summary_text(cores: &[CoreSnapshot]) -> String {
    let all = GROUPS.len() - 1;
    let mut text = String::new();
    for c in cores {
        text.push_str(&summary(&format!("core{}", c.core), &c.latency[all]));
        text.push('\n');
    }
    if let Some(t) = CoreSnapshot::total(cores) {
        text.push_str(&summary("all", &t.latency[all]));
        text.push('\n');
        for (g, name) in GROUPS.iter().enumerate().take(all) {
            if !t.latency[g].is_empty() {
                text.push_str(&summary(&format!("  {name}"), &t.latency[g]));
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn hgrm_layout() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let text = hgrm(&h);
        let mut lines = text.lines();
        assert!(lines
            .next()
            .unwrap()
            .contains("Value     Percentile TotalCount 1/(1-Percentile)"));
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .skip(1)
            .collect();
        let last: Vec<&str> = rows.last().unwrap().split_whitespace().collect();
        assert_eq!(last[1], "1.000000000000");
        assert_eq!(last[2], "1000");
        assert!(text.contains("Total count    =         1000]"));
        assert!(summary("core0", &h).contains("count=1000 p50=500us"));
    }
}
