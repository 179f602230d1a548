//! The schema history: each captured table's columns, recorded with the binlog position
//! from which they hold, as Debezium's history records (`tableChanges`), so a restart that
//! replays older binlog reads each row with the columns of its time.

use std::collections::BTreeMap;
use std::sync::Arc;

use connect_core::{Error, HistoryRecord, SchemaHistory, SourcePartition};
use serde_json::{json, Map, Value as Json};

use crate::ddl::{Catalog, TableChange, TableId};
use crate::stream::{gtid_seq, parse_gtid_set, Position};
use crate::types::ColumnInfo;

/// A shared [`SchemaHistory`] store (memory by default).
#[derive(Clone)]
pub struct HistoryStore(pub Arc<dyn SchemaHistory>);

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HistoryStore")
    }
}

impl Default for HistoryStore {
    fn default() -> Self {
        HistoryStore(Arc::new(connect_core::MemorySchemaHistory::new()))
    }
}

/// `java.sql.Types` of a column, as Debezium records it.
fn jdbc_type(data_type: &str) -> i32 {
    match data_type {
        "bit" => -7,
        "tinyint" => -6,
        "smallint" => 5,
        "mediumint" | "int" | "integer" | "year" => 4,
        "bigint" => -5,
        "decimal" | "numeric" => 3,
        "float" => 6,
        "double" | "real" => 8,
        "char" | "enum" | "set" => 1,
        "varchar" => 12,
        "tinytext" | "text" | "mediumtext" | "longtext" | "json" => -1,
        "binary" => -2,
        "varbinary" => -3,
        "tinyblob" | "blob" | "mediumblob" | "longblob" => -4,
        "date" => 91,
        "time" => 92,
        "datetime" | "timestamp" => 93,
        _ => 1111,
    }
}

/// What `length` holds for a type: precision, fraction digits or octets.
enum Length {
    Precision,
    Fraction,
    Octets,
    None,
}

fn length_kind(data_type: &str) -> Length {
    match data_type {
        "time" | "datetime" | "timestamp" => Length::Fraction,
        "binary" => Length::Octets,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
        | "numeric" | "float" | "double" | "real" | "bit" => Length::Precision,
        _ => Length::None,
    }
}

/// One entry of `tableChanges`: the table's columns after a change.
pub fn table_change(
    kind: &str,
    id: &TableId,
    previous: Option<&TableId>,
    columns: &[ColumnInfo],
) -> Json {
    let quoted = |id: &TableId| format!("\"{}\".\"{}\"", id.0, id.1);
    let key: Vec<&str> = columns
        .iter()
        .filter(|c| c.key)
        .map(|c| c.name.as_str())
        .collect();
    let columns: Vec<Json> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let length = match length_kind(&c.data_type) {
                Length::Precision => c.precision,
                Length::Fraction => c.fraction_digits,
                Length::Octets => c.octet_length,
                Length::None => None,
            };
            let labels = matches!(c.data_type.as_str(), "enum" | "set")
                .then(|| crate::types::enum_labels(&c.column_type));
            json!({
                "name": c.name,
                "jdbcType": jdbc_type(&c.data_type),
                "typeName": c.data_type.to_ascii_uppercase(),
                "typeExpression": c.column_type,
                "charsetName": null,
                "length": length,
                "scale": c.scale,
                "position": i + 1,
                "optional": c.nullable,
                "autoIncremented": false,
                "generated": false,
                "comment": null,
                "hasDefaultValue": c.default.is_some(),
                "defaultValueExpression": c.default,
                "enumValues": labels,
            })
        })
        .collect();
    let mut change = Map::new();
    change.insert("type".into(), Json::from(kind));
    if let Some(previous) = previous {
        change.insert("previousId".into(), Json::from(quoted(previous)));
    }
    change.insert("id".into(), Json::from(quoted(id)));
    change.insert(
        "table".into(),
        json!({
            "defaultCharsetName": null,
            "primaryKeyColumnNames": key,
            "columns": columns,
            "attributes": [],
        }),
    );
    change.insert("comment".into(), Json::Null);
    Json::Object(change)
}

fn unquote_id(id: &str) -> Option<TableId> {
    let (db, table) = id.split_once("\".\"")?;
    Some((
        db.strip_prefix('"')?.to_owned(),
        table.strip_suffix('"')?.to_owned(),
    ))
}

