//! `sisync privacy ...` and `sisync report results`: subject rights,
//! retention, the processing register and anonymous statistics.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::json;

use super::out::outln;
use super::{print_json, table};
use crate::cli::{Cli, ExportFormat, PrivacyCmd};
use crate::config::{Environment, Loaded};
use crate::connector::drop_folder::csv_bytes;
use crate::connector::platform::{EraseError, platform_sink};
use crate::exit::{CliError, CliResult, Exit};
use crate::store::audit::actor;
use crate::store::{AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction, Store};
use crate::sync::lock::RunLock;

fn open_store(l: &Loaded) -> Result<Option<Store>> {
    let path = &l.config.state.path;
    if !path.exists() {
        eprintln!(
            "error: no state database at {}; sisync holds nothing yet (check state.path)",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some(Store::open(path)?))
}

/// The id the state and the platform use for a SIS id: as recorded by
/// the roster sync (pseudonym or ECK iD), else as the config makes it.
fn state_id(l: &Loaded, store: &Store, sis_id: &str) -> Result<String> {
    if let Some(id) = store.mapped_id(sis_id)? {
        return Ok(id);
    }
    Ok(if l.config.privacy.pseudonymize_ids {
        crate::privacy::pseudonym::Pseudonymizer::new(&l.pseudonym_key()?).id(sis_id)
    } else {
        sis_id.to_string()
    })
}

fn local_entry(action: AuditAction, record_id: &str) -> AuditEntry {
    AuditEntry {
        actor: actor(),
        run_id: None,
        direction: Direction::Local,
        endpoint: "state".into(),
        action,
        record_kind: AuditKind::User,
        record_id: record_id.to_string(),
        fields: String::new(),
        payload_sha256: None,
        outcome: AuditOutcome::Ok,
        detail: None,
    }
}

pub async fn run(cli: &Cli, l: &Loaded, cmd: &PrivacyCmd) -> CliResult {
    match cmd {
        PrivacyCmd::Register => {
            register(cli, l)?;
            Ok(Exit::Ok)
        }
        PrivacyCmd::Export { person, format } => export(cli, l, person, *format),
        PrivacyCmd::Restrict { person, wait } => {
            // a sync in progress would still write the person after this
            // said "restricted": wait until it is done
            let Some((_lock, mut store, id)) = locked(l, person, *wait).await? else {
                return Ok(Exit::Failure);
            };
            store.restrict(
                person,
                &actor(),
                &local_entry(AuditAction::SubjectRestrict, &id),
            )?;
            anchor(l, &store)?;
            if cli.json {
                print_json(&json!({"person": person, "restricted": true}))?;
            } else {
                outln!(
                    "{person}: restricted. sisync sends no updates and pushes no results for this person until `sisync privacy unrestrict --person {person}`; results stay in the outbox."
                )?;
            }
            Ok(Exit::Ok)
        }
        PrivacyCmd::Unrestrict { person, wait } => {
            let Some((_lock, mut store, id)) = locked(l, person, *wait).await? else {
                return Ok(Exit::Failure);
            };
            let lifted =
                store.unrestrict(person, &local_entry(AuditAction::SubjectUnrestrict, &id))?;
            anchor(l, &store)?;
            if cli.json {
                print_json(&json!({"person": person, "lifted": lifted}))?;
            } else if lifted {
                outln!(
                    "{person}: no longer restricted; the next sync processes them again (an erased person is created again if the SIS still has them)."
                )?;
            } else {
                eprintln!("{person}: there is no restriction or erasure to lift");
            }
            Ok(if lifted { Exit::Ok } else { Exit::Failure })
        }
        PrivacyCmd::Erase {
            person,
            wait,
            dry_run: true,
            ..
        } => erase_dry_run(cli, l, person, *wait),
        PrivacyCmd::Erase {
            person, wait, yes, ..
        } => {
            if !*yes && !confirmed(person)? {
                eprintln!("not confirmed: nothing was changed");
                return Ok(Exit::Failure);
            }
            erase(cli, l, person, *wait).await
        }
        PrivacyCmd::Purge => {
            let _lock = RunLock::acquire(&l.config.state.path)?;
            let Some(mut store) = open_store(l)? else {
                return Ok(Exit::Failure);
            };
            let p = &l.config.privacy;
            let r = store.purge(p.retention_days, p.audit_retention_days, &actor())?;
            anchor(l, &store)?;
            let files = crate::privacy::files::expire(
                &l.config,
                p.keep_deliveries,
                std::time::SystemTime::now(),
            )?;
            if cli.json {
                let mut v = serde_json::to_value(&r)?;
                v["files"] = serde_json::to_value(&files)?;
                print_json(&v)?;
            } else {
                outln!(
                    "purged {} persons absent for more than {} days ({} memberships, {} results), {} older results; {} audit entries lost their subject id (older than {} days, or about purged persons); `sisync audit verify` stays green",
                    r.persons,
                    p.retention_days,
                    r.removed.memberships,
                    r.removed.results,
                    r.old_results,
                    r.removed.audit_entries_anonymised + r.old_audit_entries_anonymised,
                    p.audit_retention_days
                )?;
                outln!(
                    "delivered folders and processed result files older than {} days (privacy.keep_deliveries):",
                    p.keep_deliveries
                )?;
                print_touched(&files, "none to remove")?;
            }
            if r.expired_unsent > 0 {
                eprintln!(
                    "warning: {} parked or pending results waited more than {} days and were deleted without reaching the SIS; `sisync status` lists what is still waiting, so resolve parked results sooner",
                    r.expired_unsent, p.retention_days
                );
            }
            Ok(Exit::Ok)
        }
    }
}

fn export(cli: &Cli, l: &Loaded, person: &str, format: ExportFormat) -> CliResult {
    let Some(mut store) = open_store(l)? else {
        return Ok(Exit::Failure);
    };
    let id = state_id(l, &store, person)?;
    let data = store.subject_data(person, &id)?;
    store.audit_append(&[local_entry(AuditAction::SubjectExport, &id)])?;
    anchor(l, &store)?;
    if data.active.is_none()
        && data.results.is_empty()
        && data.audit.is_empty()
        && data.hold.is_none()
    {
        eprintln!("{person}: sisync holds nothing about this person");
    }
    if cli.json || format == ExportFormat::Json {
        print_json(&data)?;
        return Ok(Exit::Ok);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut add = |cat: &str, item: &str, field: &str, value: String| {
        rows.push(vec![cat.into(), item.into(), field.into(), value]);
    };
    add("person", "", "sis_id", data.sis_id.clone());
    add(
        "person",
        "",
        "platform_external_id",
        data.platform_external_id.clone(),
    );
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    add("person", "", "platform_id", o(&data.platform_id));
    add(
        "person",
        "",
        "active",
        data.active.map(|a| a.to_string()).unwrap_or_default(),
    );
    add("person", "", "updated_at", o(&data.updated_at));
    add("person", "", "deactivated_at", o(&data.deactivated_at));
    add(
        "person",
        "",
        "fields_sent_hashed_only",
        data.fields_hashed.join(" "),
    );
    if let Some((kind, since, by)) = &data.hold {
        add(
            "person",
            "",
            "hold",
            format!("{kind} since {since} by {by}"),
        );
    }
    for c in &data.classes {
        add("class", c, "member", "true".into());
    }
    for r in &data.results {
        let n = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        for (f, v) in [
            ("exam", r.line_item.clone()),
            ("class", o(&r.class_id)),
            ("session", o(&r.session_id)),
            ("score", n(r.value.score)),
            ("max_score", n(r.value.max_score)),
            (
                "passed",
                r.value.passed.map(|p| p.to_string()).unwrap_or_default(),
            ),
            ("grade", o(&r.value.grade)),
            ("date", o(&r.taken_at)),
            ("state", r.state.clone()),
            ("read_from", r.origin.clone()),
        ] {
            add("result", &r.key, f, v);
        }
    }
    for a in &data.audit {
        for (f, v) in [
            ("at", a.at.clone()),
            ("actor", a.actor.clone()),
            ("action", a.action.clone()),
            ("endpoint", a.endpoint.clone()),
            ("fields", a.fields.clone()),
            ("outcome", a.outcome.clone()),
        ] {
            add("audit", &a.seq.to_string(), f, v);
        }
    }
    // read by a person in a spreadsheet: always guarded
    let (bytes, _) = csv_bytes(&["category", "item", "field", "value"], &rows, true)?;
    super::out::bytes(&bytes)?;
    Ok(Exit::Ok)
}

/// The run lock, waiting at most `wait` for a running sync; None (after
/// one line on stderr) when it stays busy.
async fn lock_within(l: &Loaded, wait: std::time::Duration) -> Option<RunLock> {
    let r = RunLock::acquire_within(&l.config.state.path, wait, |e| {
        eprintln!(
            "{e}; waiting up to {} for it to finish",
            humantime::format_duration(wait)
        )
    })
    .await;
    match r {
        Ok(lock) => Some(lock),
        Err(e) => {
            eprintln!(
                "error: {e}; gave up after {}, nothing was changed; try again when the sync has finished, or pass a longer --wait",
                humantime::format_duration(wait)
            );
            None
        }
    }
}

/// For a change to one person: the run lock (see [`lock_within`]), the
/// state and the person's state id; None (after one line on stderr) when
/// the lock stays busy or there is no state yet.
async fn locked(
    l: &Loaded,
    person: &str,
    wait: std::time::Duration,
) -> Result<Option<(RunLock, Store, String)>> {
    let Some(lock) = lock_within(l, wait).await else {
        return Ok(None);
    };
    let Some(store) = open_store(l)? else {
        return Ok(None);
    };
    let id = state_id(l, &store, person)?;
    Ok(Some((lock, store, id)))
}

/// Record the audit head outside the database (see `store::anchor`).
fn anchor(l: &Loaded, store: &Store) -> Result<()> {
    crate::store::anchor::record(store, l.config.audit.anchor_file.as_deref())
}

/// On a terminal an erasure is confirmed by typing the id (it cannot be
/// undone); scripts and pipes go on as before (or pass `--yes`).
fn confirmed(person: &str) -> Result<bool> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    eprint!(
        "Erase {person} on the platform and from everything sisync keeps? This cannot be undone. Type the id again to confirm: "
    );
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == person)
}

