//! Delivering a folder of files atomically (csv-drop, the EDEXML drop,
//! the gradebook CSV sink, privacy exports): written into a hidden
//! temporary folder, fsynced, renamed into place; and CSV bytes with a
//! hash per row.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::connector::{SinkError, csv_guard};
use crate::digest::sha256_hex;

/// A failed folder write: the path, what failed, and the I/O error.
pub(crate) type FolderError = (PathBuf, &'static str, std::io::Error);

/// What a platform file drop (csv-drop, edexml-drop) reports when it
/// cannot write `path`.
pub(crate) fn platform_error(path: &Path, what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError {
        endpoint: path.display().to_string(),
        message: format!(
            "{}: cannot {what} ({e}); check platform.path exists and is writable",
            path.display()
        ),
        ..SinkError::default()
    }
}

/// Write `files` into `dir/name/` atomically: into a hidden temporary
/// folder first, each file and the folder fsynced, then renamed into place.
/// The folder is 0700 and its files 0600 whatever the umask, or 0750/0640
/// when `group_readable`. A
/// name already taken (the state was reset and run numbers start again
/// within the same second) gets `-2`, `-3`, ...: a delivery never lands
/// in, or fails on, an older folder.
pub(crate) fn write_folder_as(
    dir: &Path,
    name: &str,
    files: &[(&str, Vec<u8>)],
    group_readable: bool,
) -> Result<PathBuf, FolderError> {
    let (dir_mode, file_mode) = if group_readable {
        (0o750, 0o640)
    } else {
        (0o700, 0o600)
    };
    let mut unique = name.to_string();
    let mut n = 1;
    while dir.join(&unique).exists() {
        n += 1;
        unique = format!("{name}-{n}");
    }
    let name = unique.as_str();
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    fs::create_dir(&tmp).map_err(|e| (tmp.clone(), "create a temporary folder", e))?;
    set_mode(&tmp, dir_mode).map_err(|e| (tmp.clone(), "set the mode of", e))?;
    for (file, bytes) in files {
        let p = tmp.join(file);
        let mut o = fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, file_mode);
        let mut f = o.open(&p).map_err(|e| (p.clone(), "write", e))?;
        set_mode(&p, file_mode).map_err(|e| (p.clone(), "set the mode of", e))?;
        f.write_all(bytes).map_err(|e| (p.clone(), "write", e))?;
        f.sync_all().map_err(|e| (p.clone(), "fsync", e))?;
    }
    File::open(&tmp)
        .and_then(|d| d.sync_all())
        .map_err(|e| (tmp.clone(), "fsync", e))?;
    fs::rename(&tmp, &dest).map_err(|e| (dest.clone(), "rename into place", e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| (dir.to_path_buf(), "fsync", e))?;
    Ok(dest)
}

/// Exactly `mode`: the umask only ever takes bits away, and a
/// group-readable drop must be group-readable under umask 077 too.
fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (p, mode);
        Ok(())
    }
}

/// Serialise rows to CSV bytes, returning each row's hash by key column 0.
/// With `guard`, cells a spreadsheet would run as formulas are made text
/// (see `csv_guard`).
pub(crate) fn csv_bytes(
    header: &[&str],
    rows: &[Vec<String>],
    guard: bool,
) -> Result<(Vec<u8>, Vec<String>), csv::Error> {
    let mut out = CsvOut::new(header, guard, true)?;
    for r in rows {
        out.row(r)?;
    }
    out.finish()
}

/// CSV written row by row into memory, each row's bytes hashed (when
/// asked) as they are written: no row is held twice, and no per-row
/// writer or buffer is made (a first delivery holds hundreds of thousands
/// of membership rows).
pub(crate) struct CsvOut {
    w: csv::Writer<Vec<u8>>,
    guard: bool,
    hashes: Option<Vec<String>>,
    /// Where the row being written starts in the output.
    mark: usize,
}

