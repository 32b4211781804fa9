//! Reading result documents (a folder or an HTTP listing) into the outbox,
//! each document once, moved to `done/` or `failed/` after reading.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::matching::{Directory, incoming};
use super::{ResultsOptions, ResultsReport};
use crate::config::Loaded;
use crate::config::results::{AfterRead, ResultSourceCfg, Results};
use crate::connector::csv_results;
use crate::connector::qti_results::{self, QtiOptions};
use crate::http::{Auth, Http};
use crate::model::ExamResult;
use crate::store::Store;
use crate::store::audit::{AuditEntry, sha256_hex};
use crate::store::outbox::{Feed, Incoming};
use crate::sync::Progress;

/// A result document to read.
enum Doc {
    File(PathBuf),
    Url(String),
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn read_documents(
    loaded: &Loaded,
    rcfg: &Results,
    opts: ResultsOptions,
    actor: &str,
    progress: &dyn Progress,
    store: &mut Store,
    dir: &Directory,
    report: &mut ResultsReport,
) -> Result<()> {
    let (docs, after, http) = match &rcfg.source {
        ResultSourceCfg::QtiFolder(f) => (list_folder(&f.path, "xml")?, f.after, None),
        ResultSourceCfg::Csv(f) => (list_folder(&f.path, "csv")?, f.after, None),
        ResultSourceCfg::QtiHttp(h) => {
            let auth = match &h.auth {
                Some(a) => loaded.result_auth("results.source.auth", a, h.timeout)?,
                None => Auth::None,
            };
            let http = Http::new(h.timeout, auth, h.max_retries)?;
            let urls = qti_results::list_documents(&http, &h.list_url)
                .await
                .context("cannot list result documents; nothing was read")?;
            (
                urls.into_iter().map(Doc::Url).collect(),
                AfterRead::Keep,
                Some(http),
            )
        }
    };
    for doc in docs {
        let (origin, bytes) = match &doc {
            Doc::File(p) => (p.display().to_string(), None),
            Doc::Url(u) => {
                let http = http.as_ref().expect("URL documents come with a client");
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
            (Doc::File(p), None) => match file_sha256(p) {
                Ok(s) => s,
                Err(e) => {
                    report.document_errors.push(format!(
                        "{}: cannot read ({e}); check permissions",
                        p.display()
                    ));
                    continue;
                }
            },
            (Doc::Url(_), None) => unreachable!("URL documents are fetched"),
        };
        if store.document_seen(&origin, &sha)? {
            report.documents_skipped += 1;
            if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                move_to(p, "done")?; // read before a crash, not moved yet
            }
            continue;
        }
        let name = match &doc {
            Doc::File(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_else(|| origin.clone()),
            Doc::Url(u) => u.clone(),
        };
        let mut issues = Vec::new();
        let mut parse = |each: &mut dyn FnMut(Incoming) -> Result<()>| -> Result<()> {
            let input: Box<dyn Read> = match (&doc, &bytes) {
                (_, Some(b)) => Box::new(&b[..]),
                (Doc::File(p), None) => Box::new(
                    std::fs::File::open(p)
                        .with_context(|| format!("{}: cannot open", p.display()))?,
                ),
                (Doc::Url(_), None) => unreachable!("URL documents are fetched"),
            };
            let mut on_result = |r: ExamResult| {
                progress.rows(1);
                each(incoming(rcfg, dir, r))
            };
            match &rcfg.source {
                ResultSourceCfg::Csv(c) => {
                    let rep = csv_results::read(
                        input,
                        &name,
                        &c.columns,
                        c.delimiter.as_bytes()[0],
                        &mut on_result,
                    )?;
                    issues = rep.issues;
                }
                ResultSourceCfg::QtiFolder(f) => {
                    let o = QtiOptions {
                        grade_outcomes: f.grade_outcomes.clone(),
                    };
                    issues = qti_results::read(input, &name, &o, &mut on_result)?.issues;
                }
                ResultSourceCfg::QtiHttp(h) => {
                    let o = QtiOptions {
                        grade_outcomes: h.grade_outcomes.clone(),
                    };
                    issues = qti_results::read(input, &name, &o, &mut on_result)?.issues;
                }
            }
            Ok(())
        };
        let read = tokio::task::block_in_place(|| {
            if opts.dry_run {
                store.outbox_preview(&mut parse as Feed<'_>)
            } else {
                let entry = AuditEntry {
                    actor: actor.to_string(),
                    run_id: report.run_id,
                    direction: "in".into(),
                    endpoint: origin.clone(),
                    action: "results.read".into(),
                    record_kind: "document".into(),
                    record_id: String::new(),
                    fields: String::new(),
                    payload_sha256: Some(sha.clone()),
                    outcome: "ok".into(),
                    detail: None,
                };
                store.outbox_ingest((&origin, &sha), &entry, &mut parse as Feed<'_>)
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
                if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    move_to(p, "done")?;
                }
            }
            Err(e) => {
                let mut line = format!("{e:#}");
                if let (Doc::File(p), AfterRead::Move, false) = (&doc, after, opts.dry_run) {
                    let to = move_to(p, "failed")?;
                    line.push_str(&format!(
                        "; nothing of it was stored, the file is now {} (fix it and move it back)",
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

/// Files with extension `ext` directly in `dir`, sorted by name.
fn list_folder(dir: &Path, ext: &str) -> Result<Vec<Doc>> {
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
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden
            && e.file_type()?.is_file()
            && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext))
        {
            files.push(p);
        }
    }
    files.sort();
    Ok(files.into_iter().map(Doc::File).collect())
}

fn file_sha256(p: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// Move a processed file into `sub/` next to it (never overwriting).
fn move_to(p: &Path, sub: &str) -> Result<PathBuf> {
    let dir = p.parent().unwrap_or(Path::new(".")).join(sub);
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
