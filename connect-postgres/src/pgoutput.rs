//! A decoder for the pgoutput messages (protocol v1) that pgwire-replication hands over
//! as raw bytes: Relation, Type, Origin, Insert, Update, Delete, Truncate. Column values
//! are slices of the received buffer (no copy). Malformed input is an error, never a panic.

use bytes::{Buf, Bytes};

/// A malformed pgoutput message.
#[derive(Debug, thiserror::Error)]
#[error("malformed pgoutput `{tag}` message: {detail}")]
pub struct DecodeError {
    /// The message tag (`R`, `I`, ...).
    pub tag: char,
    /// What was wrong.
    pub detail: String,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change (not sent).
    UnchangedToast,
    /// The value in PostgreSQL's text output format.
    Text(Bytes),
    /// The value in binary format (only with `binary 'true'`).
    Binary(Bytes),
}

/// A column of a relation.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationColumn {
    /// Part of the replica identity (the key).
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (e.g. precision/scale of numeric), -1 if none.
    pub type_modifier: i32,
}

/// A Relation message: the table's current definition, sent before its first change and
/// after every schema change.
#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// Table OID.
    pub id: u32,
    /// Schema name.
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A relation definition.
    Relation(Relation),
    /// A user-defined type (`oid`, `namespace`, `name`).
    Type {
        /// Type OID.
        oid: u32,
        /// Schema of the type.
        namespace: String,
        /// Type name.
        name: String,
    },
    /// Origin of a transaction replayed from another node.
    Origin {
        /// Commit LSN on the origin.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// An insert.
    Insert {
        /// Relation OID.
        relation: u32,
        /// The new row.
        new: Vec<Column>,
    },
    /// An update.
    Update {
        /// Relation OID.
        relation: u32,
        /// The old row: its key columns only (`key_only`) or the full row (REPLICA
        /// IDENTITY FULL); absent when the key did not change under DEFAULT identity.
        old: Option<Vec<Column>>,
        /// Whether `old` holds only the key columns.
        key_only: bool,
        /// The new row.
        new: Vec<Column>,
    },
    /// A delete.
    Delete {
        /// Relation OID.
        relation: u32,
        /// The old row (key columns only, or full).
        old: Vec<Column>,
        /// Whether `old` holds only the key columns.
        key_only: bool,
    },
    /// A truncate of one or more relations.
    Truncate {
        /// Relation OIDs.
        relations: Vec<u32>,
        /// `CASCADE` was given.
        cascade: bool,
        /// `RESTART IDENTITY` was given.
        restart_identity: bool,
    },
    /// A message this decoder does not need (e.g. Begin/Commit, decoded by the client).
    Other(u8),
}

struct Reader {
    tag: char,
    buf: Bytes,
}

impl Reader {
    fn err(&self, detail: impl Into<String>) -> DecodeError {
        DecodeError {
            tag: self.tag,
            detail: detail.into(),
        }
    }

    fn need(&self, n: usize, what: &str) -> Result<(), DecodeError> {
        if self.buf.remaining() < n {
            return Err(self.err(format!("truncated before {what}")));
        }
        Ok(())
    }

    fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    fn i16(&mut self, what: &str) -> Result<i16, DecodeError> {
        self.need(2, what)?;
        Ok(self.buf.get_i16())
    }

    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    fn i32(&mut self, what: &str) -> Result<i32, DecodeError> {
        self.need(4, what)?;
        Ok(self.buf.get_i32())
    }

    fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        self.need(8, what)?;
        Ok(self.buf.get_u64())
    }

    fn cstr(&mut self, what: &str) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err(format!("unterminated {what}")))?;
        let s = std::str::from_utf8(&self.buf[..end])
            .map_err(|_| self.err(format!("{what} is not UTF-8")))?
            .to_owned();
        self.buf.advance(end + 1);
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Vec<Column>, DecodeError> {
        let n = self.i16("column count")?;
        if n < 0 {
            return Err(self.err("negative column count"));
        }
        let mut cols = Vec::with_capacity(n as usize);
        for _ in 0..n {
            cols.push(match self.u8("column kind")? {
                b'n' => Column::Null,
                b'u' => Column::UnchangedToast,
                kind @ (b't' | b'b') => {
                    let len = self.i32("value length")?;
                    if len < 0 {
                        return Err(self.err("negative value length"));
                    }
                    self.need(len as usize, "value")?;
                    let v = self.buf.split_to(len as usize);
                    if kind == b't' {
                        Column::Text(v)
                    } else {
                        Column::Binary(v)
                    }
                }
                other => return Err(self.err(format!("unknown column kind `{}`", other as char))),
            });
        }
        Ok(cols)
    }
}

