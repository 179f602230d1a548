//! What differs between the SQL of PostgreSQL, MySQL/MariaDB and SQLite: identifier
//! quoting, column types, and the statements the sink writes with.

use crate::value::{SqlKind, TimeUnit};

/// A possibly schema-qualified table name, kept as its unquoted parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(Vec<String>);

impl TableName {
    /// A table name from its parts (`["public", "orders"]` or `["orders"]`).
    pub fn new(parts: Vec<String>) -> Self {
        TableName(parts)
    }

    /// Parses `schema.table` or `table` (no quoting: parts are split on dots).
    pub fn parse(name: &str) -> Self {
        TableName(name.split('.').map(str::to_owned).collect())
    }

    /// The unqualified table name.
    pub fn table(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// The schema (or database) part, if qualified.
    pub fn schema(&self) -> Option<&str> {
        (self.0.len() > 1).then(|| self.0[self.0.len() - 2].as_str())
    }

    /// The parts.
    pub fn parts(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// A column of a statement: its quoted name and the SQL type values are cast to.
#[derive(Debug, Clone)]
pub struct Column {
    /// The name as in the record.
    pub name: String,
    /// The name quoted for the dialect.
    pub quoted: String,
    /// The column's type in the table (as the catalog spells it).
    pub sql_type: String,
}

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOp {
    /// `INSERT`.
    Insert,
    /// Insert, or update the row with the same key.
    Upsert,
    /// `UPDATE` by key.
    Update,
    /// `DELETE` by key (rows hold only the key columns).
    Delete,
}

/// One statement shape: a table, an operation and its columns (keys first).
#[derive(Debug, Clone)]
pub struct WritePlan {
    /// Identifies the plan for the connections' statement caches.
    pub id: u64,
    /// The table.
    pub table: TableName,
    /// The table name quoted for the dialect.
    pub quoted_table: String,
    /// The operation.
    pub op: WriteOp,
    /// Columns; the first `keys` are the key.
    pub columns: Vec<Column>,
    /// How many leading columns form the key.
    pub keys: usize,
}

impl WritePlan {
    /// The key columns.
    pub fn key_columns(&self) -> &[Column] {
        &self.columns[..self.keys]
    }

    /// The columns that are not the key.
    pub fn value_columns(&self) -> &[Column] {
        &self.columns[self.keys..]
    }

    pub(crate) fn list(columns: &[Column], f: impl Fn(&Column) -> String, sep: &str) -> String {
        columns.iter().map(f).collect::<Vec<_>>().join(sep)
    }

    /// `"a", "b"`.
    pub fn column_list(&self, columns: &[Column]) -> String {
        Self::list(columns, |c| c.quoted.clone(), ", ")
    }

    /// `"a" = ? AND "b" = ?` over `columns`.
    pub fn placeholders_eq(&self, columns: &[Column], sep: &str) -> String {
        Self::list(columns, |c| format!("{} = ?", c.quoted), sep)
    }
}

/// The SQL differences between the supported databases.
pub trait Dialect: Send + Sync + std::fmt::Debug {
    /// `postgresql`, `mysql` or `sqlite`.
    fn name(&self) -> &'static str;

    /// Quotes one identifier so that any name, however hostile, is only a name.
    fn quote(&self, ident: &str) -> String;

    /// A qualified table name, each part quoted.
    fn quote_table(&self, table: &TableName) -> String {
        table
            .parts()
            .iter()
            .map(|p| self.quote(p))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// The column type for a field of `kind`; `key` for primary-key columns (MySQL cannot
    /// index unbounded text).
    fn column_type(&self, kind: SqlKind, key: bool) -> String;

    /// `CREATE TABLE` with the given columns (name, type, nullable) and primary key.
    fn create_table(
        &self,
        table: &TableName,
        columns: &[(String, String, bool)],
        key: &[String],
    ) -> String {
        let mut sql = format!("CREATE TABLE {} (", self.quote_table(table));
        for (i, (name, ty, nullable)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "{} {ty}{}",
                self.quote(name),
                if *nullable { " NULL" } else { " NOT NULL" }
            ));
        }
        if !key.is_empty() {
            let key: Vec<_> = key.iter().map(|k| self.quote(k)).collect();
            sql.push_str(&format!(", PRIMARY KEY ({})", key.join(", ")));
        }
        sql.push(')');
        sql
    }

    /// `ALTER TABLE .. ADD COLUMN` of a nullable column.
    fn add_column(&self, table: &TableName, column: &str, ty: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {ty} NULL",
            self.quote_table(table),
            self.quote(column)
        )
    }

    /// The clause that turns an `INSERT` into an upsert on the plan's key.
    fn upsert_clause(&self, plan: &WritePlan) -> String;

    /// An expression cast to text (as the database prints its values).
    fn text_cast(&self, expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    /// The `n`th (from 1) statement parameter.
    fn placeholder(&self, n: usize) -> String {
        let _ = n;
        "?".into()
    }
}

fn quote_with(ident: &str, quote: char) -> String {
    let mut s = String::with_capacity(ident.len() + 2);
    s.push(quote);
    for c in ident.chars() {
        if c == quote {
            s.push(quote);
        }
        s.push(c);
    }
    s.push(quote);
    s
}

/// PostgreSQL.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

impl Dialect for Postgres {
    fn name(&self) -> &'static str {
        "postgresql"
    }

    fn quote(&self, ident: &str) -> String {
        quote_with(ident, '"')
    }

    fn column_type(&self, kind: SqlKind, _key: bool) -> String {
        match kind {
            SqlKind::Bool => "boolean".into(),
            SqlKind::Int(1 | 2) => "smallint".into(),
            SqlKind::Int(4) => "integer".into(),
            SqlKind::Int(_) => "bigint".into(),
            SqlKind::Float32 => "real".into(),
            SqlKind::Float64 => "double precision".into(),
            SqlKind::Text => "text".into(),
            SqlKind::Json => "jsonb".into(),
            SqlKind::Uuid => "uuid".into(),
            SqlKind::Bytes => "bytea".into(),
            SqlKind::Decimal(Some(scale)) => format!("numeric(1000,{scale})"),
            SqlKind::Decimal(None) => "numeric".into(),
            SqlKind::Date => "date".into(),
            SqlKind::Time(TimeUnit::Millis) => "time(3)".into(),
            SqlKind::Time(_) => "time(6)".into(),
            SqlKind::Timestamp(TimeUnit::Millis) => "timestamp(3)".into(),
            SqlKind::Timestamp(_) => "timestamp(6)".into(),
            SqlKind::ZonedTimestamp => "timestamptz".into(),
        }
    }

    fn upsert_clause(&self, plan: &WritePlan) -> String {
        on_conflict(plan)
    }

    fn placeholder(&self, n: usize) -> String {
        format!("${n}")
    }
}

/// MySQL and MariaDB.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySql;

impl Dialect for MySql {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn quote(&self, ident: &str) -> String {
        quote_with(ident, '`')
    }

