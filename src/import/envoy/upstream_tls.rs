//! A cluster's `transport_socket`: TLS to the Redis servers
//! (UpstreamTlsContext) as keyway's `tls`.

use super::values::{file_name, items_of};
use crate::import::model::ImportError;
use crate::import::toml_out::{inline, string, Section};
use crate::import::yaml::Node;

/// `transport_socket` of a cluster: TLS (UpstreamTlsContext) as keyway's
/// `tls`, with file names only (keyway reads certificates from files).
pub(super) fn upstream_tls(ts: &Node, sec: &mut Section) -> Result<(), ImportError> {
    let name = match ts.get("name")? {
        Some(n) => n.scalar()?,
        None => String::new(),
    };
    let tc = ts.get("typed_config")?;
    let ty = match tc.as_ref().map(|t| t.get("@type")).transpose()?.flatten() {
        Some(t) => t.scalar()?,
        None => String::new(),
    };
    if name == "envoy.transport_sockets.raw_buffer" || ty.ends_with(".RawBuffer") {
        return Ok(());
    }
    if name != "envoy.transport_sockets.tls" && !ty.ends_with(".UpstreamTlsContext") {
        return Err(ts.err(format!(
            "`{name}{ty}`: keyway connects to Redis over TCP or TLS only"
        )));
    }
    let Some(tc) = tc else {
        return Err(ts.err("TLS without typed_config (UpstreamTlsContext)"));
    };
    let mut pairs = Vec::new();
    if let Some(sni) = tc.get("sni")? {
        pairs.push(("server_name", string(&sni.scalar()?)));
    }
    let mut verified = false;
    if let Some(ctc) = tc.get("common_tls_context")? {
        if let Some(s) = ctc.get("tls_certificate_sds_secret_configs")? {
            return Err(s.err("certificates from SDS: keyway reads them from files"));
        }
        if let Some(s) = ctc.get("validation_context_sds_secret_config")? {
            return Err(s.err("a CA from SDS: keyway reads it from a file"));
        }
        let certs = items_of(&ctc, "tls_certificates")?;
        if let Some(cert) = certs.first() {
            pairs.push((
                "client_cert",
                string(&file_name(&cert.require("certificate_chain")?)?),
            ));
            pairs.push((
                "client_key",
                string(&file_name(&cert.require("private_key")?)?),
            ));
            for (_, n) in cert.others(&["certificate_chain", "private_key"])? {
                sec.comment(n.not_imported("no keyway equivalent"));
            }
        }
        for extra in certs.iter().skip(1) {
            sec.comment(extra.not_imported("keyway presents one client certificate"));
        }
        if let Some(vc) = ctc.get("validation_context")? {
            if let Some(ca) = vc.get("trusted_ca")? {
                pairs.push(("ca_file", string(&file_name(&ca)?)));
                verified = true;
            }
            for (_, n) in vc.others(&["trusted_ca"])? {
                sec.comment(n.not_imported("keyway verifies the certificate against server_name (else the endpoint's host)",
                ));
            }
        }
        for (_, n) in ctc.others(&["tls_certificates", "validation_context"])? {
            sec.comment(n.not_imported("no keyway equivalent"));
        }
    }
    if !verified {
        // As Envoy did: without a validation_context it checks nothing.
        sec.comment("Envoy did not verify the servers' certificates (no validation_context), nor does keyway here: give ca_file to verify them.");
        pairs.push(("insecure_skip_verify", "true".to_string()));
    }
    for (_, n) in tc.others(&["@type", "sni", "common_tls_context"])? {
        sec.comment(n.not_imported("no keyway equivalent"));
    }
    sec.comment(format!("TLS from transport_socket ({}).", ts.at()));
    sec.set("tls", inline(&pairs));
    Ok(())
}
