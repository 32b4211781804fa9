//! `sisync alerts check|test`, and the alert check after one-shot syncs.

use anyhow::Result;

use crate::cli::{AlertsCmd, Cli};
use crate::config::Loaded;
use crate::exit;

/// After a one-shot sync: send what is due (a refusal, runs failing too
/// long, ...), so a cron-driven setup without the daemon is alerted too.
/// The exit code stays that of the sync.
pub(super) async fn after_oneshot(l: &Loaded, dry_run: bool, code: Result<i32>) -> Result<i32> {
    if !dry_run && l.config.alerts.is_some() {
        crate::alerts::check(l).await;
    }
    code
}

pub(super) async fn run(cli: &Cli, l: &Loaded, cmd: &AlertsCmd) -> Result<i32> {
    if l.config.alerts.is_none() {
        eprintln!(
            "error: {} has no [alerts] section; add one (README: Alerts) to send notifications",
            l.file.display()
        );
        return Ok(exit::CONFIG);
    }
    match cmd {
        AlertsCmd::Check => {
            let sent = crate::alerts::check(l).await;
            if cli.json {
                super::print_json(&serde_json::json!({ "sent": sent }));
            } else if sent.is_empty() {
                println!("no alert due");
            } else {
                println!("sent: {}", sent.join(", "));
            }
            Ok(exit::OK)
        }
        AlertsCmd::Test => {
            if crate::alerts::send_test(l).await {
                println!("test alert sent (see the log for a channel that failed)");
                Ok(exit::OK)
            } else {
                eprintln!(
                    "error: the test alert reached no channel; the reasons are in the log above"
                );
                Ok(exit::FAILURE)
            }
        }
    }
}
