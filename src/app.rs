//! Command handlers: turn a parsed CLI into work and human (or JSON)
//! output. Each returns how it ended ([`Exit`]) or why it stopped
//! ([`CliError`]); `main` turns that into the exit code.

mod alerts;
mod backup;
mod manpage;
mod manpage_config;
pub(crate) mod out;
mod plans;
mod privacy;
mod reconcile;
mod results;

use std::io::IsTerminal;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{AuditCmd, AuditListArgs, Cli, Command, ResultsArgs, SyncWhat};
use crate::config::Loaded;
use crate::exit::{CliError, CliResult, Exit};
use crate::model::TrackedField;
use crate::store::{AuditFilter, Fault, Store, audit};
use crate::sync::{self, Progress, RosterOptions, RosterReport};
use out::outln;

/// The errors handlers pass on with `?`: each is a failure (exit 1).
macro_rules! failures {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for CliError {
            fn from(e: $t) -> CliError {
                CliError::Failed(e.into())
            }
        })*
    };
}
failures!(
    std::io::Error,
    serde_json::Error,
    csv::Error,
    crate::config::ConfigError,
    crate::sync::lock::LockError,
);

impl From<sync::RunError> for CliError {
    fn from(e: sync::RunError) -> CliError {
        CliError::Failed(e.into_anyhow())
    }
}

pub use crate::store::audit::actor;

pub async fn run(cli: Cli) -> CliResult {
    match dispatch(&cli).await {
        Err(CliError::Failed(e)) if Fault::of(&e) == Some(Fault::Damaged) => {
            let state = crate::connector::load(&cli.config)
                .map(|l| l.config.state.path)
                .unwrap_or_default();
            Err(CliError::Damaged(crate::store::damaged_line(
                &state,
                &format!("{:#}", e.root_cause()),
            )))
        }
        // a secret or TLS file a run needed (read when it built its
        // connectors): the same line and code as any config error
        Err(CliError::Failed(e)) => {
            let config = e
                .chain()
                .find_map(|x| x.downcast_ref::<crate::config::ConfigError>())
                .map(ToString::to_string);
            Err(match config {
                Some(line) => CliError::Config(line),
                None => CliError::Failed(e),
            })
        }
        other => other,
    }
}

/// Warnings about the config (world-readable secret files), on stderr.
fn print_warnings(l: &Loaded) -> Vec<String> {
    let w = l.warnings();
    for line in &w {
        eprintln!("warning: {line}");
    }
    w
}

/// `audit verify` with the anchor file, when one is configured.
fn verify_anchored(l: &Loaded, store: &Store) -> Result<audit::VerifyReport> {
    let Some(file) = &l.config.audit.anchor_file else {
        return audit::verify(store.conn());
    };
    match crate::store::anchor::read(file)? {
        Some(a) => audit::verify_anchored(store.conn(), Some(&a)),
        None => {
            let mut r = audit::verify_anchored(store.conn(), Some(&[]))?;
            r.anchors = format!(
                "skipped: {} does not exist yet (written at the end of the next run)",
                file.display()
            );
            Ok(r)
        }
    }
}

/// Whether the state database exists; else one line on stderr (for the
/// commands that only read or change what a sync left).
pub(crate) fn has_state(l: &Loaded) -> bool {
    let path = &l.config.state.path;
    let there = path.exists();
    if !there {
        eprintln!(
            "error: no state database at {}; run `sisync sync roster` first or check state.path",
            path.display()
        );
    }
    there
}

fn load(cli: &Cli) -> Result<Loaded, CliError> {
    crate::connector::load(&cli.config).map_err(|e| CliError::Config(e.to_string()))
}

