//! Files sisync wrote, or moved, that name people: delivered csv-drop and
//! gradebook CSV folders (`sisync-*`), hidden temporary folders of failed
//! deliveries (`.sisync-*.tmp`), and processed result files in `done/`
//! and `failed/` next to the results inbox.
//!
//! The purge removes them after `privacy.keep_deliveries` days (and
//! leftover temporary folders at once); an erasure removes the person's
//! rows from what is still kept. Both run under the run lock, so no
//! delivery is being written meanwhile.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::Config;
use crate::connector::DocumentFormat;
use crate::connector::platform::platform_sink;
use crate::connector::results::{result_sink, result_source};

/// One file or folder an erasure or the purge changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Touched {
    pub path: PathBuf,
    /// `removed`, or `rewrote (N rows removed)`.
    pub action: String,
}

/// How person ids appear in a processed result file.
#[derive(Debug, Clone)]
enum Format {
    Qti,
    Csv {
        delimiter: u8,
        candidate: String,
    },
    /// A delivered EDEXML file (edexml-drop).
    Edexml,
}

impl From<DocumentFormat> for Format {
    fn from(f: DocumentFormat) -> Format {
        match f {
            DocumentFormat::Qti => Format::Qti,
            DocumentFormat::Csv {
                delimiter,
                candidate,
            } => Format::Csv {
                delimiter,
                candidate,
            },
        }
    }
}

/// Header names of the columns that carry a person id in the CSV files
/// sisync delivers.
const ID_COLUMNS: &[&str] = &[
    "externalId",
    "userName",
    "userExternalId",
    "studentSourcedId",
];

struct Places {
    /// Folders sisync delivers into, with the prefix of its folders.
    deliveries: Vec<(PathBuf, &'static str)>,
    /// `done/` and `failed/` of a results inbox sisync moves files into.
    processed: Vec<(PathBuf, Format)>,
}

fn places(c: &Config) -> Places {
    let mut deliveries = Vec::new();
    if let Some(dir) = platform_sink(&c.platform).delivery_folder() {
        deliveries.push((dir.to_path_buf(), "sisync-"));
    }
    let mut processed = Vec::new();
    if let Some(r) = &c.results {
        if let Some(dir) = result_sink(&r.sink).delivery_folder() {
            deliveries.push((dir.to_path_buf(), "sisync-results-"));
        }
        let inbox = result_source(&r.source)
            .processed()
            .map(|(dir, f)| (dir.to_path_buf(), Format::from(f)));
        if let Some((dir, f)) = inbox {
            for sub in ["done", "failed"] {
                processed.push((dir.join(sub), f.clone()));
            }
        }
    }
    Places {
        deliveries,
        processed,
    }
}

/// Entries of a folder that may not exist.
fn entries(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            Err(e).with_context(|| format!("cannot list {}; check permissions", dir.display()))
        }
    }
}

fn is_tmp(name: &str, prefix: &str) -> bool {
    name.starts_with('.') && name[1..].starts_with(prefix) && name.ends_with(".tmp")
}

fn remove(path: &Path, out: &mut Vec<Touched>) -> Result<()> {
    let r = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    r.with_context(|| format!("cannot remove {}; check permissions", path.display()))?;
    out.push(Touched {
        path: path.to_path_buf(),
        action: "removed".into(),
    });
    Ok(())
}

/// When a delivered folder was made: from its name
/// (`sisync-[results-]YYYYMMDDTHHMMSS…`), else its status change time.
fn made_at(path: &Path, prefix: &str) -> Option<SystemTime> {
    let name = path.file_name()?.to_str()?;
    let stamp = name.strip_prefix(prefix).and_then(|s| s.get(..15));
    if let Some(t) =
        stamp.and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").ok())
    {
        return Some(SystemTime::from(t.and_utc()));
    }
    changed_at(path)
}