fn column_from_json(column: &Json, key: &[&str]) -> Option<ColumnInfo> {
    let name = column.get("name")?.as_str()?.to_owned();
    let data_type = column.get("typeName")?.as_str()?.to_ascii_lowercase();
    let length = column.get("length").and_then(Json::as_u64);
    let kind = length_kind(&data_type);
    Some(ColumnInfo {
        key: key.contains(&name.as_str()),
        name,
        column_type: column.get("typeExpression")?.as_str()?.to_owned(),
        precision: matches!(kind, Length::Precision)
            .then_some(length)
            .flatten(),
        scale: column.get("scale").and_then(Json::as_u64),
        fraction_digits: matches!(kind, Length::Fraction).then_some(length).flatten(),
        nullable: column.get("optional")?.as_bool()?,
        default: column
            .get("defaultValueExpression")
            .and_then(Json::as_str)
            .map(str::to_owned),
        octet_length: matches!(kind, Length::Octets).then_some(length).flatten(),
        data_type,
    })
}

/// Applies a record's `tableChanges` to the catalog.
pub fn apply_record(catalog: &mut Catalog, record: &HistoryRecord) -> Result<(), String> {
    for change in &record.table_changes {
        let kind = change.get("type").and_then(Json::as_str).unwrap_or("");
        let id = change
            .get("id")
            .and_then(Json::as_str)
            .and_then(unquote_id)
            .ok_or("a table change without a readable id")?;
        if let Some(previous) = change
            .get("previousId")
            .and_then(Json::as_str)
            .and_then(unquote_id)
        {
            catalog.remove(&previous);
        }
        if kind == "DROP" {
            catalog.remove(&id);
            continue;
        }
        let table = change
            .get("table")
            .ok_or("a table change without its table")?;
        let key: Vec<&str> = table
            .get("primaryKeyColumnNames")
            .and_then(Json::as_array)
            .map(|k| k.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let columns = table
            .get("columns")
            .and_then(Json::as_array)
            .ok_or("a table without columns")?
            .iter()
            .map(|c| column_from_json(c, &key))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{}.{}: an unreadable column", id.0, id.1))?;
        catalog.put(id, columns);
    }
    Ok(())
}

/// The number in a binlog file's name (`mariadb-bin.000012` → 12).
fn file_index(file: &str) -> u64 {
    file.rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether a record made at `recorded` holds at `at`: by GTIDs where both have them
/// (they survive a failover to a replica whose files differ), else by file and position.
fn holds_at(recorded: &Map<String, Json>, at: &Position) -> bool {
    // MariaDB GTIDs (`domain-server-seq`); MySQL's sets (`uuid:1-5`) compare by position.
    let mariadb = |g: &&str| !g.is_empty() && !g.contains(':');
    let gtids = recorded.get("gtids").and_then(Json::as_str).filter(mariadb);
    if let (Some(recorded), Some(at)) = (gtids, at.gtids.as_deref().filter(mariadb)) {
        let at: BTreeMap<u32, String> = parse_gtid_set(at);
        return parse_gtid_set(recorded).iter().all(|(domain, gtid)| {
            at.get(domain)
                .is_some_and(|reached| gtid_seq(reached) >= gtid_seq(gtid))
        });
    }
    let file = recorded.get("file").and_then(Json::as_str).unwrap_or("");
    let pos = recorded.get("pos").and_then(Json::as_u64).unwrap_or(0);
    (file_index(file), pos) <= (file_index(&at.file), at.pos)
}

/// The tables as the history says they were at `at`.
pub async fn catalog_at(store: &HistoryStore, at: &Position) -> Result<(Catalog, bool), Error> {
    let records = store.0.recover().await?;
    let mut catalog = Catalog::new();
    for record in records.iter().filter(|r| holds_at(&r.position, at)) {
        apply_record(&mut catalog, record).map_err(|e| {
            Error::fatal(
                "mysql",
                format!(
                    "unreadable schema history record at {:?}: {e}",
                    record.position
                ),
            )
        })?;
    }
    Ok((catalog, !records.is_empty()))
}

/// A history record of `changes` (tables with their columns, from `catalog`), made at
/// `position`.
pub fn record(
    partition: &SourcePartition,
    position: &Position,
    database: &str,
    ddl: Option<&str>,
    changes: &[TableChange],
    catalog: &Catalog,
) -> HistoryRecord {
    let table_changes = changes
        .iter()
        .map(|change| {
            let (kind, previous) = match change {
                TableChange::Create(_) => ("CREATE", None),
                TableChange::Alter { previous, .. } => ("ALTER", previous.as_ref()),
                TableChange::Drop(_) => ("DROP", None),
            };
            let empty = Vec::new();
            let columns = catalog.get(change.id()).unwrap_or(&empty);
            table_change(kind, change.id(), previous, columns)
        })
        .collect();
    let ts_ms = now_ms();
    HistoryRecord {
        source: partition.to_map(),
        position: position.offset(ts_ms / 1000).map().clone(),
        ts_ms,
        database_name: database.to_owned(),
        schema_name: None,
        ddl: ddl.map(str::to_owned),
        table_changes,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Records `tables` (their columns in `catalog`) as created at `at`, one record each, and
/// makes them durable (the snapshot's tables, a table the history lacked).
pub async fn save_created<'a>(
    store: &HistoryStore,
    partition: &SourcePartition,
    at: &Position,
    catalog: &Catalog,
    tables: impl IntoIterator<Item = &'a TableId>,
) -> Result<(), Error> {
    let records = tables
        .into_iter()
        .map(|id| {
            record(
                partition,
                at,
                &id.0,
                None,
                &[TableChange::Create(id.clone())],
                catalog,
            )
        })
        .collect();
    save(store, records).await
}

/// Appends records and makes them durable: before any row read with them is emitted.
pub async fn save(store: &HistoryStore, records: Vec<HistoryRecord>) -> Result<(), Error> {
    for record in records {
        store.0.append(record).await?;
    }
    store.0.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Flavor;

    fn position(file: &str, pos: u64, gtids: Option<&str>) -> Position {
        Position {
            file: file.into(),
            pos,
            gtids: gtids.map(str::to_owned),
            event: 0,
            row: 0,
        }
    }

    #[test]
    fn records_round_trip_the_columns() {
        let mut catalog = Catalog::new();
        catalog
            .apply(
                "CREATE TABLE t (id INT UNSIGNED PRIMARY KEY, e ENUM('a','B''c') DEFAULT 'a', d DECIMAL(9,3), ts DATETIME(6) NOT NULL, b BINARY(4), bits BIT(5))",
                "db",
                Flavor::MariaDb,
                &|_| true,
            )
            .unwrap();
        let id: TableId = ("db".into(), "t".into());
        let partition = SourcePartition::server("shop");
        let rec = record(
            &partition,
            &position("mariadb-bin.000002", 400, Some("0-1-7")),
            "db",
            Some("CREATE TABLE t ..."),
            &[TableChange::Create(id.clone())],
            &catalog,
        );
        let text = serde_json::to_string(&rec).unwrap();
        assert!(text.contains(r#""primaryKeyColumnNames":["id"]"#), "{text}");
        let mut rebuilt = Catalog::new();
        apply_record(&mut rebuilt, &serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(rebuilt.get(&id), catalog.get(&id));
    }

    #[test]
    fn records_hold_from_their_position_on() {
        let mut at = Map::new();
        at.insert("file".into(), "mariadb-bin.000002".into());
        at.insert("pos".into(), 400.into());
        assert!(holds_at(&at, &position("mariadb-bin.000002", 400, None)));
        assert!(holds_at(&at, &position("mariadb-bin.000010", 4, None)));
        assert!(!holds_at(&at, &position("mariadb-bin.000002", 399, None)));
        at.insert("gtids".into(), "0-1-7,1-1-3".into());
        assert!(holds_at(
            &at,
            &position("other.000001", 4, Some("0-2-7,1-1-9"))
        ));
        assert!(!holds_at(
            &at,
            &position("mariadb-bin.000009", 4, Some("0-1-6,1-1-9"))
        ));
        assert!(!holds_at(
            &at,
            &position("mariadb-bin.000009", 4, Some("0-1-9"))
        ));
        // MySQL's GTID sets are not compared: file and position decide.
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        at.insert("gtids".into(), format!("{uuid}:1-5").into());
        let mysql = format!("{uuid}:1-9");
        assert!(!holds_at(
            &at,
            &position("mariadb-bin.000002", 399, Some(&mysql))
        ));
        assert!(holds_at(
            &at,
            &position("mariadb-bin.000003", 4, Some(&mysql))
        ));
    }
}
