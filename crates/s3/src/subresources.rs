//! The bucket and object subresources a bucket owner sets: ACLs, policy,
//! CORS, website and public access block. Each maps S3's XML types onto
//! the records of `settings` and back.

use crate::access::ReadByAcl;
use crate::acl;
use crate::policy::Policy as ParsedPolicy;
use crate::records::{Grant, ObjectAcl, TYPE_OBJECTS};
use crate::service::RingS3;
use crate::settings::{
    BucketAcl, CorsConfig, CorsRule, PublicAccessBlock, Redirect, RoutingRule, Sub, Website,
    CORS_RULES_MAX, ROUTING_RULES_MAX,
};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

type Out<T> = S3Result<S3Response<T>>;

fn ok<T>(t: T) -> Out<T> {
    Ok(S3Response::new(t))
}

/// A public ACL while the bucket blocks them: refused, as S3 does.
async fn refuse_public_acl(s3: &RingS3, bucket: &str, g: &acl::Granted) -> S3Result<()> {
    let public = g.public_read || g.public_write || g.authenticated_read;
    if public && s3.settings.view(bucket).await?.pab.block_public_acls {
        return Err(s3_error!(
            AccessDenied,
            "bucket {bucket} blocks public ACLs (its public access block); remove the block first"
        ));
    }
    Ok(())
}

pub(crate) async fn put_bucket_acl(
    s3: &RingS3,
    req: S3Request<PutBucketAclInput>,
) -> Out<PutBucketAclOutput> {
    let i = req.input;
    let owner = s3.bucket(&i.bucket).await?.owner;
    if s3.settings.view(&i.bucket).await?.acls_disabled() {
        return Err(acl_not_supported(&i.bucket));
    }
    let headers = [
        (i.grant_read.as_deref(), Permission::READ),
        (i.grant_write.as_deref(), Permission::WRITE),
        (i.grant_full_control.as_deref(), Permission::FULL_CONTROL),
    ];
    let canned = i.acl.as_ref().map(|a| a.as_str());
    let g = acl::requested(&owner, canned, i.access_control_policy.as_ref(), headers)?.ok_or_else(
        || {
            s3_error!(
                MissingSecurityHeader,
                "give a canned ACL, grant headers or an AccessControlPolicy"
            )
        },
    )?;
    refuse_public_acl(s3, &i.bucket, &g).await?;
    set_bucket_acl(s3, &i.bucket, g).await?;
    ok(PutBucketAclOutput::default())
}

/// Record a bucket's ACL, and give and take back the key grants it
/// names.
pub(crate) async fn set_bucket_acl(s3: &RingS3, bucket: &str, g: acl::Granted) -> S3Result<()> {
    let old: BucketAcl = s3.settings.get(bucket, Sub::Acl).await?.unwrap_or_default();
    // Keys the old ACL named and the new one does not lose their grant;
    // the new ones get theirs (what access checks enforce).
    for id in old.keys.keys().filter(|k| !g.keys.contains_key(*k)) {
        s3.keys.grant(id, bucket, Grant::default()).await?;
    }
    for (id, (read, write)) in &g.keys {
        let grant = Grant {
            read: *read,
            write: *write,
            owner: false,
        };
        if !s3.keys.grant(id, bucket, grant).await? {
            return Err(s3_error!(
                InvalidArgument,
                "no access key {id} to grant rights to"
            ));
        }
    }
    let new = BucketAcl {
        public_read: g.public_read,
        public_write: g.public_write,
        authenticated_read: g.authenticated_read,
        keys: g.keys,
    };
    s3.settings.put(bucket, Sub::Acl, &new).await
}

pub(crate) async fn get_bucket_acl(
    s3: &RingS3,
    req: S3Request<GetBucketAclInput>,
) -> Out<GetBucketAclOutput> {
    let bucket = req.input.bucket;
    let owner = s3.bucket(&bucket).await?.owner;
    let a: BucketAcl = s3
        .settings
        .get(&bucket, Sub::Acl)
        .await?
        .unwrap_or_default();
    ok(GetBucketAclOutput {
        grants: Some(acl::bucket_grants(&owner, &a)),
        owner: Some(acl::owner(&owner)),
    })
}

