//! # A Rust client for ringstore
//!
//! Talks to any node's HTTP listener: the Riak-compatible key-value API
//! ([`Client::get`], [`Client::put`], [`Client::delete`]) and the admin API
//! ([`Client::cluster_status`], [`Client::join`]). Connections are pooled
//! and kept alive; one `Client` can be shared by many tasks. [`s3::S3Client`]
//! signs and sends the few S3 requests the benchmark needs.

mod query;
pub mod s3;

use bytes::Bytes;
use std::time::Duration;

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not reach the node or no answer came back.
    #[error("cannot reach {url}: {detail}; is the node running, and is that its address (--node for the HTTP API, --endpoint for S3)?")]
    Transport {
        /// The URL asked.
        url: String,
        /// The innermost cause (e.g. "Connection refused").
        detail: String,
    },
    /// The node answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// The node's message.
        body: String,
    },
}

/// One fetched version of a key.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// 200 for one value, 300 for siblings, 404 for none.
    pub status: u16,
    /// The causal context to send back with the next write.
    pub vclock: Option<String>,
    /// The body (one value, or the sibling list for a 300).
    pub body: Bytes,
    /// Content type of the body.
    pub content_type: Option<String>,
}

/// A client for one node.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

fn transport(url: &str, e: reqwest::Error) -> ClientError {
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let detail = if e.is_timeout() {
        "timed out".to_string()
    } else {
        cause.to_string()
    };
    ClientError::Transport {
        url: url.to_string(),
        detail,
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn http_client(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("building the HTTP client")
}

impl Client {
    /// A client for the node at `addr` (`host:port` or a URL).
    ///
    /// # Panics
    ///
    /// If the HTTP client cannot be built (no TLS backend is needed, so only
    /// on a broken system).
    pub fn new(addr: &str) -> Self {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        Client {
            base,
            http: http_client(reqwest::header::HeaderMap::new()),
        }
    }

    /// The same client, sending `token` (if any) as the admin API's
    /// bearer token on every request.
    ///
    /// # Panics
    ///
    /// As [`Client::new`]; and if `token` is not visible ASCII (node
    /// config validation refuses such tokens).
    pub fn with_admin_token(self, token: Option<&str>) -> Self {
        let Some(token) = token else { return self };
        let mut headers = reqwest::header::HeaderMap::new();
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("an admin token is visible ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, value);
        Client {
            base: self.base,
            http: http_client(headers),
        }
    }

    /// The node's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn object_url(&self, bucket: &str, key: &str, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!(
            "{}/buckets/{}/keys/{}{q}",
            self.base,
            encode(bucket),
            encode(key)
        )
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        req.send().await.map_err(|e| transport(url, e))
    }

    async fn check(resp: reqwest::Response, url: &str) -> Result<reqwest::Response, ClientError> {
        let status = resp.status().as_u16();
        if status >= 400 && status != 404 {
            let body = resp.text().await.unwrap_or_default().trim().to_string();
            return Err(ClientError::Status {
                url: url.to_string(),
                status,
                body,
            });
        }
        Ok(resp)
    }

    /// Fetch a key. `query` is a raw query string (`r=2&notfound_ok=false`).
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses other than 404.
    pub async fn get(&self, bucket: &str, key: &str, query: &str) -> Result<Fetched, ClientError> {
        let url = self.object_url(bucket, key, query);
        let resp = Self::check(self.send(self.http.get(&url), &url).await?, &url).await?;
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (status, vclock, content_type) = (
            resp.status().as_u16(),
            header("x-riak-vclock"),
            header("content-type"),
        );
        let body = resp.bytes().await.map_err(|e| transport(&url, e))?;
        Ok(Fetched {
            status,
            vclock,
            body,
            content_type,
        })
    }

    /// Store a value; with `vclock`, replacing what that context saw.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        value: Bytes,
        content_type: &str,
        vclock: Option<&str>,
        query: &str,
    ) -> Result<u16, ClientError> {
        let url = self.object_url(bucket, key, query);
        let mut req = self
            .http
            .put(&url)
            .header("content-type", content_type)
            .body(value);
        if let Some(v) = vclock {
            req = req.header("x-riak-vclock", v);
        }
        let resp = Self::check(self.send(req, &url).await?, &url).await?;
        Ok(resp.status().as_u16())
    }

    /// Delete a key.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        vclock: Option<&str>,
        query: &str,
    ) -> Result<u16, ClientError> {
        let url = self.object_url(bucket, key, query);
        let mut req = self.http.delete(&url);
        if let Some(v) = vclock {
            req = req.header("x-riak-vclock", v);
        }
        Ok(Self::check(self.send(req, &url).await?, &url)
            .await?
            .status()
            .as_u16())
    }

    /// Set bucket properties from a JSON object of props.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn set_props(
        &self,
        bucket: &str,
        props: serde_json::Value,
    ) -> Result<(), ClientError> {
        let url = format!("{}/buckets/{}/props", self.base, encode(bucket));
        let body = serde_json::json!({ "props": props }).to_string();
        let req = self
            .http
            .put(&url)
            .header("content-type", "application/json")
            .body(body);
        Self::check(self.send(req, &url).await?, &url)
            .await
            .map(|_| ())
    }

    async fn json(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let resp = Self::check(self.send(req, url).await?, url).await?;
        let text = resp.text().await.map_err(|e| transport(url, e))?;
        serde_json::from_str(&text).map_err(|e| ClientError::Status {
            url: url.to_string(),
            status: 200,
            body: format!("not JSON: {e}"),
        })
    }

    /// Whether this node's own replica holds a live value for the key
    /// (`GET /admin/replica/...`, which asks no other node).
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses other than 404.
    pub async fn has_replica(&self, bucket: &str, key: &str) -> Result<bool, ClientError> {
        let url = format!(
            "{}/admin/replica/buckets/{}/keys/{}",
            self.base,
            encode(bucket),
            encode(key)
        );
        let resp = Self::check(self.send(self.http.get(&url), &url).await?, &url).await?;
        Ok(resp.status().as_u16() != 404)
    }

    /// Drop all traffic between this node and `peers` (node ids); needs a
    /// node started with `--enable-fault-injection`.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses (404 without the flag).
    pub async fn drop_traffic(&self, peers: &[String]) -> Result<(), ClientError> {
        let url = format!("{}/admin/debug/faults", self.base);
        let body = serde_json::json!({ "drop": peers }).to_string();
        let req = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        Self::check(self.send(req, &url).await?, &url)
            .await
            .map(|_| ())
    }

    /// Clear every injected fault on this node.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn clear_faults(&self) -> Result<(), ClientError> {
        let url = format!("{}/admin/debug/faults", self.base);
        Self::check(self.send(self.http.delete(&url), &url).await?, &url)
            .await
            .map(|_| ())
    }

    /// `GET /admin/cluster`.
    ///
    /// # Errors
    ///
    /// Transport failures, error statuses, non-JSON answers.
    pub async fn cluster_status(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/admin/cluster", self.base);
        self.json(self.http.get(&url), &url).await
    }

    /// Ask this node to join the cluster `seed` (an RPC address) belongs to.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn join(&self, seed: &str) -> Result<serde_json::Value, ClientError> {
        self.post_json("/admin/cluster/join", serde_json::json!({ "seed": seed }))
            .await
    }

    /// Start handing `node`'s partitions off, then remove it.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn leave(&self, node: &str) -> Result<serde_json::Value, ClientError> {
        self.post_json("/admin/cluster/leave", serde_json::json!({ "node": node }))
            .await
    }

    /// Give the partitions of `old` to `new` (already a member).
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn replace(&self, old: &str, new: &str) -> Result<serde_json::Value, ClientError> {
        self.post_json(
            "/admin/cluster/replace",
            serde_json::json!({ "old": old, "new": new }),
        )
        .await
    }

    /// Change a member's zone and/or capacity.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn update_member(
        &self,
        node: &str,
        zone: Option<&str>,
        capacity: Option<u32>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut body = serde_json::json!({ "node": node });
        if let Some(z) = zone {
            body["zone"] = z.into();
        }
        if let Some(c) = capacity {
            body["capacity"] = c.into();
        }
        self.post_json("/admin/cluster/update", body).await
    }

    /// Handoffs in progress on this node.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn transfers(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/admin/transfers", self.base);
        self.json(self.http.get(&url), &url).await
    }

    /// Create an S3 access key.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn create_key(&self, name: &str) -> Result<serde_json::Value, ClientError> {
        self.post_json("/admin/keys", serde_json::json!({ "name": name }))
            .await
    }

    /// Every S3 access key (without secrets).
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn list_keys(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/admin/keys", self.base);
        self.json(self.http.get(&url), &url).await
    }

    /// Delete an S3 access key.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses (404: no such key).
    pub async fn delete_key(&self, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/admin/keys/{}", self.base, encode(id));
        Self::check(self.send(self.http.delete(&url), &url).await?, &url)
            .await
            .map(|_| ())
    }

    /// Set a key's rights on a bucket.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn grant(
        &self,
        id: &str,
        bucket: &str,
        rights: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!(
            "{}/admin/keys/{}/buckets/{}",
            self.base,
            encode(id),
            encode(bucket)
        );
        self.json(
            self.http
                .put(&url)
                .header("content-type", "application/json")
                .body(rights.to_string()),
            &url,
        )
        .await
    }

    /// Create a key-value user with `grants`; the answer carries its
    /// password, shown once.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses (409: the user exists).
    pub async fn create_user(
        &self,
        name: &str,
        grants: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.post_json(
            "/admin/users",
            serde_json::json!({ "name": name, "grants": grants }),
        )
        .await
    }

    /// Every key-value user and its grants.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn list_users(&self) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}/admin/users", self.base);
        self.json(self.http.get(&url), &url).await
    }

    /// Delete a key-value user.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses (404: no such user).
    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        let url = format!("{}/admin/users/{}", self.base, encode(name));
        Self::check(self.send(self.http.delete(&url), &url).await?, &url)
            .await
            .map(|_| ())
    }

    async fn post_json(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.json(
            self.http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            &url,
        )
        .await
    }

    /// Whether `/health/ready` answers 200 (joined and holding its data).
    pub async fn is_ready(&self) -> bool {
        let url = format!("{}/health/ready", self.base);
        self.http
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The node's `/metrics` text.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        let resp = Self::check(self.send(self.http.get(&url), &url).await?, &url).await?;
        resp.text().await.map_err(|e| transport(&url, e))
    }
}