async fn dispatch(cli: &Cli) -> CliResult {
    if let Command::Generate { what } = &cli.command {
        return generate(what);
    }
    let loaded = load(cli)?;
    match &cli.command {
        Command::Generate { .. } => unreachable!("handled before the config is read"),
        Command::Privacy { cmd } => privacy::run(cli, &loaded, cmd).await,
        Command::Report {
            what: crate::cli::ReportWhat::Results { exam },
        } => privacy::report_results(cli, &loaded, exam),
        Command::Run => {
            for w in loaded.warnings() {
                tracing::warn!("{w}");
            }
            // the daemon reads every secret at start: a missing one stops
            // it here (exit 2, systemd shows why), not at its first run
            let problems = loaded.secret_problems();
            if !problems.is_empty() {
                for e in problems {
                    eprintln!("config error: {e}");
                }
                return Ok(Exit::Config);
            }
            if loaded.config.state.path.exists() {
                Store::open(&loaded.config.state.path)?.quick_check()?;
            }
            Ok(crate::daemon::run(
                cli.config.clone(),
                loaded,
                crate::daemon::Runners::standard(),
            )
            .await?)
        }
        Command::CheckConfig { connect } => check_config(cli, &loaded, *connect).await,
        Command::Sync {
            what: SyncWhat::Roster(a),
        } => {
            let code = sync_roster(cli, &loaded, a).await;
            alerts::after_oneshot(&loaded, a.dry_run, code).await
        }
        Command::Sync {
            what: SyncWhat::Results(a),
        } => {
            let code = results::sync_results(cli, &loaded, a, false).await;
            alerts::after_oneshot(&loaded, a.dry_run, code).await
        }
        Command::Sync {
            what: SyncWhat::All(a),
        } => {
            // one JSON document for both halves
            if cli.json {
                collect_json();
            }
            let code = sync_roster(cli, &loaded, a).await;
            let code = match code {
                Ok(c) if loaded.config.results.is_some() => {
                    let ra = ResultsArgs {
                        dry_run: a.dry_run,
                        retry_failed: false,
                    };
                    results::sync_results(cli, &loaded, &ra, true)
                        .await
                        .map(|r| c.max(r))
                }
                other => other,
            };
            let code = if cli.json {
                print_collected_json(&["roster", "results"]).and(code)
            } else {
                code
            };
            alerts::after_oneshot(&loaded, a.dry_run, code).await
        }
        Command::Alerts { cmd } => alerts::run(cli, &loaded, cmd).await,
        Command::Status => status(cli, &loaded),
        Command::Reconcile { fix } => reconcile::run(cli, &loaded, *fix).await,
        Command::Plan { cmd } => plans::run(cli, &loaded, cmd).await,
        Command::Backup { dest } => backup::backup(cli, &loaded, dest),
        Command::Restore { src } => backup::restore(cli, &loaded, src),
        Command::Audit { cmd } => {
            if !has_state(&loaded) {
                return Ok(Exit::Failure);
            }
            if let AuditCmd::List(a) = cmd {
                if a.csv && cli.json {
                    eprintln!("usage error: --json and --csv choose two formats; pass one of them");
                    return Ok(Exit::Config);
                }
            }
            let store = Store::open(&loaded.config.state.path)?;
            match cmd {
                AuditCmd::List(a) => audit_list(cli, &store, a),
                AuditCmd::Show { seq } => audit_show(cli, &store, *seq),
                AuditCmd::Verify => {
                    store.quick_check()?;
                    audit_verify(cli, &loaded, &store)
                }
            }
        }
    }
}

/// `sisync sync roster` (also the first half of `sync all`): run, print,
/// and the exit code.
async fn sync_roster(cli: &Cli, loaded: &Loaded, a: &crate::cli::SyncArgs) -> CliResult {
    let opts = RosterOptions {
        dry_run: a.dry_run,
        full: a.full,
        allow_mass_changes: a.allow_mass_changes,
    };
    let bar = Bar::new(cli.json);
    let report = sync::roster(loaded, opts, &actor(), &bar).await;
    bar.done();
    let report = report?;
    print_roster(cli, &report)?;
    let stopped = report.outcome.as_ref().is_some_and(|o| o.stopped.is_some());
    Ok(if report.refused.is_some() {
        Exit::Refused
    } else if report.failed() > 0 || stopped {
        Exit::Failure
    } else {
        Exit::Ok
    })
}