/// The ids the files sisync keeps may name the person by: the SIS id, the
/// state id and the platform's id.
fn file_ids(
    person: &str,
    id: &str,
    platform_id: Option<&str>,
) -> std::collections::BTreeSet<String> {
    [Some(person), Some(id), platform_id]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect()
}

/// `privacy erase --dry-run`: what would be deleted where; nothing changes.
fn erase_dry_run(cli: &Cli, l: &Loaded, person: &str, _wait: std::time::Duration) -> CliResult {
    let Some(store) = open_store(l)? else {
        return Ok(Exit::Failure);
    };
    let id = state_id(l, &store, person)?;
    let data = store.subject_data(person, &id)?;
    let platform =
        platform_sink(&l.config.platform).erase_preview(data.platform_id.as_deref(), &id);
    let ids = file_ids(person, &id, data.platform_id.as_deref());
    let files = crate::privacy::files::erase(&l.config, &ids, None, true)?;
    if cli.json {
        print_json(&json!({
            "dry_run": true,
            "platform": platform,
            "state": {
                "record": data.active.is_some(),
                "classes": data.classes.len(),
                "results": data.results.len(),
                "audit_entries": data.audit.len(),
            },
            "files": files,
        }))?;
    } else {
        outln!("dry run: nothing was changed. `sisync privacy erase --person {person}` would:")?;
        outln!("  platform: {platform}")?;
        outln!(
            "  state:    remove {} record, {} class memberships, {} results; blank the id in {} audit entries; keep a tombstone",
            u8::from(data.active.is_some()),
            data.classes.len(),
            data.results.len(),
            data.audit.len()
        )?;
        outln!("  files sisync keeps:")?;
        print_touched(&files, "none names them")?;
    }
    Ok(Exit::Ok)
}

