//! S3 ACLs mapped onto ringstore's rights.
//!
//! ringstore's rights are access keys' grants on buckets (`access`). An
//! ACL can say a few more things, and those are what is kept. As on S3,
//! READ on a bucket means listing it and WRITE means writing and
//! deleting its objects; reading an object takes READ on the object:
//! - to everyone (`AllUsers`, canned `public-read`, `public-read-write`);
//! - to any signed request (`AuthenticatedUsers`, `authenticated-read`);
//! - to the bucket's owner (`bucket-owner-read`, `-full-control`), shown
//!   in the object's ACL (the owner's key rights already allow it).
//!
//! A grant to a canonical user (an access key id) on a bucket becomes
//! that key's grant on the bucket; on one object it is refused, since
//! rights are per bucket. The owner's FULL_CONTROL is always there.
//! Grants are listed groups first and the owner after them, the order
//! RGW uses and s3-tests expects.

use crate::records::ObjectAcl;
use crate::settings::BucketAcl;
use s3s::dto::{AccessControlPolicy, Grant as S3Grant, Grantee, Grants, Owner, Permission, Type};
use s3s::{s3_error, S3Result};
use std::collections::BTreeMap;

/// The URI of the everyone group.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The URI of the any-signed-request group.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// What an ACL grants, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Granted {
    /// Anyone may read.
    pub public_read: bool,
    /// Anyone may write.
    pub public_write: bool,
    /// Signed requests may read.
    pub authenticated_read: bool,
    /// Keys (canonical user ids) other than the owner: (read, write).
    pub keys: BTreeMap<String, (bool, bool)>,
}

/// A canned ACL's grants.
///
/// # Errors
///
/// `InvalidArgument` for a name S3 does not define.
pub fn canned(name: &str) -> S3Result<Granted> {
    let mut g = Granted::default();
    match name {
        "private"
        | "bucket-owner-read"
        | "bucket-owner-full-control"
        | "aws-exec-read"
        | "log-delivery-write" => {}
        "public-read" => g.public_read = true,
        "public-read-write" => {
            g.public_read = true;
            g.public_write = true;
        }
        "authenticated-read" => g.authenticated_read = true,
        other => return Err(s3_error!(InvalidArgument, "unknown canned ACL {other}")),
    }
    Ok(g)
}

fn add(g: &mut Granted, owner: &str, grantee: &Grantee, permission: &str) -> S3Result<()> {
    let (read, write) = match permission {
        Permission::READ => (true, false),
        Permission::WRITE => (false, true),
        Permission::FULL_CONTROL => (true, true),
        // The right to read or change the ACL itself is the owner's.
        Permission::READ_ACP | Permission::WRITE_ACP => return Ok(()),
        other => return Err(s3_error!(MalformedACLError, "unknown permission {other}")),
    };
    match (
        grantee.type_.as_str(),
        grantee.uri.as_deref(),
        grantee.id.as_deref(),
    ) {
        (Type::GROUP, Some(ALL_USERS), _) => {
            g.public_read |= read;
            g.public_write |= write;
        }
        (Type::GROUP, Some(AUTHENTICATED_USERS), _) => g.authenticated_read |= read,
        (Type::CANONICAL_USER, _, Some(id)) if id == owner => {}
        (Type::CANONICAL_USER, _, Some(id)) => {
            let e = g.keys.entry(id.to_string()).or_default();
            e.0 |= read;
            e.1 |= write;
        }
        (Type::AMAZON_CUSTOMER_BY_EMAIL, ..) => {
            return Err(s3_error!(
                NotImplemented,
                "grants by e-mail address are not supported; grant an access key id"
            ))
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "a grantee needs a known group URI or an id"
            ))
        }
    }
    Ok(())
}

