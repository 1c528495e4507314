//! Latency dumps: per core and merged, for all commands and per command
//! group, each as a percentile table in HdrHistogram's
//! percentile-distribution text format (the `.hgrm` files HdrHistogram's
//! plotter reads), a one-line summary per core, and the chart of it all
//! (`latency.svg`, see `plot`).

use super::plot::{self, Panel, PlotError, Series};
use super::{CoreSnapshot, GROUPS};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// The file of a dump holding `core`'s (None: all cores merged)
/// distribution of command group `g`: `core<N>.hgrm` and `all.hgrm` for
/// all commands, `core<N>-<group>.hgrm` and `<group>.hgrm` per group.
fn file_of(core: Option<usize>, g: usize) -> String {
    let all = GROUPS.len() - 1;
    match (core, g == all) {
        (Some(c), true) => format!("core{c}.hgrm"),
        (None, true) => "all.hgrm".into(),
        (Some(c), false) => format!("core{c}-{}.hgrm", GROUPS[g]),
        (None, false) => format!("{}.hgrm", GROUPS[g]),
    }
}

/// The command groups in the order a chart shows them: all, then each.
fn chart_order() -> impl Iterator<Item = usize> {
    let all = GROUPS.len() - 1;
    std::iter::once(all).chain(0..all)
}

/// Writes every core's and the merged distribution of each command group
/// that saw a command (see `file_of`), `summary.txt` and `latency.svg`;
/// returns the summary (the overall "all" group per core, then merged).
pub fn dump(dir: &Path, cores: &[CoreSnapshot]) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    let total = CoreSnapshot::total(cores);
    let mut panels = Vec::new();
    for g in chart_order() {
        let merged = total.as_ref().map(|t| &t.latency[g]);
        if g != GROUPS.len() - 1 && merged.is_none_or(|h| h.is_empty()) {
            continue;
        }
        let mut series = Vec::new();
        for c in cores {
            std::fs::write(dir.join(file_of(Some(c.core), g)), hgrm(&c.latency[g]))?;
            series.push(line(
                format!("core{}", c.core),
                plot::points_of(&c.latency[g]),
                false,
            ));
        }
        if let Some(h) = merged {
            std::fs::write(dir.join(file_of(None, g)), hgrm(h))?;
            series.push(line("all cores".into(), plot::points_of(h), true));
        }
        panels.push(Panel {
            title: GROUPS[g].to_string(),
            series,
        });
    }
    std::fs::write(
        dir.join("latency.svg"),
        plot::svg("keyway latency", &panels),
    )?;
    let text = summary_text(cores);
    std::fs::write(dir.join("summary.txt"), &text)?;
    Ok(text)
}

fn line(label: String, points: plot::Points, merged: bool) -> Series {
    Series {
        label,
        points,
        merged,
        dashed: false,
    }
}

/// Why a dump cannot be charted.
#[derive(Debug)]
pub enum ReadError {
    /// No `all.hgrm`: not a dump directory.
    NotADump {
        dir: PathBuf,
    },
    Unreadable {
        file: PathBuf,
        why: std::io::Error,
    },
    Hgrm {
        file: PathBuf,
        why: PlotError,
    },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::NotADump { dir } => write!(
                f,
                "{}: no latency dump here (no all.hgrm); send SIGUSR2 or POST /latency/dump",
                dir.display()
            ),
            ReadError::Unreadable { file, why } => write!(f, "{}: {why}", file.display()),
            ReadError::Hgrm { file, why } => write!(f, "{}: {why}", file.display()),
        }
    }
}

/// The chart of the dumps in `dirs`: of one, a panel per command group
/// with a line per core and the merged one; of several (before and
/// after), each one's merged line per group, named by its directory, the
/// later ones dashed.
pub fn chart(dirs: &[&Path]) -> Result<String, ReadError> {
    let mut panels: Vec<Panel> = Vec::new();
    for g in chart_order() {
        let mut series = Vec::new();
        for (d, dir) in dirs.iter().enumerate() {
            if !dir.join("all.hgrm").exists() {
                return Err(ReadError::NotADump {
                    dir: dir.to_path_buf(),
                });
            }
            let Some(merged) = read(dir, &file_of(None, g))? else {
                continue;
            };
            if dirs.len() == 1 {
                // Every core's file, a core that served none of the group
                // (an empty histogram) left out.
                for c in (0..).take_while(|&c| dir.join(file_of(Some(c), g)).exists()) {
                    if let Some(points) = read(dir, &file_of(Some(c), g))? {
                        series.push(line(format!("core{c}"), points, false));
                    }
                }
            }
            let label = match dirs.len() {
                1 => "all cores".to_string(),
                _ => dir.display().to_string(),
            };
            series.push(Series {
                dashed: d > 0,
                ..line(label, merged, true)
            });
        }
        if !series.is_empty() {
            panels.push(Panel {
                title: GROUPS[g].to_string(),
                series,
            });
        }
    }
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Ok(plot::svg(
        &format!("keyway latency: {}", names.join(" vs ")),
        &panels,
    ))
}

/// The distribution in `dir`'s file `name`: None when there is none (no
/// file, or an empty histogram).
fn read(dir: &Path, name: &str) -> Result<Option<plot::Points>, ReadError> {
    let file = dir.join(name);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(why) => return Err(ReadError::Unreadable { file, why }),
    };
    match plot::parse_hgrm(&text) {
        Ok(points) => Ok(Some(points)),
        Err(PlotError::Empty) => Ok(None),
        Err(why) => Err(ReadError::Hgrm { file, why }),
    }
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