/// `sisync generate`: man pages and shell completions from the clap
/// definitions (used when building the package).
fn generate(what: &crate::cli::GenerateWhat) -> CliResult {
    use clap::CommandFactory;
    let cmd = Cli::command();
    match what {
        crate::cli::GenerateWhat::Man { dir } => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)?;
            // the sections clap cannot derive, on the main page
            let main = dir.join("sisync.1");
            let mut page = std::fs::read_to_string(&main)?;
            page.push_str(manpage::EXTRA);
            std::fs::write(&main, page)?;
            std::fs::write(
                dir.join("sisync.toml.5"),
                manpage_config::page(env!("CARGO_PKG_VERSION")),
            )?;
            outln!("man pages written to {}", dir.display())?;
        }
        crate::cli::GenerateWhat::Completions { shell } => {
            let mut cmd = cmd;
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "sisync", &mut script);
            out::bytes(&script)?;
        }
    }
    Ok(Exit::Ok)
}

/// A progress bar on a terminal; silent otherwise.
pub(crate) struct Bar(Option<ProgressBar>);

impl Bar {
    pub(crate) fn new(json: bool) -> Bar {
        if json || !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = ProgressBar::new_spinner();
        if let Ok(mut a) = crate::journal::ACTIVE_BAR.lock() {
            *a = Some(pb.clone());
        }
        Bar(Some(pb))
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Ok(mut a) = crate::journal::ACTIVE_BAR.lock() {
            *a = None;
        }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: Option<u64>) {
        let Some(pb) = &self.0 else { return };
        match total {
            Some(n) => {
                pb.set_length(n);
                pb.set_position(0);
                pb.set_style(
                    ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
            }
            None => pb.set_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} rows")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        }
        pb.set_message(name.to_string());
    }
    fn tick(&self) {
        if let Some(pb) = &self.0 {
            pb.inc(1);
        }
    }
    fn rows(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.set_position(n);
        }
    }
    fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().copied());
    t
}

/// While `sync all --json` runs its two halves, their documents are
/// collected here and printed as one.
static JSON_PARTS: std::sync::Mutex<Option<Vec<serde_json::Value>>> = std::sync::Mutex::new(None);

/// Print one JSON document (each invocation prints exactly one), with the
/// sisync `version` in every object.
pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<(), CliError> {
    let mut v =
        serde_json::to_value(v).unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
    if let serde_json::Value::Object(m) = &mut v {
        m.entry("version")
            .or_insert_with(|| serde_json::json!(env!("CARGO_PKG_VERSION")));
    }
    if let Ok(mut parts) = JSON_PARTS.lock() {
        if let Some(list) = parts.as_mut() {
            list.push(v);
            return Ok(());
        }
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    )
}

/// Start collecting JSON documents (see [`JSON_PARTS`]).
fn collect_json() {
    if let Ok(mut p) = JSON_PARTS.lock() {
        *p = Some(Vec::new());
    }
}

/// Stop collecting and print what was collected as one document.
fn print_collected_json(keys: &[&str]) -> Result<(), CliError> {
    let parts = JSON_PARTS
        .lock()
        .ok()
        .and_then(|mut p| p.take())
        .unwrap_or_default();
    let mut doc = serde_json::Map::new();
    let mut parts = parts.into_iter();
    for k in keys {
        doc.insert((*k).into(), parts.next().unwrap_or(serde_json::Value::Null));
    }
    print_json(&serde_json::Value::Object(doc))
}

/// The first 20 source issues under a title; all of them are in the log.
pub(crate) fn print_issues(
    title: &str,
    issues: &[crate::model::SourceIssue],
) -> Result<(), CliError> {
    const SHOWN: usize = 20;
    if issues.is_empty() {
        return Ok(());
    }
    outln!("{title} ({}):", issues.len())?;
    for i in issues.iter().take(SHOWN) {
        outln!("  {i}")?;
    }
    if issues.len() > SHOWN {
        outln!(
            "  ... and {} more (all are in the log)",
            issues.len() - SHOWN
        )?;
    }
    Ok(())
}

