//! Bucket policies: the subset that makes a bucket or a prefix public.
//!
//! ringstore's rights are its access keys' grants; a policy only adds
//! what an unsigned request may do. So a policy is accepted when every
//! statement is `"Effect": "Allow"` to `"Principal": "*"` (or `{"AWS":
//! "*"}`) with actions and resources of this bucket, wildcards allowed:
//!
//! ```json
//! {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
//!   "Principal": "*", "Action": "s3:GetObject",
//!   "Resource": "arn:aws:s3:::photos/thumbs/*"}]}
//! ```
//!
//! Anything else (another principal, `Deny`, `Condition`, `NotAction`)
//! is refused with `MalformedPolicy` and a message naming the element,
//! rather than accepted and silently not enforced.

use serde_json::Value;

/// One accepted statement: action and resource patterns.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    actions: Vec<String>,
    resources: Vec<String>,
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    statements: Vec<Statement>,
}

/// Why a policy was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct PolicyError(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(why.into()))
}

/// A string or a list of strings, as policies write them.
fn strings(v: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => refuse(format!("{what} must hold strings")),
            })
            .collect(),
        _ => refuse(format!("{what} must be a string or a list of strings")),
    }
}

fn principal_is_anyone(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "*",
        Value::Object(m) => {
            m.len() == 1
                && m.get("AWS").and_then(|a| strings(a, "AWS").ok()) == Some(vec!["*".into()])
        }
        _ => false,
    }
}

fn statement(v: &Value, bucket: &str) -> Result<Statement, PolicyError> {
    let Value::Object(m) = v else {
        return refuse("each Statement must be an object");
    };
    for key in m.keys() {
        if !matches!(
            key.as_str(),
            "Sid" | "Effect" | "Principal" | "Action" | "Resource"
        ) {
            return refuse(format!(
                "{key} is not supported: ringstore accepts Allow statements to Principal \"*\" \
                 with Action and Resource only; grant keys rights with the admin API"
            ));
        }
    }
    if m.get("Effect").and_then(Value::as_str) != Some("Allow") {
        return refuse("only \"Effect\": \"Allow\" is supported");
    }
    if !m.get("Principal").is_some_and(principal_is_anyone) {
        return refuse(
            "only \"Principal\": \"*\" is supported; grant access keys rights with \
             PUT /admin/keys/ID/buckets/B",
        );
    }
    let actions = strings(m.get("Action").unwrap_or(&Value::Null), "Action")?;
    for a in &actions {
        if !(a == "*" || a.starts_with("s3:")) {
            return refuse(format!("action {a} is not an s3: action"));
        }
    }
    let resources = strings(m.get("Resource").unwrap_or(&Value::Null), "Resource")?;
    let arn = format!("arn:aws:s3:::{bucket}");
    for r in &resources {
        let ours = r == &arn
            || r.strip_prefix(&arn)
                .is_some_and(|rest| rest.starts_with('/'));
        if !ours {
            return refuse(format!(
                "Policy has invalid resource {r}: resources must be {arn} or {arn}/..."
            ));
        }
    }
    Ok(Statement { actions, resources })
}

impl Policy {
    /// Parse and check the policy `text` of `bucket`.
    ///
    /// # Errors
    ///
    /// What makes it malformed or outside the supported subset.
    pub fn parse(text: &str, bucket: &str) -> Result<Policy, PolicyError> {
        if text.len() > crate::settings::POLICY_BYTES_MAX {
            return refuse(format!(
                "the policy is {} bytes; at most {} are allowed",
                text.len(),
                crate::settings::POLICY_BYTES_MAX
            ));
        }
        let doc: Value = match serde_json::from_str(text) {
            Ok(d) => d,
            Err(e) => return refuse(format!("the policy is not JSON: {e}")),
        };
        let Some(m) = doc.as_object() else {
            return refuse("the policy must be a JSON object");
        };
        let list = match m.get("Statement") {
            Some(Value::Array(l)) if !l.is_empty() => l.clone(),
            Some(s @ Value::Object(_)) => vec![s.clone()],
            _ => return refuse("the policy needs a Statement"),
        };
        let statements = list
            .iter()
            .map(|s| statement(s, bucket))
            .collect::<Result<_, _>>()?;
        Ok(Policy { statements })
    }

    /// Whether an unsigned request may do `action` (an IAM action name,
    /// `s3:GetObject`) on the bucket (`key` None) or one of its objects.
    /// The resources were checked to be this bucket's when parsed.
    pub fn allows_anyone(&self, action: &str, key: Option<&str>) -> bool {
        self.statements.iter().any(|s| {
            s.actions.iter().any(|a| glob(a, action))
                && s.resources.iter().any(|r| {
                    let object_part = r.split_once('/').map(|(_, rest)| rest);
                    match (object_part, key) {
                        (None, None) => true,
                        (Some(pattern), Some(k)) => glob(pattern, k),
                        _ => false,
                    }
                })
        })
    }

    /// Whether it grants anything to everyone (every accepted policy
    /// does; for GetBucketPolicyStatus).
    pub fn is_public(&self) -> bool {
        !self.statements.is_empty()
    }
}

/// `*` matches any run of characters, `?` any one; the rest literally.
/// Iterative with one backtrack point: linear in practice, never
/// exponential on hostile patterns.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_THUMBS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow",
        "Principal":"*","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::photos/thumbs/*"},
        {"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:List*","Resource":"arn:aws:s3:::photos"}]}"#;

    #[test]
    fn a_public_prefix_is_readable_by_anyone_and_nothing_else_is() {
        let p = Policy::parse(PUBLIC_THUMBS, "photos").unwrap();
        assert!(p.allows_anyone("s3:GetObject", Some("thumbs/1.jpg")));
        assert!(!p.allows_anyone("s3:GetObject", Some("originals/1.jpg")));
        assert!(!p.allows_anyone("s3:PutObject", Some("thumbs/1.jpg")));
        assert!(p.allows_anyone("s3:ListBucket", None));
        assert!(!p.allows_anyone("s3:GetObject", None));
    }

    #[test]
    fn what_is_not_supported_is_refused_with_its_name() {
        let cases = [
            (
                r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
                "Allow",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
                "Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*","Condition":{}}]}"#,
                "Condition",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::other/*"}]}"#,
                "invalid resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::bb/*"}]}"#,
                "invalid resource",
            ),
            ("not json", "not JSON"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
        ];
        for (text, needle) in cases {
            let e = Policy::parse(text, "b").unwrap_err();
            assert!(e.0.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn globs_match_like_iam_and_stay_linear() {
        assert!(glob("thumbs/*", "thumbs/a/b.jpg"));
        assert!(glob("*.jpg", "a.jpg"));
        assert!(!glob("*.jpg", "a.png"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
        let hostile = "*a".repeat(50);
        let text = "a".repeat(2000) + "b";
        assert!(!glob(&hostile, &text));
    }
}
