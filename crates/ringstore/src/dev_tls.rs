//! `ringstore dev --tls`: a throwaway certificate authority and one
//! certificate for the dev nodes' HTTP and S3 listeners, so TLS can be
//! tried (and tested) with real clients verifying the certificate.
//!
//! The files live in `DATA_DIR/tls/` and are reused by the next run, so a
//! client told to trust `ca.pem` keeps trusting the restarted cluster. The
//! CA's key is written too (`ca.key`): this is a development CA; never
//! trust it beyond this machine.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Where the dev cluster's TLS files are.
pub(crate) struct DevTls {
    /// The CA's certificate: what clients pass as `--cacert`.
    pub(crate) ca_cert: PathBuf,
    /// The listeners' certificate (for `localhost` and `127.0.0.1`).
    pub(crate) cert: PathBuf,
    /// Its private key.
    pub(crate) key: PathBuf,
}

/// The dev cluster's TLS files: the ones a previous run made, else new.
pub(crate) fn ensure(data_dir: &Path) -> Result<DevTls> {
    let dir = data_dir.join("tls");
    let files = DevTls {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("node.pem"),
        key: dir.join("node.key"),
    };
    if [&files.ca_cert, &files.cert, &files.key]
        .iter()
        .all(|p| p.exists())
    {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_params, ca_key) = ca()?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("signing the dev CA")?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .context("naming the dev certificate")?;
    leaf.distinguished_name
        .push(DnType::CommonName, "ringstore dev node");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().context("making the dev node key")?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, &ca_key);
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .context("signing the dev node certificate")?;
    write(&dir.join("ca.key"), &ca_key.serialize_pem())?;
    write(&files.ca_cert, &ca_pem)?;
    write(&files.cert, &format!("{}{}", leaf_cert.pem(), ca_pem))?;
    write(&files.key, &leaf_key.serialize_pem())?;
    Ok(files)
}

fn ca() -> Result<(CertificateParams, KeyPair)> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("making the dev CA")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "ringstore dev CA (throwaway)");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().context("making the dev CA key")?;
    Ok((params, key))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