/// The plan as a table (a dry run, `plan show`).
pub(crate) fn print_plan_table(plan: &sync::plan::Plan) -> Result<(), CliError> {
    let mut t = table(&["action", "kind", "id", "fields"]);
    for c in &plan.users {
        t.add_row(vec![
            c.action.as_str(),
            "user",
            &c.external_id,
            &TrackedField::join(&c.changed, ","),
        ]);
    }
    for c in &plan.groups {
        let verb = match c.action {
            sync::plan::Action::Deactivate => "retire",
            a => a.as_str(),
        };
        t.add_row(vec![
            verb,
            "group",
            &c.external_id,
            &TrackedField::join(&c.changed, ","),
        ]);
    }
    if plan.is_empty() {
        outln!("  nothing to do: the platform is up to date")?;
    } else {
        outln!("{t}")?;
    }
    Ok(())
}

fn print_roster(cli: &Cli, r: &RosterReport) -> Result<(), CliError> {
    if cli.json {
        return print_json(r);
    }
    print_issues("Skipped source rows", &r.issues)?;
    if let Some(refusal) = &r.refused {
        outln!(
            "Refused by the safety gate, nothing was written: {refusal}\n  plan: {} users to create, {} to update, {} to deactivate; {} classes to retire",
            r.plan.count_users(sync::plan::Action::Create),
            r.plan.count_users(sync::plan::Action::Update),
            r.plan.count_users(sync::plan::Action::Deactivate),
            r.plan.count_groups(sync::plan::Action::Deactivate),
        )?;
        if let Some(id) = r.held_plan {
            outln!(
                "  held as plan {id}: review it with `sisync plan show {id}`, apply exactly that plan with `sisync plan approve {id}`"
            )?;
        }
        return Ok(());
    }
    if let Some(d) = r.deferred.as_ref().filter(|d| d.total() > 0) {
        outln!("{d}; the first run after the window applies them (through the safety gate)")?;
    }
    if r.dry_run {
        outln!("Dry run: nothing was changed. The plan:")?;
        print_plan_table(&r.plan)?;
        outln!(
            "{} users and {} groups unchanged; source: {}",
            r.plan.unchanged_users,
            r.plan.unchanged_groups,
            r.source_format
        )?;
        return Ok(());
    }
    let Some(o) = &r.outcome else {
        return Ok(());
    };
    let mut t = table(&[
        "",
        "created",
        "updated",
        "deactivated",
        "unchanged",
        "skipped",
        "failed",
    ]);
    for (name, x) in [("users", o.users), ("classes", o.groups)] {
        let counts = [
            x.created,
            x.updated,
            x.deactivated,
            x.unchanged,
            x.skipped,
            x.failed,
        ];
        t.add_row(std::iter::once(name.to_string()).chain(counts.map(|n| n.to_string())));
    }
    outln!("{t}")?;
    let mut notes = vec![format!("source: {}", r.source_format)];
    if !r.issues.is_empty() {
        notes.push(format!("{} source rows skipped", r.issues.len()));
    }
    if r.ignored > 0 {
        notes.push(format!(
            "{} not synced (guardians, unmapped roles)",
            r.ignored
        ));
    }
    if r.out_of_scope > 0 {
        notes.push(format!("{} outside privacy.scope_orgs", r.out_of_scope));
    }
    if o.recreated > 0 {
        notes.push(format!(
            "{} records the platform had lost were created again",
            o.recreated
        ));
    }
    if let Some(id) = r.run_id {
        notes.push(format!("run {id}"));
    }
    outln!("{}", notes.join("; "))?;
    if let Some(d) = &r.delivered {
        outln!("delivered to {}", d.display())?;
    }
    for f in o.failures.iter().take(20) {
        eprintln!("failed: {f}");
    }
    if o.failures.len() > 20 {
        eprintln!("… and {} more failures", o.failures.len() - 20);
    }
    if let Some(line) = &o.stopped {
        eprintln!("stopped: {line}");
    }
    if o.failed() > 0 {
        eprintln!(
            "{} records failed; they are retried on the next run. Details: `sisync audit list --kind user` and the log.",
            o.failed()
        );
    }
    Ok(())
}

