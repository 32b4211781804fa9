//! `sisync backup DEST` and `sisync restore SRC`.
//!
//! A backup is a folder (mode 0700), or with a DEST ending in `.tar` one
//! tar file (mode 0600) of that folder, with a consistent copy of the state
//! database made with SQLite's online backup API (safe while the daemon
//! writes; a file copy of a WAL database is not), the subject key
//! (`<state>.key`) and `backup.json`. The folder appears only once the copy
//! has been opened and its audit chain and key checked: it is written next
//! to DEST under another name and renamed. Restore checks the same again
//! before it replaces anything, and keeps the state it replaces.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::out::outln;
use crate::cli::Cli;
use crate::config::Loaded;
use crate::daemon::presence::PresenceLock;
use crate::exit::{CliError, CliResult, Exit};
use crate::store::{Store, audit};
use crate::sync::lock::RunLock;

const MANIFEST: &str = "backup.json";

/// `backup.json`: what the folder holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub sisync_version: String,
    pub created_at: String,
    /// The state database it was copied from.
    pub source: PathBuf,
    /// File name of the database copy in the folder.
    pub database: String,
    /// File name of the subject key copy, when the installation has one.
    pub subject_key: Option<String>,
    pub schema_version: i64,
    pub audit_entries: u64,
    pub audit_head: String,
}

fn key_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sisync.db".into())
}

/// Open `db` (with its key beside it) and check the audit chain and the
/// key. Returns the schema version and the chain report, or the problem
/// with its exit code.
fn check_copy(db: &Path) -> Result<(i64, audit::VerifyReport), (Exit, String)> {
    let store = Store::open(db).map_err(|e| (Exit::Failure, format!("{e:#}")))?;
    let report = audit::verify(store.conn()).map_err(|e| (Exit::Failure, format!("{e:#}")))?;
    if let Some((seq, why)) = &report.first_broken {
        return Err((
            Exit::AuditBroken,
            format!("the audit chain of the copy is broken at entry {seq}: {why}"),
        ));
    }
    store
        .subject_key(false)
        .map_err(|e| (Exit::Failure, format!("{e:#}")))?;
    let version = store
        .schema_version()
        .map_err(|e| (Exit::Failure, format!("{e:#}")))?;
    Ok((version, report))
}

fn copy_secret(from: &Path, to: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(from)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)?;
    std::io::Write::write_all(&mut f, &bytes)?;
    f.sync_all()
}

