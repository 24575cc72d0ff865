//! Regions and jurisdictions: the region directory every node is configured with.
//!
//! A *region* is a deployment (one Strata node or a Kafka cluster of them)
//! with its own log, hot store and cold tier; a *jurisdiction* is the legal
//! border a region lies in (`us`, `eu`, `br`). The directory names every
//! region a node may talk to, its jurisdiction and its endpoint (base URL of
//! its query, ingest and inter-region APIs). It is configuration
//! (`[federation]` in the server), identical on every node; the credentials
//! regions present to each other stay in the server's configuration.

use serde::{Deserialize, Serialize};

/// One region of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionEntry {
    /// Region name (`eu-central`).
    pub name: String,
    /// Jurisdiction the region lies in (`eu`).
    pub jurisdiction: String,
    /// Base URL of the region's API (`https://eu-central.strata.example`).
    pub endpoint: String,
}

/// The regions this node knows, its own among them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionDirectory {
    local: String,
    entries: Vec<RegionEntry>,
}

impl RegionDirectory {
    /// A directory of `entries` seen from region `local` (which must be one of them).
    pub fn new(local: &str, entries: Vec<RegionEntry>) -> Result<Self, String> {
        let mut seen = std::collections::BTreeSet::new();
        for e in &entries {
            if e.name.is_empty() || e.jurisdiction.is_empty() {
                return Err("a region and its jurisdiction must have names".to_owned());
            }
            if !seen.insert(e.name.as_str()) {
                return Err(format!("region {:?} is listed twice in the region directory", e.name));
            }
        }
        if !seen.contains(local) {
            return Err(format!("this node's region {local:?} is not in the region directory"));
        }
        Ok(Self { local: local.to_owned(), entries })
    }

    /// A directory of one region (a node without federation).
    pub fn single(region: &str, jurisdiction: &str, endpoint: &str) -> Self {
        let entry = RegionEntry {
            name: region.to_owned(),
            jurisdiction: jurisdiction.to_owned(),
            endpoint: endpoint.to_owned(),
        };
        Self { local: region.to_owned(), entries: vec![entry] }
    }

    /// This node's region.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// This node's jurisdiction.
    pub fn local_jurisdiction(&self) -> &str {
        self.jurisdiction_of(&self.local).unwrap_or(&self.local)
    }

    /// Every region, in configuration order.
    pub fn entries(&self) -> &[RegionEntry] {
        &self.entries
    }

    /// The entry of `region`.
    pub fn get(&self, region: &str) -> Option<&RegionEntry> {
        self.entries.iter().find(|e| e.name == region)
    }

    /// The jurisdiction of `region`.
    pub fn jurisdiction_of(&self, region: &str) -> Option<&str> {
        self.get(region).map(|e| e.jurisdiction.as_str())
    }

    /// `regions` (names) rendered for an error message: `eu-central (eu,
    /// http://…), eu-west (eu, http://…)`; names the directory lacks are shown bare.
    pub fn describe<'a>(&self, regions: impl IntoIterator<Item = &'a str>) -> String {
        let parts: Vec<String> = regions
            .into_iter()
            .map(|r| match self.get(r) {
                Some(e) => format!("{} ({}, {})", e.name, e.jurisdiction, e.endpoint),
                None => r.to_owned(),
            })
            .collect();
        if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, j: &str) -> RegionEntry {
        RegionEntry { name: name.into(), jurisdiction: j.into(), endpoint: format!("http://{name}") }
    }

    #[test]
    fn directory_knows_jurisdictions_and_refuses_duplicates() {
        let d = RegionDirectory::new("us-east", vec![entry("us-east", "us"), entry("eu-central", "eu")]).unwrap();
        assert_eq!(d.local_jurisdiction(), "us");
        assert_eq!(d.jurisdiction_of("eu-central"), Some("eu"));
        assert_eq!(d.describe(["eu-central", "xx"]), "eu-central (eu, http://eu-central), xx");
        assert!(RegionDirectory::new("us-east", vec![entry("us-east", "us"), entry("us-east", "us")]).is_err());
        assert!(RegionDirectory::new("br-south", vec![entry("us-east", "us")]).unwrap_err().contains("br-south"));
        assert_eq!(RegionDirectory::single("local", "local", "").local_jurisdiction(), "local");
    }
}