async fn erase(cli: &Cli, l: &Loaded, person: &str, wait: std::time::Duration) -> CliResult {
    let Some((_lock, mut store, id)) = locked(l, person, wait).await? else {
        return Ok(Exit::Failure);
    };
    let data = store.subject_data(person, &id)?;
    // the platform first: only when it no longer has them is local state
    // dropped (otherwise nothing would know what to delete there)
    let erased = platform_sink(&l.config.platform)
        .erase(l, data.platform_id.as_deref(), &id)
        .await;
    let (endpoint, spare) = match erased {
        Ok(e) => {
            if let Some(note) = e.note {
                eprintln!("note: {note}");
            }
            (e.endpoint, e.delivered)
        }
        Err(EraseError::Refused(e)) => {
            eprintln!(
                "error: the platform did not delete {person} ({e}); nothing was changed locally; try again"
            );
            return Ok(Exit::Failure);
        }
        Err(EraseError::Unreachable(e)) => return Err(e.into()),
    };
    let mut entry = local_entry(AuditAction::SubjectErase, &id);
    entry.direction = Direction::Out;
    entry.endpoint = endpoint.clone();
    let f = store.forget(person, &id, Some(&entry), Some(&actor()))?;
    anchor(l, &store)?;
    // what sisync delivered or processed earlier and still keeps
    let ids = file_ids(person, &id, data.platform_id.as_deref());
    let files = crate::privacy::files::erase(&l.config, &ids, spare.as_deref(), false).with_context(|| {
        format!("{person} was erased on the platform and from the state, but not from every file sisync kept; fix this and run the erasure again")
    })?;
    if cli.json {
        print_json(&json!({"erased": true, "platform": endpoint, "removed": f, "files": files}))?;
    } else {
        outln!(
            "{person}: deleted on the platform ({endpoint}); local state removed ({} record, {} class memberships, {} results); {} audit entries no longer name them; a tombstone keeps the next sync from creating them again (`sisync privacy unrestrict --person {person}` lifts it).",
            f.records,
            f.memberships,
            f.results,
            f.audit_entries_anonymised
        )?;
        print_touched(&files, "no file sisync kept names them")?;
    }
    Ok(Exit::Ok)
}

