//! # The lifecycle sweep: acting on what falls due
//!
//! Writes in a bucket with lifecycle rules leave an entry in a *due
//! index* (`_s3x`, one bucket of it per S3 bucket), keyed by the time the
//! sweep should look: `c` entries for current versions, `n` for keys
//! whose versions became noncurrent, `u` for multipart uploads, each
//! `KIND DUE_HEX \0 NAME`. The sweep reads the index from its start up to
//! now and stops at the first entry not yet due, so a pass costs what
//! expires (and the entries that went stale), never what the bucket
//! holds.
//!
//! An entry is a reminder, not a verdict: the sweep reads the object,
//! upload or versions it names and decides with [`Lifecycle::due`] under
//! the rules of the moment; what is not yet due is noted again at its
//! true time, what no rule covers is forgotten. An index write is a
//! bound computed without tags and sizes ([`Lifecycle::earliest`]), so it
//! is never later than the truth. Putting a configuration notes every
//! existing object as due at once, in the background (a cost of the
//! bucket's size, once).
//!
//! One member sweeps a bucket: the one the bucket's name hashes to among
//! the layout's members. While it is down, its buckets wait (expiry is
//! late, never twice). Expiring goes through the same code as a client's
//! DELETE, so object lock is honoured and versioned buckets get markers.

use crate::lifecycle::{Kind, Lifecycle, Subject};
use crate::records::{ObjectRecord, UploadRecord, TYPE_UPLOADS};
use crate::service::RingS3;
use crate::settings::Sub;
use crate::versions::{parse_suffix, suffix_ms};
use bytes::Bytes;
use node::{ListStart, Listed, PageQuery};
use s3s::S3Result;
use serde::{Deserialize, Serialize};

/// Bucket type of the due index.
pub const TYPE_DUE: &[u8] = b"_s3x";
/// Due entries one pass handles per bucket and kind at most.
const DUE_PER_PASS_MAX: usize = 1000;
/// Keys listed per page while noting a bucket's objects.
const BACKFILL_PAGE: usize = 1000;

/// What a `c` entry remembers: the write it is about, so a later write
/// of the key makes it stale. 0 means "look at whatever is there".
#[derive(Debug, Default, Serialize, Deserialize)]
struct Due {
    since_ms: u64,
}

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Current => b'c',
        Kind::Noncurrent => b'n',
        Kind::Upload => b'u',
    }
}

fn entry_key(kind: Kind, due_ms: u64, name: &str) -> Vec<u8> {
    let mut k = format!("{}{due_ms:016x}", kind_byte(kind) as char).into_bytes();
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// (due, name) of an entry key of `kind`.
fn parse_entry(k: &[u8]) -> Option<(u64, String)> {
    let hex = std::str::from_utf8(k.get(1..17)?).ok()?;
    let due = u64::from_str_radix(hex, 16).ok()?;
    let name = std::str::from_utf8(k.get(18..)?).ok()?;
    Some((due, name.to_string()))
}

impl RingS3 {
    /// The bucket's lifecycle configuration, if any.
    pub(crate) async fn lifecycle(&self, bucket: &str) -> S3Result<Option<Lifecycle>> {
        self.settings.get(bucket, Sub::Lifecycle).await
    }

    async fn put_due(
        &self,
        bucket: &str,
        kind: Kind,
        due: u64,
        name: &str,
        since_ms: u64,
    ) -> S3Result<()> {
        self.catalog
            .put_json(
                TYPE_DUE,
                bucket.as_bytes(),
                &entry_key(kind, due, name),
                &Due { since_ms },
            )
            .await
    }

    /// After a write, delete marker or upload start in `bucket`: note
    /// when the sweep should look at `name` (a key, or an upload id for
    /// [`Kind::Upload`] with `key` its object key).
    pub(crate) async fn note_due(
        &self,
        bucket: &str,
        kind: Kind,
        key: &str,
        name: &str,
        since_ms: u64,
    ) -> S3Result<()> {
        let Some(lc) = self.settings.view(bucket).await?.lifecycle.clone() else {
            return Ok(());
        };
        match lc.earliest(kind, key, since_ms, self.day_ms) {
            Some(due) => self.put_due(bucket, kind, due, name, since_ms).await,
            None => Ok(()),
        }
    }
}

/// Sweep forever, `every` apart (not at all if it is zero).
pub async fn run(s3: RingS3, every: std::time::Duration) {
    if every.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(&s3, crate::keys::now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "lifecycle sweep"),
            Err(e) => {
                tracing::warn!(error = %e, "lifecycle sweep stopped early; the next one resumes")
            }
        }
    }
}