async fn check_config(cli: &Cli, l: &Loaded, connect: bool) -> CliResult {
    let c = &l.config;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut ok = true;
    rows.push(("config".into(), format!("{}: valid", l.file.display())));
    rows.push((
        "institution".into(),
        format!(
            "{} (BRIN {}), environment {}",
            c.institution.name,
            c.institution.brin,
            c.institution.environment.as_str()
        ),
    ));
    let state = if c.state.path.exists() {
        let opened = Store::open(&c.state.path).and_then(|s| {
            s.quick_check()?;
            Ok((s.schema_version()?, s.holds_status()?))
        });
        match opened {
            Ok((_, h)) if h.key_problem.is_some() => {
                ok = false;
                format!(
                    "{}: {}",
                    c.state.path.display(),
                    h.key_problem.unwrap_or_default()
                )
            }
            Ok((v, h)) => format!(
                "{} (schema v{v}; {} restricted, {} erased)",
                c.state.path.display(),
                h.restricted,
                h.erased
            ),
            Err(e) => {
                ok = false;
                format!("{}: {e:#}", c.state.path.display())
            }
        }
    } else {
        format!("{} (will be created)", c.state.path.display())
    };
    rows.push(("state".into(), state));
    let src = crate::connector::source::roster_source(&c.source);
    let source = match src.check() {
        Ok(line) => line,
        Err(e) => {
            ok = false;
            format!("{}: {e:#}", c.source.kind())
        }
    };
    rows.push(("source".into(), source));
    let platform = crate::connector::platform::platform_sink(&c.platform).check();
    rows.push(("platform".into(), platform));
    rows.push((
        "safety".into(),
        format!(
            "hold plans above: deactivations {:.1} %, updates {:.1} %, membership removals {:.1} %, classes lost {:.1} %, accommodations lost {:.1} %",
            c.safety.max_deactivate_share * 100.0,
            c.safety.max_update_share * 100.0,
            c.safety.max_membership_removal_share * 100.0,
            c.safety.max_group_loss_share * 100.0,
            c.safety.max_accommodation_loss_share * 100.0,
        ),
    ));
    if let Some(r) = &c.results {
        let (flow, rules) = sync::results::describe(r);
        rows.push(("results".into(), format!("{flow}; {rules}")));
    }
    let fields: Vec<&str> = c.privacy.fields.iter().map(|f| f.as_str()).collect();
    rows.push((
        "privacy".into(),
        format!(
            "fields sent: {}; scope: {}",
            fields.join(", "),
            if c.privacy.scope_orgs.is_empty() {
                "all orgs in the source".to_string()
            } else {
                c.privacy.scope_orgs.join(", ")
            }
        ),
    ));
    if c.privacy.pseudonymize_ids {
        rows.push((
            "pseudonyms".into(),
            "on: the platform sees HMAC-SHA256 pseudonyms of SIS ids".into(),
        ));
    }
    rows.push((
        "retention".into(),
        format!(
            "persons absent {} days purged; audit subject ids kept {} days",
            c.privacy.retention_days, c.privacy.audit_retention_days
        ),
    ));
    for w in print_warnings(l) {
        rows.push(("warning".into(), w));
    }
    // Secrets are read by runs, not by loading the config: report them
    // here. Without --connect a missing one is a warning (the admin may
    // check the config where the service's credentials are not present,
    // e.g. outside systemd's LoadCredential=); with --connect an error.
    for e in l.secret_problems() {
        if connect {
            ok = false;
            rows.push(("secret".into(), format!("FAILED: {e}")));
        } else {
            eprintln!("warning: {e}");
            rows.push(("warning".into(), format!("{e} (a run would stop here)")));
        }
    }
    if c.privacy.allow_bsn {
        eprintln!(
            "warning: {}: privacy.allow_bsn = true allows processing the BSN (burgerservicenummer); only set it where the law requires the BSN for this processing, and record why in the processing register",
            l.file.display()
        );
        rows.push((
            "warning".into(),
            if c.privacy.fields.contains(&crate::config::Field::Bsn) {
                "privacy.allow_bsn = true and \"bsn\" in privacy.fields: BSNs from the SIS (userIds {BSN:…}, metadata.bsn, IMS userid BSN) are sent to the platform; never stored".into()
            } else {
                "privacy.allow_bsn = true, but \"bsn\" is not in privacy.fields: no BSN is sent".into()
            },
        ));
    }
    if connect {
        for (name, result) in sync::connect_checks(l).await {
            match result {
                Ok(line) => rows.push((name, line)),
                Err(e) => {
                    ok = false;
                    rows.push((name, format!("FAILED: {e:#}")));
                }
            }
        }
    }
    if cli.json {
        // several lines under one name (warnings): one value, a line each
        let mut m = serde_json::Map::new();
        for (k, v) in &rows {
            let line = match m.remove(k) {
                Some(serde_json::Value::String(before)) => format!("{before}\n{v}"),
                _ => v.clone(),
            };
            m.insert(k.clone(), serde_json::Value::String(line));
        }
        print_json(&serde_json::json!({ "ok": ok, "checks": m, "settings": settings_json(l) }))?;
    } else {
        for (k, v) in &rows {
            outln!("{k:<12} {v}")?;
        }
    }
    Ok(if ok { Exit::Ok } else { Exit::Config })
}