/// One line per file an erasure or purge changed.
fn print_touched(files: &[crate::privacy::files::Touched], none: &str) -> Result<(), CliError> {
    if files.is_empty() {
        outln!("  files: {none}")?;
    }
    for t in files {
        outln!("  {}: {}", t.action, t.path.display())?;
    }
    Ok(())
}

fn register(cli: &Cli, l: &Loaded) -> Result<(), CliError> {
    let c = &l.config;
    let source = crate::connector::source::roster_source(&c.source).register_line();
    let platform = crate::connector::platform::platform_sink(&c.platform).register_line();
    let mut categories: Vec<&str> = vec!["SIS id (sourcedId)"];
    for f in &c.privacy.fields {
        categories.push(match f.as_str() {
            "name" => "name (given, middle, family)",
            "email" => "e-mail address",
            "role" => "role (student, teacher, ...)",
            "org" => "institution / location (BRIN)",
            "accommodations" => "exam accommodations (extra time, font size, screen reader): special category data may be inferred",
            "groups" => "class membership",
            other => other,
        });
    }
    let ids = if c.privacy.pseudonymize_ids {
        "pseudonymised (HMAC-SHA256 of the SIS id; key held by the institution)"
    } else {
        "SIS ids as-is"
    };
    let env = if c.institution.environment == Environment::Acceptance {
        "acceptance: names and e-mail addresses are replaced by synthetic values before they leave sisync"
    } else {
        "production"
    };
    let scope = if c.privacy.scope_orgs.is_empty() {
        "all institutions and locations in the SIS export".to_string()
    } else {
        c.privacy.scope_orgs.join(", ")
    };
    let results = c.results.as_ref().map(|r| {
        let (flow, _) = crate::sync::results::describe(r);
        format!(
            "exam results (candidate id, exam, score, max score, passed, grade, date) from the platform to the SIS: {flow}"
        )
    });
    let mut flows = vec![format!(
        "{} → {platform}: {}",
        source,
        categories.join("; ")
    )];
    flows.extend(results.clone());
    let retention = format!(
        "state of persons absent from the SIS for {} days is deleted; audit entries older than {} days are anonymised; pushed results older than {} days are deleted",
        c.privacy.retention_days, c.privacy.audit_retention_days, c.privacy.retention_days
    );
    let bsn = match (
        c.privacy.allow_bsn,
        c.privacy.fields.contains(&crate::config::Field::Bsn),
    ) {
        (true, true) => {
            "sent to the platform (privacy.allow_bsn and \"bsn\" in privacy.fields; checked with the 11-test); never stored by sisync, only a keyed hash for change detection; never to an acceptance platform"
        }
        (true, false) => "allowed by privacy.allow_bsn, but not in privacy.fields: not sent",
        _ => "never sent or stored (read from the SIS export only to be dropped)",
    };
    if cli.json {
        print_json(&json!({
            "controller": format!("{} (BRIN {})", c.institution.name, c.institution.brin),
            "processor_tool": "sisync",
            "purpose": "provisioning candidates for digital exams, and returning their results to the student administration",
            "flows": flows,
            "ids": ids,
            "bsn": bsn,
            "scope": scope,
            "environment": env,
            "retention": retention,
            "security": "TLS for every network transfer; secrets from files or the environment; tamper-evident audit log of every transfer",
        }))?;
        return Ok(());
    }
    let mut t = table(&["register entry (Art. 30 AVG/GDPR)", ""]);
    t.add_row(vec![
        "controller".to_string(),
        format!("{} (BRIN {})", c.institution.name, c.institution.brin),
    ]);
    t.add_row(vec![
        "purpose".to_string(),
        "provisioning candidates for digital exams, and returning their results to the student administration".to_string(),
    ]);
    for (i, f) in flows.iter().enumerate() {
        t.add_row(vec![format!("data flow {}", i + 1), f.clone()]);
    }
    t.add_row(vec!["identifiers".to_string(), ids.to_string()]);
    t.add_row(vec!["BSN".to_string(), bsn.to_string()]);
    t.add_row(vec!["scope (processing agreement)".to_string(), scope]);
    t.add_row(vec!["environment".to_string(), env.to_string()]);
    t.add_row(vec!["retention".to_string(), retention]);
    t.add_row(vec![
        "security".to_string(),
        "TLS for every network transfer; secrets from files or the environment; tamper-evident audit log of every transfer (sisync audit verify)".to_string(),
    ]);
    outln!("{t}")?;
    Ok(())
}

