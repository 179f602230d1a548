//! MySQL's GTID sets (`3e11fa47-...:1-5:7,...`): the transactions a MySQL reader has
//! seen, kept in the offset's `gtids` and sent to resume (`COM_BINLOG_DUMP_GTID`), so a
//! stored offset survives a failover to a replica whose binlog files differ. MariaDB's
//! GTIDs (`domain-server-seq`) are handled by the binlog reader itself.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use mysql_common::packets::Sid;

/// A MySQL GTID set: per source UUID, the executed transaction numbers as inclusive
/// intervals, sorted and merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MySqlGtidSet(BTreeMap<String, Vec<(u64, u64)>>);

/// Whether a `gtids` offset value is a MySQL GTID set (MariaDB's have no `:`).
pub fn is_mysql_gtid_set(text: &str) -> bool {
    text.contains(':')
}

/// The text form of a 16-byte source id.
pub fn uuid_text(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl MySqlGtidSet {
    /// Parses `uuid:1-5:7,uuid2:1-3` (whitespace and newlines, as `SHOW MASTER STATUS`
    /// prints long sets, are ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut set = MySqlGtidSet::default();
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        for item in compact.split(',').filter(|i| !i.is_empty()) {
            let mut parts = item.split(':');
            let uuid = parts.next().unwrap_or_default().to_ascii_lowercase();
            if uuid.len() != 36 {
                return Err(format!("`{item}`: not a MySQL GTID set entry"));
            }
            for interval in parts {
                let bad = || format!("`{item}`: bad interval `{interval}`");
                let (start, end) = match interval.split_once('-') {
                    Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
                    None => {
                        let n = interval.parse().map_err(|_| bad())?;
                        (n, n)
                    }
                };
                if start == 0 || end < start {
                    return Err(bad());
                }
                set.add_interval(&uuid, start, end);
            }
        }
        Ok(set)
    }

    /// Whether it holds no transaction.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds transaction `gno` of source `uuid`.
    pub fn add(&mut self, uuid: &str, gno: u64) {
        self.add_interval(uuid, gno, gno);
    }

    fn add_interval(&mut self, uuid: &str, start: u64, end: u64) {
        let intervals = self.0.entry(uuid.to_owned()).or_default();
        intervals.push((start, end));
        intervals.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
        for &(s, e) in intervals.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *intervals = merged;
    }

    /// The set without the sources `keep` refuses (`gtid.source.includes`/`excludes`).
    pub fn sources(&self, keep: impl Fn(&str) -> bool) -> MySqlGtidSet {
        MySqlGtidSet(
            self.0
                .iter()
                .filter(|(uuid, _)| keep(uuid))
                .map(|(uuid, intervals)| (uuid.clone(), intervals.clone()))
                .collect(),
        )
    }

    /// The set as the server's replication protocol takes it.
    pub fn sids(&self) -> Result<Vec<Sid<'static>>, String> {
        self.to_string()
            .split(',')
            .filter(|i| !i.is_empty())
            .map(|item| Sid::from_str(item).map_err(|e| format!("`{item}`: {e}")))
            .collect()
    }
}

impl fmt::Display for MySqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (uuid, intervals)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(uuid)?;
            for (start, end) in intervals {
                if start == end {
                    write!(f, ":{start}")?;
                } else {
                    write!(f, ":{start}-{end}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4f22ab58-82db-22f2-af44-d91bb0530673";

    #[test]
    fn parses_merges_and_prints_mysql_gtid_sets() {
        let mut set =
            MySqlGtidSet::parse(&format!("{B}:1-3,\n{}:1-5:7", A.to_uppercase())).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-5:7,{B}:1-3"));
        set.add(A, 6);
        set.add(B, 5);
        set.add(B, 4);
        assert_eq!(set.to_string(), format!("{A}:1-7,{B}:1-5"));
        let sids = set.sids().unwrap();
        assert_eq!(sids.len(), 2);
        assert_eq!(sids[0].to_string(), format!("{A}:1-7"));
        assert!(is_mysql_gtid_set(&set.to_string()) && !is_mysql_gtid_set("0-1-5,1-1-2"));
        assert_eq!(
            set.sources(|uuid| uuid == B).to_string(),
            format!("{B}:1-5")
        );
        for bad in [
            "0-1-5",
            &format!("{A}:x"),
            &format!("{A}:5-3"),
            &format!("{A}:0"),
        ] {
            assert!(MySqlGtidSet::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            uuid_text(&[
                0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42,
                0x95, 0x62
            ]),
            A
        );
    }
}
