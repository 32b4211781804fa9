//! Reading a platform's list page by page (RFC 7644 §3.4.2.4), checked.
//! A platform that ignores `startIndex` (SCIMMY served by Express 5 does)
//! answers its first page again and again; reading on would miss everything
//! after it, so a lost state file would create those records again and
//! `reconcile` would call them missing. Such a list is refused instead.

use std::collections::HashSet;

use serde_json::Value;

use crate::connector::SinkError;

/// Pages as large as most platforms allow; they may answer fewer.
pub(super) const COUNT: usize = 200;

pub struct Pager {
    start: usize,
    seen: HashSet<String>,
    done: bool,
}

impl Pager {
    pub fn new() -> Pager {
        Pager {
            start: 1,
            seen: HashSet::new(),
            done: false,
        }
    }

    /// The URL of the next page, or None after the last one.
    pub fn next_url(&self, list_url: &str) -> Option<String> {
        (!self.done).then(|| format!("{list_url}?startIndex={}&count={COUNT}", self.start))
    }

    /// The resources of the page answered for `url`: an error when the
    /// platform did not answer the page asked for.
    pub fn take(&mut self, url: &str, answer: &Value) -> Result<Vec<Value>, SinkError> {
        let page = answer
            .get("Resources")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let answered = answer.get("startIndex").and_then(Value::as_u64);
        let repeated = !page.is_empty()
            && page.iter().all(|r| {
                r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| self.seen.contains(id))
            });
        if (!page.is_empty() && answered.is_some_and(|a| a as usize != self.start)) || repeated {
            let from = answered.map_or_else(|| "the first page again".into(), |a| a.to_string());
            return Err(SinkError {
                endpoint: url.to_string(),
                message: format!(
                    "{url}: the platform does not page its list (asked for startIndex {}, answered {from}), so sisync cannot read it completely and stops rather than miss what is on later pages; ask the vendor to support startIndex and count (RFC 7644 section 3.4.2.4)",
                    self.start
                ),
                ..SinkError::default()
            });
        }
        for r in &page {
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                self.seen.insert(id.to_string());
            }
        }
        let total = answer
            .get("totalResults")
            .and_then(Value::as_u64)
            .unwrap_or(0) as usize;
        self.start += page.len();
        self.done = page.is_empty() || self.start > total;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(start: u64, total: u64, ids: &[&str]) -> Value {
        let r: Vec<Value> = ids.iter().map(|i| json!({"id": i})).collect();
        json!({"totalResults": total, "startIndex": start, "Resources": r})
    }

    #[test]
    fn reads_every_page_the_platform_answers() {
        let mut p = Pager::new();
        let u = p.next_url("http://x/Users").unwrap();
        assert_eq!(u, "http://x/Users?startIndex=1&count=200");
        assert_eq!(p.take(&u, &page(1, 3, &["a", "b"])).unwrap().len(), 2);
        let u = p.next_url("http://x/Users").unwrap();
        assert_eq!(u, "http://x/Users?startIndex=3&count=200");
        assert_eq!(p.take(&u, &page(3, 3, &["c"])).unwrap().len(), 1);
        assert_eq!(p.next_url("http://x/Users"), None);
        // an empty list, and an answer without startIndex
        let mut p = Pager::new();
        assert!(p.take("u", &json!({"totalResults": 0})).unwrap().is_empty());
        assert_eq!(p.next_url("u"), None);
        // some platforms answer an empty list with startIndex 0
        let mut p = Pager::new();
        assert!(p.take("u", &page(0, 0, &[])).unwrap().is_empty());
    }

    #[test]
    fn a_platform_that_ignores_start_index_is_refused() {
        // says where it started
        let mut p = Pager::new();
        p.take("u", &page(1, 3, &["a", "b"])).unwrap();
        let e = p
            .take("u?startIndex=3", &page(1, 3, &["a", "b"]))
            .unwrap_err();
        assert!(
            e.message.contains("asked for startIndex 3, answered 1")
                && e.message.contains("does not page its list"),
            "{e}"
        );
        // does not say: the same resources again
        let no_start = |ids: &[&str]| {
            let mut v = page(0, 3, ids);
            v.as_object_mut().unwrap().remove("startIndex");
            v
        };
        let mut p = Pager::new();
        p.take("u", &no_start(&["a", "b"])).unwrap();
        let e = p.take("u", &no_start(&["a", "b"])).unwrap_err();
        assert!(e.message.contains("answered the first page again"), "{e}");
    }
}
