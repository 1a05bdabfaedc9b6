//! Secondary-index and geographic queries, and writes that carry index
//! terms (`X-Riak-Index-*`), over the HTTP API (docs/QUERIES.md).

use crate::{encode as segment, Client, ClientError};
use bytes::Bytes;

impl Client {
    /// Store a value with index terms: `(NAME_bin|NAME_int|NAME_geo,
    /// term)` pairs, each sent as an `X-Riak-Index-NAME` header.
    ///
    /// # Errors
    ///
    /// Transport failures and error statuses (a malformed term is a 400
    /// that says what is wrong).
    pub async fn put_indexed(
        &self,
        bucket: &str,
        key: &str,
        value: Bytes,
        content_type: &str,
        indexes: &[(String, String)],
    ) -> Result<u16, ClientError> {
        let url = self.object_url(bucket, key, "");
        let mut req = self
            .http
            .put(&url)
            .header("content-type", content_type)
            .body(value);
        for (name, term) in indexes {
            req = req.header(format!("x-riak-index-{name}"), term);
        }
        let resp = Self::check(self.send(req, &url).await?, &url).await?;
        Ok(resp.status().as_u16())
    }

    /// One page of a secondary-index query: `term` alone is equality,
    /// with `end` a range; `query` adds parameters (`max_results=10`,
    /// `continuation=...`, `return_terms=true`, `term_regex=...`). The
    /// answer is Riak's JSON (`keys` or `results`, and `continuation`).
    ///
    /// # Errors
    ///
    /// Transport failures, error statuses, non-JSON answers.
    pub async fn index_query(
        &self,
        bucket: &str,
        index: &str,
        term: &str,
        end: Option<&str>,
        query: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let mut url = format!(
            "{}/buckets/{}/index/{}/{}",
            self.base,
            segment(bucket),
            segment(index),
            segment(term)
        );
        if let Some(end) = end {
            url.push('/');
            url.push_str(&segment(end));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        self.json(self.http.get(&url), &url).await
    }

    /// A geographic query on a `_geo` index: `query` is
    /// `lat=..&lon=..&radius_m=..` or `bbox=MINLAT,MINLON,MAXLAT,MAXLON`,
    /// with `max_results` and `continuation` if wanted. The answer is
    /// `{"results": [{"key", "distance_m", "lat", "lon"}], "continuation"}`.
    ///
    /// # Errors
    ///
    /// Transport failures, error statuses, non-JSON answers.
    pub async fn geo_query(
        &self,
        bucket: &str,
        index: &str,
        query: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!(
            "{}/buckets/{}/geo/{}?{query}",
            self.base,
            segment(bucket),
            segment(index)
        );
        self.json(self.http.get(&url), &url).await
    }
}
