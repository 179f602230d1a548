//! Kafka's `RegexRouter`: rewrites the topic when the whole topic matches `regex`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use regex::Regex;

use super::Transform;
use crate::error::Error;
use crate::properties::{whole_match_regex, Scope};
use crate::record::Record;

/// Kafka's `org.apache.kafka.connect.transforms.RegexRouter` (`regex`, `replacement` with
/// Java's `$1` group syntax). Routed names are cached per input topic.
#[derive(Debug)]
pub struct RegexRouter {
    regex: Regex,
    replacement: String,
    routes: RwLock<HashMap<Arc<str>, Arc<str>>>,
}

impl RegexRouter {
    /// A router; `regex` must match the whole topic, as Java's `Matcher.matches()`.
    pub fn new(regex: &str, replacement: &str) -> Result<Self, Error> {
        Self::with_key("regex", regex, replacement)
    }

    pub(crate) fn with_key(key: &str, regex: &str, replacement: &str) -> Result<Self, Error> {
        Ok(RegexRouter {
            regex: whole_match_regex(key, regex)?,
            replacement: java_replacement(replacement),
            routes: RwLock::default(),
        })
    }

    /// Builds from `transforms.<alias>.regex` / `.replacement`.
    pub fn from_props(scope: &Scope<'_>) -> Result<Self, Error> {
        let regex = scope.require("regex")?;
        let replacement = scope.require("replacement")?;
        Self::with_key(&scope.key("regex"), regex, replacement)
    }

    /// Whether `topic` is routed (matches the whole regex).
    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }

    pub(crate) fn route(&self, topic: &Arc<str>) -> Arc<str> {
        if let Some(t) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return t.clone();
        }
        let routed: Arc<str> = if self.regex.is_match(topic) {
            Arc::from(
                self.regex
                    .replace(topic, self.replacement.as_str())
                    .as_ref(),
            )
        } else {
            topic.clone()
        };
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.clone(), routed.clone());
        routed
    }
}

/// Java writes `$1abc` for group 1 followed by `abc`; the regex crate would read a group
/// named `1abc`, so groups are braced.
fn java_replacement(java: &str) -> String {
    let mut out = String::with_capacity(java.len() + 4);
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            // A named group, `${name}`, reads the same in both.
            '$' if chars.peek() == Some(&'{') => {
                out.push('$');
                for c in chars.by_ref() {
                    out.push(c);
                    if c == '}' {
                        break;
                    }
                }
            }
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push_str("${");
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    out.push(d);
                }
                out.push('}');
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

impl Transform for RegexRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, Error> {
        record.topic = self.route(&record.topic);
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn routes_whole_matches_with_java_groups() {
        let r = RegexRouter::new(r"shop\.public\.(.*)", "cdc_$1x").unwrap();
        let rec = |t: &str| Record::new(Arc::from(t), None, Value::Null);
        let out = r.apply(rec("shop.public.orders")).unwrap().unwrap();
        assert_eq!(&*out.topic, "cdc_ordersx");
        // Partial matches leave the topic alone, as Java's matches() does.
        let out = r.apply(rec("xshop.public.orders")).unwrap().unwrap();
        assert_eq!(&*out.topic, "xshop.public.orders");
        let named = RegexRouter::new("(?<kind>.*)", "outbox.event.${kind}").unwrap();
        let out = named.apply(rec("order")).unwrap().unwrap();
        assert_eq!(&*out.topic, "outbox.event.order");
    }

    #[test]
    fn invalid_regex_names_the_key() {
        let p = crate::properties::Properties::from_pairs([
            ("transforms.r.regex", "("),
            ("transforms.r.replacement", "x"),
        ]);
        let e = RegexRouter::from_props(&p.scope("transforms.r.")).unwrap_err();
        assert!(e.to_string().contains("transforms.r.regex"), "{e}");
    }
}
