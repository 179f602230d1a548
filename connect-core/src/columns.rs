//! Column filters and masks shared by the connectors: `column.include.list`,
//! `column.exclude.list`, `column.mask.with.N.chars` and
//! `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`, matched against
//! `<schema or database>.<table>.<column>`, with Debezium's hashing.

use regex::Regex;

use crate::error::Error;
use crate::properties::{whole_match_regex, whole_match_regexes, Scope};

/// A hash function of `column.mask.hash.<algorithm>.with.salt.<salt>` (Java's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `MD5`.
    Md5,
    /// `SHA-1`.
    Sha1,
    /// `SHA-256`.
    Sha256,
    /// `SHA-384`.
    Sha384,
    /// `SHA-512`.
    Sha512,
}

impl HashAlgorithm {
    /// Parses Java's `MessageDigest` name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "MD5" => HashAlgorithm::Md5,
            "SHA-1" | "SHA1" | "SHA" => HashAlgorithm::Sha1,
            "SHA-256" => HashAlgorithm::Sha256,
            "SHA-384" => HashAlgorithm::Sha384,
            "SHA-512" => HashAlgorithm::Sha512,
            _ => return None,
        })
    }

    fn digest(self, salt: &[u8], data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        fn run<D: Digest>(salt: &[u8], data: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update(salt);
            d.update(data);
            d.finalize().to_vec()
        }
        match self {
            HashAlgorithm::Md5 => run::<md5::Md5>(salt, data),
            HashAlgorithm::Sha1 => run::<sha1::Sha1>(salt, data),
            HashAlgorithm::Sha256 => run::<sha2::Sha256>(salt, data),
            HashAlgorithm::Sha384 => run::<sha2::Sha384>(salt, data),
            HashAlgorithm::Sha512 => run::<sha2::Sha512>(salt, data),
        }
    }
}

/// How a masked column's string values are replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    /// `column.mask.with.N.chars`: N asterisks.
    Chars(usize),
    /// `column.mask.hash[.v2].<algorithm>.with.salt.<salt>`: the hex digest of the salt
    /// followed by the value (v1: the value as Java serialises a `String`, Debezium's
    /// default; v2: its UTF-8 bytes), cut to the column's length.
    Hash {
        /// The hash function.
        algorithm: HashAlgorithm,
        /// The salt.
        salt: Vec<u8>,
        /// Debezium's v2 byte strategy.
        v2: bool,
    },
}

impl Mask {
    /// The masked form of a string value (`max_chars`: the column's length, if bounded).
    pub fn apply(&self, value: &str, max_chars: Option<usize>) -> String {
        match self {
            Mask::Chars(n) => "*".repeat(*n),
            Mask::Hash {
                algorithm,
                salt,
                v2,
            } => {
                let data = if *v2 {
                    value.as_bytes().to_vec()
                } else {
                    java_serialized_string(value)
                };
                let mut hex: String = algorithm
                    .digest(salt, &data)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if let Some(n) = max_chars {
                    hex.truncate(n);
                }
                hex
            }
        }
    }
}

