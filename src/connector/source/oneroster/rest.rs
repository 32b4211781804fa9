//! 1EdTech OneRoster 1.1 / 1.2 REST rostering binding: orgs, classes,
//! users and enrollments, paged with `limit`/`offset` (following
//! `Link: rel="next"` when the service gives one, stopping on
//! `X-Total-Count` or a short page).
//!
//! A full pull gives bulk collections (absence means "left"); an
//! incremental pull asks `filter=dateLastModified>'T'` and gives deltas.
//! A malformed record is reported (page URL, sourcedId, reason) and held;
//! a page that still fails after retries fails the whole read, so a partial
//! roster never reaches the planner.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Result, anyhow};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::config::{OneRosterRestSource, OneRosterVersion};
use crate::config::{ConnectorConfig, Loaded};
use crate::connector::source::Testing;
use crate::connector::source::accommodation_keys::{AccommodationKeys, OneRoster};
use crate::connector::source::oneroster::vocab::{RoleRule, role_map, role_rule, status_of};
use crate::http::Http;
use crate::model::{
    Accommodations, Completeness, Group, Membership, Org, Person, Role, Roster, SharedIds,
    SourceIssue, Status,
};

pub struct OneRosterRest {
    base: String,
    version: OneRosterVersion,
    http: Http,
    page_size: usize,
    concurrency: usize,
    role_map: BTreeMap<String, Role>,
    accommodations: AccommodationKeys<OneRoster>,
}

/// One page of a collection.
struct Page {
    records: Vec<Value>,
    /// `Link: <…>; rel="next"`, resolved against the page URL.
    next: Option<String>,
    /// `X-Total-Count`.
    total: Option<usize>,
}

/// A non-empty string field.
fn issue(roster: &mut Roster, url: &str, id: Option<&str>, reason: String) {
    roster.issues.push(SourceIssue {
        location: url.to_string(),
        record_id: id.map(String::from),
        reason,
    });
}

/// The `sourcedId` of a `kind` record the first time it is read; None
/// (after an issue) when it has none or was read before.
fn first_id<'v>(
    roster: &mut Roster,
    url: &str,
    v: &'v Value,
    seen: &mut HashSet<String>,
    kind: &str,
) -> Option<&'v str> {
    let Some(id) = s(v, "sourcedId") else {
        issue(roster, url, None, format!("{kind} without sourcedId"));
        return None;
    };
    if !seen.insert(id.to_string()) {
        issue(roster, url, Some(id), "duplicate sourcedId".into());
        return None;
    }
    Some(id)
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The sourcedId of a GUID reference (`"org": {"sourcedId": ...}`).
fn r<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(|o| s(o, "sourcedId"))
}

/// The sourcedIds of a list of GUID references.
fn refs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| s(o, "sourcedId"))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn status(v: &Value) -> Result<Status, String> {
    status_of(s(v, "status"))
}

