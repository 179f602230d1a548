//! MySQL/MariaDB DDL applied to a model of the tables' columns, so that binlog rows
//! written before a schema change are read with the columns of their time.
//!
//! Statements are parsed with `sqlparser`'s MySQL dialect after a few rewrites for the
//! syntax it lacks and that cannot change a column (`/*!...*/` bodies unwrapped,
//! `ALTER ONLINE`, `IF [NOT] EXISTS` inside `ALTER`, `ZEROFILL`, `WAIT n`, partitioning,
//! `CONVERT TO CHARACTER SET`). A column is described as `information_schema.COLUMNS`
//! would describe it after the statement ([`ColumnInfo`]), which the DDL corpus test
//! checks against a real server.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateTable, CreateTableLikeKind, DataType,
    EnumMember, Expr, MySQLColumnPosition, ObjectName, ObjectType, RenameTableNameKind, Statement,
    TableConstraint, UnaryOperator, Value as SqlValue,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

use crate::server::Flavor;
use crate::types::ColumnInfo;

/// What `ZEROFILL` becomes for the parser, which does not know it: a column comment.
const ZEROFILL_MARK: &str = "\u{1}zerofill";

/// `(database, table)`.
pub type TableId = (String, String);

/// What a statement did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// Created (also by `CREATE TABLE ... LIKE`).
    Create(TableId),
    /// Columns or name changed; `previous` is the old name of a renamed table.
    Alter {
        /// The table's (new) name.
        id: TableId,
        /// Its name before a rename.
        previous: Option<TableId>,
    },
    /// Dropped.
    Drop(TableId),
}

impl TableChange {
    /// The table as it is after the change.
    pub fn id(&self) -> &TableId {
        match self {
            TableChange::Create(id) | TableChange::Drop(id) | TableChange::Alter { id, .. } => id,
        }
    }
}

/// Why a statement could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DdlError {
    /// The parser does not read it; `tables` are those it names, as far as can be told.
    Unparsed {
        /// Tables the statement names (best effort).
        tables: Vec<TableId>,
        /// The parser's complaint.
        reason: String,
    },
    /// It changes a tracked table in a way the model cannot follow (a table the model
    /// does not hold, `CREATE TABLE ... SELECT`, a column it does not know).
    Unfollowable {
        /// The table.
        table: TableId,
        /// What is missing.
        reason: String,
    },
}

impl std::fmt::Display for DdlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DdlError::Unparsed { reason, .. } => write!(f, "unparsable DDL ({reason})"),
            DdlError::Unfollowable { table, reason } => {
                write!(
                    f,
                    "DDL on {}.{} cannot be followed: {reason}",
                    table.0, table.1
                )
            }
        }
    }
}

/// The tables followed, with their columns as the catalog would list them.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<TableId, Vec<ColumnInfo>>,
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// `sql` with every match of `pattern` (compiled once into `cell`) replaced by `with`.
/// The rewrites' patterns anchored at the start or end match at most once.
fn replace(sql: &str, cell: &'static OnceLock<Regex>, pattern: &str, with: &str) -> String {
    re(cell, pattern).replace_all(sql, with).into_owned()
}

