//! The sections of `sisync(1)` that clap cannot derive: exit status,
//! environment, files and examples (roff, appended to the generated page).

pub const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
.B 0
ok (rows skipped for bad source data are reported but do not fail the run)
.TP
.B 1
failure: a run failed or was partial, a platform stopped answering, a record or result was not delivered
.TP
.B 2
bad configuration or usage (the line names the file, line and key)
.TP
.B 3
refused by the safety gate: nothing was written, the plan is held (sisync plan show ID)
.TP
.B 4
audit verification failed (edited, cut or replaced audit log)
.TP
.B 5
plan approve refused: the state changed since the plan was made, or it was superseded
.SH ENVIRONMENT
.TP
.B SISYNC_CONFIG
the config file when \-\-config is not given (default /etc/sisync/sisync.toml)
.TP
.B CREDENTIALS_DIRECTORY
where relative token and key files are looked up first (systemd LoadCredential=)
.TP
.B RUST_LOG
log levels (default warn,sisync=info); logs carry record ids, never names or e\-mail addresses
.TP
.B SISYNC_LOG_FORMAT
human or json
.TP
.B NO_COLOR
no colours in terminal logs (unless \-\-color always)
.SH FILES
.TP
.I /etc/sisync/sisync.toml
the configuration
.TP
.I /etc/sisync/credentials/
tokens and keys, loaded by the systemd unit
.TP
.I /var/lib/sisync/state.db
the SQLite state and the audit log (0600); beside it the subject key (.key), the run lock (.lock), the daemon's presence lock (.daemon) and a space reserve (.reserve)
.TP
.I /var/log/sisync/audit.anchor
the audit head anchors (audit.anchor_file)
.SH EXAMPLES
.TP
.B sisync check\-config \-\-connect
validate the config and make one authenticated request to every endpoint
.TP
.B sisync sync roster \-\-dry\-run
show what a roster sync would change, change nothing
.TP
.B sisync plan show 3 && sisync plan approve 3
review and apply a plan the safety gate held
.TP
.B sisync reconcile \-\-fix
compare the platform with what was sent, and send what is missing or drifted again
.TP
.B sisync audit list \-\-person stu\-1003 \-\-since 30d
what was sent about one student, where and when
.TP
.B sisync backup /var/backups/sisync/$(date +%F)
a consistent copy of the state and the subject key while the daemon runs
"#;