/// Decodes one pgoutput message.
pub fn decode(data: Bytes) -> Result<Message, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError {
            tag: '?',
            detail: "empty message".into(),
        });
    };
    let mut r = Reader {
        tag: tag as char,
        buf: data.slice(1..),
    };
    Ok(match tag {
        b'R' => {
            let id = r.u32("relation id")?;
            let namespace = r.cstr("namespace")?;
            let name = r.cstr("relation name")?;
            let replica_identity = r.u8("replica identity")?;
            let n = r.i16("column count")?;
            let mut columns = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n {
                let flags = r.u8("column flags")?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.cstr("column name")?,
                    type_oid: r.u32("type oid")?,
                    type_modifier: r.i32("type modifier")?,
                });
            }
            Message::Relation(Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32("type oid")?,
            namespace: r.cstr("type namespace")?,
            name: r.cstr("type name")?,
        },
        b'O' => Message::Origin {
            lsn: r.u64("origin lsn")?,
            name: r.cstr("origin name")?,
        },
        b'I' => {
            let relation = r.u32("relation id")?;
            match r.u8("tuple marker")? {
                b'N' => {}
                other => return Err(r.err(format!("expected `N`, got `{}`", other as char))),
            }
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32("relation id")?;
            let (old, key_only) = match r.u8("tuple marker")? {
                b'K' => (Some(r.tuple()?), true),
                b'O' => (Some(r.tuple()?), false),
                b'N' => (None, false),
                other => return Err(r.err(format!("unexpected tuple marker `{}`", other as char))),
            };
            if old.is_some() {
                match r.u8("new tuple marker")? {
                    b'N' => {}
                    other => return Err(r.err(format!("expected `N`, got `{}`", other as char))),
                }
            }
            Message::Update {
                relation,
                old,
                key_only,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32("relation id")?;
            let key_only = match r.u8("tuple marker")? {
                b'K' => true,
                b'O' => false,
                other => return Err(r.err(format!("unexpected tuple marker `{}`", other as char))),
            };
            Message::Delete {
                relation,
                old: r.tuple()?,
                key_only,
            }
        }
        b'T' => {
            let n = r.u32("relation count")?;
            let options = r.u8("options")?;
            let mut relations = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                relations.push(r.u32("relation id")?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 != 0,
                restart_identity: options & 2 != 0,
            }
        }
        other => Message::Other(other),
    })
}

/// One field of a `COPY ... TO STDOUT` text row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyField {
    /// `\N`.
    Null,
    /// The field is `row[start..end]` as is (no escapes).
    Plain(usize, usize),
    /// The field had escapes: its unescaped bytes.
    Unescaped(Bytes),
}

/// Splits a `COPY ... TO STDOUT` text row (one CopyData message, tab-separated, `\N` for
/// NULL, backslash escapes) into its fields, without allocating for plain ones.
pub fn copy_fields(row: &Bytes) -> impl Iterator<Item = Result<CopyField, DecodeError>> + '_ {
    let line_end = match row.last() {
        Some(b'\n') => row.len() - 1,
        _ => row.len(),
    };
    let line = &row[..line_end];
    let mut start = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let end = match line[start..].iter().position(|&b| b == b'\t') {
            Some(i) => start + i,
            None => {
                done = true;
                line.len()
            }
        };
        let field = &line[start..end];
        let item = if field == b"\\N" {
            Ok(CopyField::Null)
        } else if field.contains(&b'\\') {
            unescape_copy(field)
                .map(CopyField::Unescaped)
                .ok_or_else(|| DecodeError {
                    tag: 'c',
                    detail: format!("bad escape in `{}`", String::from_utf8_lossy(field)),
                })
        } else {
            Ok(CopyField::Plain(start, end))
        };
        start = end + 1;
        Some(item)
    })
}

