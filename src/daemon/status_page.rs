//! `/`: a small status page for people. Last runs, record counts, the
//! results outbox, recent errors, and a chart of transfers per hour over
//! the last 7 days (drawn as inline SVG by a few lines of the page's own
//! JavaScript: no external scripts, styles or fonts).
//!
//! It shows counts, times, outcomes and run-level errors only: no names,
//! e-mail addresses, record ids or result values.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::{DurationRound, Utc};
use rusqlite::Connection;

use super::{Shared, metrics};
use crate::store::RunRow;

/// HTML-escape text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Audit entries per UTC hour over the last 168 hours: (hour, ok, failed),
/// oldest first, every hour present.
pub fn hourly(conn: &Connection) -> Result<Vec<(String, i64, i64)>> {
    let end = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap_or_else(|_| Utc::now());
    let start = end - chrono::Duration::hours(167);
    let mut counts = std::collections::HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT substr(at, 1, 13) AS h, SUM(outcome = 'ok'), SUM(outcome <> 'ok')
         FROM audit WHERE at >= ?1 AND direction <> 'local' GROUP BY h",
    )?;
    let rows = stmt.query_map([start.format("%Y-%m-%dT%H").to_string()], |r| {
        <(String, i64, i64)>::try_from(r)
    })?;
    for row in rows {
        let (h, ok, failed) = row?;
        counts.insert(h, (ok, failed));
    }
    Ok((0..168)
        .map(|i| {
            let h = (start + chrono::Duration::hours(i))
                .format("%Y-%m-%dT%H")
                .to_string();
            let (ok, failed) = counts.get(&h).copied().unwrap_or((0, 0));
            (h, ok, failed)
        })
        .collect())
}

fn count(summary: &serde_json::Value, what: &str) -> u64 {
    // a results run: results pushed show as created, re-marked ones as
    // updated
    if summary.get("pushed").is_some() {
        let key = match what {
            "created" => "pushed",
            "updated" | "failed" => what,
            _ => return 0,
        };
        return summary.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
    }
    ["users", "groups"]
        .iter()
        .filter_map(|k| summary.pointer(&format!("/{k}/{what}"))?.as_u64())
        .sum()
}

/// What the page may say about a run's error: run-level causes in full,
/// record-level failures only as a count (their lines name record ids).
fn run_note(r: &RunRow) -> String {
    match r.outcome.as_str() {
        "partial" => format!(
            "{} records failed; `sisync audit list --since {}` has them",
            count(&r.summary, "failed"),
            &r.started_at[..r.started_at.len().min(10)]
        ),
        "ok" | "running" => String::new(),
        _ => r.error.clone().unwrap_or_default(),
    }
}

fn duration(r: &RunRow) -> String {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (
        parse(&r.started_at),
        r.finished_at.as_deref().and_then(parse),
    ) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds().max(0) as u64;
            humantime::format_duration(std::time::Duration::from_millis(ms - ms % 100)).to_string()
        }
        _ => "-".into(),
    }
}