/// The statement's leading words, comments skipped, upper case and single-spaced.
fn head(sql: &str) -> String {
    static COMMENT: OnceLock<Regex> = OnceLock::new();
    let stripped = re(&COMMENT, r"(?s)^(\s|/\*[^!].*?\*/|--[^\n]*\n|#[^\n]*\n)+").replace(sql, "");
    stripped
        .split_whitespace()
        .take(6)
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// Whether a statement may change a table's columns or name (views, routines, indexes,
/// users, TRUNCATE... cannot).
pub fn changes_tables(sql: &str) -> bool {
    static TABLE_DDL: OnceLock<Regex> = OnceLock::new();
    re(
        &TABLE_DDL,
        r"^(CREATE (OR REPLACE )?TABLE|ALTER (ONLINE |IGNORE )*TABLE|DROP TABLES?|RENAME TABLES?|DROP (DATABASE|SCHEMA))\b",
    )
    .is_match(&head(sql))
}

/// Rewrites what sqlparser's MySQL dialect does not read into what it does, where no
/// column changes by it. `None`: the statement changes no column at all (partition
/// maintenance).
fn rewrite(sql: &str) -> Option<String> {
    static ALTER_PREFIX: OnceLock<Regex> = OnceLock::new();
    static IF_EXISTS: OnceLock<Regex> = OnceLock::new();
    static ZEROFILL: OnceLock<Regex> = OnceLock::new();
    static WAIT: OnceLock<Regex> = OnceLock::new();
    static CONVERT: OnceLock<Regex> = OnceLock::new();
    static PARTITIONING: OnceLock<Regex> = OnceLock::new();
    static PARTITION_OP: OnceLock<Regex> = OnceLock::new();
    static LEADING_COMMA: OnceLock<Regex> = OnceLock::new();
    static TRAILING_COMMA: OnceLock<Regex> = OnceLock::new();
    let mut sql = sql.to_owned();
    let is_alter = head(&sql).starts_with("ALTER");
    if is_alter {
        if re(
            &PARTITION_OP,
            r"(?i)^\s*ALTER\s+(ONLINE\s+|IGNORE\s+)*TABLE\s+\S+\s+(ADD|DROP|TRUNCATE|COALESCE|REORGANIZE|EXCHANGE|ANALYZE|CHECK|OPTIMIZE|REBUILD|REPAIR|REMOVE|CONVERT)\s+PARTITION",
        )
        .is_match(&sql)
        {
            return None;
        }
        sql = replace(
            &sql,
            &ALTER_PREFIX,
            r"(?i)^\s*ALTER\s+(ONLINE\s+|IGNORE\s+)*TABLE",
            "ALTER TABLE",
        );
        // The statement succeeded, so an `IF [NOT] EXISTS` only says the model may
        // already hold (or lack) the column: applying it tolerates both.
        sql = replace(&sql, &IF_EXISTS, r"(?i)\bIF\s+(NOT\s+)?EXISTS\b", " ");
        sql = replace(&sql, &WAIT, r"(?i)\b(WAIT\s+\d+|NOWAIT)\b", " ");
        // Converts the character set of text columns, which the model does not hold.
        sql = replace(
            &sql,
            &CONVERT,
            r"(?i),?\s*\bCONVERT\s+TO\s+(CHARACTER\s+SET|CHARSET)\s+\w+(\s+COLLATE\s+\w+)?",
            " ",
        );
    }
    sql = replace(
        &sql,
        &ZEROFILL,
        r"(?i)\b(UNSIGNED\s+)?ZEROFILL\b",
        format!(" UNSIGNED COMMENT '{ZEROFILL_MARK}' ").as_str(),
    );
    sql = replace(&sql, &PARTITIONING, r"(?is)\bPARTITION\s+BY\b.*$", "");
    if is_alter {
        static TABLE_OPTION: OnceLock<Regex> = OnceLock::new();
        static NO_OPERATION: OnceLock<Regex> = OnceLock::new();
        // Table options change no column, and the parser reads none of them in ALTER.
        sql = replace(
            &sql,
            &TABLE_OPTION,
            r"(?i)(^\s*ALTER\s+TABLE\s+\S+|,)\s*(ENGINE|AUTO_INCREMENT|ROW_FORMAT|KEY_BLOCK_SIZE|STATS_PERSISTENT|STATS_AUTO_RECALC|STATS_SAMPLE_PAGES|PAGE_COMPRESSED|PAGE_COMPRESSION_LEVEL|CHECKSUM|(DEFAULT\s+)?(CHARSET|CHARACTER\s+SET|COLLATE)|COMMENT)\s*=?\s*('(?:[^']|'')*'|\w+)",
            "$1",
        );
        static FORCE: OnceLock<Regex> = OnceLock::new();
        sql = replace(&sql, &FORCE, r"(?i),\s*FORCE\b", "");
        sql = expand_column_lists(&sql);
        if re(
            &NO_OPERATION,
            r"(?i)^\s*ALTER\s+TABLE\s+\S+\s*(FORCE)?\s*[,;]?\s*$",
        )
        .is_match(&sql)
        {
            return None;
        }
    }
    sql = replace(
        &sql,
        &LEADING_COMMA,
        r"(?i)^(\s*ALTER\s+TABLE\s+\S+)\s*,",
        "$1 ",
    );
    sql = replace(&sql, &TRAILING_COMMA, r",\s*;?\s*$", "");
    Some(sql)
}

/// `ADD [COLUMN] (a INT, b INT)` → `ADD COLUMN a INT, ADD COLUMN b INT`.
fn expand_column_lists(sql: &str) -> String {
    static ADD_LIST: OnceLock<Regex> = OnceLock::new();
    let pattern = re(&ADD_LIST, r"(?i)\bADD\s+(COLUMN\s+)?\(");
    let mut out = String::new();
    let mut rest = sql;
    while let Some(m) = pattern.find(rest) {
        out.push_str(&rest[..m.start()]);
        let body_start = m.end();
        let mut depth = 1;
        let mut quoted = false;
        let mut parts = Vec::new();
        let mut part_start = body_start;
        let mut end = None;
        for (i, c) in rest[body_start..].char_indices() {
            let at = body_start + i;
            match c {
                '\'' => quoted = !quoted,
                '(' if !quoted => depth += 1,
                ')' if !quoted => {
                    depth -= 1;
                    if depth == 0 {
                        parts.push(&rest[part_start..at]);
                        end = Some(at + 1);
                        break;
                    }
                }
                ',' if !quoted && depth == 1 => {
                    parts.push(&rest[part_start..at]);
                    part_start = at + 1;
                }
                _ => {}
            }
        }
        let Some(end) = end else {
            out.push_str(&rest[m.start()..]);
            return out;
        };
        let columns: Vec<String> = parts
            .iter()
            .map(|p| format!("ADD COLUMN {}", p.trim()))
            .collect();
        out.push_str(&columns.join(", "));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The tables a statement names, read by pattern (for statements the parser rejects).
pub fn named_tables(sql: &str, default_db: &str) -> Vec<TableId> {
    static NAME: OnceLock<Regex> = OnceLock::new();
    static LISTED: OnceLock<Regex> = OnceLock::new();
    let name = r"((?:`[^`]+`|\w+)(?:\.(?:`[^`]+`|\w+))?)";
    // A comma separates table names only in DROP TABLE and RENAME TABLE.
    let head = head(sql);
    let pattern = if head.starts_with("ALTER") || head.starts_with("CREATE") {
        re(
            &NAME,
            &format!(r"(?i)\b(?:TABLE(?:\s+IF\s+(?:NOT\s+)?EXISTS)?|TO|AS|LIKE)\s+{name}"),
        )
    } else {
        re(
            &LISTED,
            &format!(r"(?i)\b(?:TABLES?(?:\s+IF\s+EXISTS)?|TO|,)\s+{name}"),
        )
    };
    let mut tables: Vec<TableId> = pattern
        .captures_iter(sql)
        .map(|c| {
            let name = c[1].to_owned();
            let parts: Vec<String> = split_name(&name);
            match parts.as_slice() {
                [db, table] => (db.clone(), table.clone()),
                _ => (default_db.to_owned(), parts.concat()),
            }
        })
        .collect();
    tables.dedup();
    tables
}

fn split_name(name: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '`' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

fn table_id(name: &ObjectName, default_db: &str) -> TableId {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    match parts.as_slice() {
        [db, table] => (db.clone(), table.clone()),
        [.., table] => (default_db.to_owned(), table.clone()),
        [] => (default_db.to_owned(), String::new()),
    }
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Catalog::default()
    }

    /// A table's columns, if followed.
    pub fn get(&self, id: &TableId) -> Option<&Vec<ColumnInfo>> {
        self.tables.get(id)
    }

    /// Sets a table's columns (from the catalog or a history record).
    pub fn put(&mut self, id: TableId, columns: Vec<ColumnInfo>) {
        self.tables.insert(id, columns);
    }

    /// The tables held, in name order.
    pub fn ids(&self) -> impl Iterator<Item = &TableId> {
        self.tables.keys()
    }

    /// Forgets a table.
    pub fn remove(&mut self, id: &TableId) {
        self.tables.remove(id);
    }

    /// Applies a statement run in `default_db`. `follows` says which tables to follow
    /// (a created table is held only when it does); a tracked table's change is returned.
    pub fn apply(
        &mut self,
        sql: &str,
        default_db: &str,
        flavor: Flavor,
        follows: &dyn Fn(&TableId) -> bool,
    ) -> Result<Vec<TableChange>, DdlError> {
        static VERSIONED: OnceLock<Regex> = OnceLock::new();
        // `/*!50100 ... */` and MariaDB's `/*M!100100 ... */` are executed: keep their bodies.
        let unwrapped = re(&VERSIONED, r"(?s)/\*M?!\d*(.*?)\*/").replace_all(sql, " $1 ");
        if !changes_tables(&unwrapped) {
            return Ok(Vec::new());
        }
        let Some(rewritten) = rewrite(&unwrapped) else {
            return Ok(Vec::new());
        };
        let statements =
            Parser::parse_sql(&MySqlDialect {}, &rewritten).map_err(|e| DdlError::Unparsed {
                tables: named_tables(sql, default_db),
                reason: e.to_string(),
            })?;
        let mut changes = Vec::new();
        for statement in statements {
            self.apply_statement(statement, default_db, flavor, follows, &mut changes)?;
        }
        Ok(changes)
    }

    fn apply_statement(
        &mut self,
        statement: Statement,
        default_db: &str,
        flavor: Flavor,
        follows: &dyn Fn(&TableId) -> bool,
        changes: &mut Vec<TableChange>,
    ) -> Result<(), DdlError> {
        match statement {
            Statement::CreateTable(create) => {
                let id = table_id(&create.name, default_db);
                if create.temporary
                    || !follows(&id)
                    || (create.if_not_exists && self.tables.contains_key(&id))
                {
                    return Ok(());
                }
                let columns = self.created_columns(&create, &id, default_db, flavor)?;
                self.tables.insert(id.clone(), columns);
                changes.push(TableChange::Create(id));
            }
            Statement::AlterTable(alter) => {
                let id = table_id(&alter.name, default_db);
                let Some(mut columns) = self.tables.get(&id).cloned() else {
                    if follows(&id) {
                        return Err(DdlError::Unfollowable {
                            table: id,
                            reason: "the table is not in the schema history".into(),
                        });
                    }
                    return Ok(());
                };
                let mut new_id = id.clone();
                for operation in alter.operations {
                    alter_columns(
                        &mut columns,
                        operation,
                        &id,
                        default_db,
                        flavor,
                        &mut new_id,
                    )?;
                }
                self.tables.remove(&id);
                let previous = (new_id != id).then_some(id);
                if follows(&new_id) {
                    self.tables.insert(new_id.clone(), columns);
                    changes.push(TableChange::Alter {
                        id: new_id,
                        previous,
                    });
                } else if let Some(previous) = previous {
                    changes.push(TableChange::Drop(previous));
                }
            }
            Statement::Drop {
                object_type, names, ..
            } => match object_type {
                ObjectType::Table => {
                    for name in names {
                        let id = table_id(&name, default_db);
                        if self.tables.remove(&id).is_some() {
                            changes.push(TableChange::Drop(id));
                        }
                    }
                }
                ObjectType::Schema | ObjectType::Database => {
                    for name in names {
                        let db = name.to_string().trim_matches('`').to_owned();
                        let dropped: Vec<TableId> = self
                            .tables
                            .keys()
                            .filter(|(d, _)| *d == db)
                            .cloned()
                            .collect();
                        for id in dropped {
                            self.tables.remove(&id);
                            changes.push(TableChange::Drop(id));
                        }
                    }
                }
                _ => {}
            },
            Statement::RenameTable(renames) => {
                for rename in renames {
                    let from = table_id(&rename.old_name, default_db);
                    let to = table_id(&rename.new_name, default_db);
                    match self.tables.remove(&from) {
                        Some(columns) if follows(&to) => {
                            self.tables.insert(to.clone(), columns);
                            changes.push(TableChange::Alter {
                                id: to,
                                previous: Some(from),
                            });
                        }
                        Some(_) => changes.push(TableChange::Drop(from)),
                        None if follows(&to) => {
                            return Err(DdlError::Unfollowable {
                                table: to,
                                reason: format!(
                                    "it is renamed from {}.{}, which is not in the schema history",
                                    from.0, from.1
                                ),
                            })
                        }
                        None => {}
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn created_columns(
        &self,
        create: &CreateTable,
        id: &TableId,
        default_db: &str,
        flavor: Flavor,
    ) -> Result<Vec<ColumnInfo>, DdlError> {
        if let Some(like) = &create.like {
            let source = match like {
                CreateTableLikeKind::Parenthesized(l) | CreateTableLikeKind::Plain(l) => {
                    table_id(&l.name, default_db)
                }
            };
            return self
                .tables
                .get(&source)
                .cloned()
                .ok_or_else(|| DdlError::Unfollowable {
                    table: id.clone(),
                    reason: format!(
                        "it is created LIKE {}.{}, which is not in the schema history",
                        source.0, source.1
                    ),
                });
        }
        if create.query.is_some() {
            return Err(DdlError::Unfollowable {
                table: id.clone(),
                reason: "CREATE TABLE ... SELECT takes its columns from a query".into(),
            });
        }
        let mut columns = create
            .columns
            .iter()
            .map(|c| column_info(c, flavor).map_err(|reason| unfollowable(id, reason)))
            .collect::<Result<Vec<_>, _>>()?;
        for constraint in &create.constraints {
            if let TableConstraint::PrimaryKey(pk) = constraint {
                set_primary_key(&mut columns, pk_names(&pk.columns), id)?;
            }
        }
        if !columns.iter().any(|c| c.key) {
            // InnoDB makes the first UNIQUE index over NOT NULL columns the primary key,
            // and the catalog says so.
            let unique = create
                .columns
                .iter()
                .filter(|c| {
                    c.options
                        .iter()
                        .any(|o| matches!(o.option, ColumnOption::Unique(_)))
                        || c.data_type.to_string().eq_ignore_ascii_case("SERIAL")
                })
                .map(|c| vec![c.name.value.clone()])
                .chain(create.constraints.iter().filter_map(|c| match c {
                    TableConstraint::Unique(u) => Some(pk_names(&u.columns)),
                    _ => None,
                }));
            for names in unique {
                let all_not_null = names
                    .iter()
                    .all(|n| position_of(&columns, n).is_some_and(|i| !columns[i].nullable));
                if all_not_null {
                    set_primary_key(&mut columns, names, id)?;
                    break;
                }
            }
        }
        Ok(columns)
    }
}

fn unfollowable(id: &TableId, reason: String) -> DdlError {
    DdlError::Unfollowable {
        table: id.clone(),
        reason,
    }
}

fn pk_names(columns: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => i.value.clone(),
            // `PRIMARY KEY (name(10))`: a prefix of the column.
            Expr::Function(f) => f.name.to_string().trim_matches('`').to_owned(),
            other => other.to_string(),
        })
        .collect()
}

fn set_primary_key(
    columns: &mut [ColumnInfo],
    names: Vec<String>,
    id: &TableId,
) -> Result<(), DdlError> {
    for name in names {
        let column = columns
            .iter_mut()
            .find(|c| c.name.eq_ignore_ascii_case(&name))
            .ok_or_else(|| unfollowable(id, format!("no column `{name}` for the primary key")))?;
        column.key = true;
        column.nullable = false;
        if column.default.as_deref() == Some("NULL") {
            column.default = None;
        }
    }
    Ok(())
}

fn position_of(columns: &[ColumnInfo], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

fn place(
    columns: &mut Vec<ColumnInfo>,
    column: ColumnInfo,
    at: Option<usize>,
    position: Option<&MySQLColumnPosition>,
    id: &TableId,
) -> Result<(), DdlError> {
    let index = match position {
        Some(MySQLColumnPosition::First) => 0,
        Some(MySQLColumnPosition::After(after)) => {
            position_of(columns, &after.value).ok_or_else(|| {
                unfollowable(id, format!("no column `{}` to add after", after.value))
            })? + 1
        }
        None => at.unwrap_or(columns.len()),
    };
    columns.insert(index.min(columns.len()), column);
    Ok(())
}

fn alter_columns(
    columns: &mut Vec<ColumnInfo>,
    operation: AlterTableOperation,
    id: &TableId,
    default_db: &str,
    flavor: Flavor,
    new_id: &mut TableId,
) -> Result<(), DdlError> {
    match operation {
        // Present already: the statement said IF NOT EXISTS (it succeeded).
        AlterTableOperation::AddColumn {
            column_def,
            column_position,
            ..
        } if position_of(columns, &column_def.name.value).is_none() => {
            let column = column_info(&column_def, flavor).map_err(|r| unfollowable(id, r))?;
            place(columns, column, None, column_position.as_ref(), id)?;
        }
        AlterTableOperation::DropColumn { column_names, .. } => {
            for name in column_names {
                if let Some(index) = position_of(columns, &name.value) {
                    columns.remove(index);
                }
            }
        }
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            options,
            column_position,
        } => {
            let old = col_name.value.clone();
            let def = column_def(col_name, data_type, options);
            replace_column(columns, &old, def, column_position.as_ref(), id, flavor)?;
        }
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            options,
            column_position,
        } => {
            let def = column_def(new_name, data_type, options);
            replace_column(
                columns,
                &old_name.value,
                def,
                column_position.as_ref(),
                id,
                flavor,
            )?;
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let index = position_of(columns, &old_column_name.value).ok_or_else(|| {
                unfollowable(
                    id,
                    format!("no column `{}` to rename", old_column_name.value),
                )
            })?;
            columns[index].name = new_column_name.value;
        }
        AlterTableOperation::AlterColumn { column_name, op } => {
            let index = position_of(columns, &column_name.value).ok_or_else(|| {
                unfollowable(id, format!("no column `{}` to alter", column_name.value))
            })?;
            let column = &mut columns[index];
            match op {
                sqlparser::ast::AlterColumnOperation::SetDefault { value } => {
                    column.default = Some(default_text(&value, column));
                }
                sqlparser::ast::AlterColumnOperation::DropDefault => {
                    column.default = column.nullable.then(|| "NULL".to_owned());
                }
                sqlparser::ast::AlterColumnOperation::SetNotNull => column.nullable = false,
                sqlparser::ast::AlterColumnOperation::DropNotNull => column.nullable = true,
                _ => {}
            }
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::PrimaryKey(pk),
            ..
        } => set_primary_key(columns, pk_names(&pk.columns), id)?,
        AlterTableOperation::DropPrimaryKey { .. } => {
            for column in columns.iter_mut() {
                column.key = false;
            }
        }
        AlterTableOperation::RenameTable { table_name } => {
            let (RenameTableNameKind::As(name) | RenameTableNameKind::To(name)) = table_name;
            *new_id = table_id(&name, default_db);
        }
        // Indexes, foreign keys, ALGORITHM, LOCK, table options: no column changes.
        _ => {}
    }
    Ok(())
}

/// The column definition of `MODIFY` and `CHANGE`.
fn column_def(
    name: sqlparser::ast::Ident,
    data_type: DataType,
    options: Vec<ColumnOption>,
) -> ColumnDef {
    ColumnDef {
        name,
        data_type,
        options: options
            .into_iter()
            .map(|option| sqlparser::ast::ColumnOptionDef { name: None, option })
            .collect(),
    }
}

fn replace_column(
    columns: &mut Vec<ColumnInfo>,
    old: &str,
    def: ColumnDef,
    position: Option<&MySQLColumnPosition>,
    id: &TableId,
    flavor: Flavor,
) -> Result<(), DdlError> {
    let Some(index) = position_of(columns, old) else {
        // Missing: the statement said IF EXISTS (it succeeded).
        return Ok(());
    };
    let old = columns.remove(index);
    let mut column = column_info(&def, flavor).map_err(|r| unfollowable(id, r))?;
    // MODIFY keeps the column in the primary key (and so NOT NULL).
    if old.key {
        column.key = true;
        column.nullable = false;
        if column.default.as_deref() == Some("NULL") {
            column.default = None;
        }
    }
    place(columns, column, Some(index), position, id)
}

/// A column as `information_schema.COLUMNS` describes it after `CREATE`/`ALTER`.
pub fn column_info(def: &ColumnDef, flavor: Flavor) -> Result<ColumnInfo, String> {
    let mut column = type_info(&def.data_type, flavor)
        .map_err(|e| format!("column `{}`: {e}", def.name.value))?;
    column.name = def.name.value.clone();
    let mut nullable = true;
    let mut default = None;
    for option in &def.options {
        match &option.option {
            ColumnOption::NotNull => nullable = false,
            ColumnOption::Null => nullable = true,
            ColumnOption::PrimaryKey(_) => {
                column.key = true;
                nullable = false;
            }
            ColumnOption::Default(expr) => default = Some(expr.clone()),
            ColumnOption::Comment(c) if c == ZEROFILL_MARK => {
                // MariaDB reports the display width as the precision of a ZEROFILL column.
                column.column_type.push_str(" zerofill");
                if let Some(width) = column
                    .column_type
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split(')').next()?.parse().ok())
                {
                    column.precision = Some(width);
                }
            }
            _ => {}
        }
    }
    if def.data_type.to_string().eq_ignore_ascii_case("SERIAL") {
        nullable = false;
    }
    column.nullable = nullable;
    column.default = match default {
        Some(expr) if is_null(&expr) => nullable.then(|| "NULL".to_owned()),
        Some(expr) => Some(default_text(&expr, &column)),
        None => nullable.then(|| "NULL".to_owned()),
    };
    Ok(column)
}

fn is_null(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if v.value == SqlValue::Null)
}

/// A default as `COLUMN_DEFAULT` prints it: strings quoted, numbers bare, functions
/// lower case with parentheses.
fn default_text(expr: &Expr, column: &ColumnInfo) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => {
                // A quoted default of a numeric column is stored as a number.
                if column.precision.is_some() && s.parse::<f64>().is_ok() {
                    with_scale(s, column)
                } else {
                    format!("'{}'", s.replace('\'', "''"))
                }
            }
            SqlValue::Number(n, _) => {
                if column.precision.is_none() && column.data_type != "bit" {
                    format!("'{n}'")
                } else {
                    with_scale(n, column)
                }
            }
            SqlValue::Boolean(b) => u8::from(*b).to_string(),
            // b'101', x'0A': the prefix in lower case.
            other => {
                let text = other.to_string();
                match text.split_at_checked(1) {
                    Some((prefix, rest)) if rest.starts_with('\'') => {
                        format!("{}{rest}", prefix.to_ascii_lowercase())
                    }
                    _ => text,
                }
            }
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => format!("-{}", default_text(expr, column).trim_matches('\'')),
        Expr::Nested(inner) => default_text(inner, column),
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            let name = if name == "now" {
                "current_timestamp".into()
            } else {
                name
            };
            let args = f.args.to_string();
            format!("{name}{}", if args.is_empty() { "()".into() } else { args })
        }
        Expr::Identifier(i) if i.value.eq_ignore_ascii_case("current_timestamp") => {
            "current_timestamp()".into()
        }
        other => other.to_string(),
    }
}

