//! Shared helpers of the integration tests.
#![allow(dead_code)]

pub mod check;
pub mod cli;
pub mod config;
pub mod fake_gradebook;
pub mod fake_las;
pub mod fake_las_roster;
pub mod fake_oke;
pub mod fake_oneroster;
pub mod fake_scim;
pub mod faults;
pub mod http1;
pub mod real_peer;
pub mod school;
pub mod test_pki;

use std::path::{Path, PathBuf};

#[allow(unused_imports)]
pub use check::*;
#[allow(unused_imports)]
pub use cli::{
    cli, exited_0, kill_sync_under_way, kill_under_way, parts, sisync, sisync_cmd, sisync_ok,
    spawn_daemon, text,
};
#[allow(unused_imports)]
pub use config::{Platform, Source, TestConfig};

use sisync::config::Loaded;
use sisync::sync::{self, Quiet, RosterOptions, RosterReport};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The OKE 1.0.1 OpenAPI document, read from the reference specifications
/// beside the repository (`../shared/specs`, present in CI as well).
pub fn oke_spec() -> PathBuf {
    repo().join("../shared/specs/oke-1.0.1/specification/ooapiv5_MBO.yaml")
}

/// Every file under `dir`, at any depth, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copy a fixture export into `dir/export` so a test can edit it.
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let dest = dir.join("export");
    std::fs::create_dir_all(&dest).unwrap();
    for e in std::fs::read_dir(repo().join("fixtures").join(name))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
    }
    dest
}

/// Rewrite one CSV file of an export line by line.
pub fn edit(export: &Path, file: &str, f: impl Fn(&str) -> Option<String>) {
    let p = export.join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let out: Vec<String> = text.split(nl).filter_map(&f).collect();
    std::fs::write(&p, out.join(nl)).unwrap();
}

/// Change the users.csv row of person `id` in an export: `from` becomes
/// `to` (a rename, an accommodation).
pub fn edit_user(export: &Path, id: &str, from: &str, to: &str) {
    let key = format!("{id},");
    edit(export, "users.csv", |l| {
        Some(if l.starts_with(&key) {
            l.replace(from, to)
        } else {
            l.to_string()
        })
    });
}

/// Take person `id` out of an export: the users.csv row and enrolments go.
pub fn remove_person(export: &Path, id: &str) {
    let key = format!("{id},");
    edit(export, "users.csv", |l| {
        (!l.starts_with(&key)).then(|| l.to_string())
    });
    let key = format!(",{id},");
    edit(export, "enrollments.csv", |l| {
        (!l.contains(&key)).then(|| l.to_string())
    });
}

/// A SCIM config in `dir` pointing at `base` with a token file, reading a
/// OneRoster CSV export.
pub fn scim_config(dir: &Path, export: &Path, base: &str, token: &str, extra: &str) -> Loaded {
    scim_test_config(dir, Source::OneRosterCsv(export.to_path_buf()), base, token)
        .extra(extra)
        .load()
}

/// A SCIM config with any `[source]` body.
pub fn scim_config_with_source(
    dir: &Path,
    source: &str,
    base: &str,
    token: &str,
    extra: &str,
) -> Loaded {
    scim_test_config(dir, Source::Toml(source.into()), base, token)
        .extra(extra)
        .load()
}

/// "Test College" into the SCIM platform at `base`.
pub fn scim_test_config(dir: &Path, source: Source, base: &str, token: &str) -> TestConfig {
    TestConfig::new(dir)
        .institution("Test College", "99AA")
        .source(source)
        .platform(Platform::Scim {
            base: base.into(),
            token: token.into(),
        })
}

/// The audit entries of `loaded`'s state file that record a failure.
pub fn failed_audit_entries(loaded: &Loaded) -> Vec<sisync::store::AuditRow> {
    sisync::store::Store::open(&loaded.config.state.path)
        .unwrap()
        .audit_list(&sisync::store::AuditFilter::default())
        .unwrap()
        .into_iter()
        .filter(|e| e.outcome == "failed")
        .collect()
}

/// The one result the SIS refused: the first outbox reason is `failed`
/// and names `status` and the SIS's words (`sis_says`); the audit log has
/// that one failure, without the words (`not_in_audit`).
#[track_caller]
pub fn assert_refused_by_the_sis(
    reasons: &[(String, String, i64)],
    loaded: &Loaded,
    (status, sis_says): (&str, &str),
    not_in_audit: &str,
) {
    let reason = &reasons[0];
    assert_eq!(reason.0, "failed");
    assert_has(&reason.1, &[status, sis_says]);
    let failed = failed_audit_entries(loaded);
    assert_eq!(failed.len(), 1);
    let detail = failed[0].detail.as_deref().unwrap_or("");
    assert!(!detail.contains(not_in_audit), "{detail}");
}

/// Results options that push the outbox entries that failed before.
pub fn retry_failed() -> sisync::sync::results::ResultsOptions {
    sisync::sync::results::ResultsOptions {
        retry_failed: true,
        ..Default::default()
    }
}

/// The one line a roster run that must fail ends with (`{:#}`).
pub async fn sync_error(loaded: &Loaded, opts: RosterOptions) -> String {
    let e = sync::roster(loaded, opts, "user:test", &Quiet)
        .await
        .expect_err("the run fails");
    format!("{e:#}")
}

/// A `[[safety.freeze]]` window of `mode` around today (the tests' clock
/// is the real one).
pub fn freeze_window(mode: &str) -> String {
    let today = chrono::Local::now().date_naive();
    format!(
        "\n[[safety.freeze]]\nfrom = \"{}\"\nuntil = \"{}\"\nmode = \"{mode}\"\nreason = \"centrale examens\"\n",
        today - chrono::Duration::days(1),
        today + chrono::Duration::days(1)
    )
}

/// A run that reads the whole source and compares every record.
pub fn full() -> RosterOptions {
    RosterOptions {
        full: true,
        ..RosterOptions::default()
    }
}

pub async fn sync(loaded: &Loaded, opts: RosterOptions) -> RosterReport {
    sync::roster(loaded, opts, "user:test", &Quiet)
        .await
        .unwrap()
}

/// A run that plans and reports but writes nothing.
pub fn dry_run() -> RosterOptions {
    RosterOptions {
        dry_run: true,
        ..RosterOptions::default()
    }
}

/// The usual SCIM test bed: (a fake SCIM platform that supports PATCH, a
/// temporary directory, the copy of the OneRoster 1.2 CSV fixture in it,
/// the config syncing that export to the fake with `extra` keys). Keep the
/// directory bound (`_dir`) while the config is used.
pub async fn scim_bed(extra: &str) -> (fake_scim::FakeScim, tempfile::TempDir, PathBuf, Loaded) {
    let server = fake_scim::FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let cfg = scim_config(dir.path(), &export, &server.base, fake_scim::TOKEN, extra);
    (server, dir, export, cfg)
}