/// `sisync backup DEST`.
pub fn backup(cli: &Cli, l: &Loaded, dest: &Path) -> CliResult {
    let state = &l.config.state.path;
    if !state.exists() {
        eprintln!(
            "error: no state database at {} (state.path in {}); nothing to back up",
            state.display(),
            l.file.display()
        );
        return Ok(Exit::Failure);
    }
    let as_tar = dest.extension().is_some_and(|e| e == "tar");
    if as_tar && dest.exists() {
        eprintln!(
            "error: {} exists; give a new file name (e.g. with the date in it)",
            dest.display()
        );
        return Ok(Exit::Failure);
    }
    if let Ok(mut entries) = std::fs::read_dir(dest) {
        if entries.next().is_some() {
            eprintln!(
                "error: {} exists and is not empty; give a new folder (e.g. with the date in its name)",
                dest.display()
            );
            return Ok(Exit::Failure);
        }
    } else if dest.exists() {
        eprintln!(
            "error: {} exists and is not a folder; give a new folder",
            dest.display()
        );
        return Ok(Exit::Failure);
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = parent.join(format!(
        ".{}.partial-{}",
        file_name(dest),
        std::process::id()
    ));
    let made = std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .with_context(|| {
            format!(
                "cannot create {}; check that {} exists and is writable",
                staging.display(),
                parent.display()
            )
        });
    made?;
    match write_backup(l, &staging) {
        Ok(m) if as_tar => {
            let written = write_tar(&staging, dest, &m);
            let _ = std::fs::remove_dir_all(&staging);
            if let Err(e) = written {
                eprintln!("error: backup of {} failed: {e:#}", state.display());
                return Ok(Exit::Failure);
            }
            report_backup(cli, dest, &m)?;
            Ok(Exit::Ok)
        }
        Ok(m) => {
            if dest.is_dir() {
                std::fs::remove_dir(dest).with_context(|| {
                    format!("cannot replace the empty folder {}", dest.display())
                })?;
            }
            std::fs::rename(&staging, dest).with_context(|| {
                format!("cannot rename {} to {}", staging.display(), dest.display())
            })?;
            report_backup(cli, dest, &m)?;
            Ok(Exit::Ok)
        }
        Err((code, msg)) => {
            let _ = std::fs::remove_dir_all(&staging);
            eprintln!("error: backup of {} failed: {msg}", state.display());
            Ok(code)
        }
    }
}

fn report_backup(cli: &Cli, dest: &Path, m: &Manifest) -> Result<(), CliError> {
    if cli.json {
        super::print_json(m)?;
        return Ok(());
    }
    outln!(
        "backup written to {}: {} ({} audit entries, chain intact, head {}){}",
        dest.display(),
        m.database,
        m.audit_entries,
        &m.audit_head[..12.min(m.audit_head.len())],
        match &m.subject_key {
            Some(k) => format!(" and the subject key {k}"),
            None => " (no subject key yet)".into(),
        }
    )?;
    outln!(
        "keep it as safe as the server: it holds personal data and the key that hides who was erased"
    )?;
    Ok(())
}

/// The checked folder as one tar file, written under another name and
/// renamed, so DEST is complete or absent.
fn write_tar(staging: &Path, dest: &Path, m: &Manifest) -> Result<()> {
    let mut tmp = dest.as_os_str().to_owned();
    tmp.push(format!(".partial-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut b = tar::Builder::new(f);
        let mut names = vec![MANIFEST.to_string(), m.database.clone()];
        names.extend(m.subject_key.clone());
        for n in names {
            b.append_path_with_name(staging.join(&n), &n)?;
        }
        let f = b.into_inner()?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        e.context(format!("cannot write {}", dest.display()))
    })
}

fn write_backup(l: &Loaded, staging: &Path) -> Result<Manifest, (Exit, String)> {
    let fail = |e: anyhow::Error| (Exit::Failure, format!("{e:#}"));
    let state = &l.config.state.path;
    let db_name = file_name(state);
    let copy = staging.join(&db_name);
    // the key first: a key taken before the database always fits it (a
    // key is made once and never changes)
    let key = key_path(state);
    let key_name = if key.exists() {
        let name = file_name(&key);
        copy_secret(&key, &staging.join(&name))
            .with_context(|| format!("cannot copy the subject key {}", key.display()))
            .map_err(fail)?;
        Some(name)
    } else {
        None
    };
    {
        let src = rusqlite::Connection::open_with_flags(
            state,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open {}", state.display()))
        .map_err(fail)?;
        src.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| fail(e.into()))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&copy)
            .with_context(|| format!("cannot create {}", copy.display()))
            .map_err(fail)?;
        let mut dst = rusqlite::Connection::open(&copy)
            .with_context(|| format!("cannot open {}", copy.display()))
            .map_err(fail)?;
        // all pages in one step: one read transaction, so the copy is one
        // consistent moment even while the daemon commits
        let b = rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| fail(e.into()))?;
        let mut waits = 0;
        loop {
            use rusqlite::backup::StepResult;
            match b
                .step(-1)
                .with_context(|| format!("SQLite online backup of {} failed", state.display()))
                .map_err(fail)?
            {
                StepResult::Done => break,
                StepResult::More => {}
                // a writer holds a lock for a moment: wait, at most ~60 s
                StepResult::Busy | StepResult::Locked if waits < 600 => {
                    waits += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                _ => {
                    return Err((
                        Exit::Failure,
                        format!(
                            "{} stayed locked for a minute; try again when the run has finished",
                            state.display()
                        ),
                    ));
                }
            }
        }
    }
    let (schema_version, report) = check_copy(&copy)?;
    for f in [&copy, &key_path(&copy)] {
        if f.exists() {
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600));
        }
    }
    let m = Manifest {
        sisync_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        source: state.clone(),
        database: db_name,
        subject_key: key_name,
        schema_version,
        audit_entries: report.entries,
        audit_head: report.head_hash,
    };
    let text = serde_json::to_string_pretty(&m).map_err(|e| fail(e.into()))?;
    let mp = staging.join(MANIFEST);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&mp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()).and(f.sync_all()))
        .with_context(|| format!("cannot write {}", mp.display()))
        .map_err(fail)?;
    Ok(m)
}

