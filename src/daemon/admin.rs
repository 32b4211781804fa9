//! The admin HTTP endpoint (axum), bound to `admin.listen`:
//! `/healthz` (the process serves), `/readyz` (state database writable and
//! no kind of run failing for longer than `admin.ready_max_failing_age`),
//! `/metrics` (Prometheus) and `/` (the status page).
//!
//! With `admin.token` set, `/metrics` and `/` need `Authorization: Bearer
//! <token>`, or HTTP Basic auth with the token as password (so a browser
//! can open the page); the health probes stay open and say nothing
//! personal.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use sha2::{Digest, Sha256};

use super::{Shared, metrics, status_page};

pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let app = router(shared);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!("admin endpoint stopped: {e}");
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(shared)
}

type S = State<Arc<Shared>>;

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): S) -> Response {
    let loaded = shared.loaded();
    let db = loaded.config.state.path.clone();
    let max = loaded.config.admin.ready_max_failing_age;
    match tokio::task::spawn_blocking(move || readiness(&db, max)).await {
        Ok(Ok(msg)) => (StatusCode::OK, msg).into_response(),
        Ok(Err(msg)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {msg}\n"),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready: check failed\n").into_response(),
    }
}

async fn metrics_text(State(shared): S, headers: HeaderMap) -> Response {
    if let Some(denied) = check_auth(&shared, &headers, false) {
        return denied;
    }
    let db = shared.state_path();
    let open_metrics =
        metrics::wants_open_metrics(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    match tokio::task::spawn_blocking(move || metrics::render(metrics::global(), &db)).await {
        Ok(text) if open_metrics => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            metrics::to_classic_text(&text),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn page(State(shared): S, headers: HeaderMap) -> Response {
    if let Some(denied) = check_auth(&shared, &headers, true) {
        return denied;
    }
    let s = shared.clone();
    match tokio::task::spawn_blocking(move || status_page::render(&s)).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
                ),
            ],
            html,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// None when the request may pass; else the 401 to send.
fn check_auth(shared: &Shared, headers: &HeaderMap, browser: bool) -> Option<Response> {
    let token = shared.admin_token.read().ok()?.clone()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            if let Some(t) = v.strip_prefix("Bearer ") {
                return Some(t.trim().to_string());
            }
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.strip_prefix("Basic ")?.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            Some(text.split_once(':')?.1.to_string())
        });
    // compare digests, so the time taken says nothing about the token
    let ok = given
        .is_some_and(|g| Sha256::digest(g.as_bytes()) == Sha256::digest(token.expose().as_bytes()));
    if ok {
        return None;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "authorization required: send the admin token (admin.token) as a bearer token\n",
    )
        .into_response();
    let challenge = if browser {
        "Basic realm=\"sisync\", charset=\"UTF-8\""
    } else {
        "Bearer realm=\"sisync\""
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(challenge),
    );
    Some(r)
}

/// Outcomes that mean a kind of run is failing and needs a person.
const FAILING: &str = "'failed', 'refused'";

/// Ok(message) when ready; Err(reason) when not.
pub fn readiness(db: &Path, max_failing: Duration) -> Result<String, String> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open the state database {} ({e})", db.display()))?;
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
        return Err(format!("the state database {} is read-only", db.display()));
    }
    let _ = conn.busy_timeout(Duration::from_millis(500));
    match conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
        Ok(()) => {}
        // a writer holds it: it is writable
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy
                || e.code == rusqlite::ErrorCode::DatabaseLocked => {}
        Err(e) => {
            return Err(format!(
                "the state database {} is not writable ({e})",
                db.display()
            ));
        }
    }
    // a held plan waits for a person: the platform is not being kept in sync
    if let Some((id, since)) = crate::store::plans::held_now(&conn)
        .ok()
        .and_then(|h| h.into_iter().next())
    {
        return Err(format!(
            "plan {id} held by the safety gate since {since}; review it with `sisync plan show {id}`, apply it with `sisync plan approve {id}`"
        ));
    }
    for kind in ["roster", "results"] {
        if let Some((since, n)) = failing_since(&conn, kind)
            .map_err(|e| format!("cannot read runs from {} ({e})", db.display()))?
        {
            let age = (chrono::Utc::now() - since).to_std().unwrap_or_default();
            if age > max_failing {
                return Err(format!(
                    "{kind} runs failing since {} ({n} runs, longer than admin.ready_max_failing_age {}); see the status page or `sisync status`",
                    since.format("%Y-%m-%dT%H:%M:%SZ"),
                    humantime::format_duration(max_failing)
                ));
            }
        }
    }
    Ok("ready\n".into())
}