/// The config's main settings as values (for `check-config --json`; the
/// `checks` next to it are the human lines).
fn settings_json(l: &Loaded) -> serde_json::Value {
    let c = &l.config;
    let with_kind = |mut v: serde_json::Value, kind: &str| {
        v["kind"] = kind.into();
        v
    };
    let source = crate::connector::source::roster_source(&c.source).status_json();
    let source = with_kind(source, c.source.kind());
    let platform = crate::connector::platform::platform_sink(&c.platform).status_json();
    let platform = with_kind(platform, c.platform.kind());
    let fields: Vec<&str> = c.privacy.fields.iter().map(|f| f.as_str()).collect();
    let sf = &c.safety;
    serde_json::json!({
        "institution": {
            "name": c.institution.name,
            "brin": c.institution.brin,
            "environment": c.institution.environment.as_str(),
        },
        "source": source,
        "platform": platform,
        "state": {"path": c.state.path, "min_free_mb": c.state.min_free_mb},
        "privacy": {
            "fields": fields,
            "scope_orgs": c.privacy.scope_orgs,
            "retention_days": c.privacy.retention_days,
            "audit_retention_days": c.privacy.audit_retention_days,
        },
        "safety": {
            "max_deactivate_share": sf.max_deactivate_share,
            "max_update_share": sf.max_update_share,
            "max_membership_removal_share": sf.max_membership_removal_share,
            "max_group_loss_share": sf.max_group_loss_share,
            "max_accommodation_loss_share": sf.max_accommodation_loss_share,
            "freeze_windows": sf.freeze.len(),
        },
        "results": c.results.is_some(),
    })
}

