//! Applying exam sittings and registrations to a platform that takes them
//! one at a time (OKE flow 2): sittings first, then registrations, then
//! withdrawals, then cancelled sittings. Each write's state and audit
//! entry commit together once the platform accepted it.

use crate::connector::{ExamSink, SinkError, Written};
use crate::store::Store;
use crate::sync::apply::{Context, Outcome, commit_one, disk_full_line, settle};
use crate::sync::plan::{Action, Change, Plan};

fn no_record(endpoint: String) -> Result<Written, SinkError> {
    Err(SinkError {
        endpoint,
        status: None,
        message: "internal: planned change without a record".into(),
        payload_sha256: None,
        detail: None,
        refused: false,
    })
}

/// A cancellation of something the platform does not have: done.
fn already_gone(r: Result<Written, SinkError>) -> Result<Written, SinkError> {
    match r {
        Err(e) if e.status == Some(404) => Ok(Written {
            platform_id: None,
            endpoint: e.endpoint,
            payload_sha256: String::new(),
        }),
        r => r,
    }
}

/// Send the exam part of `plan` to `sink`, adding to `out`. Stops (and
/// says why in `out.stopped`) when the state volume is full or after
/// `max_consecutive_failures` writes in a row got no answer.
pub async fn apply_exams<S: ExamSink + ?Sized>(
    sink: &S,
    plan: &Plan,
    store: &mut Store,
    ctx: &Context<'_>,
    max_consecutive_failures: usize,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let endpoint = sink.endpoint();
    let mut in_a_row = 0usize;
    let limit = max_consecutive_failures.max(1);
    // a sitting whose write failed: its registrations wait for the next run
    let mut failed_offerings = std::collections::HashSet::new();
    macro_rules! step {
        ($c:expr, $res:expr) => {{
            let res: Result<Written, SinkError> = $res;
            if matches!(&res, Err(e) if e.status.is_none_or(|s| s == 429 || s >= 500)) {
                in_a_row += 1;
            } else {
                in_a_row = 0;
            }
            let item = settle(ctx, &endpoint, $c, &res, false, out);
            if !commit_one(store, item)? {
                out.stopped = Some(disk_full_line(store));
                return Ok(());
            }
            (ctx.tick)();
            if in_a_row >= limit {
                out.stopped = Some(format!(
                    "the platform at {endpoint} stopped answering: {limit} writes in a row failed ({}); stopped, the next run sends the rest",
                    out.failures.last().map(String::as_str).unwrap_or("no answer"),
                ));
                return Ok(());
            }
            res.is_ok()
        }};
    }
    for c in plan
        .offerings
        .iter()
        .filter(|c| c.action != Action::Deactivate)
    {
        if (ctx.stop)() {
            return Ok(());
        }
        let res = match &c.offering {
            Some(o) => sink.put_offering(o).await,
            None => no_record(endpoint.clone()),
        };
        if !step!(c, res) {
            failed_offerings.insert(c.external_id().to_string());
        }
    }
    let (withdrawals, puts): (Vec<_>, Vec<_>) = plan
        .registrations
        .iter()
        .partition(|c| c.action == Action::Deactivate);
    for c in puts {
        if (ctx.stop)() {
            return Ok(());
        }
        if c.offering
            .as_ref()
            .is_some_and(|o| failed_offerings.contains(o))
        {
            out.registrations.failed += 1;
            out.failures.push(format!(
                "registration {}: {} not sent: its exam sitting {} was not accepted (see above); the next run sends it",
                c.external_id,
                c.action.as_str(),
                c.offering.as_deref().unwrap_or_default()
            ));
            continue;
        }
        let res = match &c.registration {
            Some(r) => sink.put_registration(r).await,
            None => no_record(endpoint.clone()),
        };
        let _ = step!(c, res);
    }
    for c in withdrawals {
        if (ctx.stop)() {
            return Ok(());
        }
        let res = already_gone(sink.cancel_registration(&c.external_id).await);
        let _ = step!(c, res);
    }
    for c in plan
        .offerings
        .iter()
        .filter(|c| c.action == Action::Deactivate)
    {
        if (ctx.stop)() {
            return Ok(());
        }
        let res = already_gone(sink.cancel_offering(&c.external_id).await);
        let _ = step!(c, res);
    }
    Ok(())
}
