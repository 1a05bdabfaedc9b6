//! The S3 operations, as s3s hands them over: the trait implementation
//! delegates to one module per kind (buckets, objects, listings,
//! multipart); this module holds what they share.

use crate::cache::TtlCache;
use crate::catalog::Catalog;
use crate::keys::KeyStore;
use crate::records::{BucketRecord, Headers, ObjectRecord, BUCKETS, TYPE_META, TYPE_OBJECTS};
use crate::settings::Settings;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use std::time::{Duration, UNIX_EPOCH};

/// How long a node trusts that a bucket it has seen exists.
///
/// What it costs: a bucket deleted through another node still takes PUTs
/// here for up to this long (S3 itself documents bucket deletion as
/// eventually consistent); the objects stay listable and deletable if the
/// bucket is created again. Only existing buckets are cached, so a bucket
/// created through another node is usable at once.
const BUCKET_CACHE_TTL: Duration = Duration::from_secs(2);
/// Cached bucket records per node.
const BUCKET_CACHE_MAX: usize = 10_000;

/// The S3 API over one node.
#[derive(Clone)]
pub struct RingS3 {
    pub(crate) catalog: Catalog,
    pub(crate) keys: KeyStore,
    /// Buckets seen to exist: keeps a quorum read off every PUT.
    pub(crate) buckets: TtlCache<BucketRecord>,
    /// Bucket settings (ACL, policy, CORS, website).
    pub(crate) settings: Settings,
    /// How long a lifecycle "day" lasts (a day, but in tests).
    pub(crate) day_ms: u64,
}

impl RingS3 {
    /// Over `catalog`, checking rights with `keys`.
    pub fn new(catalog: Catalog, keys: KeyStore, settings: Settings) -> Self {
        RingS3 {
            settings,
            catalog,
            keys,
            buckets: TtlCache::new(BUCKET_CACHE_TTL, BUCKET_CACHE_MAX),
            day_ms: crate::lifecycle::DAY_MS,
        }
    }

    /// With lifecycle days lasting `day_ms` (tests only; 0 keeps a day).
    #[must_use]
    pub fn with_lifecycle_day_ms(mut self, day_ms: u64) -> Self {
        if day_ms > 0 {
            self.day_ms = day_ms;
        }
        self
    }

    /// The bucket's record, or `NoSuchBucket`.
    pub(crate) async fn bucket(&self, name: &str) -> S3Result<BucketRecord> {
        if let Some(b) = self.buckets.get(name) {
            return Ok(b);
        }
        let b: BucketRecord = self
            .catalog
            .get(TYPE_META, BUCKETS, name.as_bytes())
            .await?
            .ok_or_else(|| s3_error!(NoSuchBucket, "bucket {name} does not exist"))?;
        self.buckets.put(name, b.clone());
        Ok(b)
    }

    /// An object's record, if any.
    pub(crate) async fn object(&self, bucket: &str, key: &str) -> S3Result<Option<ObjectRecord>> {
        self.catalog
            .get(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes())
            .await
    }

    /// An object's record, read nearby when `nearby` says how.
    pub(crate) async fn object_read(
        &self,
        bucket: &str,
        key: &str,
        nearby: Option<node::NearbyRead>,
    ) -> S3Result<Option<ObjectRecord>> {
        match nearby {
            Some(how) => {
                let k = crate::catalog::bkey(TYPE_OBJECTS, bucket.as_bytes(), key.as_bytes());
                self.catalog.get_nearby(&k, how).await
            }
            None => self.object(bucket, key).await,
        }
    }

    /// An object's record, or `NoSuchKey` (`NoSuchBucket` if the bucket
    /// is missing too).
    pub(crate) async fn existing_object(&self, bucket: &str, key: &str) -> S3Result<ObjectRecord> {
        match self.object(bucket, key).await? {
            Some(r) => Ok(r),
            None => {
                self.bucket(bucket).await?;
                Err(s3_error!(NoSuchKey, "no object {key} in bucket {bucket}"))
            }
        }
    }
}

/// An error with a code s3s does not name, and its status.
pub(crate) fn custom_error(code: &'static str, status: u16, message: String) -> s3s::S3Error {
    let mut e = s3s::S3Error::with_message(s3s::S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST),
    );
    e
}