/// The status change time: for a processed file, when it was moved into
/// `done/` or `failed/`.
fn changed_at(path: &Path) -> Option<SystemTime> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64))
    }
    #[cfg(not(unix))]
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The retention of delivered folders and processed files: older than
/// `keep_days` is removed; leftover temporary folders of failed
/// deliveries are removed at once.
pub fn expire(c: &Config, keep_days: u32, now: SystemTime) -> Result<Vec<Touched>> {
    let keep = Duration::from_secs(u64::from(keep_days) * 86_400);
    let old =
        |t: Option<SystemTime>| t.is_some_and(|t| now.duration_since(t).unwrap_or_default() > keep);
    let p = places(c);
    let mut out = Vec::new();
    for (dir, prefix) in &p.deliveries {
        for e in entries(dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if is_tmp(&name, prefix) || (name.starts_with(prefix) && old(made_at(&path, prefix))) {
                remove(&path, &mut out)?;
            }
        }
    }
    for (dir, _) in &p.processed {
        for e in entries(dir)? {
            let path = e.path();
            if path.is_file() && old(changed_at(&path)) {
                remove(&path, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Remove the person (any of `ids`) from every kept file: their rows
/// from delivered CSV files and processed CSV results, their
/// `assessmentResult`s from processed QTI files (a file left without
/// results is removed), temporary folders of failed deliveries entirely.
/// `spare` (the erasure's own delivery) is left alone.
/// With `dry`, nothing changes: the list says what would.
pub fn erase(
    c: &Config,
    ids: &BTreeSet<String>,
    spare: Option<&Path>,
    dry: bool,
) -> Result<Vec<Touched>> {
    let p = places(c);
    let mut out = Vec::new();
    let remove = |path: &Path, out: &mut Vec<Touched>| -> Result<()> {
        if dry {
            out.push(Touched {
                path: path.to_path_buf(),
                action: "would remove".into(),
            });
            Ok(())
        } else {
            remove(path, out)
        }
    };
    for (dir, prefix) in &p.deliveries {
        for e in entries(dir)? {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if is_tmp(&name, prefix) {
                remove(&path, &mut out)?;
            } else if name.starts_with(prefix) && path.is_dir() && Some(path.as_path()) != spare {
                for f in entries(&path)? {
                    let f = f.path();
                    if f.extension().is_some_and(|x| x == "xml") {
                        scrub(&f, &Format::Edexml, ids, dry, &mut out)?;
                    } else if f.extension().is_some_and(|x| x == "csv") {
                        scrub(
                            &f,
                            &Format::Csv {
                                delimiter: b',',
                                candidate: String::new(),
                            },
                            ids,
                            dry,
                            &mut out,
                        )?;
                    }
                }
            }
        }
    }
    for (dir, format) in &p.processed {
        for e in entries(dir)? {
            let path = e.path();
            if path.is_file() {
                scrub(&path, format, ids, dry, &mut out)?;
            }
        }
    }
    Ok(out)
}

/// Rewrite one file without the person; a file that names them but
/// cannot be read as its format is removed whole.
fn scrub(
    path: &Path,
    format: &Format,
    ids: &BTreeSet<String>,
    dry: bool,
    out: &mut Vec<Touched>,
) -> Result<()> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}; check permissions", path.display()))?;
    if !ids
        .iter()
        .any(|id| !id.is_empty() && contains(&bytes, id.as_bytes()))
    {
        return Ok(());
    }
    let rewritten = match format {
        Format::Qti => without_qti_results(&bytes, ids),
        Format::Edexml => crate::connector::platform::edexml_drop::without_persons(&bytes, ids),
        Format::Csv {
            delimiter,
            candidate,
        } => without_csv_rows(&bytes, *delimiter, candidate, ids),
    };
    let rows = |n: usize| if n == 1 { "row" } else { "rows" };
    match rewritten {
        Some((_, 0)) => Ok(()), // the id occurs elsewhere (another column)
        Some((None, _)) | None if dry => {
            out.push(Touched {
                path: path.to_path_buf(),
                action: "would remove".into(),
            });
            Ok(())
        }
        Some((None, _)) | None => remove(path, out),
        Some((Some(_), n)) if dry => {
            out.push(Touched {
                path: path.to_path_buf(),
                action: format!("would rewrite ({n} {} removed)", rows(n)),
            });
            Ok(())
        }
        Some((Some(new), n)) => {
            replace(path, &new)?;
            out.push(Touched {
                path: path.to_path_buf(),
                action: format!("rewrote ({n} {} removed)", rows(n)),
            });
            Ok(())
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Replace `path` atomically, keeping its mode.
fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let ctx = || format!("cannot rewrite {}; check permissions", path.display());
    let perms = std::fs::metadata(path).with_context(ctx)?.permissions();
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(ctx)?;
    tmp.write_all(bytes).with_context(ctx)?;
    tmp.as_file().sync_all().with_context(ctx)?;
    std::fs::set_permissions(tmp.path(), perms).with_context(ctx)?;
    tmp.persist(path).map_err(|e| e.error).with_context(ctx)?;
    Ok(())
}

/// The CSV without rows whose id columns (or `candidate`) hold one of
/// `ids`, and how many rows went; None when it is not a CSV with such a
/// column. The header row always stays.
fn without_csv_rows(
    bytes: &[u8],
    delimiter: u8,
    candidate: &str,
    ids: &BTreeSet<String>,
) -> Option<(Option<Vec<u8>>, usize)> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes);
    let mut records = r.byte_records();
    let header = records.next()?.ok()?;
    let cols: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            let h = String::from_utf8_lossy(h);
            let h = h.trim_start_matches('\u{feff}').trim();
            ID_COLUMNS.contains(&h) || (!candidate.is_empty() && h.eq_ignore_ascii_case(candidate))
        })
        .map(|(i, _)| i)
        .collect();
    if cols.is_empty() {
        return None;
    }
    let crlf = contains(bytes, b"\r\n");
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .terminator(if crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(Vec::new());
    w.write_byte_record(&header).ok()?;
    let mut removed = 0;
    for rec in records {
        let rec = rec.ok()?;
        let hit = cols.iter().any(|&i| {
            rec.get(i)
                .is_some_and(|v| ids.contains(String::from_utf8_lossy(v).trim()))
        });
        if hit {
            removed += 1;
        } else {
            w.write_byte_record(&rec).ok()?;
        }
    }
    Some((Some(w.into_inner().ok()?), removed))
}

/// The QTI results document without the person's `assessmentResult`
/// elements (cut out byte for byte, the rest untouched), and how many
/// went; `(None, n)` when nothing else is left; None when it does not
/// parse.
fn without_qti_results(bytes: &[u8], ids: &BTreeSet<String>) -> Option<(Option<Vec<u8>>, usize)> {
    use crate::xml_cut::Tag;
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut total = 0;
    let mut open: Option<(usize, usize, bool)> = None; // start offset, depth, is theirs
    crate::xml_cut::walk(bytes, |tag| match tag {
        Tag::Open(o) => {
            let local = o.e.local_name();
            if local.as_ref() == b"assessmentResult" && open.is_none() {
                total += 1;
                if o.empty_end.is_none() {
                    open = Some((o.start, o.depth, false));
                }
            } else if local.as_ref() == b"context" {
                if let Some((_, _, theirs)) = open.as_mut() {
                    let id = o.e.attributes().flatten().find_map(|a| {
                        (a.key.local_name().as_ref() == b"sourcedId")
                            .then(|| {
                                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .ok()
                                    .map(|v| v.trim().to_string())
                            })
                            .flatten()
                    });
                    if id.is_some_and(|id| ids.contains(&id)) {
                        *theirs = true;
                    }
                }
            }
        }
        Tag::Close { name, depth, end } => {
            if name == b"assessmentResult" && open.is_some_and(|(_, d, _)| d == depth) {
                if let Some((start, _, true)) = open.take() {
                    cuts.push((start, end));
                }
            }
        }
    })?;
    Some(crate::xml_input::cut_out(bytes, &cuts, cuts.len() == total))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::strings;

    #[test]
    fn csv_rows_of_the_person_go_and_the_rest_stays_byte_for_byte() {
        let csv = b"externalId,userName,active,givenName\r\nstu-1,stu-1,true,Anna\r\nstu-2,stu-2,true,\"Jansen, Jr.\"\r\n";
        let (new, n) = without_csv_rows(csv, b',', "", &strings(&["stu-1"])).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            String::from_utf8(new.unwrap()).unwrap(),
            "externalId,userName,active,givenName\r\nstu-2,stu-2,true,\"Jansen, Jr.\"\r\n"
        );
        let m = b"groupExternalId,userExternalId\ncls-1,stu-1\ncls-1,stu-2\n";
        let (new, n) = without_csv_rows(m, b',', "", &strings(&["stu-1"])).unwrap();
        assert_eq!(
            (n, new.unwrap()),
            (1, b"groupExternalId,userExternalId\ncls-1,stu-2\n".to_vec())
        );
        let inbox = b"leerling;toets;score\nstu-1;EX;7\nstu-3;EX;8\n";
        let (new, n) = without_csv_rows(inbox, b';', "leerling", &strings(&["stu-1"])).unwrap();
        assert_eq!(
            (n, new.unwrap()),
            (1, b"leerling;toets;score\nstu-3;EX;8\n".to_vec())
        );
        assert!(without_csv_rows(b"a,b\n1,2\n", b',', "", &strings(&["1"])).is_none());
    }

    #[test]
    fn qti_results_of_the_person_are_cut_out() {
        let doc = "<results>\n<assessmentResult xmlns=\"q\"><context sourcedId=\"stu-1\"/><testResult identifier=\"EX\"/></assessmentResult>\n<assessmentResult xmlns=\"q\"><context sourcedId=\"stu-2\"/></assessmentResult>\n</results>\n";
        let (new, n) = without_qti_results(doc.as_bytes(), &strings(&["stu-1"])).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            String::from_utf8(new.unwrap()).unwrap(),
            "<results>\n<assessmentResult xmlns=\"q\"><context sourcedId=\"stu-2\"/></assessmentResult>\n</results>\n"
        );
        let (new, n) = without_qti_results(doc.as_bytes(), &strings(&["stu-1", "stu-2"])).unwrap();
        assert_eq!((new, n), (None, 2));
        assert!(without_qti_results(b"<a><b></a>", &strings(&["x"])).is_none());
    }
}