pub(crate) async fn put_object_acl(
    s3: &RingS3,
    req: S3Request<PutObjectAclInput>,
) -> Out<PutObjectAclOutput> {
    let by_acl = req.extensions.get::<ReadByAcl>().cloned();
    let i = req.input;
    let owner = s3.bucket(&i.bucket).await?.owner;
    if s3.settings.view(&i.bucket).await?.acls_disabled() {
        return Err(acl_not_supported(&i.bucket));
    }
    let headers = [
        (i.grant_read.as_deref(), Permission::READ),
        (i.grant_write.as_deref(), Permission::WRITE),
        (i.grant_full_control.as_deref(), Permission::FULL_CONTROL),
    ];
    let new_acl = match &i.acl {
        Some(c) => acl::canned_object(c.as_str())?,
        None => {
            let g = acl::requested(&owner, None, i.access_control_policy.as_ref(), headers)?
                .ok_or_else(|| {
                    s3_error!(
                        MissingSecurityHeader,
                        "give a canned ACL, grant headers or an AccessControlPolicy"
                    )
                })?;
            acl::object_acl(&g, &owner)?
        }
    };
    if new_acl.is_public() {
        refuse_public_acl(s3, &i.bucket, &acl::canned("public-read")?).await?;
    }
    let mut record = s3.existing_object(&i.bucket, &i.key).await?;
    if let Some(by_acl) = &by_acl {
        by_acl.owns(&record)?;
    }
    record.extra.acl = new_acl;
    // Read-modify-write of a last-writer-wins record: an overwrite of
    // the same key landing between the two is undone by this write
    // (docs/S3.md lists it).
    s3.catalog
        .put_referencing(
            TYPE_OBJECTS,
            i.bucket.as_bytes(),
            i.key.as_bytes(),
            &record,
            &record.data,
        )
        .await?;
    ok(PutObjectAclOutput::default())
}

pub(crate) async fn get_object_acl(
    s3: &RingS3,
    req: S3Request<GetObjectAclInput>,
) -> Out<GetObjectAclOutput> {
    let by_acl = req.extensions.get::<ReadByAcl>().cloned();
    let i = req.input;
    let bucket_owner = s3.bucket(&i.bucket).await?.owner;
    let record = s3.existing_object(&i.bucket, &i.key).await?;
    if let Some(by_acl) = by_acl {
        by_acl.owns(&record)?;
    }
    let owner = record
        .extra
        .owner
        .clone()
        .unwrap_or_else(|| bucket_owner.clone());
    ok(GetObjectAclOutput {
        grants: Some(acl::object_grants(&owner, &bucket_owner, record.extra.acl)),
        owner: Some(acl::owner(&owner)),
        request_charged: None,
    })
}

fn acl_not_supported(bucket: &str) -> s3s::S3Error {
    crate::service::custom_error(
        "AccessControlListNotSupported",
        400,
        format!("bucket {bucket} has ACLs disabled (object ownership BucketOwnerEnforced)"),
    )
}

/// Who owns an object `writer` puts with canned ACL `canned`, by the
/// bucket's object ownership setting.
///
/// # Errors
///
/// `AccessControlListNotSupported` for an ACL other than
/// `bucket-owner-full-control` while ACLs are disabled.
pub(crate) async fn object_owner(
    s3: &RingS3,
    bucket: &str,
    view: &crate::settings::BucketView,
    writer: Option<&str>,
    canned: Option<&str>,
) -> S3Result<Option<String>> {
    let to_bucket_owner = match view.ownership.as_deref() {
        Some("BucketOwnerEnforced") => {
            if canned.is_some_and(|c| c != "bucket-owner-full-control") {
                return Err(acl_not_supported(bucket));
            }
            true
        }
        Some("BucketOwnerPreferred") => canned == Some("bucket-owner-full-control"),
        _ => false,
    };
    if to_bucket_owner {
        return Ok(Some(s3.bucket(bucket).await?.owner));
    }
    Ok(writer.map(str::to_string))
}

