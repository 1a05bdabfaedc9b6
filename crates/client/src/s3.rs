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
//!
//! Why hyper's connection API and not reqwest (which the rest of this crate
//! uses): the load generator's CPU is taken from the cluster it measures.
//! Each request here is one keep-alive HTTP/1.1 connection from a small
//! idle list, no URL parsing, no pool keyed by host. Measured under 4 KiB
//! GETs the bench took 31-32% of the machine's CPU through reqwest and
//! 23% through this (docs/BENCHMARKS.md).

use crate::{encode, ClientError};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
/// Idle connections kept per endpoint; more are closed after use.
const IDLE_CONNECTIONS_MAX: usize = 256;

type Conn = SendRequest<Full<Bytes>>;

/// A response read to its end: the body is kept only when asked for.
struct Answer {
    status: u16,
    body: Bytes,
    len: u64,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What one ListObjectsV2 page asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListRequest<'a> {
    /// Only keys beginning with this.
    pub prefix: Option<&'a str>,
    /// Roll keys up into common prefixes at this.
    pub delimiter: Option<&'a str>,
    /// The previous page's `NextContinuationToken`.
    pub token: Option<&'a str>,
    /// Start after this key.
    pub start_after: Option<&'a str>,
    /// Entries in the page, at most.
    pub max_keys: Option<u32>,
}

/// One ListObjectsV2 page.
#[derive(Clone, Debug, Default)]
pub struct ListedObjects {
    /// Keys, in order.
    pub keys: Vec<String>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// The next page's token; `None` on the last page.
    pub next_token: Option<String>,
}

/// The text of every `<tag>…</tag>` in `xml`, in order (no nesting of the
/// same tag, as in S3's listings).
fn xml_values<'x>(xml: &'x str, tag: &str) -> Vec<&'x str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Undo `encoding-type=url`; `None` if the bytes are not UTF-8.
fn url_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Signs and sends S3 requests to one endpoint.
#[derive(Clone)]
pub struct S3Client {
    base: String,
    host: String,
    access_key_id: String,
    secret: String,
    region: String,
    /// Keep-alive connections not in use.
    idle: Arc<Mutex<Vec<Conn>>>,
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
        S3Client {
            base,
            host,
            access_key_id: access_key_id.to_string(),
            secret: secret.to_string(),
            region: region.to_string(),
            idle: Arc::new(Mutex::new(Vec::new())),
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
            .send("PUT", &format!("/{}", encode(bucket)), None, true)
            .await?;
        let body = r.text();
        if r.status == 200 || body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        Err(self.status_error(&format!("/{bucket}"), r.status, body))
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
        let r = self.send("PUT", &path, Some(body), true).await?;
        if r.status == 200 {
            return Ok(());
        }
        Err(self.status_error(&path, r.status, r.text()))
    }