/// An S3 timestamp from ms since the epoch.
pub(crate) fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Whole seconds since the epoch of an S3 timestamp (HTTP dates have
/// second precision, so conditions compare seconds).
pub(crate) fn secs_of(t: &Timestamp) -> i64 {
    let o: time::OffsetDateTime = t.clone().into();
    o.unix_timestamp()
}

/// The quoted ETag of a record.
pub(crate) fn etag(r: &ObjectRecord) -> ETag {
    ETag::Strong(r.etag.clone())
}

/// Content headers from a PUT-like request.
pub(crate) fn headers_from(
    content_type: Option<ContentType>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> Headers {
    Headers {
        content_type: content_type.map(|c| c.to_string()),
        content_encoding: content_encoding.and_then(|e| stored_encoding(&e)),
        content_disposition,
        content_language,
        cache_control,
        user_meta: metadata.unwrap_or_default().into_iter().collect(),
    }
}

/// The `Content-Encoding` an object keeps: `aws-chunked` describes the
/// upload's framing, not the object, so S3 drops it.
fn stored_encoding(e: &str) -> Option<String> {
    let kept: Vec<&str> = e
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

#[async_trait::async_trait]
impl S3 for RingS3 {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        crate::buckets::create(self, req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        crate::buckets::delete(self, req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        crate::buckets::list(self, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = req.input.bucket;
        self.bucket(&bucket).await?;
        let location = self
            .settings
            .get::<String>(&bucket, crate::settings::Sub::Location)
            .await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location.map(BucketLocationConstraint::from),
        }))
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        crate::versions_ops::get_bucket_versioning(self, req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        crate::objects::put(self, req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        crate::objects::get(self, req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        crate::objects::head(self, req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        crate::objects::delete(self, req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        crate::objects::delete_many(self, req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        crate::copy::copy(self, req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        crate::listing::list_v1(self, req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        crate::listing::list_v2(self, req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        match self.versioning(&req.input.bucket).await? {
            Some(v) => crate::versions_ops::list_versions(self, req.input, v).await,
            None => crate::listing::list_versions(self, req).await,
        }
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        crate::multipart::create(self, req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        crate::multipart::upload_part(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        crate::multipart::complete(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        crate::multipart::abort(self, req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        crate::multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        crate::multipart::list_uploads(self, req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        crate::subresources::put_bucket_acl(self, req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        crate::subresources::get_bucket_acl(self, req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        crate::subresources::put_object_acl(self, req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        crate::subresources::get_object_acl(self, req).await
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        crate::subresources::put_bucket_cors(self, req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        crate::subresources::get_bucket_cors(self, req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        crate::subresources::delete_bucket_cors(self, req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        crate::subresources::put_bucket_policy(self, req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        crate::subresources::get_bucket_policy(self, req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        crate::subresources::delete_bucket_policy(self, req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        crate::subresources::get_bucket_policy_status(self, req).await
    }
    async fn put_bucket_website(
        &self,
        req: S3Request<PutBucketWebsiteInput>,
    ) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
        crate::subresources::put_bucket_website(self, req).await
    }
    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        crate::subresources::get_bucket_website(self, req).await
    }
    async fn delete_bucket_website(
        &self,
        req: S3Request<DeleteBucketWebsiteInput>,
    ) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
        crate::subresources::delete_bucket_website(self, req).await
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        crate::subresources::put_public_access_block(self, req).await
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        crate::subresources::get_public_access_block(self, req).await
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        crate::subresources::delete_public_access_block(self, req).await
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        crate::subresources::put_bucket_ownership_controls(self, req).await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        crate::subresources::get_bucket_ownership_controls(self, req).await
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        crate::subresources::delete_bucket_ownership_controls(self, req).await
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        crate::attributes::get(self, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        crate::part_copy::upload_part_copy(self, req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        crate::versions_ops::put_bucket_versioning(self, req).await
    }
    async fn get_object_torrent(
        &self,
        req: S3Request<GetObjectTorrentInput>,
    ) -> S3Result<S3Response<GetObjectTorrentOutput>> {
        Err(s3_error!(
            NoSuchKey,
            "ringstore serves no torrents; GET {} directly",
            req.input.key
        ))
    }

    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        crate::lifecycle_ops::put(self, req).await
    }

    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        crate::lifecycle_ops::get(self, req).await
    }

    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        crate::lifecycle_ops::delete(self, req).await
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        crate::tagging::put_object(self, req).await
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        crate::tagging::get_object(self, req).await
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        crate::tagging::delete_object(self, req).await
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        crate::tagging::put_bucket(self, req).await
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        crate::tagging::get_bucket(self, req).await
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        crate::tagging::delete_bucket(self, req).await
    }

    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        crate::lock::put_configuration(self, req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        crate::lock::get_configuration(self, req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        crate::lock::put_retention(self, req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        crate::lock::get_retention(self, req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        crate::lock::put_legal_hold(self, req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        crate::lock::get_legal_hold(self, req).await
    }
}
