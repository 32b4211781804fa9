//! `[alerts]`: notifications that reach a person (webhook and/or e-mail).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Loaded, Secret, humantime_serde_compat};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// The webhook URL (it usually embeds a secret): `env:NAME`...
    pub webhook_url: Option<String>,
    /// ... or a file (looked up in `$CREDENTIALS_DIRECTORY` first).
    pub webhook_url_file: Option<PathBuf>,
    #[serde(default)]
    pub format: WebhookFormat,
    pub email: Option<Email>,
    /// Runs of one kind failing for longer than this.
    #[serde(default = "default_failing_after", with = "humantime_serde_compat")]
    pub failing_after: Duration,
    /// Results failed or parked for longer than this.
    #[serde(default = "default_results_after", with = "humantime_serde_compat")]
    pub results_stuck_after: Duration,
    /// Daily digest at this local time ("07:00"); none when absent.
    pub digest_at: Option<String>,
    /// The same alert at most once per this.
    #[serde(default = "default_repeat", with = "humantime_serde_compat")]
    pub repeat_after: Duration,
    /// Delivery attempts per channel (1 + retries).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    #[serde(default = "default_timeout", with = "humantime_serde_compat")]
    pub timeout: Duration,
}

fn default_failing_after() -> Duration {
    Duration::from_secs(3 * 3600)
}
fn default_results_after() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_repeat() -> Duration {
    Duration::from_secs(3600)
}
fn default_attempts() -> u32 {
    3
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"source":"sisync","alert":…,"title":…,"text":…,"facts":{…}}`
    #[default]
    Json,
    /// A Microsoft Teams message with an Adaptive Card (Workflows webhook).
    Teams,
    /// A Slack incoming-webhook message (`text` with mrkdwn).
    Slack,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub smtp_host: String,
    #[serde(default = "default_smtp_port")]
    pub smtp_port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    /// `env:NAME`, or `password_file`.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required), port 587.
    #[default]
    Starttls,
    /// TLS from the first byte, port 465.
    Tls,
    /// No encryption: only for an SMTP relay on the loopback interface.
    None,
}

impl Loaded {
    /// The webhook URL, when one is configured.
    pub fn alert_webhook_url(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(a) = &self.config.alerts else {
            return Ok(None);
        };
        if a.webhook_url.is_none() && a.webhook_url_file.is_none() {
            return Ok(None);
        }
        let s = self.secret_value(
            "alerts",
            ("webhook_url", &a.webhook_url),
            ("webhook_url_file", &a.webhook_url_file),
        )?;
        let key = if a.webhook_url_file.is_some() {
            "webhook_url_file"
        } else {
            "webhook_url"
        };
        match url::Url::parse(s.expose()) {
            Ok(u) if u.scheme() == "https" => Ok(Some(s)),
            Ok(u) if u.scheme() == "http" && is_loopback(u.host_str().unwrap_or("")) => Ok(Some(s)),
            Ok(_) => Err(self.error(
                "alerts",
                key,
                "the webhook URL must be https:// (http:// only to 127.0.0.1 or localhost)",
            )),
            Err(e) => Err(self.error("alerts", key, format!("the webhook URL is not a URL ({e})"))),
        }
    }

    /// The SMTP password, when a username is configured.
    pub fn smtp_password(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(e) = self.config.alerts.as_ref().and_then(|a| a.email.as_ref()) else {
            return Ok(None);
        };
        if e.username.is_none() {
            return Ok(None);
        }
        self.secret_value(
            "alerts.email",
            ("password", &e.password),
            ("password_file", &e.password_file),
        )
        .map(Some)
    }

    pub(super) fn validate_alerts(&self) -> Result<(), ConfigError> {
        let Some(a) = &self.config.alerts else {
            return Ok(());
        };
        let hook = a.webhook_url.is_some() || a.webhook_url_file.is_some();
        if hook {
            // the URL itself is a secret: read and checked when an alert is sent
            self.check_secret(
                "alerts",
                ("webhook_url", &a.webhook_url),
                ("webhook_url_file", &a.webhook_url_file),
            )?;
        }
        if !hook && a.email.is_none() {
            return Err(self.error(
                "alerts",
                "webhook_url_file",
                "[alerts] sends nowhere; set webhook_url_file (or webhook_url = \"env:NAME\") and/or an [alerts.email] section",
            ));
        }
        if let Some(t) = &a.digest_at {
            if super::parse_time_of_day(t).is_none() {
                return Err(self.error(
                    "alerts",
                    "digest_at",
                    format!("`{t}` is not a time of day; write e.g. \"07:00\" (local time, 24 h)"),
                ));
            }
        }
        if a.attempts == 0 || a.attempts > 10 {
            return Err(self.error("alerts", "attempts", "must be 1 to 10"));
        }
        if let Some(e) = &a.email {
            if e.tls == SmtpTls::None && !is_loopback(&e.smtp_host) {
                return Err(self.error(
                    "alerts.email",
                    "tls",
                    format!(
                        "tls = \"none\" is only allowed for a relay on this host (127.0.0.1, ::1, localhost), not {}; use \"starttls\" or \"tls\"",
                        e.smtp_host
                    ),
                ));
            }
            if e.to.is_empty() {
                return Err(self.error("alerts.email", "to", "give at least one address"));
            }
            for addr in e.to.iter().chain(std::iter::once(&e.from)) {
                if addr.parse::<lettre::Address>().is_err() {
                    return Err(self.error(
                        "alerts.email",
                        if *addr == e.from { "from" } else { "to" },
                        format!("`{addr}` is not an e-mail address"),
                    ));
                }
            }
            if e.username.is_some() {
                self.check_secret(
                    "alerts.email",
                    ("password", &e.password),
                    ("password_file", &e.password_file),
                )?;
            }
        }
        Ok(())
    }
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(alerts: &str) -> Result<Loaded, ConfigError> {
        let text = format!(
            "[institution]\nname = \"X\"\nbrin = \"99AA\"\n\n[source]\nkind = \"oneroster-csv\"\npath = \"export\"\n\n[platform]\nkind = \"csv-drop\"\npath = \"/tmp/drop\"\n\n{alerts}"
        );
        crate::connector::load_str(Path::new("/etc/sisync/sisync.toml"), text)
    }

    const MAIL: &str = "[alerts.email]\nsmtp_host = \"smtp.school.example\"\nfrom = \"a@school.example\"\nto = [\"b@school.example\"]\n";

    #[test]
    fn defaults_and_a_mail_only_setup() {
        let l = parse(&format!("[alerts]\n{MAIL}")).unwrap();
        let a = l.config.alerts.as_ref().unwrap();
        assert_eq!(a.format, WebhookFormat::Json);
        assert_eq!(a.failing_after, Duration::from_secs(3 * 3600));
        assert_eq!(a.repeat_after, Duration::from_secs(3600));
        let e = a.email.as_ref().unwrap();
        assert_eq!((e.smtp_port, e.tls), (587, SmtpTls::Starttls));
        assert!(l.alert_webhook_url().unwrap().is_none());
    }

    #[test]
    fn plaintext_smtp_only_to_loopback_and_no_channel_is_an_error() {
        let e = parse(&format!("[alerts]\n{MAIL}tls = \"none\"\n")).unwrap_err();
        assert!(
            e.to_string().contains("alerts.email.tls") && e.to_string().contains("only allowed"),
            "{e}"
        );
        let local = MAIL.replace("smtp.school.example", "127.0.0.1");
        parse(&format!("[alerts]\n{local}tls = \"none\"\n")).unwrap();
        let e = parse("[alerts]\ndigest_at = \"07:00\"\n").unwrap_err();
        assert!(e.to_string().contains("sends nowhere"), "{e}");
        let e = parse(&format!("[alerts]\ndigest_at = \"7 uur\"\n{MAIL}")).unwrap_err();
        assert!(e.to_string().contains("alerts.digest_at"), "{e}");
        let e = parse(&format!(
            "[alerts]\n{}",
            MAIL.replace("b@school.example", "not an address")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("alerts.email.to"), "{e}");
    }

    #[test]
    fn inline_or_plain_http_webhooks_are_refused() {
        let e = parse("[alerts]\nwebhook_url = \"https://hooks.example/abc\"\n").unwrap_err();
        assert!(e.to_string().contains("inline secrets"), "{e}");
        // SAFETY: a variable only this test reads
        unsafe {
            std::env::set_var("SISYNC_TEST_HOOK_HTTP", "http://hooks.example/abc");
            std::env::set_var("SISYNC_TEST_HOOK_LOCAL", "http://127.0.0.1:9/abc");
        }
        // the URL is a secret: loading does not read it, sending (and
        // check-config's secret report) does
        let l = parse("[alerts]\nwebhook_url = \"env:SISYNC_TEST_HOOK_HTTP\"\n").unwrap();
        let e = l.alert_webhook_url().unwrap_err();
        assert!(e.to_string().contains("must be https://"), "{e}");
        assert_eq!(l.secret_problems(), vec![e]);
        let l = parse("[alerts]\nwebhook_url = \"env:SISYNC_TEST_HOOK_LOCAL\"\n").unwrap();
        assert!(l.alert_webhook_url().unwrap().is_some());
    }
}