/// Grants from an `x-amz-grant-*` header value: `id="..."`, `uri="..."`,
/// comma-separated.
fn header_grants(g: &mut Granted, owner: &str, value: &str, permission: &str) -> S3Result<()> {
    for part in value.split(',') {
        let (kind, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| s3_error!(InvalidArgument, "grant {part} is not key=\"value\""))?;
        let v = v.trim().trim_matches('"').to_string();
        let grantee = match kind.trim() {
            "uri" => Grantee {
                type_: Type::from_static(Type::GROUP),
                uri: Some(v),
                display_name: None,
                email_address: None,
                id: None,
            },
            "id" => Grantee {
                type_: Type::from_static(Type::CANONICAL_USER),
                id: Some(v),
                display_name: None,
                email_address: None,
                uri: None,
            },
            "emailAddress" => Grantee {
                type_: Type::from_static(Type::AMAZON_CUSTOMER_BY_EMAIL),
                email_address: Some(v),
                display_name: None,
                id: None,
                uri: None,
            },
            other => return Err(s3_error!(InvalidArgument, "unknown grantee kind {other}")),
        };
        add(g, owner, &grantee, permission)?;
    }
    Ok(())
}

/// The ACL a Put*Acl request or a PUT's headers ask for; `None` when
/// they name none.
///
/// # Errors
///
/// A malformed or unsupported grant.
pub fn requested(
    owner: &str,
    canned_name: Option<&str>,
    policy: Option<&AccessControlPolicy>,
    headers: [(Option<&str>, &str); 3],
) -> S3Result<Option<Granted>> {
    if let Some(name) = canned_name {
        return canned(name).map(Some);
    }
    let mut g = Granted::default();
    let mut any = false;
    if let Some(p) = policy {
        for grant in p.grants.iter().flatten() {
            let (Some(grantee), Some(perm)) = (&grant.grantee, &grant.permission) else {
                return Err(s3_error!(
                    MalformedACLError,
                    "a grant needs a Grantee and a Permission"
                ));
            };
            add(&mut g, owner, grantee, perm.as_str())?;
        }
        any = true;
    }
    for (value, permission) in headers {
        if let Some(v) = value {
            header_grants(&mut g, owner, v, permission)?;
            any = true;
        }
    }
    Ok(any.then_some(g))
}

/// A canned ACL of an object.
///
/// # Errors
///
/// `InvalidArgument` for a name S3 does not define.
pub fn canned_object(name: &str) -> S3Result<ObjectAcl> {
    Ok(match name {
        "bucket-owner-read" => ObjectAcl::BucketOwnerRead,
        "bucket-owner-full-control" => ObjectAcl::BucketOwnerFullControl,
        other => object_acl(&canned(other)?, "")?,
    })
}

/// An object's ACL from what was asked; `bucket_owner` may be named in
/// a grant.
///
/// # Errors
///
/// Grants to other single keys (rights are per bucket).
pub fn object_acl(g: &Granted, bucket_owner: &str) -> S3Result<ObjectAcl> {
    let mut to_owner = None;
    for (id, rights) in &g.keys {
        if id != bucket_owner {
            return Err(s3_error!(
                NotImplemented,
                "grants to other keys on one object are not supported; grant the key rights on the bucket"
            ));
        }
        to_owner = Some(*rights);
    }
    Ok(if g.public_read && g.public_write {
        ObjectAcl::PublicReadWrite
    } else if g.public_read {
        ObjectAcl::PublicRead
    } else if g.authenticated_read {
        ObjectAcl::AuthenticatedRead
    } else {
        match to_owner {
            Some((true, true)) => ObjectAcl::BucketOwnerFullControl,
            Some(_) => ObjectAcl::BucketOwnerRead,
            None => ObjectAcl::Private,
        }
    })
}

/// The owner as S3 shows it: the owning key's id.
pub fn owner(id: &str) -> Owner {
    Owner {
        display_name: Some(id.to_string()),
        id: Some(id.to_string()),
    }
}

fn grant(grantee: Grantee, permission: &'static str) -> S3Grant {
    S3Grant {
        grantee: Some(grantee),
        permission: Some(Permission::from_static(permission)),
    }
}

