use super::*;
use std::collections::BTreeMap;

async fn registry(dir: &std::path::Path) -> Arc<Registry> {
    let url = RegistryStore::sqlite_url(dir);
    Registry::open(&url, StaticTokens::new(&BTreeMap::new()).unwrap(), "eu", Default::default()).await.unwrap()
}

fn acme() -> TenantPolicy {
    TenantPolicy::new(TenantId::new("acme").unwrap(), "eu")
}

#[tokio::test]
async fn open_mode_until_the_first_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    assert_eq!(r.resolve(None, Access::Write).unwrap().as_str(), "default");
    assert!(r.store().create_tenant(&acme(), 1).await.unwrap());
    assert!(!r.store().create_tenant(&acme(), 1).await.unwrap(), "ids are unique");
    r.reload().await.unwrap();
    assert_eq!(r.resolve(None, Access::Write), Err(AuthError::MissingToken));
}

#[tokio::test]
async fn after_open_mode_an_unknown_token_is_refused_whatever_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    // Open mode: anything goes, as the tenant `default`.
    assert_eq!(r.resolve(Some("Bearer garbage"), Access::Read).unwrap().as_str(), "default");
    r.store().create_tenant(&acme(), 1).await.unwrap();
    r.reload().await.unwrap();
    // No static token is configured: nothing that is not a live registry
    // token may act as any tenant, `default` included.
    for header in ["Bearer garbage", "Token x", "Token st_nope", "Bearer st_abc_def", "Token default"] {
        assert_eq!(r.resolve(Some(header), Access::Read), Err(AuthError::InvalidToken), "{header}");
        assert_eq!(r.resolve(Some(header), Access::Write), Err(AuthError::InvalidToken), "{header}");
    }
    // The open-mode data stays the tenant `default`'s, reachable through a
    // token issued for `default` once it is registered.
    let default = TenantId::default_tenant();
    r.store().create_tenant(&TenantPolicy::new(default.clone(), "eu"), 2).await.unwrap();
    let (_, token) = r.issue_token(&default, TokenAccess::Read, "", 3).await.unwrap();
    assert_eq!(r.resolve(Some(&format!("Bearer {token}")), Access::Read).unwrap(), default);
}

#[tokio::test]
async fn tokens_resolve_with_their_access_and_die_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    r.store().create_tenant(&acme(), 1).await.unwrap();
    let acme_id = TenantId::new("acme").unwrap();
    let (w, write_token) = r.issue_token(&acme_id, TokenAccess::Write, "gateway", 2).await.unwrap();
    let (_, rw_token) = r.issue_token(&acme_id, TokenAccess::ReadWrite, "", 3).await.unwrap();
    assert!(write_token.starts_with(&format!("st_{}_", w.id)));
    let h = |t: &str| format!("Token {t}");
    assert_eq!(r.resolve(Some(&h(&write_token)), Access::Write).unwrap(), acme_id);
    assert!(matches!(r.resolve(Some(&h(&write_token)), Access::Read), Err(AuthError::Forbidden { .. })));
    assert_eq!(r.resolve(Some(&h(&rw_token)), Access::Read).unwrap(), acme_id);
    let forged = format!("st_{}_{}", w.id, "0".repeat(48));
    assert_eq!(r.resolve(Some(&h(&forged)), Access::Write), Err(AuthError::InvalidToken));
    assert!(r.store().revoke_token(&acme_id, &w.id, 4).await.unwrap());
    r.reload().await.unwrap();
    assert_eq!(r.resolve(Some(&h(&write_token)), Access::Write), Err(AuthError::InvalidToken));
    let stored = r.store().tokens(Some(&acme_id)).await.unwrap();
    assert!(stored.iter().all(|t| !t.secret_hash.contains(&write_token)), "only hashes are stored");
}

#[tokio::test]
async fn changes_reach_a_second_node_sharing_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let a = registry(dir.path()).await;
    let b = registry(dir.path()).await;
    a.store().create_tenant(&acme(), 1).await.unwrap();
    let (_, token) = a.issue_token(&TenantId::new("acme").unwrap(), TokenAccess::Read, "", 2).await.unwrap();
    assert!(b.reload().await.unwrap(), "b sees the generation move");
    assert_eq!(b.resolve(Some(&format!("Bearer {token}")), Access::Read).unwrap().as_str(), "acme");
    assert!(b.policy(&TenantId::new("acme").unwrap()).is_some());
    assert!(!b.reload().await.unwrap(), "no change, no reload");
}

#[tokio::test]
async fn deleting_a_tenant_revokes_its_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let r = registry(dir.path()).await;
    r.store().create_tenant(&acme(), 1).await.unwrap();
    let acme_id = TenantId::new("acme").unwrap();
    let (_, token) = r.issue_token(&acme_id, TokenAccess::Write, "", 2).await.unwrap();
    assert!(r.store().delete_tenant(&acme_id, 3).await.unwrap());
    r.reload().await.unwrap();
    assert!(!r.open_mode(), "deleting the last tenant must not open the node to everyone");
    assert_eq!(r.resolve(None, Access::Write), Err(AuthError::MissingToken));
    assert!(r.store().tokens(Some(&acme_id)).await.unwrap().iter().all(|t| t.revoked_at.is_some()));
    let _ = token;
}