/// A scalar as text (metadata values may be numbers or booleans).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl OneRosterRest {
    /// The client for a run: the bearer token or OAuth2 client secret and
    /// the TLS files are resolved now.
    pub fn connect(cfg: &OneRosterRestSource, loaded: &Loaded) -> Result<OneRosterRest> {
        Ok(OneRosterRest {
            base: cfg.endpoint.base_url.trim_end_matches('/').to_string(),
            version: cfg.version,
            http: loaded.http_client("source", cfg)?,
            page_size: cfg.page_size,
            concurrency: cfg.concurrency().max(1),
            role_map: role_map(&cfg.role_map),
            accommodations: cfg.accommodations.clone(),
        })
    }

    fn collection_url(&self, entity: &str) -> String {
        match self.version {
            OneRosterVersion::V1_2 => {
                format!("{}/ims/oneroster/rostering/v1p2/{entity}", self.base)
            }
            OneRosterVersion::V1_1 => format!("{}/ims/oneroster/v1p1/{entity}", self.base),
        }
    }

    fn page_url(
        &self,
        entity: &str,
        offset: usize,
        limit: usize,
        since: Option<&str>,
    ) -> Result<String> {
        let mut u = url::Url::parse(&self.collection_url(entity))?;
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("limit", &limit.to_string());
            q.append_pair("offset", &offset.to_string());
            if let Some(t) = since {
                q.append_pair("filter", &format!("dateLastModified>'{t}'"));
            }
        }
        Ok(u.to_string())
    }

    /// One authenticated request for one org: (URL, latency).
    pub async fn ping(&self) -> Result<(String, std::time::Duration)> {
        let url = {
            let mut u = url::Url::parse(&self.collection_url("orgs"))?;
            u.query_pairs_mut().append_pair("limit", "1");
            u.to_string()
        };
        let started = std::time::Instant::now();
        self.http
            .send(Method::GET, &url, None, "application/json", false)
            .await?;
        Ok((url, started.elapsed()))
    }

    /// One page of a collection: its records, the `Link: rel="next"` URL
    /// and `X-Total-Count`, if the service sent them.
    async fn page(&self, entity: &str, url: &str) -> Result<Page> {
        let reply = self
            .http
            .send(Method::GET, url, None, "application/json", false)
            .await
            .map_err(|e| {
                anyhow!("{e}; the read was stopped and nothing was sent to the platform. Check the SIS service and run again")
            })?;
        let mut v: Value = serde_json::from_slice(&reply.body).map_err(|e| {
            anyhow!("GET {url}: the response is not valid JSON ({e}); it may have been cut off. Nothing was sent to the platform; run again")
        })?;
        let Some(Value::Array(records)) = v.get_mut(entity).map(Value::take) else {
            return Err(anyhow!(
                "GET {url}: the response has no `{entity}` array; is source.base_url a OneRoster {} service?",
                self.version_name()
            ));
        };
        let next = reply
            .headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(','))
            .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
            .and_then(|part| {
                let start = part.find('<')? + 1;
                let end = part.find('>')?;
                Some(part[start..end].to_string())
            })
            .map(|next| url::Url::parse(url)?.join(&next).map(String::from))
            .transpose()?;
        let total = reply
            .headers
            .get("x-total-count")
            .and_then(|h| h.to_str().ok())
            .and_then(|t| t.trim().parse::<usize>().ok());
        Ok(Page {
            records,
            next,
            total,
        })
    }

    /// Every record of a collection, page by page, in order. When the
    /// first page gives `X-Total-Count` and no `Link: rel="next"`, the
    /// other pages are fetched `concurrency` at a time, each as large as
    /// the first; each must then hold exactly its share of the total, or the
    /// read fails (the collection moved under the offsets, and a record may
    /// have been skipped or read twice).
    async fn fetch_all(
        &self,
        entity: &str,
        since: Option<&str>,
        mut each: impl FnMut(&Value, &str),
    ) -> Result<()> {
        let mut url = self.page_url(entity, 0, self.page_size, since)?;
        let first = self.page(entity, &url).await?;
        let step = first.records.len();
        if let (None, Some(total), true) = (&first.next, first.total, self.concurrency > 1) {
            for rec in &first.records {
                each(rec, &url);
            }
            if step == 0 {
                return Ok(());
            }
            let mut pages = futures::stream::iter((step..total).step_by(step))
                .map(|offset| async move {
                    // the first page's size: the service may cap `limit`
                    let url = self.page_url(entity, offset, step, since)?;
                    let page = self.page(entity, &url).await?;
                    let want = step.min(total - offset);
                    if page.records.len() != want {
                        return Err(anyhow!(
                            "GET {url}: {} records where {want} were expected (X-Total-Count {total}); the collection changed during the read. Nothing was sent to the platform; run again",
                            page.records.len()
                        ));
                    }
                    Ok((url, page))
                })
                .buffered(self.concurrency);
            while let Some(page) = pages.next().await {
                let (url, page) = page?;
                for rec in &page.records {
                    each(rec, &url);
                }
            }
            return Ok(());
        }
        let mut offset = 0usize;
        let mut page = first;
        loop {
            for rec in &page.records {
                each(rec, &url);
            }
            let n = page.records.len();
            offset += n;
            url = match (page.next, page.total) {
                _ if n == 0 => break,
                (Some(next), _) => next,
                (None, Some(t)) if offset < t => {
                    self.page_url(entity, offset, self.page_size, since)?
                }
                (None, Some(_)) => break,
                (None, None) if n >= self.page_size => {
                    self.page_url(entity, offset, self.page_size, since)?
                }
                (None, None) => break,
            };
            page = self.page(entity, &url).await?;
        }
        Ok(())
    }

    fn version_name(&self) -> &'static str {
        match self.version {
            OneRosterVersion::V1_2 => "1.2",
            OneRosterVersion::V1_1 => "1.1",
        }
    }

    /// Read the roster; `since` (RFC 3339) asks only for changes.
    pub async fn read(&self, since: Option<&str>) -> Result<Roster> {
        let mode = if since.is_some() {
            Completeness::Delta
        } else {
            Completeness::Bulk
        };
        let version = self.version_name();
        let mut roster = Roster {
            format: match since {
                Some(t) => format!("OneRoster {version} REST, changes since {t}"),
                None => format!("OneRoster {version} REST, full"),
            },
            persons_completeness: mode,
            groups_completeness: mode,
            memberships_completeness: mode,
            ..Roster::default()
        };

        // orgs
        let mut seen = HashSet::new();
        let mut orgs = Vec::new();
        self.fetch_all("orgs", since, |v, url| {
            let Some(id) = s(v, "sourcedId") else {
                issue(&mut roster, url, None, "org without sourcedId".into());
                return;
            };
            if !seen.insert(id.to_string()) || status(v) == Ok(Status::ToBeDeleted) {
                return;
            }
            orgs.push(Org {
                sourced_id: id.to_string(),
                name: s(v, "name").unwrap_or_default().to_string(),
                identifier: s(v, "identifier").map(String::from),
                kind: s(v, "type").unwrap_or_default().to_string(),
                parent: r(v, "parent").map(String::from),
            });
        })
        .await?;
        roster.orgs = orgs;

        // classes
        let mut classes = HashSet::new();
        let mut groups = Vec::new();
        self.fetch_all("classes", since, |v, url| {
            let Some(id) = first_id(&mut roster, url, v, &mut classes, "class") else {
                return;
            };
            let st = match status(v) {
                Ok(st) => st,
                Err(e) => {
                    issue(&mut roster, url, Some(id), e);
                    roster.held_groups.insert(id.to_string());
                    return;
                }
            };
            groups.push(Group {
                sourced_id: id.to_string(),
                status: st,
                title: s(v, "title").unwrap_or(id).to_string(),
                code: s(v, "classCode").map(String::from),
                org: r(v, "school").map(String::from),
                sessions: refs(v, "terms"),
                course: r(v, "course").map(String::from),
            });
        })
        .await?;
        roster.groups = groups;

        // users
        let bulk_users = mode == Completeness::Bulk;
        let mut users = HashSet::new();
        let mut persons = Vec::new();
        let mut ignored = 0usize;
        self.fetch_all("users", since, |v, url| {
            let Some(id) = first_id(&mut roster, url, v, &mut users, "user") else {
                return;
            };
            match self.person(v, id, !bulk_users) {
                Ok(Some(p)) => persons.push(p),
                Ok(None) => ignored += 1,
                Err(reason) => {
                    issue(&mut roster, url, Some(id), reason);
                    roster.held_persons.insert(id.to_string());
                }
            }
        })
        .await?;
        let synced: HashSet<String> = persons.iter().map(|p| p.sourced_id.clone()).collect();
        roster.persons = persons;

        // enrollments
        let bulk = mode == Completeness::Bulk;
        let mut memberships = Vec::new();
        let mut ids = SharedIds::default();
        self.fetch_all("enrollments", since, |v, url| {
            let id = s(v, "sourcedId");
            let (Some(class), Some(user)) = (r(v, "class"), r(v, "user")) else {
                issue(
                    &mut roster,
                    url,
                    id,
                    "enrollment without class or user".into(),
                );
                return;
            };
            let st = match status(v) {
                Ok(st) => st,
                Err(e) => {
                    issue(&mut roster, url, id, e);
                    roster.held_groups.insert(class.to_string());
                    return;
                }
            };
            // a bulk read names only users and classes it also read
            let unknown = if !bulk {
                None
            } else if !users.contains(user) {
                Some(format!("user {user} is not in /users"))
            } else if !classes.contains(class) {
                Some(format!("class {class} is not in /classes"))
            } else {
                None
            };
            if let Some(why) = unknown {
                issue(&mut roster, url, id, why);
                return;
            }
            if bulk && !synced.contains(user) {
                ignored += 1;
                return;
            }
            let role_name = s(v, "role").unwrap_or("student").to_ascii_lowercase();
            let Some(role) = self.role_map.get(&role_name).copied() else {
                ignored += 1;
                return;
            };
            memberships.push(Membership {
                status: st,
                group: ids.get(class),
                person: ids.get(user),
                role,
            });
        })
        .await?;
        roster.memberships = memberships;
        roster.ignored = ignored;
        Ok(roster)
    }

    /// A user record as a canonical person; Ok(None) for roles not synced.
    fn person(&self, v: &Value, id: &str, delta: bool) -> Result<Option<Person>, String> {
        let mut st = status(v)?;
        let enabled = match v.get("enabledUser") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
            _ => true,
        };
        if !enabled {
            st = Status::ToBeDeleted;
        }
        let (role_name, mut orgs) = match self.version {
            OneRosterVersion::V1_1 => (
                s(v, "role").unwrap_or_default().to_ascii_lowercase(),
                refs(v, "orgs"),
            ),
            OneRosterVersion::V1_2 => {
                let roles = v.get("roles").and_then(Value::as_array);
                let pick = roles.and_then(|rs| {
                    rs.iter()
                        .find(|x| {
                            s(x, "roleType").is_some_and(|t| t.eq_ignore_ascii_case("primary"))
                        })
                        .or_else(|| rs.first())
                });
                let orgs: Vec<String> = roles
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|x| r(x, "org"))
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    pick.and_then(|x| s(x, "role"))
                        .unwrap_or_default()
                        .to_ascii_lowercase(),
                    orgs,
                )
            }
        };
        if let Some(primary) = r(v, "primaryOrg") {
            orgs.retain(|o| o != primary);
            orgs.insert(0, primary.to_string());
        }
        let role = match role_rule(&self.role_map, &role_name, st, delta) {
            RoleRule::Sync(role) => role,
            RoleRule::Hold => return Err("user has no role".into()),
            RoleRule::Ignore => return Ok(None),
        };
        let accommodations = self.accommodations(v)?;
        let given = s(v, "givenName");
        let family = s(v, "familyName");
        if st == Status::Active && (given.is_none() || family.is_none()) {
            return Err("givenName or familyName is empty".into());
        }
        Ok(Some(Person {
            sourced_id: id.to_string(),
            status: st,
            role,
            username: s(v, "username").map(String::from),
            identifier: s(v, "identifier").map(String::from),
            given_name: given.unwrap_or_default().to_string(),
            middle_name: s(v, "middleName").map(String::from),
            family_name: family.unwrap_or_default().to_string(),
            email: s(v, "email").map(String::from),
            eck_id: user_id_of_type(v, "eck").map(String::from),
            bsn: user_id_of_type(v, "bsn")
                .or_else(|| v.get("metadata").and_then(|m| s(m, "bsn")))
                .map(String::from),
            orgs,
            accommodations,
        }))
    }

    fn accommodations(&self, v: &Value) -> Result<Accommodations, String> {
        let meta = v.get("metadata");
        self.accommodations.read(|col| {
            let key = col.strip_prefix("metadata.").unwrap_or(col);
            scalar(meta.and_then(|m| m.get(key)))
        })
    }
}