    /// Read `bucket/key` to its end and return its length; the body is
    /// streamed and dropped chunk by chunk.
    ///
    /// # Errors
    ///
    /// Transport failures and any status but 200.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<u64, ClientError> {
        let path = format!("/{}/{}", encode(bucket), encode_key(key));
        let r = self.send("GET", &path, None, false).await?;
        if r.status != 200 {
            return Err(self.status_error(&path, r.status, r.text()));
        }
        Ok(r.len)
    }

    /// Delete `bucket/key` (S3 answers 204 whether or not it existed).
    ///
    /// # Errors
    ///
    /// Transport failures and any status but 204.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ClientError> {
        let path = format!("/{}/{}", encode(bucket), encode_key(key));
        let r = self.send("DELETE", &path, None, true).await?;
        if r.status == 204 {
            return Ok(());
        }
        Err(self.status_error(&path, r.status, r.text()))
    }

    /// One ListObjectsV2 page of `bucket` (`encoding-type=url`, so any key
    /// survives the XML): keys, common prefixes and the token of the next
    /// page (`None` on the last).
    ///
    /// # Errors
    ///
    /// Transport failures, any status but 200, and answers that are not a
    /// listing.
    pub async fn list_objects_v2(
        &self,
        bucket: &str,
        page: &ListRequest<'_>,
    ) -> Result<ListedObjects, ClientError> {
        let mut query = vec![
            ("encoding-type".to_string(), "url".to_string()),
            ("list-type".to_string(), "2".to_string()),
        ];
        let mut add = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                query.push((k.to_string(), encode(v)));
            }
        };
        add("prefix", page.prefix);
        add("delimiter", page.delimiter);
        add("continuation-token", page.token);
        add("start-after", page.start_after);
        let max = page.max_keys.map(|m| m.to_string());
        add("max-keys", max.as_deref());
        query.sort();
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path = format!("/{}?{}", encode(bucket), query.join("&"));
        let r = self.send("GET", &path, None, true).await?;
        if r.status != 200 {
            return Err(self.status_error(&path, r.status, r.text()));
        }
        let xml = r.text();
        let bad = |what: &str| ClientError::Transport {
            url: format!("{}{path}", self.base),
            detail: format!(
                "the listing has {what}: {}",
                xml.chars().take(200).collect::<String>()
            ),
        };
        let decode =
            |s: &str| url_decode(&xml_unescape(s)).ok_or_else(|| bad("a key that does not decode"));
        let keys = xml_values(&xml, "Key")
            .into_iter()
            .map(decode)
            .collect::<Result<_, _>>()?;
        let prefixes = xml_values(&xml, "CommonPrefixes")
            .into_iter()
            .flat_map(|cp| xml_values(cp, "Prefix"))
            .map(decode)
            .collect::<Result<_, _>>()?;
        let truncated = xml_values(&xml, "IsTruncated").first() == Some(&"true");
        let next_token = xml_values(&xml, "NextContinuationToken")
            .first()
            .map(|t| xml_unescape(t));
        if truncated != next_token.is_some() {
            return Err(bad("IsTruncated and NextContinuationToken disagreeing"));
        }
        Ok(ListedObjects {
            keys,
            prefixes,
            next_token,
        })
    }

    fn status_error(&self, what: &str, status: u16, body: String) -> ClientError {
        ClientError::Status {
            url: format!("{}{what}", self.base),
            status,
            body,
        }
    }

    /// Send a signed request and read its answer to the end; the body is
    /// kept when `keep_body` or the status is not a success (it then holds
    /// S3's error), else only counted, so a large GET is never held whole.
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
        keep_body: bool,
    ) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let fail = |detail: String| ClientError::Transport {
            url: url.clone(),
            detail,
        };
        let req = self
            .signed(method, path, body)
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let mut conn = self.connection().await?;
            let response = conn.send_request(req).await?;
            let status = response.status().as_u16();
            let keep = keep_body || !(200..300).contains(&status);
            let (mut body, mut len) = (Vec::new(), 0u64);
            let mut incoming = response.into_body();
            while let Some(frame) = incoming.frame().await {
                if let Ok(data) = frame?.into_data() {
                    len += data.len() as u64;
                    if keep {
                        body.extend_from_slice(&data);
                    }
                }
            }
            self.release(conn);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer {
                status,
                body: body.into(),
                len,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(fail(innermost(e.as_ref()))),
            Err(_) => Err(fail("timed out".into())),
        }
    }

    fn signed(
        &self,
        method: &str,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
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
        let (uri_path, query) = path.split_once('?').unwrap_or((path, ""));
        hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("x-amz-date", &stamp)
            .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
            .header(
                "authorization",
                self.authorization(method, uri_path, query, &date, &stamp),
            )
            .body(Full::new(body.unwrap_or_default()))
    }

    /// An idle keep-alive connection, or a new one.
    async fn connection(&self) -> Result<Conn, Box<dyn std::error::Error + Send + Sync>> {
        loop {
            let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
            let Some(mut conn) = idle else { break };
            // A connection the server closed while idle fails `ready`.
            if conn.ready().await.is_ok() {
                return Ok(conn);
            }
        }
        // `host` may lack a port: an http URL's default is 80.
        let stream = if self.host.contains(':') {
            tokio::net::TcpStream::connect(&self.host).await?
        } else {
            tokio::net::TcpStream::connect((self.host.as_str(), 80)).await?
        };
        stream.set_nodelay(true)?;
        let (mut conn, driver) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; its errors reach the request.
            let _ = driver.await;
        });
        conn.ready().await?;
        Ok(conn)
    }

    fn release(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < IDLE_CONNECTIONS_MAX {
                idle.push(conn);
            }
        }
    }

    /// The `Authorization` header, signing `host`, `x-amz-content-sha256`
    /// and `x-amz-date`; `query` is already encoded and sorted.
    fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        date: &str,
        stamp: &str,
    ) -> String {
        const SIGNED: &str = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{}\nx-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:{stamp}\n\n{SIGNED}\nUNSIGNED-PAYLOAD",
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

/// The innermost cause of an error (e.g. "Connection refused").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
