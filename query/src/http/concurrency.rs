//! Per-tenant query concurrency: at most `max_concurrent_queries` queries of
//! a tenant evaluate at once; more wait their turn (up to the query timeout),
//! so one tenant's burst of dashboards cannot take every query worker from
//! the others.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use strata_schemas::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One semaphore per tenant, re-created when the tenant's limit changes.
#[derive(Debug, Default)]
pub(crate) struct TenantConcurrency {
    slots: Mutex<HashMap<TenantId, (u32, Arc<Semaphore>)>>,
}

impl TenantConcurrency {
    /// Waits for one of `limit` slots of `tenant`, at most `wait`.
    /// `None` when no slot freed up in time.
    pub(crate) async fn acquire(&self, tenant: &TenantId, limit: u32, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let limit = limit.max(1);
        let sem = {
            let mut slots = self.slots.lock();
            let entry =
                slots.entry(tenant.clone()).or_insert_with(|| (limit, Arc::new(Semaphore::new(limit as usize))));
            if entry.0 != limit {
                // Queries holding permits of the old semaphore finish on it.
                *entry = (limit, Arc::new(Semaphore::new(limit as usize)));
            }
            Arc::clone(&entry.1)
        };
        tokio::time::timeout(wait, sem.acquire_owned()).await.ok()?.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_at_its_limit_waits_while_others_run() {
        let c = TenantConcurrency::default();
        let a = TenantId::new("a").unwrap();
        let b = TenantId::new("b").unwrap();
        let short = Duration::from_millis(50);
        let p1 = c.acquire(&a, 2, short).await.unwrap();
        let _p2 = c.acquire(&a, 2, short).await.unwrap();
        assert!(c.acquire(&a, 2, short).await.is_none(), "third query of a waits, then gives up");
        assert!(c.acquire(&b, 2, short).await.is_some(), "b is not affected by a");
        drop(p1);
        assert!(c.acquire(&a, 2, short).await.is_some(), "a slot freed up");
    }
}
