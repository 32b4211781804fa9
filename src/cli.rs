//! Command-line interface (clap). README.md "Commands" and "Exit codes"
//! document it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "sisync",
    version,
    about = "Keeps a school's SIS and an online exam platform in sync",
    long_about = None
)]
pub struct Cli {
    /// Config file.
    #[arg(
        long,
        global = true,
        env = "SISYNC_CONFIG",
        default_value = "/etc/sisync/sisync.toml"
    )]
    pub config: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format on stderr (default: human on a terminal, json otherwise).
    #[arg(long, global = true, env = "SISYNC_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Colours in terminal logs: auto (a terminal, and NO_COLOR unset),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    pub color: Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: scheduled syncs, admin endpoint; SIGTERM stops after
    /// the current batch, SIGHUP reloads the config.
    Run,
    /// One-shot sync.
    Sync {
        #[command(subcommand)]
        what: SyncWhat,
    },
    /// Last runs, record counts, audit log head.
    Status,
    /// Read the platform back and compare it with what sisync sent:
    /// missing, drifted, orphans, membership drift.
    Reconcile {
        /// Send missing and drifted records again (through the safety
        /// gate); orphans are listed, never deleted.
        #[arg(long)]
        fix: bool,
    },
    /// Plans held by the safety gate: list, show, approve.
    Plan {
        #[command(subcommand)]
        cmd: PlanCmd,
    },
    /// Query and verify the audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Validate the config and show what sisync would talk to.
    CheckConfig {
        /// Also fetch one page from each configured endpoint and report
        /// latency and authentication.
        #[arg(long)]
        connect: bool,
    },
    /// Data subject rights, retention and the processing register (AVG/GDPR).
    Privacy {
        #[command(subcommand)]
        cmd: PrivacyCmd,
    },
    /// Copy the state database (consistent, also while the daemon runs)
    /// and the subject key into a new folder DEST, and check the copy.
    Backup {
        /// A folder that does not exist yet or is empty.
        dest: PathBuf,
    },
    /// Replace the state database and subject key with a backup; refused
    /// while the daemon or a sync runs, or when the copy does not verify.
    Restore {
        /// A folder written by `sisync backup`.
        src: PathBuf,
    },
    /// Notifications ([alerts]): check the conditions now, or send a test.
    Alerts {
        #[command(subcommand)]
        cmd: AlertsCmd,
    },
    /// Anonymous statistics.
    Report {
        #[command(subcommand)]
        what: ReportWhat,
    },
    /// Write the man page or shell completions (for packaging).
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: GenerateWhat,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// Send every alert whose condition holds now and that was not sent
    /// within alerts.repeat_after (the daemon and one-shot syncs do this
    /// themselves).
    Check,
    /// Send a test message through every configured channel.
    Test,
}

#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// Man pages (sisync.1, one per subcommand, and sisync.toml.5) into DIR.
    Man {
        /// Output folder.
        dir: PathBuf,
    },
    /// A completion script on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncWhat {
    /// Pull the roster from the SIS and provision the platform.
    Roster(SyncArgs),
    /// Read exam results from the platform into the outbox and push them
    /// to the SIS gradebook.
    Results(ResultsArgs),
    /// Roster, then results.
    All(SyncArgs),
}

#[derive(Debug, Args, Clone, Copy)]
pub struct ResultsArgs {
    /// Read and match results and say what would be pushed; change nothing
    /// anywhere (files stay where they are).
    #[arg(long)]
    pub dry_run: bool,
    /// Push failed results again (after the cause was fixed).
    #[arg(long)]
    pub retry_failed: bool,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct SyncArgs {
    /// Print the plan; change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
    /// Send every record again, changed or not (repairs a drifted platform).
    #[arg(long)]
    pub full: bool,
    /// Let a plan through that the safety gate would refuse.
    #[arg(long)]
    pub allow_mass_changes: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCmd {
    /// Held, approved and superseded plans, newest first.
    List,
    /// One plan: the same table as --dry-run, with the per-kind counts.
    Show {
        /// Plan number (see `sisync plan list`).
        id: i64,
    },
    /// Apply exactly that plan, without reading the source again; exit 5
    /// when the state changed since it was planned.
    Approve {
        /// Plan number.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List entries, oldest first.
    List(AuditListArgs),
    /// Show one entry in full.
    Show {
        /// Entry number (the `seq` column).
        seq: i64,
    },
    /// Check the hash chain; exit 4 at the first broken entry.
    Verify,
}

#[derive(Debug, Args)]
pub struct AuditListArgs {
    /// From this time: RFC 3339, YYYY-MM-DD[ HH:MM] (local), or an age like 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only entries about this record id (SIS sourcedId).
    #[arg(long)]
    pub person: Option<String>,
    /// Record kind (user, group) or action (user.create, user.deactivate, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Only entries sent to this endpoint (URL or folder; a prefix matches,
    /// e.g. https://platform.example). Ends with a count of the persons.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// CSV on stdout.
    #[arg(long)]
    pub csv: bool,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCmd {
    /// Everything sisync holds about one person (access / portability
    /// request), on stdout.
    Export {
        /// The person's SIS sourcedId.
        #[arg(long)]
        person: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
    },
    /// Delete the person on the platform, purge local state, keep a
    /// pseudonymised tombstone so no sync re-creates them (until
    /// `unrestrict`).
    Erase {
        /// The person's SIS sourcedId.
        #[arg(long)]
        person: String,
        /// Wait this long for a running sync to finish (it holds the run
        /// lock), then give up without changing anything.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
        /// Show what would be deleted where, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation on a terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Freeze processing of one person (no updates, no result pushes).
    Restrict {
        /// The person's SIS sourcedId.
        #[arg(long)]
        person: String,
        /// Wait this long for a running sync to finish (it holds the run
        /// lock), then give up without changing anything.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Lift a restriction or an erasure tombstone.
    Unrestrict {
        /// The person's SIS sourcedId.
        #[arg(long)]
        person: String,
        /// Wait this long for a running sync to finish (it holds the run
        /// lock), then give up without changing anything.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Apply the retention periods now (the daemon does this daily).
    Purge,
    /// Print the processing register entry (Article 30) from the config.
    Register,
}

#[derive(Debug, Subcommand)]
pub enum ReportWhat {
    /// Score distribution of one exam per class, only for classes with at
    /// least privacy.min_group_size candidates.
    Results {
        /// The exam (test identifier).
        #[arg(long)]
        exam: String,
    },
}
