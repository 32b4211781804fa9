//! Where human log lines go. Under systemd each line starts with its
//! syslog priority (`<4>` for a warning, sd-daemon(3)), so that
//! `journalctl -p warning` finds sisync's warnings and errors; on a
//! terminal they are written around the progress bar, never through it.

use std::io::{self, Write};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Writes to stderr with a priority prefix on every line.
#[derive(Clone, Copy, Default)]
pub struct JournalStderr;

/// Writes to stderr around the progress bar of a one-shot run on a
/// terminal, so that a log line never tears the bar.
#[derive(Clone, Copy, Default)]
pub struct StderrAroundBar;

/// A log line's way to stderr: under systemd with its priority prefix on
/// every line, else around the progress bar.
pub struct Stderr {
    prefix: Option<&'static [u8]>,
}

/// The sd-daemon prefix of a tracing level.
pub fn priority(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"<3>",
        Level::WARN => b"<4>",
        Level::INFO => b"<6>",
        _ => b"<7>",
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.prefix {
            Some(prefix) => {
                let mut out = Vec::with_capacity(buf.len() + 8);
                for line in buf.split_inclusive(|b| *b == b'\n') {
                    out.extend_from_slice(prefix);
                    out.extend_from_slice(line);
                }
                io::stderr().lock().write_all(&out)?;
            }
            None => suspend_bar(|| io::stderr().lock().write_all(buf))?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for JournalStderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr {
            prefix: Some(b"<6>"),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Stderr {
        Stderr {
            prefix: Some(priority(meta.level())),
        }
    }
}

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr { prefix: None }
    }
}

/// The progress bar on the terminal, if one is showing: log lines are
/// written around it (see [`suspend_bar`]) so they never tear it.
pub(crate) static ACTIVE_BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> =
    std::sync::Mutex::new(None);

/// Run `f` (a log write) with the progress bar, if any, lifted off the
/// terminal for the moment.
pub fn suspend_bar<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE_BAR.lock().ok().and_then(|b| b.clone());
    match bar {
        Some(pb) if !pb.is_finished() => pb.suspend(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(priority(&Level::ERROR), b"<3>");
        assert_eq!(priority(&Level::WARN), b"<4>");
        assert_eq!(priority(&Level::INFO), b"<6>");
        assert_eq!(priority(&Level::DEBUG), b"<7>");
    }
}