/// One pass over every bucket this node sweeps. Returns what expired.
///
/// # Errors
///
/// A storage failure; the next pass resumes (the index is unchanged for
/// what was not done).
pub async fn sweep(s3: &RingS3, now_ms: u64) -> S3Result<u64> {
    let node = s3.catalog.node();
    let layout = node.layout();
    let members: Vec<_> = layout.members().iter().map(|m| m.id).collect();
    let mut done = 0;
    for bucket in s3
        .catalog
        .keys(crate::records::TYPE_META, Sub::Lifecycle.bucket())
        .await?
    {
        let bucket = String::from_utf8_lossy(&bucket).into_owned();
        let pick = u64::from_le_bytes(
            blake3::hash(bucket.as_bytes()).as_bytes()[..8]
                .try_into()
                .unwrap_or_default(),
        );
        if members.is_empty() || members[(pick % members.len() as u64) as usize] != node.id() {
            continue;
        }
        let Some(lc) = s3.lifecycle(&bucket).await? else {
            continue;
        };
        for kind in [Kind::Current, Kind::Noncurrent, Kind::Upload] {
            done += sweep_kind(s3, &bucket, &lc, kind, now_ms).await?;
        }
    }
    Ok(done)
}

async fn sweep_kind(
    s3: &RingS3,
    bucket: &str,
    lc: &Lifecycle,
    kind: Kind,
    now_ms: u64,
) -> S3Result<u64> {
    let query = PageQuery {
        bucket_type: Bytes::from_static(TYPE_DUE),
        bucket: Bytes::copy_from_slice(bucket.as_bytes()),
        prefix: Bytes::copy_from_slice(&[kind_byte(kind)]),
        delimiter: None,
        start: ListStart::First,
        page_max: DUE_PER_PASS_MAX,
        value_head_bytes: 0,
    };
    let page = s3.catalog.page(&query).await?;
    let mut expired = 0;
    for entry in page.entries {
        let Listed::Key { key: k, .. } = entry else {
            continue;
        };
        let Some((due, name)) = parse_entry(&k) else {
            continue;
        };
        if due > now_ms {
            break; // the index is in due order: nothing later is due
        }
        let since = s3
            .catalog
            .get_json::<Due>(TYPE_DUE, bucket.as_bytes(), &k)
            .await?
            .unwrap_or_default()
            .since_ms;
        expired += match kind {
            Kind::Current => current(s3, bucket, lc, &name, since, now_ms).await?,
            Kind::Noncurrent => noncurrent(s3, bucket, lc, &name, now_ms).await?,
            Kind::Upload => upload(s3, bucket, lc, &name, now_ms).await?,
        };
        s3.catalog.delete(TYPE_DUE, bucket.as_bytes(), &k).await?;
    }
    Ok(expired)
}

fn subject<'a>(key: &'a str, r: &'a ObjectRecord, since_ms: u64) -> Subject<'a> {
    Subject {
        key,
        tags: &r.extra.tags,
        size: r.size,
        since_ms,
    }
}

/// A current version: expire it (a delete marker in a versioned bucket)
/// if a rule says so now.
async fn current(
    s3: &RingS3,
    bucket: &str,
    lc: &Lifecycle,
    key: &str,
    since: u64,
    now: u64,
) -> S3Result<u64> {
    let Some(r) = s3.object(bucket, key).await? else {
        return Ok(0);
    };
    if since != 0 && r.modified_ms != since {
        return Ok(0); // rewritten since: that write left its own entry
    }
    match lc.due(Kind::Current, &subject(key, &r, r.modified_ms), s3.day_ms) {
        Some(due) if due <= now => {
            crate::objects::delete_one(s3, bucket, key, None, false).await?;
            Ok(1)
        }
        Some(due) => s3
            .put_due(bucket, Kind::Current, due, key, r.modified_ms)
            .await
            .map(|()| 0),
        None => Ok(0),
    }
}

/// A key whose versions became noncurrent: remove those due, note the
/// next, and drop a delete marker left alone if a rule says so.
async fn noncurrent(
    s3: &RingS3,
    bucket: &str,
    lc: &Lifecycle,
    key: &str,
    now: u64,
) -> S3Result<u64> {
    let suffixes = s3.version_suffixes(bucket, key).await?;
    let (mut removed, mut next_due) = (0u64, None::<u64>);
    for pair in suffixes.windows(2) {
        let (newer, this) = (&pair[0], &pair[1]);
        let Some(since) = suffix_ms(newer) else {
            continue;
        };
        let Some((id, _)) = parse_suffix(this) else {
            continue;
        };
        let Some(r) = s3.get_version(bucket, key, this).await? else {
            continue;
        };
        match lc.due(Kind::Noncurrent, &subject(key, &r, since), s3.day_ms) {
            Some(due) if due <= now => {
                match crate::versions_ops::versioned_delete(s3, bucket, key, Some(&id), false).await
                {
                    Ok(_) => removed += 1,
                    // A locked version outlives its rule, as on S3.
                    Err(e) if *e.code() == s3s::S3ErrorCode::AccessDenied => {}
                    Err(e) => return Err(e),
                }
            }
            Some(due) => next_due = Some(next_due.map_or(due, |d| d.min(due))),
            None => {}
        }
    }
    let left = s3.version_suffixes(bucket, key).await?;
    if let [only] = left.as_slice() {
        if parse_suffix(only).is_some_and(|(_, marker)| marker) && lc.removes_lone_marker(key) {
            let (id, _) = parse_suffix(only).unwrap_or_default();
            crate::versions_ops::versioned_delete(s3, bucket, key, Some(&id), false).await?;
            removed += 1;
        }
    }
    if let Some(due) = next_due {
        s3.put_due(bucket, Kind::Noncurrent, due, key, 0).await?;
    }
    Ok(removed)
}

