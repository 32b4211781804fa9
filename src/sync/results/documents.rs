//! Reading result documents (a folder or an HTTP listing) into the outbox,
//! each document once, moved to `done/` or `failed/` after reading.
//!
//! A file is read only when complete: its size and modification time
//! stayed the same for `settle`, and did not change while it was read
//! (else it waits for the next run, nothing stored, nothing moved).
//! Temporary names (dotfiles, `*.part`, `~$*`) are not results files. A
//! file in `failed/` is read again when its bytes change (an upload that
//! finished there, or a fix). Symbolic links are refused with a message:
//! sisync moves the files it reads, and a link could point anywhere.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};

use super::matching::{Directory, incoming};
use super::{ResultsReport, Run};
use crate::config::results::AfterRead;
use crate::connector::results::{Documents, Remote, result_source};
use crate::model::ExamResult;
use crate::store::Store;
use crate::store::audit::{
    AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction, sha256_hex,
};
use crate::store::outbox::{Feed, Incoming};
use crate::sync::Progress;

/// A result document to read.
enum Doc {
    File(FileDoc),
    Remote(Remote),
}

struct FileDoc {
    path: PathBuf,
    /// The results folder (`done/` and `failed/` are in it).
    root: PathBuf,
    /// In `failed/`, changed since it failed there.
    retry: bool,
    stamp: Stamp,
}

/// Size and modification time: a file that is still being written changes
/// one of them.
type Stamp = (u64, Option<SystemTime>);

fn stamp(p: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(p)?;
    Ok((m.len(), m.modified().ok()))
}

/// The file changed while it was read; nothing of it was stored.
#[derive(Debug)]
struct StillWritten;

impl std::fmt::Display for StillWritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("changed while it was read")
    }
}

impl std::error::Error for StillWritten {}

