//! How a command ends: the documented exit codes (README "Exit codes")
//! and the errors that choose one. `main` turns both into the process
//! exit code through [`CliError::exit`] and [`Exit::code`], the one table.

/// How a command ended. Ordered from best to worst, so the worse of two
/// halves (`sync all`) is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    Ok,
    /// A failure, also a partial one (some records not delivered).
    Failure,
    /// Bad config or usage.
    Config,
    /// Refused by the safety gate: nothing was written.
    Refused,
    /// The audit chain does not verify.
    AuditBroken,
    /// `plan approve`: the state moved since the plan was made.
    StateMoved,
}

impl Exit {
    /// The process exit code.
    pub const fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Config => 2,
            Exit::Refused => 3,
            Exit::AuditBroken => 4,
            Exit::StateMoved => 5,
        }
    }
}

/// Why a command stopped early. Each variant is one line on stderr (none
/// for [`CliError::StdoutClosed`]) and one exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config file cannot be used.
    #[error("config error: {0}")]
    Config(String),
    /// The state database is damaged; the line says what to do.
    #[error("error: {0}")]
    Damaged(String),
    /// The reader closed stdout (`sisync audit list | head -1`): it has
    /// what it wanted, so that is not a failure.
    #[error("stdout was closed by the reader")]
    StdoutClosed,
    /// Anything else, with its causes.
    #[error("error: {0:#}")]
    Failed(#[from] anyhow::Error),
}

impl CliError {
    /// The exit code each error ends the process with.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Config(_) => Exit::Config,
            CliError::StdoutClosed => Exit::Ok,
            CliError::Damaged(_) | CliError::Failed(_) => Exit::Failure,
        }
    }

    /// The line for stderr, if the error deserves one.
    pub fn line(&self) -> Option<String> {
        match self {
            CliError::StdoutClosed => None,
            other => Some(other.to_string()),
        }
    }
}

/// A command's result: how it ended, or why it stopped.
pub type CliResult = Result<Exit, CliError>;

/// The process exit code of a command's result, after its line (if any)
/// is on stderr.
pub fn code(r: CliResult) -> i32 {
    match r {
        Ok(exit) => exit.code(),
        Err(e) => {
            if let Some(line) = e.line() {
                eprintln!("{line}");
            }
            e.exit().code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Exit; 6] = [
        Exit::Ok,
        Exit::Failure,
        Exit::Config,
        Exit::Refused,
        Exit::AuditBroken,
        Exit::StateMoved,
    ];

    #[test]
    fn the_documented_codes() {
        assert_eq!(ALL.map(Exit::code), [0, 1, 2, 3, 4, 5]);
        // `sync all`: the worse half wins
        assert_eq!(Exit::Failure.max(Exit::Refused), Exit::Refused);
        assert_eq!(CliError::StdoutClosed.exit().code(), 0);
        assert_eq!(CliError::StdoutClosed.line(), None);
        assert_eq!(CliError::Config("x".into()).exit().code(), 2);
        let e = CliError::from(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(e.line().as_deref(), Some("error: outer: inner"));
        assert_eq!(e.exit().code(), 1);
    }

    #[test]
    fn the_readme_documents_each_code() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("### Exit codes")
            .nth(1)
            .expect("README has an Exit codes section");
        let documented: Vec<i32> = table
            .lines()
            .skip_while(|l| !l.starts_with("|---"))
            .skip(1)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_start_matches('|').split('|').next())
            .map(|c| c.trim().parse().expect("a code in the first column"))
            .collect();
        assert_eq!(documented, ALL.map(Exit::code));
    }
}
