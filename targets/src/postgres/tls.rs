//! TLS for PostgreSQL connections, when faultline is built with the `https` feature: rustls,
//! trusting the system's root certificates and, as libpq does, those in the PEM file that the
//! URL's `sslrootcert` or else `PGSSLROOTCERT` names. Whether a connection uses TLS is the URL's `sslmode` (`disable`,
//! `prefer` — the default — or `require`); unlike libpq's `require`, the server's certificate
//! is always verified.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector for a connection, trusting the certificates in `root_cert` besides the
/// system's.
pub(super) fn connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let path = root_cert
        .map(std::ffi::OsString::from)
        .or_else(|| std::env::var_os("PGSSLROOTCERT"));
    if let Some(path) = path {
        let shown = std::path::Path::new(&path).display().to_string();
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("root certificates {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "root certificates {shown}: no certificate in the file"
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("root certificates {shown}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
