//! Debezium / Kafka Connect properties: a flat string map whose every key must be
//! understood by someone. Each reader marks the keys it reads; whatever no reader took is
//! rejected by name ([`Properties::reject_unused`]).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::error::Error;

/// A properties map with read tracking.
#[derive(Debug, Default)]
pub struct Properties {
    map: BTreeMap<String, String>,
    used: RefCell<BTreeSet<String>>,
}

impl Properties {
    /// Properties from key/value pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Properties {
            map: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            used: RefCell::default(),
        }
    }

    /// Parses the text of a Java `.properties` file: `key=value` or `key: value` lines,
    /// `#`/`!` comments, `\` line continuations and `\t \n \\ \uXXXX` escapes.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        let mut logical = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_start();
            if logical.is_empty()
                && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
            {
                continue;
            }
            let trailing_backslashes = line.chars().rev().take_while(|&c| c == '\\').count();
            if trailing_backslashes % 2 == 1 {
                logical.push_str(&line[..line.len() - 1]);
                continue;
            }
            logical.push_str(line);
            let (k, v) = split_key_value(&logical);
            let key = unescape(k).map_err(|m| Error::config(format!("line {}", n + 1), m))?;
            let value = unescape(v).map_err(|m| Error::config(key.clone(), m))?;
            map.insert(key, value);
            logical.clear();
        }
        Ok(Properties {
            map,
            used: RefCell::default(),
        })
    }

    /// Reads and parses a properties file; errors name the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("cannot read properties file", path, e))?;
        Self::parse(&text)
    }

    /// All keys and values, read or not.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A view of the keys under `prefix` (e.g. `transforms.unwrap.`).
    pub fn scope(&self, prefix: &str) -> Scope<'_> {
        Scope {
            props: self,
            prefix: prefix.to_owned(),
        }
    }

    /// The root view (no prefix).
    pub fn root(&self) -> Scope<'_> {
        self.scope("")
    }

    /// Marks every key under `prefix` as read (for pass-through groups such as `producer.*`)
    /// and returns them with the prefix removed.
    pub fn take_prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        let mut used = self.used.borrow_mut();
        self.map
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| {
                used.insert(k.clone());
                (k[prefix.len()..].to_owned(), v.clone())
            })
            .collect()
    }

    /// Fails naming every key no reader took.
    pub fn reject_unused(&self) -> Result<(), Error> {
        let used = self.used.borrow();
        let unknown: Vec<&str> = self
            .map
            .keys()
            .filter(|k| !used.contains(*k))
            .map(String::as_str)
            .collect();
        match unknown.as_slice() {
            [] => Ok(()),
            [one] => Err(Error::config(*one, "unknown property")),
            [first, rest @ ..] => Err(Error::config(
                *first,
                format!("unknown property (also unknown: {})", rest.join(", ")),
            )),
        }
    }

    fn read(&self, key: &str) -> Option<&str> {
        let v = self.map.get(key)?;
        self.used.borrow_mut().insert(key.to_owned());
        Some(v.as_str())
    }
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' => return (line[..i].trim_end(), line[i + 1..].trim_start()),
            b' ' | b'\t' => {
                let key = &line[..i];
                let rest = line[i..].trim_start();
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (key, rest.trim_start());
            }
            _ => i += 1,
        }
    }
    (line, "")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape `\\u{hex}`"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// A regex that must match a whole name (as Java's `Matcher.matches()`), for include/exclude
/// lists, routers and predicates; an invalid pattern is a config error naming `key`.
pub fn whole_match_regex(key: &str, pattern: &str) -> Result<regex::Regex, Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| Error::config(key, format!("invalid regex `{pattern}`: {e}")))
}

/// [`whole_match_regex`] of each pattern of a list (`table.include.list` and the like).
pub fn whole_match_regexes<'a>(
    key: &str,
    patterns: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<regex::Regex>, Error> {
    patterns
        .into_iter()
        .map(|p| whole_match_regex(key, p))
        .collect()
}