/// A `String` as `ObjectOutputStream.writeObject` writes it: stream header, then
/// `TC_STRING` with a 2-byte length (or `TC_LONGSTRING` with 8) and modified UTF-8.
fn java_serialized_string(s: &str) -> Vec<u8> {
    let mut utf = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007f => utf.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                utf.push(0xc0 | (unit >> 6) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                utf.push(0xe0 | (unit >> 12) as u8);
                utf.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                utf.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    let mut out = vec![0xac, 0xed, 0x00, 0x05];
    if utf.len() <= 0xffff {
        out.push(0x74);
        out.extend_from_slice(&(utf.len() as u16).to_be_bytes());
    } else {
        out.push(0x7c);
        out.extend_from_slice(&(utf.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&utf);
    out
}

/// Column filters and masks (`column.include.list`, `column.exclude.list`,
/// `column.mask.with.N.chars`, `column.mask.hash...`), matched against `schema.table.column`.
#[derive(Debug, Clone, Default)]
pub struct ColumnFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    masks: Vec<(Regex, Mask)>,
}

impl ColumnFilter {
    /// Whether a column is captured.
    pub fn keeps(&self, schema: &str, table: &str, column: &str) -> bool {
        let full = format!("{schema}.{table}.{column}");
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(&full)))
            && !self.exclude.iter().any(|r| r.is_match(&full))
    }

    /// The mask of a column, if it is masked.
    pub fn mask(&self, schema: &str, table: &str, column: &str) -> Option<&Mask> {
        let full = format!("{schema}.{table}.{column}");
        self.masks
            .iter()
            .find(|(r, _)| r.is_match(&full))
            .map(|(_, m)| m)
    }

    /// Captures only columns matching these regexes.
    pub fn with_include<'a>(
        mut self,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        self.include = whole_match_regexes("column.include.list", patterns)?;
        Ok(self)
    }

    /// Leaves out columns matching these regexes.
    pub fn with_exclude<'a>(
        mut self,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        self.exclude = whole_match_regexes("column.exclude.list", patterns)?;
        Ok(self)
    }

    /// Replaces string values of matching columns by `n` asterisks.
    pub fn with_mask<'a>(
        self,
        n: usize,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        self.with_masking(
            &format!("column.mask.with.{n}.chars"),
            Mask::Chars(n),
            patterns,
        )
    }

    /// Masks string values of matching columns as `mask` says; `key` names the property
    /// in errors.
    pub fn with_masking<'a>(
        mut self,
        key: &str,
        mask: Mask,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, Error> {
        for r in whole_match_regexes(key, patterns)? {
            self.masks.push((r, mask.clone()));
        }
        Ok(self)
    }

    /// Reads Debezium's `column.*` keys; errors name the key.
    pub fn from_props(p: &Scope<'_>) -> Result<Self, Error> {
        let mut filter = ColumnFilter::default()
            .with_include(p.list("column.include.list"))?
            .with_exclude(p.list("column.exclude.list"))?;
        let mask_prefix = p.key("column.mask.with.");
        for (suffix, columns) in p.properties().take_prefixed(&mask_prefix) {
            let key = format!("{mask_prefix}{suffix}");
            let n = suffix
                .strip_suffix(".chars")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Error::config(&key, "expected column.mask.with.<N>.chars"))?;
            filter = filter.with_masking(&key, Mask::Chars(n), split_list(&columns))?;
        }
        let hash_prefix = p.key("column.mask.hash.");
        for (suffix, columns) in p.properties().take_prefixed(&hash_prefix) {
            let key = format!("{hash_prefix}{suffix}");
            let (v2, rest) = match suffix.strip_prefix("v2.") {
                Some(rest) => (true, rest),
                None => (false, suffix.as_str()),
            };
            let (algorithm, salt) = rest.split_once(".with.salt.").ok_or_else(|| {
                Error::config(
                    &key,
                    "expected column.mask.hash[.v2].<algorithm>.with.salt.<salt>",
                )
            })?;
            let algorithm = HashAlgorithm::parse(algorithm).ok_or_else(|| {
            Error::config(
                &key,
                format!("unsupported hash algorithm `{algorithm}` (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"),
            )
        })?;
            let mask = Mask::Hash {
                algorithm,
                salt: salt.as_bytes().to_vec(),
                v2,
            };
            filter = filter.with_masking(&key, mask, split_list(&columns))?;
        }
        Ok(filter)
    }
}

fn split_list(list: &str) -> Vec<&str> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `message.key.columns`: per table (a `<schema or database>.<table>` regex), the columns
/// forming the key instead of the primary key.
#[derive(Debug, Clone, Default)]
pub struct MessageKeyColumns(Vec<(Regex, Vec<String>)>);

impl MessageKeyColumns {
    /// Parses `<table regex>:<column>,<column>;<table regex>:<column>`.
    pub fn parse(key: &str, text: &str) -> Result<Self, Error> {
        let mut out = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (table, columns) = entry.rsplit_once(':').ok_or_else(|| {
                Error::config(
                    key,
                    format!("`{entry}`: expected <table regex>:<column>,..."),
                )
            })?;
            let columns: Vec<String> = columns
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            if columns.is_empty() {
                return Err(Error::config(key, format!("`{entry}` names no column")));
            }
            out.push((whole_match_regex(key, table.trim())?, columns));
        }
        Ok(MessageKeyColumns(out))
    }

    /// The key columns configured for `schema.table` (`database.table`), if any.
    pub fn for_table(&self, schema: &str, table: &str) -> Option<&[String]> {
        let full = format!("{schema}.{table}");
        self.0
            .iter()
            .find(|(r, _)| r.is_match(&full))
            .map(|(_, c)| c.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_masks_match_debezium_on_a_jvm() {
        // Expected digests computed with Java's MessageDigest over salt + the value as
        // ObjectOutputStream writes it (v1) or its UTF-8 bytes (v2).
        let value = "héllo\u{0}😀";
        let salt = b"CzQMA0cB5K".to_vec();
        for (algorithm, v2, expected) in [
            (
                HashAlgorithm::Sha256,
                false,
                "572d54aca64b985309b169f6bafaf88c9d33594b33f10f96e55c64f263f3439d",
            ),
            (
                HashAlgorithm::Sha256,
                true,
                "4325cfc1bc5b45290180e26be384fa0a09ac1cf7d6262d9b60443d58df8db681",
            ),
            (
                HashAlgorithm::Md5,
                false,
                "95e677ee856bbc0140505c111fcc59ce",
            ),
            (
                HashAlgorithm::Sha1,
                true,
                "450615dc2db510256e98ba52e8f6080755d0f5c8",
            ),
        ] {
            let mask = Mask::Hash {
                algorithm,
                salt: salt.clone(),
                v2,
            };
            assert_eq!(mask.apply(value, None), expected, "{algorithm:?} v2={v2}");
            assert_eq!(mask.apply(value, Some(8)), &expected[..8]);
        }
    }
}
