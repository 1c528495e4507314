//! A cluster's `health_checks`: Envoy's redis health checker as keyway's
//! `health_check`.

use super::values::duration;
use crate::import::model::{duration_text, ImportError};
use crate::import::toml_out::{inline, string, Section};
use crate::import::yaml::Node;

/// Envoy's redis health checker (PING) becomes keyway's `health_check`
/// with the same interval, timeout and thresholds; other checkers (TCP,
/// HTTP) and further checks are comments.
pub(super) fn health_checks(hcs: &Node, sec: &mut Section) -> Result<(), ImportError> {
    let mut imported = false;
    for hc in hcs.items()? {
        let redis = match hc.get("custom_health_check")? {
            Some(ch) => ch.require("name")?.scalar()? == "envoy.health_checkers.redis",
            None => false,
        };
        if !redis || imported {
            sec.comment(hc.not_imported(if imported {
                "keyway runs one health check per cluster"
            } else {
                "keyway's health check is Envoy's redis health checker (PING)"
            }));
            continue;
        }
        let mut fields = Vec::new();
        for key in ["interval", "timeout"] {
            if let Some(d) = hc.get(key)? {
                fields.push((key, string(&duration_text(duration(&d)?))));
            }
        }
        for key in ["unhealthy_threshold", "healthy_threshold"] {
            if let Some(n) = hc.get(key)? {
                match n.u64()? {
                    v @ 1..=1000 => fields.push((key, v.to_string())),
                    v => return Err(n.err(format!("{v}: keyway's {key} is between 1 and 1000"))),
                }
            }
        }
        sec.comment(format!(
            "health_checks: Envoy's redis health checker ({}).",
            hc.at()
        ));
        sec.set("health_check", inline(&fields));
        imported = true;
        for (_, n) in hc.others(&[
            "interval",
            "timeout",
            "unhealthy_threshold",
            "healthy_threshold",
            "custom_health_check",
        ])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    Ok(())
}
