//! TLS on the client port: one port for gRPC, gRPC-Web and the page, over
//! TLS when a certificate and key are configured (ALPN `h2` and `http/1.1`).
//!
//! - The files are PEM: the certificate chain (leaf first) and its private
//!   key (PKCS#8, PKCS#1 or SEC1). A key that does not match the leaf is
//!   refused at start-up, not at the first handshake.
//! - The files are read again every `reload_every`; when their bytes change
//!   and the new pair loads, new handshakes use it. Connections already open
//!   keep theirs (a renewal drops no one). A pair that does not load is
//!   logged and counted, and the previous one stays in service.
//! - Handshakes run on tasks of their own, bounded by [`HANDSHAKE_TIMEOUT`]:
//!   a slow or silent client never holds up the accept loop.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parking_lot::{Mutex, RwLock};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use switchboard_shared::metrics::metrics;
use switchboard_shared::shutdown::CancellationToken;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway's certificate and key are, and how often to look for new ones.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key of the leaf.
    pub key: PathBuf,
    pub reload_every: Duration,
}

/// The TLS settings: both files, or neither (plaintext).
#[derive(Debug, Clone, clap::Args)]
pub struct TlsSettings {
    /// PEM certificate chain (leaf first): with --tls-key, clients connect over TLS (gRPC, gRPC-Web and the page, on the same port).
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "SB_TLS_CERT",
        requires = "tls_key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate (with --tls-cert).
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "SB_TLS_KEY",
        requires = "tls_cert"
    )]
    pub key: Option<PathBuf>,
    /// How often the certificate and key files are read again; a changed pair serves new connections, open ones keep theirs. In milliseconds.
    #[arg(
        id = "tls_reload_ms",
        long = "tls-reload-ms",
        env = "SB_TLS_RELOAD_MS",
        default_value = "10000",
        value_parser = switchboard_shared::settings::millis
    )]
    pub reload_every: Duration,
}

impl TlsSettings {
    /// The files to serve TLS with; none for plaintext. One without the
    /// other (possible from a config file) is a mistake, not plaintext.
    pub fn files(&self) -> anyhow::Result<Option<TlsFiles>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                reload_every: self.reload_every,
            })),
            (None, None) => Ok(None),
            (Some(_), None) => {
                anyhow::bail!("tls-cert is set without tls-key: set both, or neither")
            }
            (None, Some(_)) => {
                anyhow::bail!("tls-key is set without tls-cert: set both, or neither")
            }
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The bytes of both files, as last read.
#[derive(PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Contents {
    fn read(files: &TlsFiles) -> anyhow::Result<Self> {
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path)
                .with_context(|| format!("cannot read the TLS {what} {}", path.display()))
        };
        Ok(Self {
            cert: read(&files.cert, "certificate")?,
            key: read(&files.key, "key")?,
        })
    }

    fn certified_key(&self, files: &TlsFiles) -> anyhow::Result<CertifiedKey> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
        anyhow::ensure!(
            !chain.is_empty(),
            "{} holds no certificate",
            files.cert.display()
        );
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .with_context(|| format!("{} is not a PEM private key", files.key.display()))?;
        CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                files.key.display(),
                files.cert.display()
            )
        })
    }
}

/// The certificate in service, swapped when the files change.
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    /// What `current` was loaded from, and the last bytes that failed (so a
    /// bad pair is reported once, not on every look).
    seen: Mutex<(Contents, Option<Contents>)>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads the pair; an error says which file is wrong and how.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        let contents = Contents::read(&files)?;
        let key = contents.certified_key(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(key)),
            seen: Mutex::new((contents, None)),
        }))
    }

    /// Reads the files again; takes up a changed pair if it loads. Returns
    /// whether a new pair went into service.
    pub fn reload(&self) -> bool {
        let contents = match Contents::read(&self.files) {
            Ok(contents) => contents,
            Err(err) => {
                // Mid-rotation, one file may be missing for a moment: next look.
                tracing::debug!(%err, "TLS files not readable now");
                return false;
            }
        };
        let mut seen = self.seen.lock();
        if contents == seen.0 || seen.1.as_ref() == Some(&contents) {
            return false;
        }
        match contents.certified_key(&self.files) {
            Ok(key) => {
                *self.current.write() = Arc::new(key);
                *seen = (contents, None);
                metrics().tls_certificate_reloads.inc();
                tracing::info!(cert = %self.files.cert.display(), "new TLS certificate in service");
                true
            }
            Err(err) => {
                seen.1 = Some(contents);
                metrics().tls_certificate_reload_failures.inc();
                tracing::warn!(
                    err = format!("{err:#}"),
                    "changed TLS files cannot be used; the previous certificate stays in service"
                );
                false
            }
        }
    }

    /// Looks for new files every `reload_every` until `stop`.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut tick =
            tokio::time::interval(self.files.reload_every.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let this = self.clone();
            // File reads: off the runtime's worker threads.
            let _ = tokio::task::spawn_blocking(move || this.reload()).await;
        }
    }

    /// The server side of TLS: this certificate, ALPN h2 then HTTP/1.1.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// A handshake that failed or took too long: counted, and logged at debug
/// (scanners and wrong-protocol clients make these all day).
pub fn handshake_failed(err: &dyn fmt::Display, peer: std::net::SocketAddr) {
    metrics().tls_handshake_failures.inc();
    tracing::debug!(%err, %peer, "TLS handshake failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        cert: String,
        key: String,
    }

    fn pair(name: &str) -> Pair {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn files(dir: &tempfile::TempDir, pair: &Pair) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            reload_every: Duration::from_secs(1),
        };
        std::fs::write(&files.cert, &pair.cert).unwrap();
        std::fs::write(&files.key, &pair.key).unwrap();
        files
    }

    fn leaf(certs: &Certificates) -> Vec<u8> {
        certs.current.read().cert[0].to_vec()
    }

    #[test]
    fn a_key_that_does_not_fit_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (pair("a.example"), pair("b.example"));
        let files = files(
            &dir,
            &Pair {
                cert: a.cert,
                key: b.key,
            },
        );
        let err = Certificates::load(files).unwrap_err();
        assert!(format!("{err:#}").contains("does not fit"), "{err:#}");

        std::fs::write(dir.path().join("tls.crt"), "not pem").unwrap();
        let files = TlsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
            reload_every: Duration::from_secs(1),
        };
        let err = Certificates::load(files).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no certificate"),
            "{err:#}"
        );
    }

    #[test]
    fn changed_files_are_taken_up_and_bad_ones_leave_the_old_pair() {
        let dir = tempfile::tempdir().unwrap();
        let first = pair("first.example");
        let certs = Certificates::load(files(&dir, &first)).unwrap();
        let before = leaf(&certs);
        assert!(!certs.reload(), "unchanged files: nothing to do");

        // A half-written rotation: the new certificate with the old key.
        let second = pair("second.example");
        std::fs::write(dir.path().join("tls.crt"), &second.cert).unwrap();
        assert!(!certs.reload());
        assert_eq!(leaf(&certs), before, "the old pair stays in service");

        std::fs::write(dir.path().join("tls.key"), &second.key).unwrap();
        assert!(certs.reload());
        assert_ne!(leaf(&certs), before);
    }
}