fn status(cli: &Cli, l: &Loaded) -> CliResult {
    let path = &l.config.state.path;
    if !path.exists() {
        if cli.json {
            print_json(&serde_json::json!({ "state": path, "runs": [] }))?;
        } else {
            outln!(
                "No state yet at {}: sisync has not run. Start with `sisync sync roster --dry-run`.",
                path.display()
            )?;
        }
        return Ok(Exit::Ok);
    }
    let store = Store::open(path)?;
    let runs = store.recent_runs(10)?;
    let counts = store.record_counts()?;
    let verify = verify_anchored(l, &store)?;
    let outbox = store.outbox_summary()?;
    let holds = store.holds_status()?;
    let last_purge = store.last_purge()?;
    let held = crate::store::plans::held_now(store.conn())?;
    if cli.json {
        print_json(&serde_json::json!({
            "state": path,
            "held_plans": held.iter().map(|(id, since)| serde_json::json!({"id": id, "since": since})).collect::<Vec<_>>(),
            "freeze": l.config.safety.freeze_on(sync::today()).map(|w| serde_json::json!({
                "from": w.from, "until": w.until, "mode": w.mode, "reason": w.reason,
            })),
            "schema_version": store.schema_version()?,
            "records": counts.iter().map(|(k, a, n)| serde_json::json!({"kind": k, "active": a, "count": n})).collect::<Vec<_>>(),
            "outbox": outbox,
            "holds": holds,
            "last_purge": last_purge,
            "runs": runs,
            "audit": verify,
        }))?;
        return Ok(Exit::Ok);
    }
    outln!(
        "state    {} (schema v{})",
        path.display(),
        store.schema_version()?
    )?;
    let c = |kind: &str, active: bool| crate::store::count_of(&counts, kind, active);
    outln!(
        "records  users {} active, {} deactivated; classes {} active, {} retired",
        c("user", true),
        c("user", false),
        c("group", true),
        c("group", false)
    )?;
    if let Some(w) = l.config.safety.freeze_on(sync::today()) {
        let deferred = runs
            .iter()
            .find(|r| r.kind == "roster")
            .and_then(|r| r.summary.get("deferred"))
            .and_then(|d| serde_json::from_value::<serde_json::Value>(d.clone()).ok())
            .filter(|d| !d.is_null());
        outln!(
            "FREEZE   {} from {} until {}{}; last run deferred: {}",
            w.mode.as_str(),
            w.from,
            w.until,
            w.reason_note(str::to_string),
            deferred
                .map(|d| d.to_string())
                .unwrap_or_else(|| "nothing yet".into())
        )?;
    }
    for (id, since) in &held {
        outln!(
            "HELD     plan {id} since {since}: nothing is written until `sisync plan show {id}` / `sisync plan approve {id}`"
        )?;
    }
    if let Some(r) = runs.iter().find(|r| r.kind == "reconcile") {
        let n = |k: &str| r.summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        outln!(
            "reconcile {} at {}: {} missing, {} drifted, {} orphans, {} classes with other members{}",
            r.outcome,
            r.started_at,
            n("missing"),
            n("drifted"),
            n("orphans"),
            n("membership"),
            if r.outcome == "drift" {
                " (`sisync reconcile` lists them, `--fix` repairs)"
            } else {
                ""
            }
        )?;
    }
    results::print_outbox(&outbox)?;
    outln!(
        "privacy  {} restricted, {} erased (tombstones); last purge {}",
        holds.restricted,
        holds.erased,
        last_purge.as_deref().unwrap_or("never")
    )?;
    if let Some(problem) = &holds.key_problem {
        outln!("         SUBJECT KEY: {problem}")?;
    }
    outln!(
        "audit    {} entries, head {}{}",
        verify.entries,
        &verify.head_hash[..12],
        if verify.ok() {
            String::new()
        } else {
            "  CHAIN BROKEN: run `sisync audit verify`".into()
        }
    )?;
    let mut t = table(&[
        "run",
        "kind",
        "started (UTC)",
        "outcome",
        "created",
        "updated",
        "deactivated",
        "failed",
        "actor",
    ]);
    for r in &runs {
        let n = |k: &str| {
            if r.kind == "results" {
                let key = match k {
                    "created" => "/pushed",
                    "updated" => "/updated",
                    "failed" => "/failed",
                    _ => return String::new(),
                };
                return r
                    .summary
                    .pointer(key)
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
                    .to_string();
            }
            let u = r
                .summary
                .pointer(&format!("/users/{k}"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            let g = r
                .summary
                .pointer(&format!("/groups/{k}"))
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
            (u + g).to_string()
        };
        t.add_row(vec![
            r.id.to_string(),
            r.kind.clone(),
            r.started_at.clone(),
            r.outcome.clone(),
            n("created"),
            n("updated"),
            n("deactivated"),
            n("failed"),
            r.actor.clone(),
        ]);
    }
    outln!("{t}")?;
    if let Some(r) = runs.iter().find(|r| r.error.is_some()) {
        outln!(
            "last error (run {}): {}",
            r.id,
            r.error.as_deref().unwrap_or_default()
        )?;
    }
    Ok(Exit::Ok)
}

/// Parse a --since/--until value into the audit log's UTC format.
pub fn parse_time(s: &str) -> Result<String, String> {
    use chrono::{Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
    let fmt = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(fmt(t.with_timezone(&Utc)));
    }
    let local = |n: NaiveDateTime| {
        Local
            .from_local_datetime(&n)
            .earliest()
            .map(|t| fmt(t.with_timezone(&Utc)))
            .ok_or_else(|| format!("{s:?} does not exist in local time"))
    };
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return local(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return local(d.and_hms_opt(0, 0, 0).expect("midnight exists"));
    }
    if let Ok(age) = humantime::parse_duration(s) {
        let age = chrono::Duration::from_std(age).map_err(|e| e.to_string())?;
        return Ok(fmt(Utc::now() - age));
    }
    Err(format!(
        "{s:?} is not a time; use 2026-11-01, \"2026-11-01 14:00\", RFC 3339 or an age like 7d"
    ))
}

fn audit_list(cli: &Cli, store: &Store, a: &AuditListArgs) -> CliResult {
    let mut f = AuditFilter {
        person: a.person.clone(),
        kind: a.kind.clone(),
        endpoint: a.endpoint.clone(),
        limit: a.limit,
        ..AuditFilter::default()
    };
    for (arg, val, slot) in [
        ("--since", &a.since, &mut f.since),
        ("--until", &a.until, &mut f.until),
    ] {
        if let Some(v) = val {
            match parse_time(v) {
                Ok(t) => *slot = Some(t),
                Err(e) => {
                    eprintln!("error: {arg}: {e}");
                    return Ok(Exit::Config);
                }
            }
        }
    }
    let rows = audit::list(store.conn(), &f)?;
    if cli.json {
        print_json(&rows)?;
    } else if a.csv {
        // read by a person in a spreadsheet: always guarded
        let mut csv = Vec::new();
        crate::connector::csv_guard::write_serialized(&mut csv, &rows)
            .map_err(anyhow::Error::from)?;
        out::bytes(&csv)?;
    } else {
        let mut t = table(&[
            "seq",
            "time (UTC)",
            "actor",
            "action",
            "record",
            "outcome",
            "fields",
            "endpoint",
        ]);
        for r in &rows {
            t.add_row(vec![
                r.seq.to_string(),
                r.at.clone(),
                r.actor.clone(),
                r.action.clone(),
                r.record_id.clone().unwrap_or_else(|| "(redacted)".into()),
                match &r.detail {
                    Some(d) => format!("{} ({d})", r.outcome),
                    None => r.outcome.clone(),
                },
                r.fields.clone(),
                r.endpoint.clone(),
            ]);
        }
        outln!("{t}")?;
        let persons: std::collections::BTreeSet<&str> = rows
            .iter()
            .filter(|r| r.record_kind == "user")
            .filter_map(|r| r.record_id.as_deref())
            .collect();
        outln!("{} entries about {} persons", rows.len(), persons.len())?;
    }
    Ok(Exit::Ok)
}

fn audit_show(cli: &Cli, store: &Store, seq: i64) -> CliResult {
    let Some(r) = audit::get(store.conn(), seq)? else {
        eprintln!("error: audit entry {seq} does not exist; `sisync audit list` shows the numbers");
        return Ok(Exit::Failure);
    };
    if cli.json {
        print_json(&r)?;
        return Ok(Exit::Ok);
    }
    let v = serde_json::to_value(&r)?;
    if let Some(m) = v.as_object() {
        for (k, val) in m {
            let shown = match val {
                serde_json::Value::Null => "-".to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            outln!("{k:<15} {shown}")?;
        }
    }
    Ok(Exit::Ok)
}

fn audit_verify(cli: &Cli, l: &Loaded, store: &Store) -> CliResult {
    let r = verify_anchored(l, store)?;
    if cli.json {
        print_json(&r)?;
    } else if let Some((seq, why)) = &r.first_broken {
        outln!(
            "audit log BROKEN at entry {seq}: {why}. Entries before {seq} check out; keep a copy of {} for investigation.",
            store.path().display()
        )?;
    } else {
        outln!(
            "audit log OK: {} entries, chain intact from entry 1, head {} (entry {}); anchors: {}",
            r.entries,
            r.head_hash,
            r.last_seq,
            r.anchors
        )?;
    }
    Ok(if r.ok() { Exit::Ok } else { Exit::AuditBroken })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_forms() {
        assert_eq!(
            parse_time("2026-11-01T10:00:00Z").unwrap(),
            "2026-11-01T10:00:00.000Z"
        );
        assert!(parse_time("2026-11-01").unwrap().starts_with("2026-1"));
        assert!(parse_time("7d").unwrap() < crate::store::now());
        assert!(parse_time("yesterday-ish").is_err());
    }
}
