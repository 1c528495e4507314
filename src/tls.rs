//! TLS settings turned into rustls configurations: one client configuration
//! per upstream cluster with `tls`, one server configuration for `[proxy]
//! tls`. Built once at start-up (files read, certificates parsed), so bad
//! files are configuration errors, never a failure on the data path.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `tls = true` or `tls = { ... }` on a cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamTls {
    /// PEM file of the CAs to trust; None: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// SNI and the name the certificate must carry; None: the host of each
    /// node's address (the hostname a cluster node reports, if any).
    pub server_name: Option<String>,
    /// Client certificate chain and key (PEM), for servers that require one.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate (encryption without authentication).
    pub insecure_skip_verify: bool,
}

/// `[proxy] tls = { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// When set, clients must present a certificate signed by these CAs.
    pub ca_file: Option<PathBuf>,
}

/// A TLS file or setting that rustls cannot use, found at start-up or
/// reload, so it is a configuration error and never a data-path failure.
#[derive(Debug)]
pub enum TlsError {
    /// The PEM file could not be read or parsed.
    Pem {
        path: PathBuf,
        holding: Holding,
        why: rustls::pki_types::pem::Error,
    },
    /// The PEM file holds no certificate.
    NoCertificate(PathBuf),
    /// rustls refused a certificate read from `path` in the given role.
    Refused {
        path: PathBuf,
        role: Role,
        why: rustls::Error,
    },
    /// The CAs that verify clients do not make a verifier.
    ClientVerifier {
        path: PathBuf,
        why: rustls::server::VerifierBuilderError,
    },
    /// Only one of `client_cert` and `client_key` was given.
    Unpaired,
    /// The protocol versions of the provider (never expected).
    Protocols(rustls::Error),
}

/// What a PEM file was read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    Certificates,
    PrivateKey,
}

/// What a refused certificate was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ca,
    Client,
    Server,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Pem {
                path,
                holding: Holding::Certificates,
                why,
            } => write!(f, "cannot read certificates from {}: {why}", path.display()),
            TlsError::Pem {
                path,
                holding: Holding::PrivateKey,
                why,
            } => write!(
                f,
                "cannot read a private key from {}: {why}",
                path.display()
            ),
            TlsError::NoCertificate(path) => write!(f, "no PEM certificate in {}", path.display()),
            TlsError::Refused { path, role, why } => {
                let what = match role {
                    Role::Ca => "bad CA certificate in",
                    Role::Client => "client certificate",
                    Role::Server => "certificate",
                };
                write!(f, "{what} {}: {why}", path.display())
            }
            TlsError::ClientVerifier { path, why } => {
                write!(f, "client CA {}: {why}", path.display())
            }
            TlsError::Unpaired => f.write_str("client_cert and client_key go together"),
            TlsError::Protocols(why) => write!(f, "{why}"),
        }
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |why| TlsError::Pem {
        path: path.to_path_buf(),
        holding: Holding::Certificates,
        why,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<_, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|why| TlsError::Pem {
        path: path.to_path_buf(),
        holding: Holding::PrivateKey,
        why,
    })
}

fn refused(path: &Path, role: Role) -> impl FnOnce(rustls::Error) -> TlsError + '_ {
    move |why| TlsError::Refused {
        path: path.to_path_buf(),
        role,
        why,
    }
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in certs(path)? {
                store.add(c).map_err(refused(path, Role::Ca))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = store.add(c);
            }
            if store.is_empty() {
                // Not fatal: the operator may install them before traffic
                // comes; every handshake fails clearly until then.
                crate::warn!(
                    "no system CA certificates found (install ca-certificates or set tls.ca_file); TLS upstreams will fail their handshakes"
                );
            }
        }
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A digest of the files `paths` name, as they are now: a reload compares
/// it to see rotated certificates, whose paths stay the same.
pub fn files_digest(paths: &[Option<&Path>]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in paths {
        let bytes = p.and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
        ctx.update(&(bytes.len() as u64).to_le_bytes());
        ctx.update(&bytes);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The rustls client configuration of one upstream cluster.
pub fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
    } else {
        builder.with_root_certificates(roots(tls.ca_file.as_deref())?)
    };
    let config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .map_err(refused(cert, Role::Client))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::Unpaired),
    };
    Ok(Arc::new(config))
}

