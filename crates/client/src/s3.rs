//! # A minimal S3 client: what `ringstore bench s3` needs
//!
//! Create a bucket, put an object, get one (streamed and counted, never
//! held whole), delete one, signed with AWS Signature V4 in headers, path-style, so it
//! can load any S3 endpoint, not only ringstore.
//!
//! Why not an AWS SDK: the bench sends tens of thousands of tiny requests a
//! second from the same 2 cores as the cluster; a signer is ~80 lines and
//! an SDK's retry, checksum and credential layers would be measured too.
//! The payload is sent as `UNSIGNED-PAYLOAD` (allowed by SigV4) so a 64 MiB
//! body is not hashed twice.

use crate::{encode, transport, ClientError};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Signs and sends S3 requests to one endpoint.
#[derive(Clone)]
pub struct S3Client {
    base: String,
    host: String,
    access_key_id: String,
    secret: String,
    region: String,
    http: reqwest::Client,
    /// The signing key for one date (`YYYYMMDD`): derived once a day, not
    /// on every request.
    day_key: Arc<Mutex<(String, [u8; 32])>>,
}

/// A key in a path: every byte but unreserved ones and `/` escaped, as the
/// SigV4 canonical URI of S3 wants it.
fn encode_key(key: &str) -> String {
    key.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256>>::new_from_slice(key).unwrap_or_else(|_| unreachable!("any key"));
    m.update(data);
    m.finalize().into_bytes().into()
}

impl S3Client {
    /// A client for the S3 endpoint `addr` (`host:port` or an http URL).
    ///
    /// # Panics
    ///
    /// If the HTTP client cannot be built (only on a broken system).
    pub fn new(addr: &str, access_key_id: &str, secret: &str, region: &str) -> Self {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        let host = base
            .split_once("://")
            .map_or(base.as_str(), |(_, h)| h)
            .to_string();
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(600))
            .build()
            .expect("building the HTTP client");
        S3Client {
            base,
            host,
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
            http,
            day_key: Arc::new(Mutex::new((String::new(), [0; 32]))),
        }
    }

    /// Create `bucket`; one that already exists and is ours is fine.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses other than "already owned".
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ClientError> {
        let r = self
            .send("PUT", &format!("/{}", encode(bucket)), None)
            .await?;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status == 200 || body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(self.status_error(bucket, status, body))
    }

    /// Store `body` as `bucket/key`.
    ///
    /// # Errors
    ///
    /// Transport failures and any status but 200.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
    ) -> Result<(), ClientError> {
        let path = format!("/{}/{}", encode(bucket), encode_key(key));
        let r = self.send("PUT", &path, Some(body)).await?;
        let status = r.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        Err(self.status_error(&path, status, r.text().await.unwrap_or_default()))
    }

    /// Read `bucket/key` to its end and return its length; the body is
    /// streamed and dropped chunk by chunk.
    ///
    /// # Errors
    ///
    /// Transport failures and any status but 200.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<u64, ClientError> {
        let path = format!("/{}/{}", encode(bucket), encode_key(key));
        let mut r = self.send("GET", &path, None).await?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(self.status_error(&path, status, r.text().await.unwrap_or_default()));
        }
        let mut len = 0u64;
        while let Some(chunk) = r.chunk().await.map_err(|e| transport(&path, e))? {
            len += chunk.len() as u64;
        }
        Ok(len)
    }

    /// Delete `bucket/key` (S3 answers 204 whether or not it existed).
    ///
    /// # Errors
    ///
    /// Transport failures and any status but 204.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ClientError> {
        let path = format!("/{}/{}", encode(bucket), encode_key(key));
        let r = self.send("DELETE", &path, None).await?;
        let status = r.status().as_u16();
        if status == 204 {
            return Ok(());
        }
        Err(self.status_error(&path, status, r.text().await.unwrap_or_default()))
    }

    fn status_error(&self, what: &str, status: u16, body: String) -> ClientError {
        ClientError::Status {
            url: format!("{}{what}", self.base),
            status,
            body,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response, ClientError> {
        let now = time::OffsetDateTime::now_utc();
        let date = format!(
            "{:04}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let stamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            now.hour(),
            now.minute(),
            now.second()
        );
        let authorization = self.authorization(method, path, &date, &stamp);
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|_| unreachable!("GET, PUT and DELETE are methods"));
        let mut req = self
            .http
            .request(method, &url)
            .header("x-amz-date", &stamp)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header("authorization", authorization);
        if let Some(b) = body {
            req = req.body(b);
        }
        req.send().await.map_err(|e| transport(&url, e))
    }

    /// The `Authorization` header for a request with no query string,
    /// signing `host`, `x-amz-content-sha256` and `x-amz-date`.
    fn authorization(&self, method: &str, path: &str, date: &str, stamp: &str) -> String {
        const SIGNED: &str = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n\nhost:{}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{stamp}\n\n{SIGNED}\nUNSIGNED-PAYLOAD",
            self.host
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(date);
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED}, Signature={signature}",
            self.access_key_id
        )
    }

    fn signing_key(&self, date: &str) -> [u8; 32] {
        if let Ok(cached) = self.day_key.lock() {
            if cached.0 == date {
                return cached.1;
            }
        }
        let k = hmac(format!("AWS4{}", self.secret).as_bytes(), date.as_bytes());
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, b"s3");
        let k = hmac(&k, b"aws4_request");
        if let Ok(mut cached) = self.day_key.lock() {
            *cached = (date.to_string(), k);
        }
        k
    }
}
