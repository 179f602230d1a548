//! Kafka's `Filter` transform and its usual predicates.

use regex::Regex;

use super::{Predicate, Transform};
use crate::error::Error;
use crate::properties::{whole_match_regex, Scope};
use crate::record::Record;

/// Kafka's `org.apache.kafka.connect.transforms.Filter`: drops every record it is applied
/// to, so it is used with a predicate (`transforms.f.predicate`, optionally `negate`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter;

impl Transform for Filter {
    fn apply(&self, _record: Record) -> Result<Option<Record>, Error> {
        Ok(None)
    }
}

/// Kafka's `TopicNameMatches` predicate (`pattern`, whole-topic match).
#[derive(Debug, Clone)]
pub struct TopicNameMatches {
    pattern: Regex,
}

impl TopicNameMatches {
    /// A predicate matching topics that match `pattern` entirely.
    pub fn new(pattern: &str) -> Result<Self, Error> {
        Ok(TopicNameMatches {
            pattern: whole_match_regex("pattern", pattern)?,
        })
    }

    /// Builds from `predicates.<alias>.pattern`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        Ok(TopicNameMatches {
            pattern: whole_match_regex(&scope.key("pattern"), scope.require("pattern")?)?,
        })
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &Record) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// Kafka's `HasHeaderKey` predicate (`name`).
#[derive(Debug, Clone)]
pub struct HasHeaderKey {
    name: String,
}

impl HasHeaderKey {
    /// A predicate matching records that carry a header named `name`.
    pub fn new(name: &str) -> Self {
        HasHeaderKey {
            name: name.to_owned(),
        }
    }

    /// Builds from `predicates.<alias>.name`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        Ok(Self::new(scope.require("name")?))
    }
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &Record) -> bool {
        record.header(&self.name).is_some()
    }
}

/// Kafka's `RecordIsTombstone` predicate.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &Record) -> bool {
        record.is_tombstone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::TransformChain;
    use crate::value::Value;
    use std::sync::Arc;

    fn rec(topic: &str) -> Record {
        Record::new(Arc::from(topic), None, Value::Int32(1))
    }

    #[test]
    fn filter_with_predicates_and_negation() {
        let mut chain = TransformChain::new();
        chain.push_when(
            "dropAudit",
            Filter,
            Arc::new(TopicNameMatches::new("audit\\..*").unwrap()),
            false,
        );
        assert!(chain.apply(rec("audit.log")).unwrap().is_none());
        assert!(chain.apply(rec("orders")).unwrap().is_some());

        let mut keep_only_marked = TransformChain::new();
        keep_only_marked.push_when("f", Filter, Arc::new(HasHeaderKey::new("keep")), true);
        assert!(keep_only_marked.apply(rec("a")).unwrap().is_none());
        let marked = rec("a").with_header("keep", None, Value::Null);
        assert!(keep_only_marked.apply(marked).unwrap().is_some());
    }
}
