//! Where a OneRoster CSV export lives: a folder or a `.zip`. Opening it
//! lists the entries once and refuses what cannot be one export (two
//! `users.csv`, a zip inside the zip, a pipe instead of a file), so that
//! a broken delivery fails the run instead of reading as "nothing there".

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A folder or a zip file, with its CSV entries by lowercase file name.
pub(super) enum Input {
    Dir {
        path: PathBuf,
        /// file name (lowercase) → path
        names: HashMap<String, PathBuf>,
    },
    Zip {
        path: PathBuf,
        /// file name (lowercase, no folder) → name inside the archive
        names: HashMap<String, String>,
    },
}

impl Input {
    pub(super) fn open(path: &Path) -> Result<Input> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "OneRoster export {} not found; check source.path",
                path.display()
            )
        })?;
        if meta.is_dir() {
            return Self::open_dir(path);
        }
        if !meta.is_file() {
            bail!(
                "{} is not a regular file or folder (a pipe or device?); point source.path at the export folder or .zip",
                path.display()
            );
        }
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let zip = zip::ZipArchive::new(file).with_context(|| {
            format!(
                "{} is neither a folder nor a readable .zip; point source.path at the export",
                path.display()
            )
        })?;
        let mut names: HashMap<String, String> = HashMap::new();
        let mut inner_zips = Vec::new();
        let entries: Vec<String> = zip
            .file_names()
            .map(|n| n.map(|n| n.to_string()))
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!(
                    "{}: an entry name cannot be read; re-create the zip",
                    path.display()
                )
            })?;
        for n in entries
            .iter()
            .map(String::as_str)
            .filter(|n| !n.ends_with('/'))
        {
            let base = n.rsplit('/').next().unwrap_or(n).to_ascii_lowercase();
            if base.ends_with(".zip") {
                inner_zips.push(n.to_string());
            }
            if !base.ends_with(".csv") {
                continue;
            }
            if let Some(other) = names.insert(base.clone(), n.to_string()) {
                let (a, b) = sorted(&other, n);
                bail!(
                    "{} holds {base} twice ({a} and {b}): two exports in one zip? Deliver one export per zip",
                    path.display()
                );
            }
        }
        if names.is_empty() && !inner_zips.is_empty() {
            bail!(
                "{} holds another zip ({}) and no CSV files; unpack it and point source.path at the inner export",
                path.display(),
                inner_zips.join(", ")
            );
        }
        Ok(Input::Zip {
            path: path.to_path_buf(),
            names,
        })
    }

    fn open_dir(path: &Path) -> Result<Input> {
        let mut names: HashMap<String, PathBuf> = HashMap::new();
        let mut folders = Vec::new();
        let entries =
            std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot list {}", path.display()))?;
            let name = e.file_name().to_string_lossy().to_string();
            let lower = name.to_ascii_lowercase();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !lower.ends_with(".csv") {
                folders.push(name);
                continue;
            }
            if !lower.ends_with(".csv") {
                continue;
            }
            // Exports from some SIS use other capitalisation
            // (AcademicSessions.csv); two spellings of one file are two
            // exports mixed up.
            if let Some(other) = names.insert(lower.clone(), e.path()) {
                let other = other
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let (a, b) = sorted(&other, &name);
                bail!(
                    "{} holds {a} and {b}: one file twice in different spelling; remove the stale one",
                    path.display()
                );
            }
        }
        if names.is_empty() {
            folders.sort();
            let hint = match folders.as_slice() {
                [one] => format!(
                    "; it has a folder {one:?}: point source.path at {}",
                    path.join(one).display()
                ),
                _ => "; check that the SIS export job ran and wrote its files here".to_string(),
            };
            bail!("{} holds no CSV files{hint}", path.display());
        }
        Ok(Input::Dir {
            path: path.to_path_buf(),
            names,
        })
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Input::Dir { .. } => "folder",
            Input::Zip { .. } => "zip",
        }
    }

    /// The export's own path.
    pub(super) fn root(&self) -> String {
        match self {
            Input::Dir { path, .. } | Input::Zip { path, .. } => path.display().to_string(),
        }
    }

    pub(super) fn display(&self, file: &str) -> String {
        match self {
            Input::Dir { path, names } => names
                .get(&file.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| path.join(file))
                .display()
                .to_string(),
            Input::Zip { path, .. } => format!("{}!{file}", path.display()),
        }
    }

    pub(super) fn exists(&self, file: &str) -> bool {
        let key = file.to_ascii_lowercase();
        match self {
            Input::Dir { names, .. } => names.contains_key(&key),
            Input::Zip { names, .. } => names.contains_key(&key),
        }
    }

    /// Run `f` over the file's bytes (BOM stripped) and its size in bytes
    /// as far as known (a hint for reserving memory); None if absent.
    pub(super) fn with<T>(
        &self,
        file: &str,
        f: impl FnOnce(&mut dyn BufRead, Option<u64>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Input::Dir { names, .. } => {
                let Some(p) = names.get(&file.to_ascii_lowercase()) else {
                    return Ok(None);
                };
                // Opening a FIFO would block for ever; a folder named
                // users.csv would fail without a name.
                let meta =
                    std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
                if !meta.is_file() {
                    bail!(
                        "{} is not a regular file (a folder, pipe or device); the SIS export must write plain files",
                        p.display()
                    );
                }
                let fh = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
                as_utf8(fh, Some(meta.len()), &p.display(), f).map(Some)
            }
            Input::Zip { path, names } => {
                let Some(inner) = names.get(&file.to_ascii_lowercase()) else {
                    return Ok(None);
                };
                let fh =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                let mut zip = zip::ZipArchive::new(fh)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let entry = zip
                    .by_name(inner)
                    .with_context(|| format!("cannot read {inner} in {}", path.display()))?;
                let size = entry.size();
                let shown = format!("{inner} in {}", path.display());
                as_utf8(entry, Some(size), &shown, f).map(Some)
            }
        }
    }
}

fn sorted<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Call `f` with `input` (named `shown` in an error) as UTF-8, its size (a
/// hint) along: a UTF-8 byte-order mark skipped, a UTF-16 file (Excel's
/// "Unicode" save) decoded as it is read. Any other encoding is read as
/// UTF-8: a row that is not is held by the reader.
fn as_utf8<R: Read, T>(
    input: R,
    size: Option<u64>,
    shown: &dyn std::fmt::Display,
    f: impl FnOnce(&mut dyn BufRead, Option<u64>) -> Result<T>,
) -> Result<T> {
    let mut br = BufReader::with_capacity(256 * 1024, input);
    let head = br
        .fill_buf()
        .with_context(|| format!("cannot read {shown}"))?;
    match head {
        [0xEF, 0xBB, 0xBF, ..] => br.consume(3),
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] => {
            // the decoder finds the byte order by the mark and drops it
            let utf8 = encoding_rs_io::DecodeReaderBytes::new(br);
            return f(
                &mut BufReader::with_capacity(256 * 1024, utf8),
                size.map(|s| s / 2),
            );
        }
        _ => {}
    }
    f(&mut br, size)
}
