//! The floor: the least a request to this machine's PostgreSQL through axum and sqlx can cost
//! (one primary-key lookup, a small JSON answer), driven exactly like Musubi. Musubi's figures
//! are read against it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

pub async fn serve(args: crate::FloorArgs) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(args.max_connections)
        .connect(&args.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
    let app = Router::new()
        .route("/floor/{id}", get(user))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    eprintln!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    pool.close().await;
    Ok(())
}

async fn user(State(pool): State<PgPool>, Path(id): Path<String>) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return not_found();
    };
    let row: Result<Option<(Uuid, String, String)>, sqlx::Error> =
        sqlx::query_as("SELECT id, name, profession FROM core.users WHERE id = $1")
            .bind(id)
            .fetch_optional(&pool)
            .await;
    match row {
        Ok(Some((id, name, profession))) => Json(json!({
            "data": {"user": {"id": id, "name": name, "profession": profession}}
        }))
        .into_response(),
        Ok(None) => not_found(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({
                "data": null,
                "errors": [{"message": e.to_string(), "extensions": {"code": "INTERNAL"}}]
            })),
        )
            .into_response(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "data": null,
            "errors": [{"message": "no such user", "extensions": {"code": "NOT_FOUND"}}]
        })),
    )
        .into_response()
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