pub(super) async fn read_documents(
    step: &Run<'_>,
    store: &mut Store,
    dir: &Directory,
    report: &mut ResultsReport,
) -> Result<()> {
    let Run {
        loaded,
        rcfg,
        opts,
        actor,
        progress,
    } = *step;
    let source = result_source(&rcfg.source);
    let (docs, after, http) = match source.documents() {
        Documents::Folder {
            path,
            extension,
            after,
            settle,
        } => (
            folder_docs(path, extension, after, settle, progress, store, report).await?,
            after,
            None,
        ),
        Documents::Remote => {
            let fetched = source.fetch(loaded).await?;
            let docs = fetched.documents.into_iter().map(Doc::Remote).collect();
            (docs, AfterRead::Keep, Some(fetched.http))
        }
    };
    // rows under legacy keys exist only in state files from before schema 5
    let legacy = store.outbox_has_legacy_keys()?;
    for mut doc in docs {
        let (origin, bytes) = match &mut doc {
            Doc::File(f) => (f.path.display().to_string(), None),
            Doc::Remote(Remote {
                origin,
                body: body @ Some(_),
                ..
            }) => (origin.clone(), body.take()),
            Doc::Remote(Remote { origin: u, .. }) => {
                let http = http.as_ref().expect("remote documents come with a client");
                match http
                    .send(reqwest::Method::GET, u, None, "application/xml", false)
                    .await
                {
                    Ok(reply) => (u.clone(), Some(reply.body)),
                    Err(e) => {
                        report
                            .document_errors
                            .push(format!("{e}; tried again next run"));
                        continue;
                    }
                }
            }
        };
        let sha = match (&doc, &bytes) {
            (_, Some(b)) => sha256_hex(b),
            (Doc::File(f), None) => match file_sha256(&f.path) {
                Ok(s) => s,
                Err(e) => {
                    report.document_errors.push(format!(
                        "{}: cannot read ({e}); check permissions",
                        f.path.display()
                    ));
                    continue;
                }
            },
            (Doc::Remote(_), None) => unreachable!("remote documents are fetched"),
        };
        if store.document_seen(&origin, &sha)? {
            report.documents_skipped += 1;
            if let (Doc::File(f), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                move_to(&f.root, &f.path, "done")?; // read before a crash, not moved yet
            }
            continue;
        }
        let name = match &doc {
            Doc::File(f) => f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| origin.clone()),
            Doc::Remote(r) => r.origin.clone(),
        };
        let mut issues = Vec::new();
        let mut parse = |each: &mut dyn FnMut(Incoming) -> Result<()>| -> Result<()> {
            let mut input: Box<dyn Read> = match (&doc, &bytes) {
                (_, Some(b)) => Box::new(&b[..]),
                (Doc::File(f), None) => Box::new(
                    std::fs::File::open(&f.path)
                        .with_context(|| format!("{}: cannot open", f.path.display()))?,
                ),
                (Doc::Remote(_), None) => unreachable!("remote documents are fetched"),
            };
            let mut on_result = |r: ExamResult| {
                progress.rows(1);
                each(incoming(rcfg, dir, r))
            };
            let tag = match &doc {
                Doc::Remote(r) => r.tag.as_str(),
                Doc::File(_) => "",
            };
            issues = source.read(&mut input, &name, tag, &mut on_result)?;
            // what was read is what was hashed: an upload still going on
            // undoes the whole document
            if let Doc::File(f) = &doc {
                if stamp(&f.path).ok() != Some(f.stamp) {
                    return Err(StillWritten.into());
                }
            }
            Ok(())
        };
        let read = tokio::task::block_in_place(|| {
            if opts.dry_run {
                store.outbox_preview(legacy, &mut parse as Feed<'_>)
            } else {
                let entry = AuditEntry {
                    actor: actor.to_string(),
                    run_id: report.run_id,
                    direction: Direction::In,
                    endpoint: origin.clone(),
                    action: AuditAction::ResultsRead,
                    record_kind: AuditKind::Document,
                    record_id: String::new(),
                    fields: String::new(),
                    payload_sha256: Some(sha.clone()),
                    outcome: AuditOutcome::Ok,
                    detail: None,
                };
                store.outbox_ingest((&origin, &sha), &entry, legacy, &mut parse as Feed<'_>)
            }
        });
        match read {
            Ok(counts) => {
                report.documents += 1;
                report.ingested.add(counts);
                report.issues.append(&mut issues);
                tracing::info!(
                    document = %origin,
                    new = counts.new,
                    changed = counts.changed,
                    unchanged = counts.unchanged,
                    parked = counts.parked,
                    "results read"
                );
                if let (Doc::File(f), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    move_to(&f.root, &f.path, "done")?;
                    if f.retry {
                        store.set_failed_document(&origin, None)?;
                    }
                }
            }
            Err(e) if e.is::<StillWritten>() => {
                report.documents_waiting += 1;
                tracing::info!(
                    "{origin}: changed while it was read; nothing of it was stored, read again next run"
                );
            }
            Err(e) => {
                let mut line = format!("{e:#}");
                if let (Doc::File(f), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    let to = if f.retry {
                        f.path.clone()
                    } else {
                        move_to(&f.root, &f.path, "failed")?
                    };
                    store.set_failed_document(&to.display().to_string(), Some(&sha))?;
                    line.push_str(&format!(
                        "; nothing of it was stored, the file is now {} (fix or replace it there: it is read again when it changes)",
                        to.display()
                    ));
                }
                tracing::error!("{line}");
                report.document_errors.push(line);
            }
        }
    }
    Ok(())
}

/// The files of a results folder to read now: complete files in it and
/// changed files in its `failed/` (with `after = "move"`), in name order.
/// Files still being written are counted in `documents_waiting`.
async fn folder_docs(
    root: &Path,
    ext: &str,
    after: AfterRead,
    settle: Duration,
    progress: &dyn Progress,
    store: &Store,
    report: &mut ResultsReport,
) -> Result<Vec<Doc>> {
    let mut files: Vec<(PathBuf, bool)> = list_folder(root, ext, report)?
        .into_iter()
        .map(|p| (p, false))
        .collect();
    let failed = root.join("failed");
    if after == AfterRead::Move && failed.is_dir() {
        for p in list_folder(&failed, ext, report)? {
            let known = store.failed_document(&p.display().to_string())?;
            // unknown: failed before sisync remembered (maybe mid-upload)
            if known.is_none() || known != file_sha256(&p).ok() {
                files.push((p, true));
            }
        }
    }
    // stamps now; files changed less than `settle` ago are looked at again
    // after waiting that long, and left for the next run if they changed
    let now = SystemTime::now();
    let mut docs = Vec::with_capacity(files.len());
    let mut young = Vec::new();
    for (path, retry) in files {
        let Ok(st) = stamp(&path) else { continue };
        let fresh =
            st.1.and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age < settle);
        let d = FileDoc {
            path,
            root: root.to_path_buf(),
            retry,
            stamp: st,
        };
        if fresh { young.push(d) } else { docs.push(d) }
    }
    if !young.is_empty() {
        let until = std::time::Instant::now() + settle;
        while std::time::Instant::now() < until && !progress.stop_requested() {
            tokio::time::sleep(Duration::from_millis(100).min(settle)).await;
        }
        for d in young {
            if !progress.stop_requested() && stamp(&d.path).ok() == Some(d.stamp) {
                docs.push(d);
            } else {
                report.documents_waiting += 1;
                tracing::info!(
                    "{}: still being written (changed within results.source.settle = {}); read next run",
                    d.path.display(),
                    humantime::format_duration(settle)
                );
            }
        }
    }
    docs.sort_by(|a, b| (a.retry, &a.path).cmp(&(b.retry, &b.path)));
    Ok(docs.into_iter().map(Doc::File).collect())
}

/// Files with extension `ext` directly in `dir`, sorted by name; temporary
/// names skipped, symbolic links reported (not followed).
fn list_folder(dir: &Path, ext: &str, report: &mut ResultsReport) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).with_context(|| {
        format!(
            "cannot list results folder {}; check results.source.path",
            dir.display()
        )
    })?;
    let mut files = Vec::new();
    for e in rd {
        let e = e?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let temporary = name.starts_with('.') || name.starts_with("~$");
        if temporary || !p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)) {
            continue;
        }
        let kind = e.file_type()?;
        if kind.is_symlink() {
            report.document_errors.push(format!(
                "{}: is a symbolic link; sisync does not follow links in the results folder (it moves the files it reads): put the file itself there",
                p.display()
            ));
        } else if kind.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Move a processed file into `root/sub/` (never overwriting).
fn move_to(root: &Path, p: &Path, sub: &str) -> Result<PathBuf> {
    let dir = root.join(sub);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}; check permissions", dir.display()))?;
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    let mut to = dir.join(&*name);
    let mut n = 1;
    while to.exists() {
        to = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    std::fs::rename(p, &to).with_context(|| {
        format!(
            "cannot move {} to {}; check permissions",
            p.display(),
            to.display()
        )
    })?;
    Ok(to)
}