fn group(uri: &str) -> Grantee {
    Grantee {
        type_: Type::from_static(Type::GROUP),
        uri: Some(uri.to_string()),
        display_name: None,
        email_address: None,
        id: None,
    }
}

fn user(id: &str) -> Grantee {
    Grantee {
        type_: Type::from_static(Type::CANONICAL_USER),
        id: Some(id.to_string()),
        display_name: Some(id.to_string()),
        email_address: None,
        uri: None,
    }
}

/// The grants GetBucketAcl shows.
pub fn bucket_grants(owner: &str, acl: &BucketAcl) -> Grants {
    let mut out = Vec::new();
    if acl.public_read {
        out.push(grant(group(ALL_USERS), Permission::READ));
    }
    if acl.public_write {
        out.push(grant(group(ALL_USERS), Permission::WRITE));
    }
    if acl.authenticated_read {
        out.push(grant(group(AUTHENTICATED_USERS), Permission::READ));
    }
    for (id, (read, write)) in &acl.keys {
        if *read {
            out.push(grant(user(id), Permission::READ));
        }
        if *write {
            out.push(grant(user(id), Permission::WRITE));
        }
    }
    out.push(grant(user(owner), Permission::FULL_CONTROL));
    out
}

/// The grants GetObjectAcl shows for an object written by `owner` in a
/// bucket owned by `bucket_owner`.
pub fn object_grants(owner: &str, bucket_owner: &str, acl: ObjectAcl) -> Grants {
    let mut out = Vec::new();
    let mut owner_last = Vec::new();
    match acl {
        ObjectAcl::Private => {}
        ObjectAcl::BucketOwnerRead => owner_last.push(grant(user(bucket_owner), Permission::READ)),
        ObjectAcl::BucketOwnerFullControl => {
            owner_last.push(grant(user(bucket_owner), Permission::FULL_CONTROL))
        }
        ObjectAcl::PublicRead => out.push(grant(group(ALL_USERS), Permission::READ)),
        ObjectAcl::PublicReadWrite => {
            out.push(grant(group(ALL_USERS), Permission::READ));
            out.push(grant(group(ALL_USERS), Permission::WRITE));
        }
        ObjectAcl::AuthenticatedRead => {
            out.push(grant(group(AUTHENTICATED_USERS), Permission::READ))
        }
    }
    out.push(grant(user(owner), Permission::FULL_CONTROL));
    // The bucket owner's grant only when it is someone else.
    out.extend(owner_last.into_iter().filter(|_| owner != bucket_owner));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_and_granted_acls_map_onto_rights() {
        assert!(canned("public-read").unwrap().public_read);
        assert!(canned("nonsense").is_err());
        let g = requested(
            "OWNER",
            None,
            None,
            [
                (
                    Some(r#"uri="http://acs.amazonaws.com/groups/global/AllUsers", id="OTHER""#),
                    Permission::READ,
                ),
                (Some(r#"id="OWNER""#), Permission::FULL_CONTROL),
                (None, Permission::WRITE),
            ],
        )
        .unwrap()
        .unwrap();
        assert!(g.public_read && !g.public_write);
        assert_eq!(g.keys.get("OTHER"), Some(&(true, false)));
        assert!(
            object_acl(&g, "OWNER").is_err(),
            "key grants on one object are refused"
        );
        assert_eq!(
            requested("O", None, None, [(None, ""), (None, ""), (None, "")]).unwrap(),
            None
        );
        let public = Granted {
            public_read: true,
            ..Granted::default()
        };
        assert_eq!(object_acl(&public, "O").unwrap(), ObjectAcl::PublicRead);
        let grants = object_grants("O", "O", ObjectAcl::PublicRead);
        assert_eq!(grants.len(), 2);
        assert!(
            grants[0].grantee.as_ref().unwrap().uri.is_some(),
            "groups first"
        );
        assert_eq!(
            canned_object("bucket-owner-read").unwrap(),
            ObjectAcl::BucketOwnerRead
        );
        assert_eq!(object_grants("W", "O", ObjectAcl::BucketOwnerRead).len(), 2);
    }
}
