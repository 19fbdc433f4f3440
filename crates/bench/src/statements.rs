//! The mixed phase's costliest SQL statements, from `pg_stat_statements`: where PostgreSQL's
//! share of an action goes. A developer's tool; the report does not depend on it.

use anyhow::Context as _;
use sqlx::Connection as _;
use std::fmt::Write as _;
use std::path::Path;

/// Statements listed, costliest first.
const TOP: i64 = 30;

async fn connect(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    sqlx::PgConnection::connect(url)
        .await
        .context("connecting to the benchmark database")
}

/// Forgets what was counted so far (generation, earlier phases).
pub async fn reset(url: &str) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&mut conn)
        .await?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut conn)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    calls: i64,
    plans: i64,
    exec_ms: f64,
    plan_ms: f64,
    rows: i64,
    query: String,
}

/// Writes the statements by total time (planning and execution), with their time per action of
/// the phase (`label`), so that a change's effect reads directly against the CPU per action.
pub async fn write(url: &str, path: &Path, label: &str, actions: u64) -> anyhow::Result<()> {
    let mut conn = connect(url).await?;
    // Each association's schema makes a statement of its own: summed over them by text, with
    // constants and parameters folded so that variants of one statement meet.
    let rows: Vec<Row> = sqlx::query_as(
        "WITH s AS ( \
             SELECT regexp_replace(regexp_replace(query, \
                        '\\$[0-9]+|''[^'']*''|\\m[0-9]+\\M', '?', 'g'), '\\s+', ' ', 'g') AS q, \
                    calls, plans, total_exec_time, total_plan_time, rows \
             FROM pg_stat_statements) \
         SELECT sum(calls)::bigint AS calls, sum(plans)::bigint AS plans, \
                sum(total_exec_time) AS exec_ms, sum(total_plan_time) AS plan_ms, \
                sum(rows)::bigint AS rows, q AS query \
         FROM s GROUP BY q \
         ORDER BY sum(total_exec_time + total_plan_time) DESC LIMIT $1",
    )
    .bind(TOP)
    .fetch_all(&mut conn)
    .await?;
    let (exec, plan): (f64, f64) = sqlx::query_as(
        "SELECT coalesce(sum(total_exec_time), 0)::float8, coalesce(sum(total_plan_time), 0)::float8 \
         FROM pg_stat_statements",
    )
    .fetch_one(&mut conn)
    .await?;
    let per = |ms: f64| ms / actions.max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{label}: {actions} actions; all statements {:.3} ms execution + {:.3} ms planning per action\n",
        per(exec),
        per(plan)
    );
    for r in rows {
        let query: String = r.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            out,
            "{:>8.3} ms/action  exec {:>9.0} ms  plan {:>7.0} ms  calls {:>8}  plans {:>7}  rows {:>9}\n    {}\n",
            per(r.exec_ms + r.plan_ms),
            r.exec_ms,
            r.plan_ms,
            r.calls,
            r.plans,
            r.rows,
            query
        );
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