/// The ACL a PUT, copy or multipart creation asks for with `x-amz-acl`.
pub(crate) fn object_acl_of(canned: Option<&ObjectCannedACL>) -> S3Result<ObjectAcl> {
    match canned {
        None => Ok(ObjectAcl::Private),
        Some(c) => acl::canned_object(c.as_str()),
    }
}

pub(crate) async fn put_bucket_cors(
    s3: &RingS3,
    req: S3Request<PutBucketCorsInput>,
) -> Out<PutBucketCorsOutput> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let rules = i.cors_configuration.cors_rules;
    if rules.is_empty() || rules.len() > CORS_RULES_MAX {
        return Err(s3_error!(
            MalformedXML,
            "a CORS configuration holds 1 to {CORS_RULES_MAX} rules"
        ));
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        for m in &r.allowed_methods {
            if !matches!(m.as_str(), "GET" | "PUT" | "POST" | "DELETE" | "HEAD") {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        for o in r
            .allowed_origins
            .iter()
            .chain(r.allowed_headers.iter().flatten())
        {
            if o.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "{o} holds more than one wildcard"
                ));
            }
        }
        out.push(CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers.unwrap_or_default(),
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_seconds: r.max_age_seconds,
        });
    }
    s3.settings
        .put(&i.bucket, Sub::Cors, &CorsConfig { rules: out })
        .await?;
    ok(PutBucketCorsOutput::default())
}

pub(crate) async fn get_bucket_cors(
    s3: &RingS3,
    req: S3Request<GetBucketCorsInput>,
) -> Out<GetBucketCorsOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let Some(c) = s3.settings.get::<CorsConfig>(&bucket, Sub::Cors).await? else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "bucket {bucket} has no CORS rules"
        ));
    };
    let rules = c
        .rules
        .into_iter()
        .map(|r| CORSRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
            expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
            max_age_seconds: r.max_age_seconds,
        })
        .collect();
    ok(GetBucketCorsOutput {
        cors_rules: Some(rules),
    })
}

pub(crate) async fn delete_bucket_cors(
    s3: &RingS3,
    req: S3Request<DeleteBucketCorsInput>,
) -> Out<DeleteBucketCorsOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Cors).await?;
    ok(DeleteBucketCorsOutput::default())
}

pub(crate) async fn put_bucket_policy(
    s3: &RingS3,
    req: S3Request<PutBucketPolicyInput>,
) -> Out<PutBucketPolicyOutput> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let parsed =
        ParsedPolicy::parse(&i.policy, &i.bucket).map_err(|e| s3_error!(MalformedPolicy, "{e}"))?;
    if parsed.is_public() && s3.settings.view(&i.bucket).await?.pab.block_public_policy {
        return Err(s3_error!(
            AccessDenied,
            "bucket {} blocks public policies (its public access block); remove the block first",
            i.bucket
        ));
    }
    s3.settings.put(&i.bucket, Sub::Policy, &i.policy).await?;
    ok(PutBucketPolicyOutput::default())
}

pub(crate) async fn get_bucket_policy(
    s3: &RingS3,
    req: S3Request<GetBucketPolicyInput>,
) -> Out<GetBucketPolicyOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let Some(text) = s3.settings.get::<String>(&bucket, Sub::Policy).await? else {
        return Err(s3_error!(
            NoSuchBucketPolicy,
            "bucket {bucket} has no policy"
        ));
    };
    ok(GetBucketPolicyOutput { policy: Some(text) })
}

pub(crate) async fn delete_bucket_policy(
    s3: &RingS3,
    req: S3Request<DeleteBucketPolicyInput>,
) -> Out<DeleteBucketPolicyOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Policy).await?;
    ok(DeleteBucketPolicyOutput::default())
}

pub(crate) async fn get_bucket_policy_status(
    s3: &RingS3,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> Out<GetBucketPolicyStatusOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let view = s3.settings.view(&bucket).await?;
    // Public by its ACL or its policy, unless a public access block
    // takes that away.
    let by_acl = view.acl.is_public() && !view.pab.ignore_public_acls;
    let by_policy =
        view.policy.as_ref().is_some_and(|p| p.is_public()) && !view.pab.restrict_public_buckets;
    ok(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(by_acl || by_policy),
        }),
    })
}