/// The signature a binary `COPY`'s output starts with.
const BINARY_COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The message that ends a binary `COPY` (a field count of -1).
pub const BINARY_COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// The first message of a binary `COPY` without the file header it starts with (its
/// signature, flags and header extension); other messages as they are.
pub fn strip_binary_copy_header(first: Bytes) -> Bytes {
    let Some(rest) = first.strip_prefix(BINARY_COPY_SIGNATURE) else {
        return first;
    };
    let header = rest.get(4..8).map(|len| {
        BINARY_COPY_SIGNATURE.len()
            + 8
            + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize
    });
    match header {
        Some(header) if header <= first.len() => first.slice(header..),
        _ => first,
    }
}

/// Splits a binary `COPY` row (a field count, then per field its length, -1 for NULL, and
/// its bytes) into its fields, each a range of `row`; a malformed row ends with an error.
pub fn binary_copy_fields(
    row: &Bytes,
) -> impl Iterator<Item = Result<CopyField, DecodeError>> + '_ {
    let mut left = row
        .get(..2)
        .map(|c| i16::from_be_bytes([c[0], c[1]]).max(0));
    let mut pos = 2;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let field = match left.as_mut() {
            None => Err("no field count"),
            Some(0) if pos == row.len() => return None,
            Some(0) => Err("bytes after the last field"),
            Some(n) => {
                *n -= 1;
                next_binary_field(row, &mut pos)
            }
        };
        failed = field.is_err();
        Some(field.map_err(|detail| DecodeError {
            tag: 'c',
            detail: format!("binary COPY row: {detail}"),
        }))
    })
}

/// The binary `COPY` field at `pos` of `row`; `pos` moves past it.
fn next_binary_field(row: &[u8], pos: &mut usize) -> Result<CopyField, &'static str> {
    let len = row.get(*pos..*pos + 4).ok_or("truncated")?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    *pos += 4;
    let Ok(len) = usize::try_from(len) else {
        return Ok(CopyField::Null);
    };
    let start = *pos;
    *pos += len;
    if *pos > row.len() {
        return Err("truncated");
    }
    Ok(CopyField::Plain(start, *pos))
}

