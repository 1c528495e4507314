//! `prefix_routes` as keyway's `[routes]` and `[[routes.prefix]]`: each
//! route's cluster and mirrors, and the catch-all; every cluster they name
//! is collected, with where, for the walk of the clusters.

use super::values::items_of;
use crate::import::model::ImportError;
use crate::import::toml_out::{array, float, inline, string, Doc, Section};
use crate::import::yaml::Node;

/// `prefix_routes` as `[routes]` and `[[routes.prefix]]`; `referenced`
/// gets every cluster a route or mirror names, with where.
pub(super) fn routes<'a>(
    pr: &Node<'a>,
    doc: &mut Doc,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<(), ImportError> {
    let case_insensitive = match pr.get("case_insensitive")? {
        Some(c) => c.bool()?,
        None => false,
    };
    let routes = items_of(pr, "routes")?;
    for r in &routes {
        doc.prefixes
            .push(prefix_route(r, case_insensitive, referenced)?);
    }
    let catch_all = pr.get("catch_all_route")?;
    match (&catch_all, pr.get("catch_all_cluster")?) {
        (Some(c), _) => {
            doc.routes
                .comment(format!("From prefix_routes.catch_all_route ({}).", c.at()));
            let cluster = route_target(c, referenced)?;
            doc.routes.set_str("catch_all", &cluster);
            let mirrors = mirrors(c, &cluster, &mut doc.routes, referenced)?;
            if !mirrors.is_empty() {
                doc.routes.set("catch_all_mirror", array(&mirrors));
            }
            for (_, n) in c.others(&[
                "cluster",
                "request_mirror_policy",
                "key_formatter",
                "remove_prefix",
                "prefix",
            ])? {
                doc.routes.comment(n.not_imported("no keyway equivalent"));
            }
        }
        (None, Some(c)) => {
            let cluster = c.scalar()?;
            doc.routes.comment(format!(
                "From prefix_routes.catch_all_cluster ({}).",
                c.at()
            ));
            referenced.push((cluster.clone(), c.clone()));
            doc.routes.set_str("catch_all", &cluster);
        }
        (None, None) if routes.is_empty() => {
            return Err(pr.err("no route: neither routes nor catch_all_route"));
        }
        (None, None) => doc
            .routes
            .comment("No catch_all_route: keys no prefix matches get -ERR no route."),
    }
    for (_, n) in pr.others(&[
        "case_insensitive",
        "routes",
        "catch_all_route",
        "catch_all_cluster",
    ])? {
        doc.routes.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(())
}

/// One of `routes` as a `[[routes.prefix]]`.
fn prefix_route<'a>(
    r: &Node<'a>,
    case_insensitive: bool,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<Section, ImportError> {
    let mut sec = Section::default();
    sec.comment(format!("From {} ({}).", r.path(), r.at()));
    let p = r.require("prefix")?;
    let prefix = p.scalar()?;
    if prefix.is_empty() {
        return Err(p.err("an empty prefix: write it as catch_all_route"));
    }
    let cluster = route_target(r, referenced)?;
    sec.set_str("prefix", &prefix);
    sec.set_str("cluster", &cluster);
    if let Some(rm) = r.get("remove_prefix")? {
        if rm.bool()? {
            sec.set("remove_prefix", "true");
        }
    }
    if case_insensitive {
        sec.set("case_insensitive", "true");
    }
    let mirrors = mirrors(r, &cluster, &mut sec, referenced)?;
    if !mirrors.is_empty() {
        sec.set("mirror", array(&mirrors));
    }
    for (_, n) in r.others(&[
        "prefix",
        "cluster",
        "remove_prefix",
        "request_mirror_policy",
        "key_formatter",
    ])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    Ok(sec)
}

/// A route's cluster; refuses what would send its keys elsewhere.
fn route_target<'a>(
    r: &Node<'a>,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<String, ImportError> {
    if let Some(k) = r.get("key_formatter")? {
        let f = k.scalar()?;
        if !f.is_empty() && f != "%KEY%" {
            return Err(k.err(format!(
                "`{f}`: Envoy rewrites keys before hashing them; keyway has no key formatter, so keys would be stored and placed differently"
            )));
        }
    }
    if let Some(p) = r.get("read_command_policy")? {
        return Err(p.err(
            "Envoy sends this route's reads to another cluster; keyway sends a route's reads and writes to one cluster, so reads would see other data",
        ));
    }
    let c = r.require("cluster")?;
    let name = c.scalar()?;
    referenced.push((name.clone(), c));
    Ok(name)
}

/// A route's `request_mirror_policy` as keyway `mirror` entries.
fn mirrors<'a>(
    r: &Node<'a>,
    own: &str,
    sec: &mut Section,
    referenced: &mut Vec<(String, Node<'a>)>,
) -> Result<Vec<String>, ImportError> {
    let mut out = Vec::new();
    for m in items_of(r, "request_mirror_policy")? {
        let c = m.require("cluster")?;
        let cluster = c.scalar()?;
        if cluster == own {
            sec.comment(m.not_imported(
                "a mirror to the route's own cluster (keyway refuses it; it only doubled writes)",
            ));
            continue;
        }
        referenced.push((cluster.clone(), c));
        let mut pairs = vec![("cluster", string(&cluster))];
        if let Some(e) = m.get("exclude_read_commands")? {
            if e.bool()? {
                pairs.push(("exclude_read_commands", "true".to_string()));
            }
        }
        if let Some(rf) = m.get("runtime_fraction")? {
            let (num, den) = match rf.get("default_value")? {
                Some(dv) => {
                    let num = match dv.get("numerator")? {
                        Some(n) => n.u64()?,
                        None => 0,
                    };
                    let den = match dv.get("denominator")? {
                        None => 100,
                        Some(d) => match d.scalar()?.as_str() {
                            "HUNDRED" | "0" => 100,
                            "TEN_THOUSAND" | "1" => 10_000,
                            "MILLION" | "2" => 1_000_000,
                            other => {
                                return Err(d.err(format!(
                                    "unknown denominator `{other}` (HUNDRED, TEN_THOUSAND, MILLION)"
                                )))
                            }
                        },
                    };
                    (num, den)
                }
                None => (0, 100),
            };
            pairs.push(("fraction", float((num as f64 / den as f64).min(1.0))));
            if let Some(k) = rf.get("runtime_key")? {
                sec.comment(
                    k.not_imported("keyway has no runtime: the default fraction is imported"),
                );
            }
        }
        for (_, n) in m.others(&["cluster", "exclude_read_commands", "runtime_fraction"])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
        out.push(inline(&pairs));
    }
    Ok(out)
}