fn redirect_in(r: s3s::dto::Redirect) -> Redirect {
    Redirect {
        host_name: r.host_name,
        protocol: r.protocol.map(|p| p.as_str().to_string()),
        replace_key_prefix_with: r.replace_key_prefix_with,
        replace_key_with: r.replace_key_with,
        http_redirect_code: r.http_redirect_code,
    }
}

fn redirect_out(r: Redirect) -> s3s::dto::Redirect {
    s3s::dto::Redirect {
        host_name: r.host_name,
        protocol: r.protocol.map(Protocol::from),
        replace_key_prefix_with: r.replace_key_prefix_with,
        replace_key_with: r.replace_key_with,
        http_redirect_code: r.http_redirect_code,
    }
}

pub(crate) async fn put_bucket_website(
    s3: &RingS3,
    req: S3Request<PutBucketWebsiteInput>,
) -> Out<PutBucketWebsiteOutput> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let w = i.website_configuration;
    let rules = w.routing_rules.unwrap_or_default();
    if rules.len() > ROUTING_RULES_MAX {
        return Err(s3_error!(
            MalformedXML,
            "at most {ROUTING_RULES_MAX} routing rules"
        ));
    }
    if w.index_document.is_none() && w.redirect_all_requests_to.is_none() {
        return Err(s3_error!(
            InvalidArgument,
            "a website needs an IndexDocument or RedirectAllRequestsTo"
        ));
    }
    if let Some(suffix) = w.index_document.as_ref().map(|d| &d.suffix) {
        if suffix.is_empty() || suffix.contains('/') {
            return Err(s3_error!(
                InvalidArgument,
                "the index document suffix must be non-empty and hold no /"
            ));
        }
    }
    let website = Website {
        index_suffix: w.index_document.map(|d| d.suffix),
        error_key: w.error_document.map(|d| d.key),
        redirect_all: w.redirect_all_requests_to.map(|r| Redirect {
            host_name: Some(r.host_name),
            protocol: r.protocol.map(|p| p.as_str().to_string()),
            ..Redirect::default()
        }),
        routing_rules: rules
            .into_iter()
            .map(|r| RoutingRule {
                key_prefix_equals: r
                    .condition
                    .as_ref()
                    .and_then(|c| c.key_prefix_equals.clone()),
                http_error_code_returned_equals: r
                    .condition
                    .and_then(|c| c.http_error_code_returned_equals),
                redirect: redirect_in(r.redirect),
            })
            .collect(),
    };
    s3.settings.put(&i.bucket, Sub::Website, &website).await?;
    ok(PutBucketWebsiteOutput::default())
}

pub(crate) async fn get_bucket_website(
    s3: &RingS3,
    req: S3Request<GetBucketWebsiteInput>,
) -> Out<GetBucketWebsiteOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let Some(w) = s3.settings.get::<Website>(&bucket, Sub::Website).await? else {
        return Err(s3_error!(
            NoSuchWebsiteConfiguration,
            "bucket {bucket} has no website configuration"
        ));
    };
    let rules: Vec<s3s::dto::RoutingRule> = w
        .routing_rules
        .into_iter()
        .map(|r| s3s::dto::RoutingRule {
            condition: (r.key_prefix_equals.is_some()
                || r.http_error_code_returned_equals.is_some())
            .then_some(Condition {
                key_prefix_equals: r.key_prefix_equals,
                http_error_code_returned_equals: r.http_error_code_returned_equals,
            }),
            redirect: redirect_out(r.redirect),
        })
        .collect();
    ok(GetBucketWebsiteOutput {
        index_document: w.index_suffix.map(|suffix| IndexDocument { suffix }),
        error_document: w.error_key.map(|key| ErrorDocument { key }),
        redirect_all_requests_to: w.redirect_all.map(|r| RedirectAllRequestsTo {
            host_name: r.host_name.unwrap_or_default(),
            protocol: r.protocol.map(Protocol::from),
        }),
        routing_rules: (!rules.is_empty()).then_some(rules),
    })
}

