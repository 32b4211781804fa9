//! Command output on stdout. Every command writes through here, so a
//! reader that closes the pipe early (`sisync audit list | head -1`) ends
//! the command with [`CliError::StdoutClosed`] (exit 0, nothing on stderr)
//! instead of the panic of `println!`.

use std::io::Write as _;

use crate::exit::CliError;

/// Write `bytes` to stdout and flush, so a closed pipe shows here and not
/// at exit.
pub fn bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
            _ => CliError::Failed(anyhow::anyhow!(
                "cannot write the output to stdout: {e}; check where stdout goes (a full disk?)"
            )),
        })
}

/// One line of output (see [`outln!`]).
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut s = args.to_string();
    s.push('\n');
    bytes(s.as_bytes())
}

/// `println!` for command output: returns `Result<(), CliError>`, so a
/// closed stdout ends the command quietly through `?`.
macro_rules! outln {
    () => {
        $crate::app::out::bytes(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::app::out::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