/// A DECIMAL default as the catalog prints it: with exactly the column's scale.
fn with_scale(number: &str, column: &ColumnInfo) -> String {
    let Some(scale) = column.scale.filter(|_| column.data_type == "decimal") else {
        return number.to_owned();
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let mut fraction: String = fraction.chars().take(scale as usize).collect();
    while fraction.len() < scale as usize {
        fraction.push('0');
    }
    if scale == 0 {
        whole.to_owned()
    } else {
        format!("{whole}.{fraction}")
    }
}

/// MariaDB's display width of an integer type (MySQL 8 prints none).
fn display_width(data_type: &str, unsigned: bool) -> u64 {
    match (data_type, unsigned) {
        ("tinyint", false) => 4,
        ("tinyint", true) => 3,
        ("smallint", false) => 6,
        ("smallint", true) => 5,
        ("mediumint", false) => 9,
        ("mediumint", true) => 8,
        ("int", false) => 11,
        ("int", true) => 10,
        _ => 20,
    }
}

fn quoted_labels(labels: &[String]) -> String {
    labels
        .iter()
        .map(|l| format!("'{}'", l.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// The type part of a column: `DATA_TYPE`, `COLUMN_TYPE`, precision, scale, fraction.
fn type_info(data_type: &DataType, flavor: Flavor) -> Result<ColumnInfo, String> {
    let blank =
        |data_type: &str, column_type: String| ColumnInfo::nullable("", data_type, &column_type);
    match data_type {
        DataType::Enum(members, _) => {
            let labels: Vec<String> = members
                .iter()
                .map(|m| match m {
                    EnumMember::Name(n) | EnumMember::NamedValue(n, _) => n.clone(),
                })
                .collect();
            return Ok(blank("enum", format!("enum({})", quoted_labels(&labels))));
        }
        DataType::Set(labels) => {
            return Ok(blank("set", format!("set({})", quoted_labels(labels))));
        }
        _ => {}
    }
    let text = data_type.to_string().to_ascii_uppercase();
    let unsigned = text.contains(" UNSIGNED");
    let text = text.replace(" UNSIGNED", "");
    let (name, args) = match text.split_once('(') {
        Some((name, rest)) => (
            name.trim().to_owned(),
            rest.trim_end_matches(')')
                .split(',')
                .map(|a| a.trim().parse::<u64>())
                .collect::<Result<Vec<u64>, _>>()
                .map_err(|_| format!("unreadable type arguments in {text}"))?,
        ),
        None => (text.trim().to_owned(), Vec::new()),
    };
    let suffix = if unsigned { " unsigned" } else { "" };
    let mariadb = flavor == Flavor::MariaDb;
    let integer = |dt: &'static str, width: Option<u64>| {
        let precision = match (dt, unsigned) {
            ("tinyint", _) => 3,
            ("smallint", _) => 5,
            ("mediumint", _) => 7,
            ("int", _) => 10,
            (_, false) => 19,
            (_, true) => 20,
        };
        let column_type = if mariadb || width.is_some() {
            let width = width.unwrap_or_else(|| display_width(dt, unsigned));
            format!("{dt}({width}){suffix}")
        } else {
            format!("{dt}{suffix}")
        };
        ColumnInfo {
            precision: Some(precision),
            scale: Some(0),
            ..blank(dt, column_type)
        }
    };
    let fraction = |dt: &'static str| {
        let fsp = args.first().copied().unwrap_or(0);
        let column_type = if fsp > 0 {
            format!("{dt}({fsp})")
        } else {
            dt.to_owned()
        };
        ColumnInfo {
            fraction_digits: Some(fsp),
            ..blank(dt, column_type)
        }
    };
    let sized = |dt: &'static str| {
        let n = args.first().copied().unwrap_or(1);
        blank(dt, format!("{dt}({n})"))
    };
    let width = args.first().copied();
    Ok(match name.as_str() {
        "TINYINT" | "INT1" => integer("tinyint", width),
        "BOOL" | "BOOLEAN" => integer("tinyint", Some(1)),
        "SMALLINT" | "INT2" => integer("smallint", width),
        "MEDIUMINT" | "INT3" | "MIDDLEINT" => integer("mediumint", width),
        "INT" | "INTEGER" | "INT4" => integer("int", width),
        "BIGINT" | "INT8" => integer("bigint", width),
        "SERIAL" => ColumnInfo {
            precision: Some(20),
            scale: Some(0),
            ..blank(
                "bigint",
                if mariadb {
                    "bigint(20) unsigned"
                } else {
                    "bigint unsigned"
                }
                .into(),
            )
        },
        "DECIMAL" | "DEC" | "NUMERIC" | "FIXED" => {
            let precision = args.first().copied().unwrap_or(10);
            let scale = args.get(1).copied().unwrap_or(0);
            ColumnInfo {
                precision: Some(precision),
                scale: Some(scale),
                ..blank("decimal", format!("decimal({precision},{scale}){suffix}"))
            }
        }
        "FLOAT" | "DOUBLE" | "REAL" | "DOUBLE PRECISION" => {
            let double = name != "FLOAT" || args.len() == 1 && args[0] > 24;
            let dt = if double { "double" } else { "float" };
            let (column_type, precision, scale) = match args.as_slice() {
                [m, d] => (format!("{dt}({m},{d}){suffix}"), *m, Some(*d)),
                _ => (format!("{dt}{suffix}"), if double { 22 } else { 12 }, None),
            };
            ColumnInfo {
                precision: Some(precision),
                scale,
                ..blank(dt, column_type)
            }
        }
        "BIT" => {
            let n = width.unwrap_or(1);
            ColumnInfo {
                precision: Some(n),
                ..blank("bit", format!("bit({n})"))
            }
        }
        "CHAR" | "CHARACTER" | "NCHAR" | "NATIONAL CHAR" => sized("char"),
        "VARCHAR" | "CHARACTER VARYING" | "NVARCHAR" | "NATIONAL VARCHAR" => sized("varchar"),
        "BINARY" => {
            let n = width.unwrap_or(1);
            ColumnInfo {
                octet_length: Some(n),
                ..blank("binary", format!("binary({n})"))
            }
        }
        "VARBINARY" => sized("varbinary"),
        "DATE" => blank("date", "date".into()),
        "TIME" => fraction("time"),
        "DATETIME" => fraction("datetime"),
        "TIMESTAMP" => fraction("timestamp"),
        "YEAR" => blank("year", if mariadb { "year(4)" } else { "year" }.into()),
        "JSON" if mariadb => blank("longtext", "longtext".into()),
        "LONG" | "LONG VARCHAR" => blank("mediumtext", "mediumtext".into()),
        "LONG VARBINARY" => blank("mediumblob", "mediumblob".into()),
        "GEOMCOLLECTION" => blank("geometrycollection", "geometrycollection".into()),
        other => {
            let lower = other.to_ascii_lowercase();
            if lower.is_empty() || lower.contains(' ') {
                return Err(format!("unknown type {text}"));
            }
            blank(&lower, lower.clone())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(catalog: &mut Catalog, sql: &str) -> Result<Vec<TableChange>, DdlError> {
        catalog.apply(sql, "db", Flavor::MariaDb, &|_| true)
    }

    fn names(catalog: &Catalog, table: &str) -> Vec<String> {
        catalog
            .get(&("db".into(), table.into()))
            .unwrap()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn follows_column_changes_and_renames() {
        let mut c = Catalog::new();
        apply(
            &mut c,
            "CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b ENUM('x','Y'))",
        )
        .unwrap();
        apply(
            &mut c,
            "ALTER TABLE t ADD COLUMN c BIGINT UNSIGNED FIRST, DROP COLUMN a",
        )
        .unwrap();
        assert_eq!(names(&c, "t"), ["c", "id", "b"]);
        apply(
            &mut c,
            "/*!40000 ALTER TABLE `t` CHANGE b bee SET('p','q') NOT NULL AFTER c */",
        )
        .unwrap();
        assert_eq!(names(&c, "t"), ["c", "bee", "id"]);
        let bee = &c.get(&("db".into(), "t".into())).unwrap()[1];
        assert_eq!(bee.column_type, "set('p','q')");
        assert!(!bee.nullable);
        let changes = apply(&mut c, "RENAME TABLE t TO u, db.u TO other.v").unwrap();
        assert_eq!(changes.len(), 2);
        assert!(c.get(&("other".into(), "v".into())).is_some());
        assert_eq!(
            apply(&mut c, "ALTER TABLE nowhere ADD x INT").unwrap_err(),
            DdlError::Unfollowable {
                table: ("db".into(), "nowhere".into()),
                reason: "the table is not in the schema history".into()
            }
        );
    }

    #[test]
    fn statements_that_change_no_table_are_not_parsed() {
        let mut c = Catalog::new();
        for sql in [
            "CREATE DEFINER=`root`@`%` PROCEDURE p() BEGIN SELECT 1; END",
            "CREATE INDEX i ON t (a)",
            "TRUNCATE TABLE t",
            "GRANT SELECT ON *.* TO x",
            "ALTER TABLE t DROP PARTITION p1",
        ] {
            assert_eq!(apply(&mut c, sql).unwrap(), vec![], "{sql}");
        }
    }

    #[test]
    fn names_the_tables_of_statements_it_cannot_parse() {
        assert_eq!(
            named_tables("ALTER TABLE `my db`.t1 FROBNICATE", "d"),
            vec![("my db".to_owned(), "t1".to_owned())]
        );
        assert_eq!(
            named_tables("ALTER TABLE t ADD c INT, ORDER BY id", "d"),
            vec![("d".to_owned(), "t".to_owned())]
        );
        assert_eq!(
            named_tables("RENAME TABLE a TO b", "d"),
            vec![
                ("d".to_owned(), "a".to_owned()),
                ("d".to_owned(), "b".to_owned())
            ]
        );
    }
}