pub(crate) async fn delete_bucket_website(
    s3: &RingS3,
    req: S3Request<DeleteBucketWebsiteInput>,
) -> Out<DeleteBucketWebsiteOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Website).await?;
    ok(DeleteBucketWebsiteOutput::default())
}

pub(crate) async fn put_public_access_block(
    s3: &RingS3,
    req: S3Request<PutPublicAccessBlockInput>,
) -> Out<PutPublicAccessBlockOutput> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let c = i.public_access_block_configuration;
    let pab = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    s3.settings
        .put(&i.bucket, Sub::PublicAccessBlock, &pab)
        .await?;
    ok(PutPublicAccessBlockOutput::default())
}

pub(crate) async fn get_public_access_block(
    s3: &RingS3,
    req: S3Request<GetPublicAccessBlockInput>,
) -> Out<GetPublicAccessBlockOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let Some(p) = s3
        .settings
        .get::<PublicAccessBlock>(&bucket, Sub::PublicAccessBlock)
        .await?
    else {
        return Err(crate::service::custom_error(
            "NoSuchPublicAccessBlockConfiguration",
            404,
            format!("bucket {bucket} has no public access block"),
        ));
    };
    ok(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(p.block_public_acls),
            ignore_public_acls: Some(p.ignore_public_acls),
            block_public_policy: Some(p.block_public_policy),
            restrict_public_buckets: Some(p.restrict_public_buckets),
        }),
    })
}

pub(crate) async fn delete_public_access_block(
    s3: &RingS3,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> Out<DeletePublicAccessBlockOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::PublicAccessBlock).await?;
    ok(DeletePublicAccessBlockOutput::default())
}

fn ownership_not_found(bucket: &str) -> s3s::S3Error {
    crate::service::custom_error(
        "OwnershipControlsNotFoundError",
        404,
        format!("bucket {bucket} has no ownership controls"),
    )
}

pub(crate) async fn put_bucket_ownership_controls(
    s3: &RingS3,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> Out<PutBucketOwnershipControlsOutput> {
    let i = req.input;
    s3.bucket(&i.bucket).await?;
    let [rule] = i.ownership_controls.rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "ownership controls hold exactly one rule"
        ));
    };
    let ownership = rule.object_ownership.as_str().to_string();
    set_ownership(s3, &i.bucket, &ownership).await?;
    ok(PutBucketOwnershipControlsOutput::default())
}

/// Set a bucket's object ownership, refusing `BucketOwnerEnforced` while
/// its ACL grants to others (S3 does).
pub(crate) async fn set_ownership(s3: &RingS3, bucket: &str, ownership: &str) -> S3Result<()> {
    if !matches!(
        ownership,
        "BucketOwnerEnforced" | "BucketOwnerPreferred" | "ObjectWriter"
    ) {
        return Err(s3_error!(
            MalformedXML,
            "unknown object ownership {ownership}"
        ));
    }
    if ownership == "BucketOwnerEnforced" {
        let acl: BucketAcl = s3.settings.get(bucket, Sub::Acl).await?.unwrap_or_default();
        if acl != BucketAcl::default() {
            return Err(crate::service::custom_error(
                "InvalidBucketAclWithObjectOwnership",
                400,
                format!("bucket {bucket} has an ACL that grants access; set it to private first"),
            ));
        }
    }
    s3.settings
        .put(bucket, Sub::Ownership, &ownership.to_string())
        .await
}

pub(crate) async fn get_bucket_ownership_controls(
    s3: &RingS3,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> Out<GetBucketOwnershipControlsOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    let Some(o) = s3.settings.get::<String>(&bucket, Sub::Ownership).await? else {
        return Err(ownership_not_found(&bucket));
    };
    ok(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: ObjectOwnership::from(o),
            }],
        }),
    })
}

pub(crate) async fn delete_bucket_ownership_controls(
    s3: &RingS3,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> Out<DeleteBucketOwnershipControlsOutput> {
    let bucket = req.input.bucket;
    s3.bucket(&bucket).await?;
    s3.settings.delete(&bucket, Sub::Ownership).await?;
    ok(DeleteBucketOwnershipControlsOutput::default())
}