    fn column_type(&self, kind: SqlKind, key: bool) -> String {
        match kind {
            SqlKind::Bool => "BOOLEAN".into(),
            SqlKind::Int(1) => "TINYINT".into(),
            SqlKind::Int(2) => "SMALLINT".into(),
            SqlKind::Int(4) => "INT".into(),
            SqlKind::Int(_) => "BIGINT".into(),
            SqlKind::Float32 => "FLOAT".into(),
            SqlKind::Float64 => "DOUBLE".into(),
            SqlKind::Text if key => "VARCHAR(255)".into(),
            SqlKind::Text => "LONGTEXT".into(),
            SqlKind::Json => "LONGTEXT".into(),
            SqlKind::Uuid => "CHAR(36)".into(),
            SqlKind::Bytes if key => "VARBINARY(255)".into(),
            SqlKind::Bytes => "LONGBLOB".into(),
            SqlKind::Decimal(Some(scale)) => format!("DECIMAL(65,{})", scale.min(30)),
            SqlKind::Decimal(None) => "DECIMAL(65,30)".into(),
            SqlKind::Date => "DATE".into(),
            SqlKind::Time(TimeUnit::Millis) => "TIME(3)".into(),
            SqlKind::Time(_) => "TIME(6)".into(),
            SqlKind::Timestamp(TimeUnit::Millis) => "DATETIME(3)".into(),
            SqlKind::Timestamp(_) => "DATETIME(6)".into(),
            SqlKind::ZonedTimestamp => "TIMESTAMP(6)".into(),
        }
    }

    fn text_cast(&self, expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }

    fn upsert_clause(&self, plan: &WritePlan) -> String {
        let columns = if plan.value_columns().is_empty() {
            plan.key_columns()
        } else {
            plan.value_columns()
        };
        let set = WritePlan::list(columns, |c| format!("{0} = VALUES({0})", c.quoted), ", ");
        format!(" ON DUPLICATE KEY UPDATE {set}")
    }
}

/// SQLite.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sqlite;

impl Dialect for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn quote(&self, ident: &str) -> String {
        quote_with(ident, '"')
    }

    fn column_type(&self, kind: SqlKind, _key: bool) -> String {
        match kind {
            SqlKind::Bool | SqlKind::Int(_) => "INTEGER",
            SqlKind::Float32 | SqlKind::Float64 => "REAL",
            SqlKind::Bytes => "BLOB",
            // Text keeps every digit of a decimal and the exact notation of times.
            SqlKind::Decimal(_)
            | SqlKind::Text
            | SqlKind::Json
            | SqlKind::Uuid
            | SqlKind::Date
            | SqlKind::Time(_)
            | SqlKind::Timestamp(_)
            | SqlKind::ZonedTimestamp => "TEXT",
        }
        .into()
    }

    fn upsert_clause(&self, plan: &WritePlan) -> String {
        on_conflict(plan)
    }
}

/// PostgreSQL's and SQLite's shared upsert syntax.
fn on_conflict(plan: &WritePlan) -> String {
    let keys = plan.column_list(plan.key_columns());
    if plan.value_columns().is_empty() {
        return format!(" ON CONFLICT ({keys}) DO NOTHING");
    }
    let set = WritePlan::list(
        plan.value_columns(),
        |c| format!("{0} = excluded.{0}", c.quoted),
        ", ",
    );
    format!(" ON CONFLICT ({keys}) DO UPDATE SET {set}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(
            Postgres.quote(r#"a"; DROP TABLE x; --"#),
            r#""a""; DROP TABLE x; --""#
        );
        assert_eq!(MySql.quote("a`b"), "`a``b`");
        assert_eq!(
            Sqlite.quote_table(&TableName::parse("main.t")),
            r#""main"."t""#
        );
    }
}