/// The identifier of the first `userIds` entry of a type (any case).
fn user_id_of_type<'a>(v: &'a Value, kind: &str) -> Option<&'a str> {
    v.get("userIds")?
        .as_array()?
        .iter()
        .find(|i| {
            i.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })?
        .get("identifier")?
        .as_str()
}

impl crate::connector::source::RosterSource for OneRosterRestSource {
    fn check(&self) -> Result<String> {
        Ok(format!(
            "oneroster-rest {} (OneRoster {}, page size {}, full pull every {}; `check-config` does not connect)",
            self.endpoint.base_url,
            match self.version {
                OneRosterVersion::V1_2 => "1.2",
                OneRosterVersion::V1_1 => "1.1",
            },
            self.page_size,
            humantime::format_duration(self.full_every)
        ))
    }
    fn register_line(&self) -> String {
        format!("OneRoster REST service {}", self.endpoint.base_url)
    }
    fn status_json(&self) -> serde_json::Value {
        serde_json::json!({"base_url": self.endpoint.base_url})
    }
    fn full_every(&self) -> Option<std::time::Duration> {
        Some(self.full_every)
    }
    fn test_connection<'a>(&'a self, loaded: &'a Loaded) -> Testing<'a> {
        Box::pin(async move {
            let r = async {
                let (url, took) = OneRosterRest::connect(self, loaded)?.ping().await?;
                Ok(format!(
                    "GET {url}: OK, authenticated, {} ms",
                    took.as_millis()
                ))
            }
            .await;
            vec![("source link".to_string(), r)]
        })
    }
    fn read(&self, loaded: &Loaded, since: Option<&str>, _: &dyn Fn(u64)) -> Result<Roster> {
        let src = OneRosterRest::connect(self, loaded)?;
        crate::http::block_on(src.read(since))
    }
}