const STYLE: &str = r#"
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d1d1f;background:#fafafa}
h1{font-size:1.4rem;margin:0}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
.sub{color:#555;margin:.2rem 0 1rem}
table{border-collapse:collapse;background:#fff;font-size:.9rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #ddd;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.outcome-ok{color:#176b2c}.outcome-partial,.outcome-interrupted{color:#8a5a00}
.outcome-failed,.outcome-refused{color:#b00020;font-weight:600}
#now{font-weight:600}
.cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.card b{display:block;font-size:1.3rem}
#chart svg{background:#fff;border:1px solid #ddd;max-width:100%}
.bar.ok{fill:#3b7dd8}.bar.failed{fill:#d8453b}
ul.errors li{margin:.2rem 0}
"#;

/// The chart: reads the JSON above it and draws one bar (or two, ok and
/// failed, stacked) per hour with transfers.
const CHART_JS: &str = r#"
(function () {
  var data = JSON.parse(document.getElementById('hourly-data').textContent);
  var ns = 'http://www.w3.org/2000/svg', W = 860, H = 180, left = 40, bottom = 22;
  var max = 1, total = 0;
  data.forEach(function (d) { max = Math.max(max, d[1] + d[2]); total += d[1] + d[2]; });
  var svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('id', 'transfers-chart');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('width', W); svg.setAttribute('height', H);
  svg.setAttribute('role', 'img');
  svg.setAttribute('data-total', total);
  function el(name, attrs, text) {
    var e = document.createElementNS(ns, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  var bw = (W - left - 4) / data.length, ph = H - bottom - 8;
  el('line', {x1: left, y1: H - bottom, x2: W - 4, y2: H - bottom, stroke: '#999'});
  el('text', {x: left - 4, y: 14, 'text-anchor': 'end', 'font-size': 11}, String(max));
  el('text', {x: left - 4, y: H - bottom, 'text-anchor': 'end', 'font-size': 11}, '0');
  data.forEach(function (d, i) {
    var x = left + i * bw, y = H - bottom;
    var when = new Date(d[0] + ':00:00Z');
    if (i % 24 === 0) {
      el('text', {x: x, y: H - 6, 'font-size': 11},
         when.toLocaleDateString(undefined, {weekday: 'short', day: 'numeric'}));
    }
    [['ok', d[1]], ['failed', d[2]]].forEach(function (p) {
      if (!p[1]) return;
      var h = Math.max(1, p[1] / max * ph);
      y -= h;
      var r = el('rect', {'class': 'bar ' + p[0], x: x.toFixed(1), y: y.toFixed(1),
        width: Math.max(1, bw - 1).toFixed(1), height: h.toFixed(1),
        'data-hour': d[0], 'data-count': p[1]});
      var t = document.createElementNS(ns, 'title');
      t.textContent = when.toLocaleString() + ': ' + p[1] + ' ' + p[0];
      r.appendChild(t);
    });
  });
  var box = document.getElementById('chart');
  box.textContent = '';
  box.appendChild(svg);
  document.getElementById('chart-total').textContent =
    total + ' transfers in the last 7 days, at most ' + max + ' in one hour';
})();
"#;

pub fn render(shared: &Shared) -> String {
    match render_inner(shared) {
        Ok(html) => html,
        Err(e) => format!(
            "<!doctype html><meta charset=utf-8><title>sisync</title><h1>sisync</h1><p>cannot read the state database: {}</p>",
            esc(&format!("{e:#}"))
        ),
    }
}

fn render_inner(shared: &Shared) -> Result<String> {
    let loaded = shared.loaded();
    let c = &loaded.config;
    let conn = metrics::open_read_only(&c.state.path)?;
    let runs = crate::store::recent_runs(&conn, 20)?;
    let outbox = metrics::outbox(&conn)?;
    let hourly = hourly(&conn)?;
    let counts = crate::store::record_counts(&conn)?;
    let n = |kind: &str, active: bool| crate::store::count_of(&counts, kind, active);

    let now_line = match shared.current.lock().ok().and_then(|c| c.clone()) {
        Some((_, since, tracker)) => format!(
            "{} (since {})",
            tracker.line(),
            since.with_timezone(&chrono::Local).format("%H:%M:%S")
        ),
        None => {
            let next = shared.next.lock().map(|n| n.clone()).unwrap_or_default();
            super::idle_line(&next, true)
        }
    };

    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30">
<title>sisync · {name}</title><style>{STYLE}</style></head>
<body>
<h1>sisync · {name}</h1>
<p class="sub">BRIN {brin}, {env} · sisync {version} · daemon up since {up} · state {state}</p>
<p id="now">{now}</p>
"#,
        name = esc(&c.institution.name),
        brin = esc(&c.institution.brin),
        env = c.institution.environment.as_str(),
        version = env!("CARGO_PKG_VERSION"),
        up = shared
            .started_at
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M"),
        state = esc(&c.state.path.display().to_string()),
        now = esc(&now_line),
    );

    if let Some(w) = c.safety.freeze_on(crate::sync::today()) {
        let deferred = runs
            .iter()
            .find(|r| r.kind == "roster")
            .and_then(|r| r.summary.get("deferred").cloned())
            .and_then(|d| serde_json::from_value::<crate::sync::freeze::Deferred>(d).ok());
        let _ = writeln!(
            h,
            r#"<p id="freeze">Freeze window <b>{}</b> from {} until {}{}: {}</p>"#,
            w.mode.as_str(),
            w.from,
            w.until,
            w.reason_note(esc),
            match deferred {
                Some(d) => esc(&format!(
                    "the last roster run deferred {} deactivations, {} membership removals, {} class retirements, {} accommodation reductions, {} other changes",
                    d.users_deactivated,
                    d.memberships_removed,
                    d.classes_retired,
                    d.accommodations_reduced,
                    d.other
                )),
                None => "nothing deferred yet".into(),
            }
        );
    }
    // a held plan needs a person before anything else
    if let Some((id, since)) = crate::store::plans::held_now(&conn)
        .ok()
        .and_then(|p| p.into_iter().next())
    {
        let _ = writeln!(
            h,
            r#"<p id="held" class="outcome-refused">Plan {id} is held by the safety gate since {since}: nothing is written until an admin reviews it with <code>sisync plan show {id}</code> and applies it with <code>sisync plan approve {id}</code>.</p>"#,
            since = esc(&since),
        );
    }
    let _ = write!(
        h,
        r#"<h2>Records</h2><div class="cards" id="records">
<div class="card">users<b>{}</b>{} deactivated</div>
<div class="card">classes<b>{}</b>{} retired</div>
</div>
"#,
        n("user", true),
        n("user", false),
        n("group", true),
        n("group", false),
    );

    let ob = |s: &str| {
        outbox
            .by_state
            .iter()
            .find(|(k, _)| k == s)
            .map(|x| x.1)
            .unwrap_or(0)
    };
    let _ = write!(
        h,
        r#"<h2>Results outbox</h2><div class="cards" id="outbox">
<div class="card">pending<b>{}</b>oldest {}</div>
<div class="card">failed<b>{}</b>retried</div>
<div class="card">parked<b>{}</b>need a person</div>
<div class="card">pushed<b>{}</b>delivered</div>
</div>
"#,
        ob("pending"),
        outbox
            .oldest_age_seconds
            .map(
                |s| humantime::format_duration(std::time::Duration::from_secs(s as u64))
                    .to_string()
            )
            .unwrap_or_else(|| "-".into()),
        ob("failed"),
        ob("parked"),
        ob("pushed"),
    );

    platform_check(&mut h, &conn);
    endpoints(&mut h, &conn);

    h.push_str(
        r#"<h2>Last runs</h2><table id="runs"><thead><tr><th>run</th><th>kind</th><th>started (UTC)</th><th>took</th><th>outcome</th><th>created</th><th>updated</th><th>deactivated</th><th>failed</th><th>by</th><th>note</th></tr></thead><tbody>
"#,
    );
    for r in &runs {
        let _ = writeln!(
            h,
            r#"<tr class="run" data-run-id="{id}" data-outcome="{o}"><td class="n">{id}</td><td>{kind}</td><td>{start}</td><td>{took}</td><td class="outcome-{o}">{o}</td><td class="n">{c}</td><td class="n">{u}</td><td class="n">{d}</td><td class="n">{f}</td><td>{actor}</td><td>{note}</td></tr>"#,
            id = r.id,
            // "full" only for a full sync that was asked for (every CSV
            // read is complete; that is no news)
            kind = esc(&format!(
                "{}{}",
                r.kind,
                if r.summary.get("full_requested").and_then(|v| v.as_bool()) == Some(true) {
                    " (full)"
                } else {
                    ""
                }
            )),
            start = esc(&r.started_at.replace('T', " ")[..r.started_at.len().min(19)]),
            took = esc(&duration(r)),
            o = esc(&r.outcome),
            c = count(&r.summary, "created"),
            u = count(&r.summary, "updated"),
            d = count(&r.summary, "deactivated"),
            f = count(&r.summary, "failed"),
            actor = esc(&r.actor),
            note = esc(&run_note(r)),
        );
    }
    if runs.is_empty() {
        h.push_str(r#"<tr><td colspan="11">no runs yet</td></tr>"#);
    }
    h.push_str("</tbody></table>\n");

    let data: Vec<serde_json::Value> = hourly
        .iter()
        .map(|(hour, ok, failed)| serde_json::json!([hour, ok, failed]))
        .collect();
    let _ = write!(
        h,
        r#"<h2>Transfers per hour, last 7 days</h2>
<div id="chart"><p>the chart needs JavaScript</p></div>
<p id="chart-total"></p>
<script type="application/json" id="hourly-data">{}</script>
<script>{CHART_JS}</script>
"#,
        serde_json::Value::Array(data)
            .to_string()
            .replace('<', "\\u003c"),
    );

    h.push_str("<h2>Recent errors</h2><ul class=\"errors\" id=\"errors\">\n");
    let errors = shared.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let mut any = false;
    for e in errors.iter().rev() {
        any = true;
        let _ = writeln!(
            h,
            "<li>{} · {}: {}</li>",
            esc(&e.at.replace('T', " ")[..e.at.len().min(19)]),
            esc(&e.what),
            esc(&e.message)
        );
    }
    if !any {
        h.push_str("<li>none since the daemon started</li>\n");
    }
    h.push_str("</ul>\n</body></html>\n");
    Ok(h)
}

/// The last `sisync reconcile`: what the platform holds against what was
/// sent, as counts.
fn platform_check(h: &mut String, conn: &Connection) {
    h.push_str("<h2>Platform check</h2>\n");
    let Ok(Some(r)) = crate::store::last_finished_run(conn, "reconcile") else {
        h.push_str(r#"<p id="reconcile">Never compared: <code>sisync reconcile</code> reads the platform back and lists drift, orphans and missing records (<code>schedule.reconcile_every</code> runs it on a schedule).</p>"#);
        h.push('\n');
        return;
    };
    let n = |k: &str| r.summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let at = esc(&r.started_at.replace('T', " ")[..r.started_at.len().min(19)]);
    let line = match r.outcome.as_str() {
        "ok" => format!(
            r#"<p id="reconcile" data-outcome="ok">Last compared {at} UTC: the platform holds what was sent ({} users, {} classes read).</p>"#,
            n("users_read"),
            n("groups_read")
        ),
        "drift" => format!(
            r#"<p id="reconcile" data-outcome="drift" class="outcome-partial">Last compared {at} UTC: {} missing, {} drifted, {} orphans, {} memberships differ. <code>sisync reconcile</code> lists them; <code>sisync reconcile --fix</code> re-sends through the safety gate.</p>"#,
            n("missing"),
            n("drifted"),
            n("orphans"),
            n("membership")
        ),
        o => format!(
            r#"<p id="reconcile" data-outcome="{o}" class="outcome-failed">Last comparison {at} UTC did not finish ({o}): {}</p>"#,
            esc(r.error.as_deref().unwrap_or("see the journal")),
            o = esc(o)
        ),
    };
    h.push_str(&line);
    h.push('\n');
}

/// When each remote endpoint last answered.
fn endpoints(h: &mut String, conn: &Connection) {
    let Ok(list) = crate::store::endpoint_answers(conn) else {
        return;
    };
    if list.is_empty() {
        return;
    }
    h.push_str(
        r#"<h2>Endpoints</h2><table id="endpoints"><thead><tr><th>endpoint</th><th>last answer (UTC)</th><th>status</th><th>note</th></tr></thead><tbody>
"#,
    );
    let t = |s: &Option<String>| {
        s.as_deref()
            .map(|s| s.replace('T', " ").trim_end_matches('Z').to_string())
            .unwrap_or_else(|| "never".into())
    };
    for (label, seen) in list {
        let note = if seen.down() {
            format!("no answer since {} UTC", t(&seen.failed_at))
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            r#"<tr class="endpoint" data-down="{down}"><td>{label}</td><td>{at}</td><td class="n">{status}</td><td class="{cls}">{note}</td></tr>"#,
            down = seen.down(),
            label = esc(&label),
            at = esc(&t(&seen.answered_at)),
            status = seen
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            cls = if seen.down() { "outcome-failed" } else { "" },
            note = esc(&note),
        );
    }
    h.push_str("</tbody></table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_runs_show_what_they_pushed() {
        let s = serde_json::json!({"pushed": 5, "updated": 1, "failed": 2, "ingested": {"new": 6}});
        assert_eq!(count(&s, "created"), 5);
        assert_eq!(count(&s, "updated"), 1);
        assert_eq!(count(&s, "failed"), 2);
        assert_eq!(count(&s, "deactivated"), 0);
        let r = serde_json::json!({"users": {"created": 3}, "groups": {"created": 1}});
        assert_eq!(count(&r, "created"), 4);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn hourly_counts_cover_seven_days_and_split_outcomes() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE audit (at TEXT, outcome TEXT, direction TEXT DEFAULT 'out')",
        )
        .unwrap();
        // a local administrative action (purge, restrict) is no transfer
        conn.execute(
            "INSERT INTO audit VALUES (?1, 'ok', 'local')",
            [Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()],
        )
        .unwrap();
        let now = Utc::now();
        let at = |h: i64| {
            (now - chrono::Duration::hours(h))
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        for (h, o) in [(0, "ok"), (0, "ok"), (0, "failed"), (5, "ok"), (200, "ok")] {
            conn.execute(
                "INSERT INTO audit (at, outcome) VALUES (?1, ?2)",
                [at(h), o.to_string()],
            )
            .unwrap();
        }
        let v = hourly(&conn).unwrap();
        assert_eq!(v.len(), 168);
        assert_eq!(v.last().unwrap().1, 2);
        assert_eq!(v.last().unwrap().2, 1);
        assert_eq!(
            v.iter().map(|x| x.1 + x.2).sum::<i64>(),
            4,
            "older than 7 days left out"
        );
    }
}
