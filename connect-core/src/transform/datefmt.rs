//! The part of Java's `SimpleDateFormat` that Kafka Connect's timestamp transforms are
//! configured with (`TimestampRouter`'s `timestamp.format`, `TimestampConverter`'s
//! `format`), always in UTC as Kafka sets them: `y M d H h m s S a E` and zone letters
//! `Z X`, quoted literals (`'T'`, `''`), anything else verbatim.

use crate::calendar::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MS_PER_DAY: i64 = 86_400_000;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    /// A pattern letter repeated `count` times.
    Letter(char, usize),
}

/// A parsed `SimpleDateFormat` pattern.
#[derive(Debug, Clone)]
pub struct DateFormat {
    items: Vec<Item>,
}

impl DateFormat {
    /// Parses a pattern; letters outside the supported set are an error naming them.
    pub fn new(pattern: &str) -> Result<DateFormat, String> {
        let mut items = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                let mut lit = String::new();
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    lit.push('\'');
                } else {
                    loop {
                        match chars.next() {
                            Some('\'') if chars.peek() == Some(&'\'') => {
                                chars.next();
                                lit.push('\'');
                            }
                            Some('\'') => break,
                            Some(ch) => lit.push(ch),
                            None => return Err(format!("unterminated quote in `{pattern}`")),
                        }
                    }
                }
                items.push(Item::Literal(lit));
            } else if c.is_ascii_alphabetic() {
                if !"yMdHhmsSaEZX".contains(c) {
                    return Err(format!(
                        "pattern letter `{c}` of `{pattern}` is not supported (supported: y M d H h m s S a E Z X)"
                    ));
                }
                let mut count = 1;
                while chars.next_if_eq(&c).is_some() {
                    count += 1;
                }
                items.push(Item::Letter(c, count));
            } else {
                items.push(Item::Literal(c.to_string()));
            }
        }
        Ok(DateFormat { items })
    }

    /// Formats milliseconds since the epoch in UTC.
    pub fn format(&self, epoch_ms: i64) -> String {
        let days = epoch_ms.div_euclid(MS_PER_DAY);
        let ms_of_day = epoch_ms.rem_euclid(MS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let mut out = String::with_capacity(24);
        for item in &self.items {
            match item {
                Item::Literal(s) => out.push_str(s),
                Item::Letter(c, n) => {
                    let n = *n;
                    match c {
                        'y' if n == 2 => pad(&mut out, y.rem_euclid(100), 2),
                        'y' => pad(&mut out, y, n),
                        'M' if n >= 4 => out.push_str(MONTHS[(m - 1) as usize]),
                        'M' if n == 3 => out.push_str(&MONTHS[(m - 1) as usize][..3]),
                        'M' => pad(&mut out, m, n),
                        'd' => pad(&mut out, d, n),
                        'H' => pad(&mut out, hour, n),
                        'h' => pad(&mut out, (hour + 11) % 12 + 1, n),
                        'm' => pad(&mut out, ms_of_day / 60_000 % 60, n),
                        's' => pad(&mut out, ms_of_day / 1000 % 60, n),
                        'S' => pad(&mut out, ms_of_day % 1000, n),
                        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
                        'E' => {
                            let name = DAYS[days.rem_euclid(7) as usize];
                            out.push_str(if n >= 4 { name } else { &name[..3] });
                        }
                        'Z' => out.push_str("+0000"),
                        'X' => out.push('Z'),
                        _ => unreachable!("letters are checked when parsing the pattern"),
                    }
                }
            }
        }
        out
    }

    /// Parses text in this format as UTC milliseconds since the epoch.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let bad = |why: &str| format!("`{text}` does not match the date format: {why}");
        let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut ms) = (1970, 1, 1, 0, 0, 0, 0);
        let mut pm = None;
        let mut twelve_hour = false;
        let mut offset_ms = 0i64;
        let mut rest = text;
        for (i, item) in self.items.iter().enumerate() {
            match item {
                Item::Literal(lit) => {
                    rest = rest
                        .strip_prefix(lit.as_str())
                        .ok_or_else(|| bad(&format!("expected `{lit}`")))?;
                }
                Item::Letter(c, n) => {
                    // A numeric field followed directly by another takes exactly its width.
                    let next_is_number = matches!(
                        self.items.get(i + 1),
                        Some(Item::Letter(c, _)) if "yMdHhmsS".contains(*c)
                    );
                    let mut number = || {
                        let digits = rest
                            .char_indices()
                            .take_while(|(j, ch)| {
                                ch.is_ascii_digit() || (*j == 0 && (*ch == '-' || *ch == '+'))
                            })
                            .count();
                        let width = if next_is_number {
                            digits.min(*n)
                        } else {
                            digits
                        };
                        let (num, tail) = rest.split_at(width);
                        rest = tail;
                        num.parse::<i64>()
                            .map_err(|_| bad(&format!("expected a number for `{c}`")))
                    };
                    match c {
                        'y' => {
                            y = number()?;
                            if *n == 2 {
                                y += 2000;
                            }
                        }
                        'M' if *n >= 3 => {
                            let found = MONTHS.iter().position(|name| {
                                let name = if *n == 3 { &name[..3] } else { name };
                                rest.starts_with(name)
                            });
                            let idx = found.ok_or_else(|| bad("expected a month name"))?;
                            rest = &rest[if *n == 3 { 3 } else { MONTHS[idx].len() }..];
                            mo = idx as i64 + 1;
                        }
                        'M' => mo = number()?,
                        'd' => d = number()?,
                        'H' => h = number()?,
                        'h' => {
                            h = number()?;
                            twelve_hour = true;
                        }
                        'm' => mi = number()?,
                        's' => s = number()?,
                        'S' => ms = number()?,
                        'a' => {
                            pm = Some(if rest.starts_with("PM") || rest.starts_with("pm") {
                                true
                            } else if rest.starts_with("AM") || rest.starts_with("am") {
                                false
                            } else {
                                return Err(bad("expected AM or PM"));
                            });
                            rest = &rest[2..];
                        }
                        'E' => {
                            let len = rest.chars().take_while(char::is_ascii_alphabetic).count();
                            rest = &rest[len..];
                        }
                        'Z' | 'X' => {
                            if let Some(tail) = rest.strip_prefix('Z') {
                                rest = tail;
                            } else {
                                let sign = match rest.as_bytes().first() {
                                    Some(b'+') => 1,
                                    Some(b'-') => -1,
                                    _ => return Err(bad("expected a zone offset")),
                                };
                                let digits: String = rest[1..]
                                    .chars()
                                    .take_while(|ch| ch.is_ascii_digit() || *ch == ':')
                                    .collect();
                                rest = &rest[1 + digits.len()..];
                                let digits = digits.replace(':', "");
                                let (hh, mm) = digits.split_at(digits.len().min(2));
                                let hh: i64 = hh.parse().map_err(|_| bad("bad zone offset"))?;
                                let mm: i64 = if mm.is_empty() {
                                    0
                                } else {
                                    mm.parse().map_err(|_| bad("bad zone offset"))?
                                };
                                offset_ms = sign * (hh * 3_600_000 + mm * 60_000);
                            }
                        }
                        _ => unreachable!("letters are checked when parsing the pattern"),
                    }
                }
            }
        }
        if !rest.is_empty() {
            return Err(bad(&format!("unexpected `{rest}` at the end")));
        }
        if twelve_hour || pm.is_some() {
            h %= 12;
            if pm == Some(true) {
                h += 12;
            }
        }
        let days = days_from_civil(y, mo, d);
        Ok(days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + s * 1000 + ms - offset_ms)
    }
}