/// `sisync restore SRC`.
pub fn restore(cli: &Cli, l: &Loaded, src: &Path) -> CliResult {
    let state = &l.config.state.path;
    // a .tar is unpacked into a private folder beside the state first
    let unpacked = if src.is_file() {
        match unpack(src, state) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("error: restore refused, nothing was changed: {e:#}");
                return Ok(Exit::Failure);
            }
        }
    } else {
        None
    };
    let shown = src;
    let src = unpacked.as_ref().map_or(src, |d| d.path());
    let mp = src.join(MANIFEST);
    let m: Manifest = match std::fs::read_to_string(&mp)
        .map_err(anyhow::Error::from)
        .and_then(|t| Ok(serde_json::from_str(&t)?))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "error: {} is not a sisync backup (no readable {MANIFEST}: {e}); give the folder or .tar `sisync backup` wrote",
                shown.display()
            );
            return Ok(Exit::Failure);
        }
    };
    // no daemon may have the database open, and no one-shot run
    let _presence = match PresenceLock::acquire(state) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: restore refused: {e:#}");
            return Ok(Exit::Failure);
        }
    };
    let _lock = match RunLock::acquire(state) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: restore refused: {e}");
            return Ok(Exit::Failure);
        }
    };
    let mut staged = state.as_os_str().to_owned();
    staged.push(".restoring");
    let staged = PathBuf::from(staged);
    let cleanup = |p: &Path| {
        for suffix in ["", ".key", "-wal", "-shm"] {
            let mut f = p.as_os_str().to_owned();
            f.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(f));
        }
    };
    cleanup(&staged);
    let copy = (|| -> Result<()> {
        copy_secret(&src.join(&m.database), &staged)
            .with_context(|| format!("cannot copy {}", src.join(&m.database).display()))?;
        if let Some(k) = &m.subject_key {
            copy_secret(&src.join(k), &key_path(&staged))
                .with_context(|| format!("cannot copy {}", src.join(k).display()))?;
        }
        Ok(())
    })();
    if let Err(e) = copy {
        cleanup(&staged);
        eprintln!("error: restore refused, nothing was changed: {e:#}");
        return Ok(Exit::Failure);
    }
    let report = match check_copy(&staged) {
        Ok((_, r)) => r,
        Err((code, msg)) => {
            cleanup(&staged);
            eprintln!(
                "error: restore refused, nothing was changed: backup {}: {msg}",
                shown.display()
            );
            return Ok(code);
        }
    };
    // keep what is replaced, beside it
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut kept = state.as_os_str().to_owned();
    kept.push(format!(".before-restore-{stamp}"));
    let kept = PathBuf::from(kept);
    let swap = (|| -> Result<bool> {
        let had = state.exists();
        if had {
            // fold the WAL into the file so the kept copy is whole
            let c = rusqlite::Connection::open(state)?;
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            drop(c);
            std::fs::rename(state, &kept)?;
            if key_path(state).exists() {
                std::fs::rename(key_path(state), key_path(&kept))?;
            }
            for suffix in ["-wal", "-shm"] {
                let mut f = state.as_os_str().to_owned();
                f.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(f));
            }
        }
        if key_path(&staged).exists() {
            std::fs::rename(key_path(&staged), key_path(state))?;
            crate::store::owner::hand_to_state_owner(&key_path(state), state)?;
        }
        std::fs::rename(&staged, state)?;
        crate::store::owner::hand_to_state_owner(state, state)?;
        Ok(had)
    })();
    let had = match swap {
        Ok(had) => had,
        Err(e) => {
            eprintln!(
                "error: restore of {} stopped half-way: {e:#}; the previous state is {} (with .key), the backup copy {}; put them back by hand before starting sisync",
                state.display(),
                kept.display(),
                staged.display()
            );
            return Ok(Exit::Failure);
        }
    };
    if cli.json {
        super::print_json(&serde_json::json!({
            "restored": state,
            "from": shown,
            "backup_created_at": m.created_at,
            "audit_entries": report.entries,
            "audit_head": report.head_hash,
            "previous_state_kept_as": had.then_some(&kept),
        }))?;
    } else {
        outln!(
            "restored {} from {} (backup of {}, {} audit entries, chain intact)",
            state.display(),
            shown.display(),
            m.created_at,
            report.entries
        )?;
        if had {
            outln!(
                "the state it replaced is kept as {} (and .key); delete it once the restore is confirmed",
                kept.display()
            )?;
        }
        outln!(
            "changes made on the platform after the backup are not in it: the next roster run compares and repairs (`sisync sync roster --full` to send every record)"
        )?;
    }
    Ok(Exit::Ok)
}

/// Unpack a backup tar into a new 0700 folder next to the state database
/// (removed when dropped). The tar crate refuses entries that would land
/// outside it.
fn unpack(tar_file: &Path, state: &Path) -> Result<tempfile::TempDir> {
    let dir = match state.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the state directory {}", dir.display()))?;
    let out = tempfile::Builder::new()
        .prefix(".sisync-restore-")
        .tempdir_in(&dir)
        .with_context(|| format!("cannot make a folder in {}", dir.display()))?;
    let f = std::fs::File::open(tar_file)
        .with_context(|| format!("cannot open {}", tar_file.display()))?;
    tar::Archive::new(f)
        .unpack(out.path())
        .with_context(|| format!("{} is not a readable tar file", tar_file.display()))?;
    Ok(out)
}