/// `sisync report results --exam ID`.
pub fn report_results(cli: &Cli, l: &Loaded, exam: &str) -> CliResult {
    let Some(store) = open_store(l)? else {
        return Ok(Exit::Failure);
    };
    let min = l.config.privacy.min_group_size;
    let scores = store.exam_scores(exam)?;
    type Scores = Vec<(f64, Option<bool>)>;
    let mut by_class: BTreeMap<String, Scores> = BTreeMap::new();
    for (class, score, passed) in scores {
        by_class
            .entry(class.unwrap_or_else(|| "(no class)".into()))
            .or_default()
            .push((score, passed));
    }
    let mut groups: Vec<(String, Scores)> = Vec::new();
    let mut other: Scores = Vec::new();
    let mut merged = 0;
    for (class, v) in by_class {
        if v.len() >= min {
            groups.push((class, v));
        } else {
            merged += 1;
            other.extend(v);
        }
    }
    let mut suppressed = 0;
    if !other.is_empty() {
        if other.len() >= min {
            groups.push((format!("other ({merged} smaller classes)"), other));
        } else {
            suppressed = other.len();
        }
    }
    let stats: Vec<serde_json::Value> = groups
        .iter()
        .map(|(name, v)| {
            let mut s: Vec<f64> = v.iter().map(|x| x.0).collect();
            s.sort_by(f64::total_cmp);
            let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
            let passed: Vec<bool> = v.iter().filter_map(|x| x.1).collect();
            json!({
                "group": name,
                "candidates": s.len(),
                "mean": s.iter().sum::<f64>() / s.len() as f64,
                "p25": q(0.25), "median": q(0.5), "p75": q(0.75),
                "min": s[0], "max": s[s.len() - 1],
                "passed_share": (!passed.is_empty()).then(|| passed.iter().filter(|p| **p).count() as f64 / passed.len() as f64),
            })
        })
        .collect();
    if cli.json {
        print_json(
            &json!({"exam": exam, "min_group_size": min, "groups": stats, "suppressed_candidates": suppressed}),
        )?;
        return Ok(Exit::Ok);
    }
    outln!("exam {exam}: score distribution per class (only groups of at least {min} candidates)")?;
    let mut t = table(&[
        "group",
        "candidates",
        "mean",
        "p25",
        "median",
        "p75",
        "min",
        "max",
        "passed",
    ]);
    for s in &stats {
        let f = |k: &str| s[k].as_f64().map(|v| format!("{v:.1}")).unwrap_or_default();
        t.add_row(vec![
            s["group"].as_str().unwrap_or("").to_string(),
            s["candidates"].to_string(),
            f("mean"),
            f("p25"),
            f("median"),
            f("p75"),
            f("min"),
            f("max"),
            s["passed_share"]
                .as_f64()
                .map(|p| format!("{:.0} %", p * 100.0))
                .unwrap_or_default(),
        ]);
    }
    if stats.is_empty() {
        outln!("  no group is large enough to report")?;
    } else {
        outln!("{t}")?;
    }
    if suppressed > 0 {
        outln!(
            "{suppressed} candidates in classes below {min} are not shown (too few to stay anonymous, even merged)"
        )?;
    }
    Ok(Exit::Ok)
}
