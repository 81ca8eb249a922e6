//! Trust anchors for envd's TLS clients: a proxy's upstream and a PostgreSQL source share
//! how certificates are found, so a CA file means the same thing to both.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The system's roots (when `system`) plus the PEM certificates of `ca_file`. An error
/// (only ever about `ca_file`) says what is wrong with the file.
pub fn roots(system: bool, ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    if system {
        // Unreadable system certificates are skipped, not fatal: a private CA may be all
        // that is needed.
        for certificate in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(certificate);
        }
    }
    if let Some(path) = ca_file {
        let certificates: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|error| error.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|error| error.to_string())?;
        if certificates.is_empty() {
            return Err("expected PEM certificates, found none".into());
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|error| error.to_string())?;
        }
    }
    Ok(roots)
}