/// A multipart upload: abort it if a rule says so now.
async fn upload(s3: &RingS3, bucket: &str, lc: &Lifecycle, id: &str, now: u64) -> S3Result<u64> {
    let Some(u) = s3
        .catalog
        .get::<UploadRecord>(TYPE_UPLOADS, bucket.as_bytes(), id.as_bytes())
        .await?
    else {
        return Ok(0);
    };
    let s = Subject {
        key: &u.key,
        tags: &[],
        size: 0,
        since_ms: u.initiated_ms,
    };
    match lc.due(Kind::Upload, &s, s3.day_ms) {
        Some(due) if due <= now => {
            crate::multipart::forget_upload(s3, bucket, id).await?;
            Ok(1)
        }
        Some(due) => s3
            .put_due(bucket, Kind::Upload, due, id, 0)
            .await
            .map(|()| 0),
        None => Ok(0),
    }
}

/// Buckets whose existing objects are being noted, at most
/// [`NOTING_BUCKETS_MAX`]; at most [`NOTING_AT_ONCE`] are listed at once.
static NOTING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
const NOTING_BUCKETS_MAX: usize = 1000;
const NOTING_AT_ONCE: usize = 2;
static NOTING_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(NOTING_AT_ONCE);

/// After a configuration is put: note what the bucket already holds, in
/// the background (a cost of the bucket's size, once). It starts once
/// every node's cached view holds the rules (`VIEW_TTL`), so a write
/// that a node took without knowing them has landed and is listed. A
/// bucket already being noted is not noted twice: writes after the
/// rules note themselves.
///
/// # Errors
///
/// `SlowDown` when [`NOTING_BUCKETS_MAX`] buckets are being noted.
pub(crate) fn note_existing_later(s3: &RingS3, bucket: &str) -> S3Result<()> {
    {
        let mut noting = NOTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if noting.iter().any(|b| b == bucket) {
            return Ok(());
        }
        if noting.len() >= NOTING_BUCKETS_MAX {
            return Err(s3s::s3_error!(
                SlowDown,
                "{NOTING_BUCKETS_MAX} buckets are taking new lifecycle rules; retry in a minute"
            ));
        }
        noting.push(bucket.to_string());
    }
    let (s3, bucket) = (s3.clone(), bucket.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(crate::settings::VIEW_TTL + std::time::Duration::from_secs(1)).await;
        let result = match NOTING_SLOTS.acquire().await {
            Ok(_slot) => note_existing(&s3, &bucket).await,
            Err(_) => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(bucket, error = %e, "noting a bucket's objects for its lifecycle stopped; put the configuration again");
        }
        let mut noting = NOTING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        noting.retain(|b| *b != bucket);
    });
    Ok(())
}

/// Note every object, versioned key and upload of the bucket as due
/// now, a page at a time.
///
/// # Errors
///
/// A storage failure (the configuration stands; putting it again notes
/// the rest).
pub async fn note_existing(s3: &RingS3, bucket: &str) -> S3Result<()> {
    let kinds = [
        (crate::records::TYPE_OBJECTS, Kind::Current),
        (crate::versions::TYPE_VERSIONS, Kind::Noncurrent),
        (TYPE_UPLOADS, Kind::Upload),
    ];
    for (bucket_type, kind) in kinds {
        let mut start = ListStart::First;
        let mut last_key = String::new();
        loop {
            let query = PageQuery {
                bucket_type: Bytes::from_static(bucket_type),
                bucket: Bytes::copy_from_slice(bucket.as_bytes()),
                prefix: Bytes::new(),
                delimiter: None,
                start: start.clone(),
                page_max: BACKFILL_PAGE,
                value_head_bytes: 0,
            };
            let page = s3.catalog.page(&query).await?;
            for e in &page.entries {
                let Listed::Key { key, .. } = e else { continue };
                let mut name = String::from_utf8_lossy(key).into_owned();
                if kind == Kind::Noncurrent {
                    // One entry per key, not per version.
                    name = crate::versions::split_version_key(key).map_or(name, |(k, _)| k);
                    if name == last_key {
                        continue;
                    }
                    last_key.clone_from(&name);
                }
                s3.put_due(bucket, kind, 0, &name, 0).await?;
            }
            match page.entries.last().and_then(node::resume_after) {
                Some(next) if page.truncated => start = next,
                _ => break,
            }
        }
    }
    Ok(())
}
