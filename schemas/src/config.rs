//! The one error every crate's `XxxConfig::validate` returns.
//!
//! Each crate owns a config struct (a section of the server's TOML file)
//! with the same method:
//!
//! ```text
//! fn validate(&mut self) -> Result<(), ConfigError>
//! ```
//!
//! It fixes harmless values in place (a zero interval becomes the default,
//! with a warning) and rejects dangerous ones with a [`ConfigError`] that
//! names the section, the key, the value found and what is wrong, so an
//! operator reads which key and which limit:
//!
//! ```text
//! [log.kafka] topic_prefix = "a b": must be non-empty and use only [a-zA-Z0-9._-]
//! [cold] device_buckets = 0: must be at least 1
//! ```
//!
//! The section is the TOML table the key is written in (`log.kafka` for
//! `[log.kafka]`); [`ConfigError::path`] joins both into the dotted name of
//! the `STRATA_…` variable (`log.kafka.topic_prefix` is
//! `STRATA_LOG__KAFKA__TOPIC_PREFIX`). The server collects them at startup
//! (`server/src/config.rs`); a crate that validates on open folds this error
//! into its own with `#[from]`.

use crate::error::ErrorKind;

/// A configuration value a component cannot run with: which key, the value
/// found, and which limit it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The TOML section holding the key, without brackets (`cold`, `log.kafka`).
    pub section: String,
    /// The key within the section (`device_buckets`).
    pub key: String,
    /// The value found, as written by `{:?}` (strings quoted); `None` when
    /// the value says nothing more than the reason (an empty list).
    pub value: Option<String>,
    /// What is wrong, phrased as the rule it breaks (`must be at least 1`).
    pub reason: String,
}

impl ConfigError {
    /// `[section] key` breaks `reason`.
    pub fn new(section: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { section: section.into(), key: key.into(), value: None, reason: reason.into() }
    }

    /// `[section] key = value` breaks `reason`; the value is shown with `{:?}`.
    pub fn invalid(
        section: impl Into<String>,
        key: impl Into<String>,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        Self { value: Some(format!("{value:?}")), ..Self::new(section, key, reason) }
    }

    /// The dotted name of the key (`log.kafka.topic_prefix`), as in the
    /// `STRATA_LOG__KAFKA__TOPIC_PREFIX` environment variable.
    pub fn path(&self) -> String {
        if self.section.is_empty() { self.key.clone() } else { format!("{}.{}", self.section, self.key) }
    }

    /// Always [`ErrorKind::InvalidInput`]: the same configuration fails again.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.section.is_empty() {
            write!(f, "[{}] ", self.section)?;
        }
        f.write_str(&self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_message_names_section_key_value_and_rule() {
        let e = ConfigError::invalid("log.kafka", "topic_prefix", "a b", "must use only [a-zA-Z0-9._-]");
        assert_eq!(e.to_string(), "[log.kafka] topic_prefix = \"a b\": must use only [a-zA-Z0-9._-]");
        assert_eq!(e.path(), "log.kafka.topic_prefix");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = ConfigError::invalid("query", "timeout", Duration::ZERO, "must be positive");
        assert_eq!(e.to_string(), "[query] timeout = 0ns: must be positive");
        let e = ConfigError::new("hot.scylla", "nodes", "is empty: name at least one contact point");
        assert_eq!(e.to_string(), "[hot.scylla] nodes: is empty: name at least one contact point");
        assert_eq!(ConfigError::new("", "region", "must not be empty").to_string(), "region: must not be empty");
    }
}
