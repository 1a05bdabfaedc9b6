//! Bucket operations. A bucket is a record; its objects live in a bucket
//! of the object type named like it, so deleting a bucket only needs it
//! to be empty.

use crate::keys::now_ms;
use crate::records::{BucketRecord, Grant, BUCKETS, TYPE_META, TYPE_OBJECTS};
use crate::service::{timestamp, RingS3};
use crate::settings::{BucketAcl, Sub};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

fn key_id<T>(req: &S3Request<T>) -> S3Result<String> {
    req.credentials
        .as_ref()
        .map(|c| c.access_key.clone())
        .ok_or_else(|| s3_error!(AccessDenied, "the request is not signed"))
}

pub(crate) async fn create(
    s3: &RingS3,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let id = key_id(&req)?;
    let input = req.input;
    let name = input.bucket;
    let headers = [
        (input.grant_read.as_deref(), Permission::READ),
        (input.grant_write.as_deref(), Permission::WRITE),
        (
            input.grant_full_control.as_deref(),
            Permission::FULL_CONTROL,
        ),
    ];
    let acl = crate::acl::requested(&id, input.acl.as_ref().map(|a| a.as_str()), None, headers)?;
    if let Some(existing) = s3
        .catalog
        .get::<BucketRecord>(TYPE_META, BUCKETS, name.as_bytes())
        .await?
    {
        if existing.owner != id {
            return Err(s3_error!(
                BucketAlreadyExists,
                "bucket {name} belongs to another key"
            ));
        }
        // Its owner creating it again (us-east-1 semantics): a no-op that
        // succeeds, unless it asks for another ACL than the bucket has.
        let now: BucketAcl = s3.settings.get(&name, Sub::Acl).await?.unwrap_or_default();
        let asked = acl.unwrap_or_default();
        let same = now.public_read == asked.public_read
            && now.public_write == asked.public_write
            && now.authenticated_read == asked.authenticated_read
            && now.keys == asked.keys;
        if !same {
            return Err(s3_error!(
                BucketAlreadyExists,
                "you own bucket {name} already, with another ACL; change it with PutBucketAcl"
            ));
        }
        return Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }));
    }
    let record = BucketRecord {
        created_ms: now_ms(),
        owner: id.clone(),
    };
    s3.catalog
        .put(TYPE_META, BUCKETS, name.as_bytes(), &record)
        .await?;
    let owner = Grant {
        read: true,
        write: true,
        owner: true,
    };
    if !s3.keys.grant(&id, &name, owner).await? {
        return Err(s3_error!(
            ServiceUnavailable,
            "key {id} could not be read back to record its ownership of {name}; retry"
        ));
    }
    if let Some(g) = acl.filter(|g| *g != crate::acl::Granted::default()) {
        crate::subresources::set_bucket_acl(s3, &name, g).await?;
    }
    if input.object_lock_enabled_for_bucket == Some(true) {
        let on = crate::versions::Versioning {
            status: "Enabled".into(),
            since_ms: now_ms(),
        };
        s3.settings.put(&name, Sub::Versioning, &on).await?;
        s3.settings
            .put(&name, Sub::ObjectLock, &crate::lock::LockConfig::default())
            .await?;
    }
    if let Some(o) = &input.object_ownership {
        crate::subresources::set_ownership(s3, &name, o.as_str()).await?;
    }
    let location = input
        .create_bucket_configuration
        .and_then(|c| c.location_constraint)
        .map(|l| l.as_str().to_string())
        .filter(|l| !l.is_empty());
    if let Some(l) = location {
        s3.settings.put(&name, Sub::Location, &l).await?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{name}")),
    }))
}

pub(crate) async fn delete(
    s3: &RingS3,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let name = req.input.bucket;
    let record = s3.bucket(&name).await?;
    if !s3.catalog.is_empty(TYPE_OBJECTS, name.as_bytes()).await? {
        return Err(s3_error!(
            BucketNotEmpty,
            "bucket {name} still holds objects; delete them first"
        ));
    }
    // Settings first: a bucket made again under this name must not
    // inherit a public ACL or policy if this delete stops half way.
    s3.settings.delete_all(&name).await?;
    s3.catalog
        .delete(TYPE_META, BUCKETS, name.as_bytes())
        .await?;
    s3.buckets.remove(&name);
    s3.keys
        .grant(&record.owner, &name, Grant::default())
        .await?;
    Ok(S3Response::new(DeleteBucketOutput {}))
}

/// Most buckets on one ListBuckets page (S3's own limit).
pub(crate) const LIST_BUCKETS_MAX: usize = 10_000;

pub(crate) async fn list(
    s3: &RingS3,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let id = key_id(&req)?;
    let grants = s3
        .keys
        .lookup(&id)
        .await?
        .map(|k| k.buckets)
        .unwrap_or_default();
    let i = &req.input;
    let max = match i.max_buckets {
        None => LIST_BUCKETS_MAX,
        Some(n) if (1..=LIST_BUCKETS_MAX as i32).contains(&n) => n as usize,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "MaxBuckets must be 1 to {LIST_BUCKETS_MAX}"
            ))
        }
    };
    let prefix = i.prefix.as_deref().unwrap_or("");
    let after = i.continuation_token.as_deref().unwrap_or("");
    // The key's own grants, in name order: the cost is the key's
    // buckets, never the cluster's.
    let names = grants
        .keys()
        .filter(|n| n.as_str() > after && n.starts_with(prefix));
    let (mut buckets, mut more) = (Vec::new(), false);
    for name in names {
        let Some(r) = s3
            .catalog
            .get::<BucketRecord>(TYPE_META, BUCKETS, name.as_bytes())
            .await?
        else {
            continue; // a grant that outlived its bucket
        };
        if buckets.len() == max {
            more = true;
            break;
        }
        buckets.push(Bucket {
            creation_date: Some(timestamp(r.created_ms)),
            name: Some(name.clone()),
            bucket_region: None,
        });
    }
    let continuation_token = more
        .then(|| buckets.last().and_then(|b| b.name.clone()))
        .flatten();
    Ok(S3Response::new(ListBucketsOutput {
        continuation_token,
        prefix: i.prefix.clone(),
        buckets: Some(buckets),
        owner: Some(Owner {
            display_name: Some(id.clone()),
            id: Some(id),
        }),
    }))
}