impl CsvOut {
    pub(crate) fn new(header: &[&str], guard: bool, hashed: bool) -> Result<CsvOut, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(header)?;
        w.flush()?;
        let mark = w.get_ref().len();
        Ok(CsvOut {
            w,
            guard,
            hashes: hashed.then(Vec::new),
            mark,
        })
    }

    /// One row; its hash is the SHA-256 of exactly the bytes it adds.
    pub(crate) fn row<S: AsRef<str>>(&mut self, cells: &[S]) -> Result<(), csv::Error> {
        for c in cells {
            let c = c.as_ref();
            if self.guard {
                self.w.write_field(csv_guard::guard(c).as_bytes())?;
            } else {
                self.w.write_field(c)?;
            }
        }
        self.w.write_record(None::<&[u8]>)?;
        if let Some(hashes) = &mut self.hashes {
            self.w.flush()?;
            let bytes = self.w.get_ref();
            hashes.push(sha256_hex(&bytes[self.mark..]));
            self.mark = bytes.len();
        }
        Ok(())
    }

    /// The bytes, and the row hashes in row order (empty when not hashed).
    pub(crate) fn finish(self) -> Result<(Vec<u8>, Vec<String>), csv::Error> {
        let bytes = self.w.into_inner().map_err(|e| e.into_error())?;
        Ok((bytes, self.hashes.unwrap_or_default()))
    }
}

/// `privacy erase` at a file platform: a folder `sisync-<time>-erase/`
/// with `erasures.csv` (`externalId,action` = `id,delete`) that the
/// platform's importer applies as a deletion.
pub(crate) fn erasure_drop(
    dir: &Path,
    id: &str,
    formula_guard: bool,
    group_readable: bool,
) -> anyhow::Result<PathBuf> {
    let name = format!(
        "sisync-{}-erase",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let (bytes, _) = csv_bytes(
        &["externalId", "action"],
        &[vec![id.to_string(), "delete".into()]],
        formula_guard,
    )?;
    fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("{}: cannot create ({e}); nothing was erased", dir.display())
    })?;
    write_folder_as(dir, &name, &[("erasures.csv", bytes)], group_readable).map_err(
        |(path, what, e)| {
            anyhow::anyhow!(
                "{}: cannot {what} ({e}); nothing was erased",
                path.display()
            )
        },
    )
}

/// [`erasure_drop`] as a platform's erasure.
pub(crate) fn erase_by_drop(
    dir: &Path,
    id: &str,
    formula_guard: bool,
    group_readable: bool,
) -> Result<crate::connector::platform::Erased, crate::connector::platform::EraseError> {
    let folder = erasure_drop(dir, id, formula_guard, group_readable)
        .map_err(crate::connector::platform::EraseError::Unreachable)?;
    Ok(crate::connector::platform::Erased {
        endpoint: folder.display().to_string(),
        delivered: Some(folder),
        note: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hashes_are_of_each_row_alone() {
        let rows = vec![
            vec!["u1".to_string(), "=1+1".to_string(), "a,b".to_string()],
            vec!["u2".to_string(), String::new(), "say \"hi\"".to_string()],
        ];
        let (bytes, hashes) = csv_bytes(&["id", "x", "y"], &rows, true).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert_eq!(lines[0], "id,x,y\n");
        assert_eq!(lines[1], "u1,'=1+1,\"a,b\"\n");
        assert_eq!(hashes.len(), 2);
        for (line, h) in lines[1..].iter().zip(&hashes) {
            assert_eq!(*h, sha256_hex(line.as_bytes()));
        }
        // unhashed: the same bytes, no hashes
        let mut out = CsvOut::new(&["id", "x", "y"], true, false).unwrap();
        for r in &rows {
            out.row(r).unwrap();
        }
        let (same, none) = out.finish().unwrap();
        assert_eq!(same, text.as_bytes());
        assert!(none.is_empty());
        // a row of another length is refused, as before
        let mut out = CsvOut::new(&["id", "x"], false, true).unwrap();
        assert!(out.row(&["only"]).is_err());
    }
}
