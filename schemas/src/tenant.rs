//! Tenant identity and the contract that turns a request's token into a tenant.

use std::fmt;

/// The tenant every request belongs to when no tokens are configured.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant id: 1–64 characters of `[A-Za-z0-9_.-]`.
///
/// Tenant ids appear in file paths and hashes, so the alphabet is restricted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TryFrom<String> for TenantId {
    type Error = InvalidTenantId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

/// Why a string is not a valid tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tenant id {id:?}: {reason}")]
pub struct InvalidTenantId {
    /// The rejected id.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidTenantId> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("empty")
        } else if id.len() > 64 {
            Some("longer than 64 bytes")
        } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
            Some("only ASCII letters, digits, '_', '-' and '.' are allowed")
        } else if id == "." || id == ".." {
            Some("reserved")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(InvalidTenantId { id, reason }),
            None => Ok(Self(id)),
        }
    }

    /// The default tenant ([`DEFAULT_TENANT`]).
    pub fn default_tenant() -> Self {
        Self(DEFAULT_TENANT.to_owned())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request wants to do with a tenant's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Write samples.
    Write,
    /// Read samples and metadata.
    Read,
    /// Delete samples (erasure requests): only tokens with `admin` access.
    Delete,
}

/// Why a request could not be attributed to a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Tokens are configured but the request carries none.
    #[error("missing Authorization header (expected `Token <token>` or `Bearer <token>`)")]
    MissingToken,
    /// The Authorization header is not `Token <t>` / `Bearer <t>`.
    #[error("malformed Authorization header (expected `Token <token>` or `Bearer <token>`)")]
    Malformed,
    /// The token is unknown or revoked.
    #[error("invalid or revoked token")]
    InvalidToken,
    /// The token is valid but does not allow this access.
    #[error("token of tenant {tenant} does not allow {access:?} access")]
    Forbidden {
        /// The token's tenant.
        tenant: TenantId,
        /// The access that was refused.
        access: Access,
    },
}

/// Resolves a request's `Authorization` header to the tenant it acts for.
pub trait TenantResolver: Send + Sync + fmt::Debug {
    /// Resolves `authorization` (the raw header value, if any) for `access`.
    fn resolve(&self, authorization: Option<&str>, access: Access) -> Result<TenantId, AuthError>;

    /// The tenant's policy (region, limits), if the resolver knows it;
    /// `None` means "defaults apply".
    fn policy(&self, tenant: &TenantId) -> Option<std::sync::Arc<crate::TenantPolicy>> {
        let _ = tenant;
        None
    }

    /// The limits of a tenant without a policy (open mode's `default`,
    /// static-token tenants): the node's `[limits]`.
    fn default_limits(&self) -> crate::TenantLimits {
        crate::TenantLimits::default()
    }

    /// The limits `tenant` runs under: its policy's, else [`Self::default_limits`].
    fn limits(&self, tenant: &TenantId) -> crate::TenantLimits {
        self.policy(tenant).map_or_else(|| self.default_limits(), |p| p.limits.clone())
    }
}

/// Extracts the token from `Token <t>` or `Bearer <t>` (scheme case-insensitive).
pub fn parse_authorization(header: &str) -> Result<&str, AuthError> {
    let header = header.trim();
    let (scheme, token) = header.split_once(' ').ok_or(AuthError::Malformed)?;
    let token = token.trim();
    if (scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) && !token.is_empty() {
        Ok(token)
    } else {
        Err(AuthError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_tenant_ids() {
        assert!(TenantId::new("acme-eu_1.x").is_ok());
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("a/b").is_err());
        assert!(TenantId::new("..").is_err());
        assert!(TenantId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn parses_token_and_bearer() {
        assert_eq!(parse_authorization("Token abc"), Ok("abc"));
        assert_eq!(parse_authorization("bearer  abc "), Ok("abc"));
        assert_eq!(parse_authorization("Basic abc"), Err(AuthError::Malformed));
        assert_eq!(parse_authorization("Token"), Err(AuthError::Malformed));
    }
}
