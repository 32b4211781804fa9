//! When each remote endpoint last answered, for the status page.
//!
//! `http` notes every exchange here (a leaf: no other module of the crate
//! is used); a run hands what it noted to the state database when it
//! finishes (`store::Store::finish_run`), so the daemon's page also shows
//! what a one-shot `sisync sync` started by hand saw. Only the scheme, host
//! and port are kept: paths and queries can carry record ids.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What one endpoint did lately.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// When it last answered at all (any HTTP status), RFC 3339.
    pub answered_at: Option<String>,
    /// The HTTP status of that answer.
    pub status: Option<u16>,
    /// When a request last got no answer (connect error, timeout).
    pub failed_at: Option<String>,
}

impl Seen {
    /// Fold a later observation into an earlier one.
    pub fn merge(mut self, later: &Seen) -> Seen {
        if later.answered_at.is_some() {
            self.answered_at.clone_from(&later.answered_at);
            self.status = later.status;
        }
        if later.failed_at.is_some() {
            self.failed_at.clone_from(&later.failed_at);
        }
        self
    }

    /// The endpoint's last request went unanswered.
    pub fn down(&self) -> bool {
        match (&self.failed_at, &self.answered_at) {
            (Some(f), Some(a)) => f > a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// What [`note`] keeps per endpoint: the times as taken, formatted when
/// [`take`]n rather than once per request.
#[derive(Default, Clone, Copy)]
struct Noted {
    answered: Option<(chrono::DateTime<chrono::Utc>, u16)>,
    failed: Option<chrono::DateTime<chrono::Utc>>,
}

static NOTED: Mutex<BTreeMap<String, Noted>> = Mutex::new(BTreeMap::new());

/// `https://sis.example:8443`: the endpoint a URL belongs to.
pub fn label(url: &str) -> String {
    label_of(url::Url::parse(url).ok().as_ref())
}

/// [`label`] of a parsed URL (None: one that did not parse).
fn label_of(url: Option<&url::Url>) -> String {
    match url.map(|u| (u, u.host_str(), u.port())) {
        Some((u, Some(h), Some(p))) => format!("{}://{h}:{p}", u.scheme()),
        Some((u, Some(h), None)) => format!("{}://{h}", u.scheme()),
        _ => "unknown".into(),
    }
}

/// Note one exchange with the URL the request was sent to (None: it did
/// not parse): `Some(status)` when the endpoint answered.
pub fn note(url: Option<&url::Url>, status: Option<u16>) {
    let now = chrono::Utc::now();
    if let Ok(mut m) = NOTED.lock() {
        m.entry(label_of(url)).or_default().later(status, now);
    }
}

impl Noted {
    /// An exchange at `at`: answered with `status`, or not (None).
    fn later(&mut self, status: Option<u16>, at: chrono::DateTime<chrono::Utc>) {
        match status {
            Some(s) => self.answered = Some((at, s)),
            None => self.failed = Some(at),
        }
    }

    fn seen(self) -> Seen {
        let at =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Seen {
            answered_at: self.answered.map(|(t, _)| at(t)),
            status: self.answered.map(|(_, s)| s),
            failed_at: self.failed.map(at),
        }
    }
}

/// Everything noted since the last call, emptied.
pub fn take() -> BTreeMap<String, Seen> {
    let noted = NOTED
        .lock()
        .map(|mut m| std::mem::take(&mut *m))
        .unwrap_or_default();
    noted.into_iter().map(|(e, n)| (e, n.seen())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_scheme_host_and_port_only() {
        assert_eq!(
            label("https://sis.example/ims/oneroster/users?filter=x"),
            "https://sis.example"
        );
        assert_eq!(
            label("http://127.0.0.1:8080/scim/v2/Users/stu-1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(label("not a url"), "unknown");
    }

    #[test]
    fn the_last_answer_and_the_last_failure_are_kept_as_rfc3339() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        let mut n = Noted::default();
        n.later(Some(200), t("2026-12-01T10:00:00.25Z"));
        n.later(None, t("2026-12-01T10:05:00Z"));
        assert!(n.seen().down());
        n.later(Some(503), t("2026-12-01T10:06:00Z"));
        let seen = n.seen();
        assert_eq!(seen.answered_at.as_deref(), Some("2026-12-01T10:06:00Z"));
        assert_eq!(seen.status, Some(503));
        assert_eq!(seen.failed_at.as_deref(), Some("2026-12-01T10:05:00Z"));
        assert!(!seen.down());
    }

    #[test]
    fn a_failure_after_an_answer_means_down_until_it_answers_again() {
        let a = Seen {
            answered_at: Some("2026-12-01T10:00:00Z".into()),
            status: Some(200),
            failed_at: None,
        };
        assert!(!a.down());
        let f = Seen {
            failed_at: Some("2026-12-01T10:05:00Z".into()),
            ..Seen::default()
        };
        let b = a.clone().merge(&f);
        assert!(b.down());
        assert_eq!(b.status, Some(200));
        let c = b.merge(&Seen {
            answered_at: Some("2026-12-01T10:06:00Z".into()),
            status: Some(503),
            failed_at: None,
        });
        assert!(!c.down());
        assert_eq!(c.status, Some(503));
    }
}
