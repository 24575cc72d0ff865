//! Token → tenant resolution from the configuration (`[auth] tokens`).
//!
//! A fixed table of `token → tenant`, consulted by the tenant registry
//! ([`crate::registry::Registry`]) for tokens that are not registry tokens
//! (`st_…`). Every request must carry `Authorization: Token <t>` or
//! `Bearer <t>`; a token that is not in the table is refused, and so is every
//! token when the table is empty. Whether a node is in *open mode* (every
//! request the tenant `default`, no token needed) is the registry's decision,
//! never this table's: an empty table here means "no static token", not
//! "anyone may act as `default`". Tokens are compared in constant time.

use std::collections::BTreeMap;
use strata_schemas::tenant::parse_authorization;
use strata_schemas::{Access, AuthError, TenantId, TenantResolver};

/// Resolves tokens from a fixed table.
#[derive(Clone)]
pub struct StaticTokens {
    tokens: Vec<(Vec<u8>, TenantId)>,
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
            .map(|(t, tenant)| Ok((t.as_bytes().to_vec(), TenantId::new(tenant.as_str())?)))
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TenantResolver for StaticTokens {
    fn resolve(&self, authorization: Option<&str>, _access: Access) -> Result<TenantId, AuthError> {
        let token = parse_authorization(authorization.ok_or(AuthError::MissingToken)?)?;
        let mut found = None;
        for (t, tenant) in &self.tokens {
            if constant_time_eq(t, token.as_bytes()) {
                found = Some(tenant.clone());
            }
        }
        found.ok_or(AuthError::InvalidToken)
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
    fn tokens_resolve_to_their_tenant() {
        let r = StaticTokens::new(&BTreeMap::from([("secret-acme".to_owned(), "acme".to_owned())])).unwrap();
        assert_eq!(r.resolve(Some("Token secret-acme"), Access::Write).unwrap().as_str(), "acme");
        assert_eq!(r.resolve(Some("Bearer secret-acme"), Access::Read).unwrap().as_str(), "acme");
        assert_eq!(r.resolve(None, Access::Read), Err(AuthError::MissingToken));
        assert_eq!(r.resolve(Some("Token nope"), Access::Read), Err(AuthError::InvalidToken));
        assert_eq!(r.resolve(Some("Basic x"), Access::Read), Err(AuthError::Malformed));
    }
}