fn pad(out: &mut String, v: i64, width: usize) {
    use std::fmt::Write as _;
    if v < 0 {
        let _ = write!(out, "-{:0width$}", -v, width = width);
    } else {
        let _ = write!(out, "{v:0width$}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_simple_date_format_in_utc() {
        // 2017-06-05T14:07:08.123Z, a Monday.
        let t = 1_496_671_628_123;
        let f = |p: &str| DateFormat::new(p).unwrap().format(t);
        assert_eq!(f("yyyyMMdd"), "20170605");
        assert_eq!(
            f("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"),
            "2017-06-05T14:07:08.123Z"
        );
        assert_eq!(f("yy/M/d h:mm a"), "17/6/5 2:07 PM");
        assert_eq!(
            f("EEE, d MMM yyyy HH:mm:ss Z"),
            "Mon, 5 Jun 2017 14:07:08 +0000"
        );
        assert_eq!(f("EEEE MMMM ''yy"), "Monday June '17");
        assert_eq!(DateFormat::new("yyyy").unwrap().format(-1), "1969");
    }

    #[test]
    fn parses_what_it_formats_and_zone_offsets() {
        for p in [
            "yyyyMMdd",
            "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'",
            "yyyyMMddHHmmssSSS",
            "EEE, d MMM yyyy hh:mm:ss.SSS a",
        ] {
            let f = DateFormat::new(p).unwrap();
            let t = if p == "yyyyMMdd" {
                1_496_620_800_000
            } else {
                1_496_671_628_123
            };
            assert_eq!(f.parse(&f.format(t)), Ok(t), "{p}");
        }
        let f = DateFormat::new("yyyy-MM-dd HH:mmXXX").unwrap();
        assert_eq!(
            f.parse("2017-06-05 16:07+02:00"),
            f.parse("2017-06-05 14:07Z")
        );
        assert!(f.parse("2017-06-05").unwrap_err().contains("2017-06-05"));
        assert!(DateFormat::new("yyyy-ww").unwrap_err().contains("`w`"));
    }
}
