//! `sisync alerts check|test`, and the alert check after one-shot syncs.

use super::out::outln;
use crate::cli::{AlertsCmd, Cli};
use crate::config::Loaded;
use crate::exit::{CliResult, Exit};

/// After a one-shot sync: send what is due (a refusal, runs failing too
/// long, ...), so a cron-driven setup without the daemon is alerted too.
/// The exit code stays that of the sync.
pub(super) async fn after_oneshot(l: &Loaded, dry_run: bool, code: CliResult) -> CliResult {
    if !dry_run && l.config.alerts.is_some() {
        crate::alerts::check(l).await;
    }
    code
}

pub(super) async fn run(cli: &Cli, l: &Loaded, cmd: &AlertsCmd) -> CliResult {
    if l.config.alerts.is_none() {
        eprintln!(
            "error: {} has no [alerts] section; add one (README: Alerts) to send notifications",
            l.file.display()
        );
        return Ok(Exit::Config);
    }
    match cmd {
        AlertsCmd::Check => {
            let sent = crate::alerts::check(l).await;
            if cli.json {
                super::print_json(&serde_json::json!({ "sent": sent }))?;
            } else if sent.is_empty() {
                outln!("no alert due")?;
            } else {
                outln!("sent: {}", sent.join(", "))?;
            }
            Ok(Exit::Ok)
        }
        AlertsCmd::Test => {
            if crate::alerts::send_test(l).await {
                outln!("test alert sent (see the log for a channel that failed)")?;
                Ok(Exit::Ok)
            } else {
                eprintln!(
                    "error: the test alert reached no channel; the reasons are in the log above"
                );
                Ok(Exit::Failure)
            }
        }
    }
}
