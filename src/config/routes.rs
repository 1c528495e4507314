//! `[routes]`: which cluster a key goes to (the longest matching prefix,
//! else the catch-all) and which clusters get a copy (mirrors).

use toml::Spanned;

use super::model::{Cluster, MirrorPolicy, PrefixRoute};
use super::raw::{RawMirror, RawPrefix, RawRoutes};
use super::validation::Ctx;
use super::ConfigError;

pub(super) struct Routes {
    pub(super) catch_all: Option<usize>,
    pub(super) catch_all_mirrors: Vec<MirrorPolicy>,
    /// Longest prefix first: the first match is the longest.
    pub(super) prefix_routes: Vec<PrefixRoute>,
}

pub(super) fn read(
    ctx: &Ctx,
    routes: Option<&RawRoutes>,
    clusters: &[Cluster],
) -> Result<Routes, ConfigError> {
    let catch_all = match routes.and_then(|r| r.catch_all.as_ref()) {
        None => None,
        Some(c) => Some(cluster_index(ctx, clusters, c, "routes.catch_all")?),
    };
    let catch_all_mirrors = mirrors(
        ctx,
        clusters,
        routes.and_then(|r| r.catch_all_mirror.as_ref()),
        catch_all,
        "routes.catch_all_mirror",
    )?;
    if catch_all.is_none() && !catch_all_mirrors.is_empty() {
        return Err(ctx.whole("`routes.catch_all_mirror` needs `routes.catch_all`"));
    }
    let mut prefix_routes: Vec<PrefixRoute> = Vec::new();
    let written = routes.and_then(|r| r.prefix.as_ref()).into_iter().flatten();
    for (i, r) in written.enumerate() {
        let route = prefix_route(ctx, clusters, r, &format!("routes.prefix[{i}]"))?;
        if prefix_routes.iter().any(|o| o.prefix == route.prefix) {
            return Err(ctx.err(
                r.prefix.span(),
                &format!("routes.prefix[{i}].prefix"),
                format!("duplicate prefix `{}`", r.prefix.get_ref()),
            ));
        }
        prefix_routes.push(route);
    }
    prefix_routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    if catch_all.is_none() && prefix_routes.is_empty() {
        return Err(ctx.whole("`routes` needs `catch_all` or at least one `[[routes.prefix]]`"));
    }
    Ok(Routes {
        catch_all,
        catch_all_mirrors,
        prefix_routes,
    })
}

fn prefix_route(
    ctx: &Ctx,
    clusters: &[Cluster],
    r: &RawPrefix,
    key: &str,
) -> Result<PrefixRoute, ConfigError> {
    let prefix = r.prefix.get_ref().as_bytes().to_vec();
    if prefix.is_empty() {
        return Err(ctx.err(
            r.prefix.span(),
            &format!("{key}.prefix"),
            "must not be empty (use routes.catch_all)",
        ));
    }
    let case_insensitive = r.case_insensitive.unwrap_or(false);
    let prefix = if case_insensitive {
        prefix.to_ascii_lowercase()
    } else {
        prefix
    };
    let cluster = cluster_index(ctx, clusters, &r.cluster, &format!("{key}.cluster"))?;
    Ok(PrefixRoute {
        prefix,
        case_insensitive,
        remove_prefix: r.remove_prefix.unwrap_or(false),
        cluster,
        mirrors: mirrors(
            ctx,
            clusters,
            r.mirror.as_ref(),
            Some(cluster),
            &format!("{key}.mirror"),
        )?,
    })
}

fn cluster_index(
    ctx: &Ctx,
    clusters: &[Cluster],
    name: &Spanned<String>,
    key: &str,
) -> Result<usize, ConfigError> {
    clusters
        .iter()
        .position(|k| &k.name == name.get_ref())
        .ok_or_else(|| {
            ctx.err(
                name.span(),
                key,
                format!("no cluster named `{}`", name.get_ref()),
            )
        })
}

/// A route's mirrors; none may be the route's own cluster.
fn mirrors(
    ctx: &Ctx,
    clusters: &[Cluster],
    raw: Option<&Vec<RawMirror>>,
    primary: Option<usize>,
    key: &str,
) -> Result<Vec<MirrorPolicy>, ConfigError> {
    let mut out = Vec::new();
    for (i, m) in raw.into_iter().flatten().enumerate() {
        let k = format!("{key}[{i}]");
        let cluster = cluster_index(ctx, clusters, &m.cluster, &format!("{k}.cluster"))?;
        if Some(cluster) == primary {
            return Err(ctx.err(
                m.cluster.span(),
                &format!("{k}.cluster"),
                "a route cannot mirror to its own cluster",
            ));
        }
        let fraction = match &m.fraction {
            None => 1.0,
            Some(f) if (0.0..=1.0).contains(f.get_ref()) => *f.get_ref(),
            Some(f) => {
                return Err(ctx.err(
                    f.span(),
                    &format!("{k}.fraction"),
                    "must be between 0.0 and 1.0",
                ))
            }
        };
        out.push(MirrorPolicy {
            cluster,
            exclude_read_commands: m.exclude_read_commands.unwrap_or(false),
            fraction,
        });
    }
    Ok(out)
}
