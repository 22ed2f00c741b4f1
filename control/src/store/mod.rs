//! The store: one `sqlx::Any` pool over SQLite or Postgres, the embedded migrations, and the
//! per-resource queries (one module each). SQL is written once in the dialect both engines
//! accept (`$n` placeholders, TEXT/BIGINT/DOUBLE PRECISION columns), so both backends run the
//! same statements and the same migrations.

pub mod agents;
pub mod audience_groups;
pub mod calls;
pub mod instances;
pub mod keys;
pub mod provider_keys;
pub mod tasks;
pub mod tools;
pub mod traces;

pub mod tenants;
pub mod usage;
pub mod webhooks;

use std::borrow::Cow;
use std::sync::Arc;

use anyhow::Context;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor};
use tokio::sync::{Mutex, MutexGuard};

/// Which engine the pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite allows one writer at a time and answers a second one with SQLITE_BUSY when a
    /// read transaction tries to upgrade; serializing writers in-process avoids that entirely.
    /// Postgres has row locks and needs none.
    write_lock: Option<Arc<Mutex<()>>>,
    /// Read-through cache of agents, on SQLite only: the file has one writer process (this
    /// one), so invalidating on every agent write keeps it exact. Postgres may be shared by
    /// several nodes and always reads the database.
    pub(crate) agent_cache: Option<Arc<agents::AgentCache>>,
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/0001_init.sql")),
    (
        2,
        "agent tags",
        include_str!("../../migrations/0002_agent_tags.sql"),
    ),
    (
        3,
        "latency traces",
        include_str!("../../migrations/0003_traces.sql"),
    ),
];

fn migrator() -> Migrator {
    let migrations: Vec<Migration> = MIGRATIONS
        .iter()
        .map(|(version, desc, sql)| {
            Migration::new(
                *version,
                Cow::Borrowed(*desc),
                MigrationType::Simple,
                Cow::Borrowed(*sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// Adds `mode=rwc` to SQLite URLs that name a file, so a fresh machine gets a database file
/// instead of an error.
fn normalize_url(url: &str) -> anyhow::Result<(String, Backend)> {
    if url.starts_with("sqlite:") {
        let url = if url.contains("mode=") || url.contains(":memory:") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        Ok((url, Backend::Sqlite))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok((url.to_string(), Backend::Postgres))
    } else {
        anyhow::bail!("unsupported database URL `{url}`: use sqlite://FILE or postgres://…")
    }
}

impl Db {
    /// Connects, switches SQLite to WAL, and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalize_url(url)?;
        let max = match backend {
            Backend::Sqlite => 8,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            // No liveness ping before every checkout: on SQLite each ping is a round trip to
            // the connection's worker thread (two context switches), on Postgres a network round
            // trip, and it doubled the cost of the hot read path. A dead connection surfaces as
            // the query's own error and is dropped by the pool.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Per-connection settings: NORMAL sync is durable under WAL except on
                        // power loss of the last transactions; FKs are off by default in SQLite.
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open database {}", redact(&url)))?;
        if backend == Backend::Sqlite {
            // journal_mode is stored in the file, so setting it once per open is enough.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        migrator()
            .run(&pool)
            .await
            .context("applying database migrations")?;
        let db = Db {
            pool,
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            agent_cache: (backend == Backend::Sqlite).then(Default::default),
        };
        agents::backfill_tags(&db)
            .await
            .context("indexing agent tags")?;
        Ok(db)
    }

    /// Held across each write (or write transaction) on SQLite; a no-op on Postgres.
    pub async fn write(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(m) => Some(m.lock().await),
            None => None,
        }
    }

    /// Whether the database answers a trivial query (for `/ready`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether a statement failed on a UNIQUE (or primary key) constraint.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Reads a column, turning a decode failure into a `sqlx::Error` like any other.
pub fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T, sqlx::Error>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    sqlx::Row::try_get(row, name)
}

/// Parses a JSON column written by this crate. A parse failure means the row was written by
/// something else (or corrupted); it is reported as a decode error, never a panic.
pub fn json_col<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    name: &str,
) -> Result<T, sqlx::Error> {
    let text: String = col(row, name)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
        index: name.to_string(),
        source: Box::new(e),
    })
}

/// Cursor pagination over rows ordered by id descending: fetch `limit + 1` and report whether
/// more remain.
pub struct PageRows<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> PageRows<T> {
    pub fn from_overfetch(mut items: Vec<T>, limit: usize) -> Self {
        let has_more = items.len() > limit;
        items.truncate(limit);
        PageRows { items, has_more }
    }
}

/// A bind value for dynamically assembled statements.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// Assembles `SELECT … WHERE tenant_id = $1 AND … ORDER BY id DESC LIMIT n` for list endpoints,
/// numbering placeholders as conditions are added so both backends accept it.
pub struct ListQuery {
    select: String,
    conds: Vec<String>,
    args: Vec<Arg>,
}

impl ListQuery {
    pub fn new(select: &str, tenant_id: &str) -> Self {
        ListQuery {
            select: select.to_string(),
            conds: vec!["tenant_id = $1".into()],
            args: vec![Arg::Text(tenant_id.to_string())],
        }
    }

    /// Adds `column <op> $n`.
    pub fn cond(mut self, column: &str, op: &str, arg: Arg) -> Self {
        self.args.push(arg);
        self.conds
            .push(format!("{column} {op} ${}", self.args.len()));
        self
    }

    /// Adds an arbitrary condition; `{}` in `template` is replaced by the placeholder.
    pub fn cond_expr(mut self, template: &str, arg: Arg) -> Self {
        self.args.push(arg);
        let placeholder = format!("${}", self.args.len());
        self.conds.push(template.replace("{}", &placeholder));
        self
    }

    pub fn cond_opt_text(self, column: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.cond(column, "=", Arg::Text(v.to_string())),
            None => self,
        }
    }

    /// Adds the cursor condition: ids are ordered descending, so the next page is below it.
    pub fn cursor(self, cursor: Option<&str>) -> Self {
        match cursor {
            Some(c) => self.cond("id", "<", Arg::Text(c.to_string())),
            None => self,
        }
    }

    pub async fn fetch(self, db: &Db, limit: usize) -> Result<Vec<AnyRow>, sqlx::Error> {
        let sql = format!(
            "{} WHERE {} ORDER BY id DESC LIMIT {}",
            self.select,
            self.conds.join(" AND "),
            limit + 1
        );
        let mut q = sqlx::query(&sql);
        for a in self.args {
            q = match a {
                Arg::Text(s) => q.bind(s),
                Arg::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(&db.pool).await
    }
}

/// One row of a table whose rows belong to an agent (tools, instances), by id, within the
/// tenant: the lookup those tables share.
pub async fn get_agent_child<T>(
    db: &Db,
    columns: &str,
    tenant_id: &str,
    agent_id: &str,
    id: &str,
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Option<T>, sqlx::Error> {
    sqlx::query(&format!(
        "{columns} WHERE tenant_id = $1 AND agent_id = $2 AND id = $3"
    ))
    .bind(tenant_id)
    .bind(agent_id)
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// A page of the rows of an agent-owned table (tools, instances), within the tenant.
pub async fn list_agent_children<T>(
    db: &Db,
    columns: &str,
    tenant_id: &str,
    agent_id: &str,
    cursor: Option<&str>,
    limit: usize,
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<PageRows<T>, sqlx::Error> {
    let rows = ListQuery::new(columns, tenant_id)
        .cond("agent_id", "=", Arg::Text(agent_id.to_string()))
        .cursor(cursor)
        .fetch(db, limit)
        .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(PageRows::from_overfetch(items, limit))
}