/// When the current streak of failing runs of `kind` began, and its length.
fn failing_since(
    conn: &Connection,
    kind: &str,
) -> rusqlite::Result<Option<(chrono::DateTime<chrono::Utc>, i64)>> {
    let row: Option<(String, i64)> = conn
        .query_row(
            &format!(
                "SELECT MIN(started_at), COUNT(*) FROM runs
                 WHERE kind = ?1 AND outcome IN ({FAILING})
                   AND id > COALESCE((SELECT MAX(id) FROM runs WHERE kind = ?1 AND outcome IN ('ok', 'partial')), 0)
                 HAVING COUNT(*) > 0"
            ),
            [kind],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.and_then(|(t, n)| {
        chrono::DateTime::parse_from_rfc3339(&t)
            .ok()
            .map(|t| (t.with_timezone(&chrono::Utc), n))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunOutcome;

    #[test]
    fn ready_until_a_kind_fails_for_too_long() {
        let (_dir, db, store) = crate::test_util::temp_store("s.db");
        let hour = Duration::from_secs(3600);
        assert!(readiness(&db, hour).is_ok(), "fresh state");
        let ok = store.begin_run("roster", "daemon", true).unwrap();
        store
            .finish_run(ok, RunOutcome::Ok, &serde_json::json!({}), None)
            .unwrap();
        let bad = store.begin_run("roster", "daemon", false).unwrap();
        store
            .finish_run(bad, RunOutcome::Failed, &serde_json::json!({}), Some("x"))
            .unwrap();
        assert!(readiness(&db, hour).is_ok(), "failing, but not for long");
        let e = readiness(&db, Duration::ZERO).unwrap_err();
        assert!(
            e.contains("roster runs failing since") && e.contains("1 runs"),
            "{e}"
        );
        // a later success clears it
        let ok = store.begin_run("roster", "daemon", false).unwrap();
        store
            .finish_run(ok, RunOutcome::Partial, &serde_json::json!({}), None)
            .unwrap();
        assert!(readiness(&db, Duration::ZERO).is_ok());
    }

    #[test]
    fn a_held_plan_is_reported_until_it_is_decided() {
        let (_dir, db, mut store) = crate::test_util::temp_store("s.db");
        let id = store
            .hold_plan(&crate::store::plans::NewHeld {
                actor: "daemon",
                run_id: None,
                reason: "would remove 80 of 80 memberships",
                source_fingerprint: "f",
                state_version: "v",
                summary: &serde_json::json!({}),
                plan: "{}",
            })
            .unwrap();
        let hour = Duration::from_secs(3600);
        let e = readiness(&db, hour).unwrap_err();
        assert!(
            e.contains(&format!("plan {id} held"))
                && e.contains(&format!("sisync plan approve {id}")),
            "{e}"
        );
        let m = crate::daemon::metrics::Metrics::new_for_test();
        let text = super::super::metrics::render(&m, &db);
        assert!(text.contains("sisync_plans_held 1"), "{text}");
        store.mark_plan_approved(id, "user:admin", 7).unwrap();
        assert!(readiness(&db, hour).is_ok());
        assert!(super::super::metrics::render(&m, &db).contains("sisync_plans_held 0"));
    }

    #[test]
    fn a_missing_state_database_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("gone").join("s.db");
        let e = readiness(&db, Duration::from_secs(60)).unwrap_err();
        assert!(e.contains("cannot open the state database"), "{e}");
        assert!(!db.exists(), "the probe never creates it");
    }
}