fn unescape_copy(field: &[u8]) -> Option<Bytes> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let e = *field.get(i)?;
        i += 1;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                if n == 0 {
                    return None;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_copy_rows_split_into_fields_and_lose_their_header() {
        let mut first = BINARY_COPY_SIGNATURE.to_vec();
        first.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2, 0xaa, 0xbb]); // flags, 2-byte extension
        let row = [
            &2i16.to_be_bytes()[..],
            &3i32.to_be_bytes(),
            b"abc",
            &(-1i32).to_be_bytes(),
        ]
        .concat();
        first.extend_from_slice(&row);
        let row = strip_binary_copy_header(Bytes::from(first));
        assert_eq!(
            binary_copy_fields(&row)
                .collect::<Result<Vec<_>, _>>()
                .unwrap(),
            [CopyField::Plain(6, 9), CopyField::Null]
        );
        assert_eq!(&row[6..9], b"abc");
        // Not a header: left as it is.
        let plain = Bytes::from_static(b"1\tx\n");
        assert_eq!(strip_binary_copy_header(plain.clone()), plain);
        // Malformed rows are errors, not panics.
        for bad in [&[0u8][..], &[0, 1, 0, 0, 0, 5, b'a'], &[0, 0, 9]] {
            let bad = Bytes::copy_from_slice(bad);
            assert!(binary_copy_fields(&bad).any(|f| f.is_err()), "{bad:?}");
        }
    }

    #[test]
    fn copy_rows_split_unescape_and_borrow() {
        let row = Bytes::from_static(b"1\ta\\tb\\\\c\t\\N\tplain\n");
        let fields: Vec<CopyField> = copy_fields(&row).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            fields,
            [
                CopyField::Plain(0, 1),
                CopyField::Unescaped(Bytes::from_static(b"a\tb\\c")),
                CopyField::Null,
                CopyField::Plain(13, 18),
            ]
        );
        assert_eq!(&row[13..18], b"plain");
        assert!(copy_fields(&Bytes::from_static(b"a\\\n"))
            .next()
            .unwrap()
            .is_err());
    }

    fn tuple(out: &mut Vec<u8>, cols: &[Option<&str>]) {
        out.extend_from_slice(&(cols.len() as i16).to_be_bytes());
        for c in cols {
            match c {
                None => out.push(b'n'),
                Some("<toast>") => out.push(b'u'),
                Some(v) => {
                    out.push(b't');
                    out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    out.extend_from_slice(v.as_bytes());
                }
            }
        }
    }

    #[test]
    fn decodes_relation_and_changes() {
        let mut rel = vec![b'R'];
        rel.extend_from_slice(&16384u32.to_be_bytes());
        rel.extend_from_slice(b"public\0orders\0");
        rel.push(b'f');
        rel.extend_from_slice(&2i16.to_be_bytes());
        rel.push(1);
        rel.extend_from_slice(b"id\0");
        rel.extend_from_slice(&23u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        rel.push(0);
        rel.extend_from_slice(b"note\0");
        rel.extend_from_slice(&25u32.to_be_bytes());
        rel.extend_from_slice(&(-1i32).to_be_bytes());
        let Message::Relation(r) = decode(Bytes::from(rel)).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(
            (
                r.id,
                r.namespace.as_str(),
                r.name.as_str(),
                r.replica_identity
            ),
            (16384, "public", "orders", b'f')
        );
        assert!(r.columns[0].key && !r.columns[1].key);
        assert_eq!(r.columns[1].type_oid, 25);

        let mut upd = vec![b'U'];
        upd.extend_from_slice(&16384u32.to_be_bytes());
        upd.push(b'O');
        tuple(&mut upd, &[Some("1"), Some("old")]);
        upd.push(b'N');
        tuple(&mut upd, &[Some("1"), Some("<toast>")]);
        let m = decode(Bytes::from(upd)).unwrap();
        assert_eq!(
            m,
            Message::Update {
                relation: 16384,
                old: Some(vec![
                    Column::Text(Bytes::from_static(b"1")),
                    Column::Text(Bytes::from_static(b"old"))
                ]),
                key_only: false,
                new: vec![
                    Column::Text(Bytes::from_static(b"1")),
                    Column::UnchangedToast
                ],
            }
        );

        let mut del = vec![b'D'];
        del.extend_from_slice(&16384u32.to_be_bytes());
        del.push(b'K');
        tuple(&mut del, &[Some("7"), None]);
        assert!(matches!(
            decode(Bytes::from(del)).unwrap(),
            Message::Delete { key_only: true, .. }
        ));

        let mut tr = vec![b'T'];
        tr.extend_from_slice(&2u32.to_be_bytes());
        tr.push(3);
        tr.extend_from_slice(&1u32.to_be_bytes());
        tr.extend_from_slice(&2u32.to_be_bytes());
        assert_eq!(
            decode(Bytes::from(tr)).unwrap(),
            Message::Truncate {
                relations: vec![1, 2],
                cascade: true,
                restart_identity: true
            }
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut ins = vec![b'I'];
        ins.extend_from_slice(&1u32.to_be_bytes());
        ins.push(b'N');
        ins.extend_from_slice(&1i16.to_be_bytes());
        ins.push(b't');
        ins.extend_from_slice(&100i32.to_be_bytes());
        ins.extend_from_slice(b"short");
        let e = decode(Bytes::from(ins.clone())).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        // Every prefix of a valid message fails cleanly.
        let mut good = vec![b'I'];
        good.extend_from_slice(&1u32.to_be_bytes());
        good.push(b'N');
        tuple(&mut good, &[Some("42"), None]);
        assert!(decode(Bytes::from(good.clone())).is_ok());
        for cut in 0..good.len() {
            assert!(
                decode(Bytes::copy_from_slice(&good[..cut])).is_err(),
                "prefix {cut}"
            );
        }
    }
}