/// Keys under a prefix. Errors name the full key.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    props: &'a Properties,
    prefix: String,
}

impl<'a> Scope<'a> {
    /// The full key for a name in this scope.
    pub fn key(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// A nested scope.
    pub fn scope(&self, name: &str) -> Scope<'a> {
        Scope {
            props: self.props,
            prefix: self.key(name),
        }
    }

    /// The value of a key, marking it read. Empty values count as absent, as in Connect.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.props.read(&self.key(name)).filter(|v| !v.is_empty())
    }

    /// A required key.
    pub fn require(&self, name: &str) -> Result<&'a str, Error> {
        self.get(name)
            .ok_or_else(|| Error::config(self.key(name), "is required"))
    }

    /// A parsed key with a default; the error names the key and the bad value.
    pub fn parse_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|e| Error::config(self.key(name), format!("invalid value `{v}`: {e}"))),
        }
    }

    /// A boolean key (`true`/`false`, any case).
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(Error::config(
                self.key(name),
                format!("invalid value `{v}`: expected true or false"),
            )),
        }
    }

    /// A duration in milliseconds.
    pub fn millis_or(&self, name: &str, default: Duration) -> Result<Duration, Error> {
        let ms: u64 = self.parse_or(name, default.as_millis() as u64)?;
        Ok(Duration::from_millis(ms))
    }

    /// A comma-separated list (items trimmed, empty items dropped).
    pub fn list(&self, name: &str) -> Vec<&'a str> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A required comma-separated list: absent or empty is an error naming the key.
    pub fn require_list(&self, name: &str) -> Result<Vec<String>, Error> {
        let items: Vec<String> = self.list(name).into_iter().map(str::to_owned).collect();
        if items.is_empty() {
            return Err(Error::config(self.key(name), "is required"));
        }
        Ok(items)
    }

    /// One of a fixed set of values (case-insensitive); the error lists them.
    pub fn one_of<'v>(
        &self,
        name: &str,
        allowed: &[&'v str],
        default: &'v str,
    ) -> Result<&'v str, Error> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(v.trim()))
                .copied()
                .ok_or_else(|| {
                    Error::config(
                        self.key(name),
                        format!("invalid value `{v}` (accepted: {})", allowed.join(", ")),
                    )
                }),
        }
    }

    /// The underlying properties.
    pub fn properties(&self) -> &'a Properties {
        self.props
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties_syntax() {
        let p = Properties::parse(
            "# comment\n! other\nname = quick\nfile: /tmp/a\\\n  b.txt\nspaced value\nunicode=caf\\u00e9\nempty=\n",
        )
        .unwrap();
        let root = p.root();
        assert_eq!(root.get("name"), Some("quick"));
        assert_eq!(root.get("file"), Some("/tmp/ab.txt"));
        assert_eq!(root.get("spaced"), Some("value"));
        assert_eq!(root.get("unicode"), Some("café"));
        assert_eq!(root.get("empty"), None);
        assert!(p.reject_unused().is_ok());
    }

    #[test]
    fn unknown_and_invalid_keys_are_named() {
        let p = Properties::from_pairs([("tasks.max", "x"), ("tasks.mux", "1")]);
        let e = p.root().parse_or::<u32>("tasks.max", 1).unwrap_err();
        assert!(e.to_string().contains("`tasks.max`"), "{e}");
        let e = p.reject_unused().unwrap_err();
        assert!(e.to_string().contains("`tasks.mux`"), "{e}");
    }

    #[test]
    fn one_of_lists_accepted_values() {
        let p = Properties::from_pairs([("errors.tolerance", "some")]);
        let e = p
            .root()
            .one_of("errors.tolerance", &["none", "all"], "none")
            .unwrap_err();
        assert!(e.to_string().contains("none, all"), "{e}");
    }
}
