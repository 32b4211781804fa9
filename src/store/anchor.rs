//! Audit anchors: the head of the hash chain (entry number and hash),
//! written outside the database at the end of every run.
//!
//! The chain itself proves that no entry was edited or removed in the
//! middle, and it starts at entry 1 (genesis). Cutting entries off the end
//! (or deleting the whole log) and rewriting `audit_head` to match leaves a
//! chain that checks out on its own; only a copy of the head kept
//! elsewhere shows that entries are gone. sisync logs the head to the
//! journal and appends it to `audit.anchor_file`, a file outside the state
//! directory; `sisync audit verify` checks every anchor in that file.
//!
//! Line format: `<UTC time> seq=<n> hash=<64 hex>`; `#` starts a comment.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One recorded head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub file: PathBuf,
    pub line: usize,
    pub at: String,
    pub seq: i64,
    pub hash: String,
}

impl Anchor {
    /// Where it was recorded, for messages: `file:line (time)`.
    pub fn place(&self) -> String {
        format!(
            "{}:{} (recorded {})",
            self.file.display(),
            self.line,
            self.at
        )
    }
}

fn parse_line(file: &Path, line: usize, text: &str) -> Result<Option<Anchor>> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let mut parts = t.split_whitespace();
    let (Some(at), Some(seq), Some(hash), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!(
            "{}:{line}: not an audit anchor (expected `<time> seq=<n> hash=<64 hex>`); the file was edited: restore it from a backup",
            file.display()
        );
    };
    let seq = seq.strip_prefix("seq=").and_then(|s| s.parse::<i64>().ok());
    let hash = hash
        .strip_prefix("hash=")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    match (seq, hash) {
        (Some(seq), Some(hash)) if seq > 0 => Ok(Some(Anchor {
            file: file.to_path_buf(),
            line,
            at: at.to_string(),
            seq,
            hash: hash.to_ascii_lowercase(),
        })),
        _ => bail!(
            "{}:{line}: not an audit anchor (expected `<time> seq=<n> hash=<64 hex>`); the file was edited: restore it from a backup",
            file.display()
        ),
    }
}

/// Every anchor in `path`; None when the file does not exist (yet).
pub fn read(path: &Path) -> Result<Option<Vec<Anchor>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot read the audit anchor file {} (audit.anchor_file)",
                    path.display()
                )
            });
        }
    };
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(a) = parse_line(path, i + 1, l)? {
            out.push(a);
        }
    }
    Ok(Some(out))
}

/// Append the head to `path` (created 0600) unless its last line already
/// records it. The file is fsynced: an anchor that did not reach the disk
/// proves nothing.
pub fn append(path: &Path, seq: i64, hash: &str) -> Result<()> {
    let ctx = || {
        format!(
            "cannot append the audit head to {} (audit.anchor_file); check that its folder exists and is writable",
            path.display()
        )
    };
    let mut f = open_append(path).with_context(ctx)?;
    // the last line is enough to tell whether anything changed
    let len = f.metadata().with_context(ctx)?.len();
    let tail_from = len.saturating_sub(200);
    f.seek(SeekFrom::Start(tail_from)).with_context(ctx)?;
    let mut tail = String::new();
    let _ = f.read_to_string(&mut tail);
    let same = tail
        .lines()
        .last()
        .and_then(|l| parse_line(path, 0, l).ok().flatten())
        .is_some_and(|a| a.seq == seq && a.hash == hash);
    if same {
        return Ok(());
    }
    writeln!(f, "{} seq={seq} hash={hash}", super::now()).with_context(ctx)?;
    f.sync_all().with_context(ctx)?;
    Ok(())
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path)?;
    // made by root (sudo sisync privacy ...): leave it to the owner of its
    // folder, the daemon's user, who appends next
    super::owner::hand_to_state_owner(path, path)?;
    Ok(f)
}

/// End of a run: log the head to the journal and, when configured, append
/// it to the anchor file.
pub fn record(store: &super::Store, anchor_file: Option<&Path>) -> Result<()> {
    let Some((seq, hash)) = store.audit_head()? else {
        return Ok(());
    };
    tracing::info!(audit_seq = seq, audit_head = %hash, "audit head");
    match anchor_file {
        Some(p) if seq > 0 => append(p, seq, &hash),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_once_per_head_and_reads_back() {
        let (_dir, p) = crate::test_util::temp_path("audit.anchor");
        assert_eq!(read(&p).unwrap(), None);
        let h1 = "a".repeat(64);
        let h2 = "b".repeat(64);
        append(&p, 3, &h1).unwrap();
        append(&p, 3, &h1).unwrap();
        append(&p, 5, &h2).unwrap();
        let a = read(&p).unwrap().unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].seq, a[0].line), (3, 1));
        assert_eq!((a[1].seq, a[1].hash.as_str()), (5, h2.as_str()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&p, "# comment\n2026 seq=x hash=y\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("audit.anchor:2: not an audit anchor"), "{e}");
    }
}
