//! Worker node ids: 1-63 characters of `a-z`, `0-9` and `-` (a DNS label, as a Kubernetes
//! pod's node name is), so an id is always safe as a NATS subject token, a KV key and a path
//! component. Our nodes take theirs from configuration; the original's workers send theirs
//! when they register.

use std::fmt;

/// A worker node id that passed [`NodeId::parse`], so it is safe to put in subjects, keys and
/// paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

/// A node id refused by [`NodeId::parse`], holding the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid node id {0:?}: expected 1-63 characters of a-z, 0-9 and '-'")]
pub struct InvalidNodeId(pub String);

impl NodeId {
    /// Accepts only 1-63 characters of `a-z`, `0-9` and `-`; used on the configured id, on ids
    /// that workers register with and on the node a browser's offer names.
    pub fn parse(s: &str) -> Result<Self, InvalidNodeId> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidNodeId(s.to_owned()))
        }
    }

    /// The id as text, e.g. to build a NATS subject or a KV key from it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_pass_and_subject_breakers_do_not() {
        for good in ["worker-001", "node-1", "a", &"x".repeat(63)] {
            assert!(NodeId::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "Worker", "a.b", "a b", "a*", "a>", "a_b", "ü", &"x".repeat(64)] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