/// The rustls server configuration of the TLS listener.
pub fn server_config(tls: &DownstreamTls) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Protocols)?;
    let builder = match &tls.ca_file {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(Some(ca))?), provider())
                    .build()
                    .map_err(|why| TlsError::ClientVerifier {
                        path: ca.clone(),
                        why,
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(&tls.cert_file)?, key(&tls.key_file)?)
        .map_err(refused(&tls.cert_file, Role::Server))?;
    Ok(Arc::new(config))
}

/// The name to present (SNI) and verify for a node at `host`: the
/// configured server_name wins; else the host itself (name or IP).
pub fn server_name(configured: Option<&str>, host: &str) -> Option<ServerName<'static>> {
    let name = configured.unwrap_or(host);
    ServerName::try_from(name.to_string()).ok()
}

/// `insecure_skip_verify`: signatures are still checked so the handshake
/// is well-formed, but the certificate's chain and name are not.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    //! Configurations built from real certificates (made with openssl, as
    //! the TLS integration tests make theirs) and tried in a handshake held
    //! in memory: no socket, no server.
    use super::*;
    use rustls::{ClientConnection, ServerConnection};
    use std::process::Command;

    /// A scratch directory with a CA, a server certificate for
    /// localhost/127.0.0.1, a client certificate, and a second CA that
    /// signed nothing here; removed on drop.
    struct Pki {
        dir: PathBuf,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let dir =
                std::env::temp_dir().join(format!("keyway-tls-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            let pki = Pki { dir };
            for ca in ["ca", "other-ca"] {
                pki.openssl(&[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={ca}"),
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                ]);
            }
            pki.signed("server", "serverAuth");
            pki.signed("client", "clientAuth");
            pki
        }

        fn signed(&self, name: &str, usage: &str) {
            let ext =
                format!("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n");
            std::fs::write(self.path(&format!("{name}.ext")), ext).expect("ext file");
            self.openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            self.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }

        fn openssl(&self, args: &[&str]) {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .expect("openssl (scripts/setup.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        fn path(&self, file: &str) -> PathBuf {
            self.dir.join(file)
        }

        fn server(&self, client_ca: Option<&str>) -> Arc<ServerConfig> {
            server_config(&DownstreamTls {
                cert_file: self.path("server.pem"),
                key_file: self.path("server.key"),
                ca_file: client_ca.map(|c| self.path(c)),
            })
            .expect("server config")
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Runs a TLS handshake between the two configurations in memory.
    fn handshake(
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
        name: &str,
    ) -> Result<(), rustls::Error> {
        let name = server_name(None, name).expect("a server name");
        let mut c = ClientConnection::new(client, name)?;
        let mut s = ServerConnection::new(server)?;
        for _ in 0..20 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).expect("to memory");
            }
            let mut at = &wire[..];
            while !at.is_empty() {
                s.read_tls(&mut at).expect("from memory");
            }
            let server_result = s.process_new_packets().map(|_| ());
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).expect("to memory");
            }
            let mut at = &wire[..];
            while !at.is_empty() {
                c.read_tls(&mut at).expect("from memory");
            }
            c.process_new_packets()?;
            server_result?;
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    #[test]
    fn an_upstream_is_verified_against_the_configured_ca_and_name() {
        let pki = Pki::new("verify");
        let trusting = |ca: &str| {
            client_config(&UpstreamTls {
                ca_file: Some(pki.path(ca)),
                ..UpstreamTls::default()
            })
            .expect("client config")
        };
        assert_eq!(
            handshake(trusting("ca.pem"), pki.server(None), "localhost"),
            Ok(())
        );
        assert_eq!(
            handshake(trusting("ca.pem"), pki.server(None), "127.0.0.1"),
            Ok(())
        );
        // Another name, or a CA that did not sign it: refused.
        assert!(handshake(trusting("ca.pem"), pki.server(None), "elsewhere.example").is_err());
        assert!(handshake(trusting("other-ca.pem"), pki.server(None), "localhost").is_err());
        // insecure_skip_verify: encryption without authentication.
        let blind = client_config(&UpstreamTls {
            ca_file: Some(pki.path("other-ca.pem")),
            insecure_skip_verify: true,
            ..UpstreamTls::default()
        })
        .expect("client config");
        assert_eq!(
            handshake(blind, pki.server(None), "elsewhere.example"),
            Ok(())
        );
    }

    #[test]
    fn a_listener_with_a_client_ca_takes_only_clients_it_signed() {
        let pki = Pki::new("mtls");
        let client = |cert: bool| {
            client_config(&UpstreamTls {
                ca_file: Some(pki.path("ca.pem")),
                client_cert: cert.then(|| pki.path("client.pem")),
                client_key: cert.then(|| pki.path("client.key")),
                ..UpstreamTls::default()
            })
            .expect("client config")
        };
        let strict = pki.server(Some("ca.pem"));
        assert_eq!(handshake(client(true), strict.clone(), "localhost"), Ok(()));
        assert!(handshake(client(false), strict, "localhost").is_err());
        assert_eq!(
            handshake(client(false), pki.server(None), "localhost"),
            Ok(())
        );
        let other = pki.server(Some("other-ca.pem"));
        assert!(handshake(client(true), other, "localhost").is_err());
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        let pki = Pki::new("bad");
        std::fs::write(pki.path("empty.pem"), "not a certificate\n").expect("file");
        let err = |tls: UpstreamTls| client_config(&tls).expect_err("refused");
        let missing = err(UpstreamTls {
            ca_file: Some(pki.path("nowhere.pem")),
            ..UpstreamTls::default()
        });
        assert!(
            matches!(&missing, TlsError::Pem { path, holding: Holding::Certificates, .. }
                if path.ends_with("nowhere.pem")),
            "{missing:?}"
        );
        let shown = missing.to_string();
        assert!(
            shown.starts_with("cannot read certificates from ") && shown.contains("nowhere.pem"),
            "{shown}"
        );
        let empty = err(UpstreamTls {
            ca_file: Some(pki.path("empty.pem")),
            ..UpstreamTls::default()
        });
        assert!(matches!(empty, TlsError::NoCertificate(_)), "{empty:?}");
        assert!(empty.to_string().starts_with("no PEM certificate in "));
        let half = err(UpstreamTls {
            client_cert: Some(pki.path("client.pem")),
            insecure_skip_verify: true,
            ..UpstreamTls::default()
        });
        assert!(matches!(half, TlsError::Unpaired), "{half:?}");
        assert_eq!(half.to_string(), "client_cert and client_key go together");
        // A key that is not the certificate's.
        let mismatched = server_config(&DownstreamTls {
            cert_file: pki.path("server.pem"),
            key_file: pki.path("client.key"),
            ca_file: None,
        })
        .expect_err("refused");
        assert!(
            matches!(&mismatched, TlsError::Refused { path, role: Role::Server, .. }
                if path.ends_with("server.pem")),
            "{mismatched:?}"
        );
    }

    #[test]
    fn the_files_digest_sees_a_rotated_certificate_at_the_same_path() {
        let pki = Pki::new("digest");
        let cert = pki.path("server.pem");
        let before = files_digest(&[Some(&cert), None]);
        assert_eq!(before, files_digest(&[Some(&cert), None]));
        std::fs::copy(pki.path("client.pem"), &cert).expect("rotate");
        assert_ne!(before, files_digest(&[Some(&cert), None]));
        // Which slot a file is in counts too.
        assert_ne!(
            files_digest(&[Some(&cert), None]),
            files_digest(&[None, Some(&cert)])
        );
    }

    #[test]
    fn the_configured_server_name_wins_over_the_host() {
        let name =
            |configured, host| server_name(configured, host).map(|n| n.to_str().into_owned());
        assert_eq!(
            name(Some("redis.example"), "10.0.0.1").as_deref(),
            Some("redis.example")
        );
        assert_eq!(name(None, "10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(name(None, "bad name!"), None);
    }
}
