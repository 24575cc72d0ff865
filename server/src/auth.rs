//! Token → tenant resolution from the configuration (`[auth] tokens`).
//!
//! A fixed table of `token → tenant`, consulted by the tenant registry
//! ([`crate::registry::Registry`]) for tokens that are not registry tokens
//! (`st_…`). Every request must carry `Authorization: Token <t>` or
//! `Bearer <t>`; a token that is not in the table is refused, and so is every
//! token when the table is empty. Whether a node is in *open mode* (every
//! request the tenant `default`, no token needed) is the registry's decision,
//! never this table's: an empty table here means "no static token", not
//! "anyone may act as `default`".
//!
//! Every secret a request presents (static tokens, the admin token, the
//! `[metrics]` and `[cluster]` tokens) is checked with [`token_eq`]: both
//! sides are hashed with SHA-256 and the digests compared in constant time,
//! so neither the content nor the length of a secret shows in the timing.
//! Registry tokens are stored as SHA-256 digests and checked the same way
//! ([`crate::registry`]); region credentials are configured as digests
//! ([`crate::regions`]).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use strata_schemas::tenant::parse_authorization;
use strata_schemas::{Access, AuthError, TenantId, TenantResolver};

/// Resolves tokens from a fixed table.
#[derive(Clone)]
pub struct StaticTokens {
    /// SHA-256 of each token, and its tenant.
    tokens: Vec<([u8; 32], TenantId)>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticTokens").field("tokens", &self.tokens.len()).finish()
    }
}

impl StaticTokens {
    /// Builds the table from `token → tenant id` pairs (validated by the config).
    pub fn new(tokens: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let tokens = tokens
            .iter()
            .map(|(t, tenant)| Ok((Sha256::digest(t.as_bytes()).into(), TenantId::new(tenant.as_str())?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { tokens })
    }
}

impl StaticTokens {
    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl StaticTokens {
    /// The tenant of `token` (every entry is compared, in constant time).
    fn lookup(&self, token: &str) -> Option<TenantId> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (t, tenant) in &self.tokens {
            if digest_eq(t, &presented) {
                found = Some(tenant.clone());
            }
        }
        found
    }

    /// Whether `token` is one of the table's.
    pub fn contains(&self, token: &str) -> bool {
        self.lookup(token).is_some()
    }
}

/// Whether a presented secret equals the expected one: SHA-256 of both, the
/// digests compared in constant time (time independent of where they differ
/// and of either length). An empty `expected` never matches.
pub fn token_eq(presented: &[u8], expected: &[u8]) -> bool {
    let a: [u8; 32] = Sha256::digest(presented).into();
    let b: [u8; 32] = Sha256::digest(expected).into();
    digest_eq(&a, &b) && !expected.is_empty()
}

/// Constant-time comparison of two digests.
fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

impl TenantResolver for StaticTokens {
    fn resolve(&self, authorization: Option<&str>, _access: Access) -> Result<TenantId, AuthError> {
        let token = parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
        self.lookup(token).ok_or(AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_refuses_every_token() {
        // Open mode is the registry's decision; the table never grants `default`.
        let r = StaticTokens::new(&BTreeMap::new()).unwrap();
        assert_eq!(r.resolve(None, Access::Write), Err(AuthError::MissingToken));
        assert_eq!(r.resolve(Some("Token whatever"), Access::Read), Err(AuthError::InvalidToken));
        assert_eq!(r.resolve(Some("Bearer garbage"), Access::Write), Err(AuthError::InvalidToken));
    }

    #[test]
    fn token_eq_compares_digests_and_never_matches_an_empty_secret() {
        assert!(token_eq(b"admin-token-0123456789", b"admin-token-0123456789"));
        assert!(!token_eq(b"admin-token-0123456789", b"admin-token-0123456780"));
        // Different lengths are compared the same way (digests of equal size).
        assert!(!token_eq(b"admin", b"admin-token-0123456789"));
        assert!(!token_eq(b"", b""), "an unset secret matches nothing");
    }

    #[test]
    fn tokens_resolve_to_their_tenant() {
        let r = StaticTokens::new(&BTreeMap::from([("secret-acme".to_owned(), "acme".to_owned())])).unwrap();
        assert_eq!(r.resolve(Some("Token secret-acme"), Access::Write).unwrap().as_str(), "acme");
        assert_eq!(r.resolve(Some("Bearer secret-acme"), Access::Read).unwrap().as_str(), "acme");
        assert_eq!(r.resolve(None, Access::Read), Err(AuthError::MissingToken));
        assert_eq!(r.resolve(Some("Token nope"), Access::Read), Err(AuthError::InvalidToken));
        assert_eq!(r.resolve(Some("Basic x"), Access::Read), Err(AuthError::Malformed));
    }
}
