//! Copying a single-node SQLite database into another store (in practice an empty
//! PostgreSQL database), row for row with every id kept, for `hark admin migrate`.
//!
//! The tables and their columns are read from the source's own schema, in the order they
//! were created (which is the order their foreign keys allow), so a migration added later
//! is copied without this module changing. The copy is one transaction on the target: it
//! lands whole or not at all. Afterwards every table is read back on both sides and
//! compared by row count and SHA-256 of its rows in key order.

use sha2::{Digest, Sha256};

use crate::{Backend, Db, Result, Store, StoreError};

/// One table as copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedTable {
    pub table: String,
    pub rows: u64,
    /// SHA-256 of the table's rows in key order, the same on both sides.
    pub checksum: String,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Int,
    Real,
    Text,
    Bytes,
    Bool,
}

struct Table {
    name: String,
    columns: Vec<(String, Kind)>,
    key: Vec<String>,
}

#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Bool(Option<bool>),
}

const PAGE: i64 = 500;

/// Rows a fresh database already holds (the default workspace and project), which the
/// copy replaces with the source's.
const SEEDED: [&str; 2] = ["projects", "workspaces"];

impl Store {
    /// Copies every row of this (SQLite) store into `target`, which must hold nothing but
    /// what its migrations created, then verifies both sides match.
    pub async fn copy_into(&self, target: &Store) -> Result<Vec<CopiedTable>> {
        let tables = self.tables().await?;
        self.check_target(target, &tables).await?;
        let mut tx = target.db.begin().await?;
        for name in SEEDED {
            on!(tx, c => sqlx::query(sql!("DELETE FROM {name}")).execute(c).await.map(|done| done.rows_affected()))?;
        }
        for table in &tables {
            let mut offset = 0;
            loop {
                let rows = read_page(&self.db, table, offset).await?;
                for row in &rows {
                    insert(&mut tx, table, row).await?;
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
                offset += PAGE;
            }
            if let Some(serial) = table.serial_key() {
                // Ids were copied as they were: start the identity after the largest.
                let name = &table.name;
                if let Backend::Postgres(c) = tx.backend() {
                    sqlx::query(sql!(
                        "SELECT setval(pg_get_serial_sequence('{name}', '{serial}'),
                                       COALESCE(MAX({serial}), 0) + 1, false) FROM {name}"
                    ))
                    .execute(c)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        let mut copied = Vec::with_capacity(tables.len());
        for table in &tables {
            let (rows, checksum) = digest(&self.db, table).await?;
            let (target_rows, target_checksum) = digest(&target.db, table).await?;
            if (rows, &checksum) != (target_rows, &target_checksum) {
                return Err(StoreError::Corrupt(format!(
                    "{} differs after the copy: {rows} rows here, {target_rows} there",
                    table.name
                )));
            }
            copied.push(CopiedTable {
                table: table.name.clone(),
                rows,
                checksum,
            });
        }
        Ok(copied)
    }

    /// Refuses a `target` that holds anything beyond what its migrations created (checked
    /// again by [`Store::copy_into`]; callers check first when they copy more than rows).
    pub async fn ensure_empty_target(&self, target: &Store) -> Result<()> {
        let tables = self.tables().await?;
        self.check_target(target, &tables).await
    }

    async fn check_target(&self, target: &Store, tables: &[Table]) -> Result<()> {
        for table in tables {
            let rows = count(&target.db, &table.name).await?;
            let allowed = if SEEDED.contains(&table.name.as_str()) {
                1
            } else {
                0
            };
            if rows > allowed {
                return Err(StoreError::Conflict(format!(
                    "the target is not empty: {} holds {rows} rows; migrate into a new database",
                    table.name
                )));
            }
        }
        Ok(())
    }

    /// The source's tables in creation order, with their declared column types.
    async fn tables(&self) -> Result<Vec<Table>> {
        let Db::Sqlite(pool) = &self.db else {
            return Err(StoreError::Config(
                "a migration copies from a SQLite data dir".into(),
            ));
        };
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY rowid",
        )
        .fetch_all(pool)
        .await?;
        let mut tables = Vec::with_capacity(names.len());
        for name in names {
            let info: Vec<(String, String, i64)> =
                sqlx::query_as("SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid")
                    .bind(&name)
                    .fetch_all(pool)
                    .await?;
            let mut key: Vec<(i64, String)> = Vec::new();
            let mut columns = Vec::with_capacity(info.len());
            for (column, declared, pk) in info {
                let kind = match declared.to_ascii_uppercase().as_str() {
                    "INTEGER" | "BIGINT" => Kind::Int,
                    "DOUBLE PRECISION" | "REAL" => Kind::Real,
                    "TEXT" => Kind::Text,
                    "BLOB" => Kind::Bytes,
                    "BOOLEAN" => Kind::Bool,
                    other => {
                        return Err(StoreError::corrupt(format!(
                            "{name}.{column} has a type the copy does not know: {other}"
                        )));
                    }
                };
                if pk > 0 {
                    key.push((pk, column.clone()));
                }
                columns.push((column, kind));
            }
            key.sort();
            tables.push(Table {
                name,
                columns,
                key: key.into_iter().map(|(_, c)| c).collect(),
            });
        }
        Ok(tables)
    }
}

impl Table {
    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(c, _)| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The single integer key an identity column stands behind (`id`, `seq`), if any.
    fn serial_key(&self) -> Option<&str> {
        match self.key.as_slice() {
            [only] => self
                .columns
                .iter()
                .any(|(c, k)| c == only && matches!(k, Kind::Int))
                .then_some(only.as_str())
                .filter(|c| *c == "id" || *c == "seq"),
            _ => None,
        }
    }
}

async fn count(db: &Db, table: &str) -> Result<i64> {
    Ok(
        on!(db, c => sqlx::query_scalar::<_, i64>(sql!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(c)
        .await)?,
    )
}

/// Rows `offset..offset + PAGE` in key order. Names come from the source's schema, never
/// from input.
async fn read_page(db: &Db, table: &Table, offset: i64) -> Result<Vec<Vec<Value>>> {
    let (columns, key, name) = (table.column_list(), table.key.join(", "), &table.name);
    let statement = format!("SELECT {columns} FROM {name} ORDER BY {key} LIMIT $1 OFFSET $2");
    on!(db, c => {
        use sqlx::Row;
        let rows = sqlx::query(sql!("{statement}"))
            .bind(PAGE)
            .bind(offset)
            .fetch_all(c)
            .await?;
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut values = Vec::with_capacity(table.columns.len());
            for (i, (_, kind)) in table.columns.iter().enumerate() {
                values.push(match kind {
                    Kind::Int => Value::Int(row.try_get(i)?),
                    Kind::Real => Value::Real(row.try_get(i)?),
                    Kind::Text => Value::Text(row.try_get(i)?),
                    Kind::Bytes => Value::Bytes(row.try_get(i)?),
                    Kind::Bool => Value::Bool(row.try_get(i)?),
                });
            }
            page.push(values);
        }
        Ok(page)
    })
}

async fn insert(tx: &mut crate::Tx, table: &Table, row: &[Value]) -> Result<()> {
    let placeholders: Vec<String> = (1..=row.len()).map(|n| format!("${n}")).collect();
    let statement = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name,
        table.column_list(),
        placeholders.join(", ")
    );
    on!(tx, c => {
        let mut query = sqlx::query(sql!("{statement}"));
        for value in row {
            query = match value.clone() {
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
            };
        }
        query.execute(c).await?;
    });
    Ok(())
}

/// Row count and SHA-256 of a table's rows in key order: each value tagged by kind and
/// length-prefixed, so no two different tables of rows hash alike.
async fn digest(db: &Db, table: &Table) -> Result<(u64, String)> {
    let mut hash = Sha256::new();
    let mut rows = 0u64;
    let mut offset = 0;
    loop {
        let page = read_page(db, table, offset).await?;
        for row in &page {
            rows += 1;
            for value in row {
                let (tag, bytes): (u8, Option<Vec<u8>>) = match value {
                    Value::Int(v) => (1, v.map(|v| v.to_be_bytes().to_vec())),
                    Value::Real(v) => (2, v.map(|v| v.to_bits().to_be_bytes().to_vec())),
                    Value::Text(v) => (3, v.as_ref().map(|v| v.as_bytes().to_vec())),
                    Value::Bytes(v) => (4, v.clone()),
                    Value::Bool(v) => (5, v.map(|v| vec![u8::from(v)])),
                };
                hash.update([tag]);
                match bytes {
                    Some(bytes) => {
                        hash.update((bytes.len() as u64).to_be_bytes());
                        hash.update(&bytes);
                    }
                    None => hash.update(u64::MAX.to_be_bytes()),
                }
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
        offset += PAGE;
    }
    Ok((rows, crate::hex(&hash.finalize())))
}
