//! Policy: applies the processing agreement to a canonical roster. Only
//! persons and groups of in-scope orgs pass, and only the fields in
//! `privacy.fields` are kept. What comes out is all the platform ever sees.

// Fx hashing: the sets below are keyed by ids of one export, looked up
// once per enrolment; SipHash's flood resistance buys nothing here.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Field, Privacy, UserNameFrom};
pub use crate::model::platform::{
    ExamAccommodations, MemberDelta, Minimised, PlatformGroup, PlatformUser,
};
use crate::model::{
    Completeness, Id, Org, Person, Roster, SourceIssue, Status, TrackedField, bsn_valid,
};
use crate::privacy::pseudonym::Pseudonymizer;
use crate::store::holds::{Holds, SubjectKey};
use crate::store::{FieldHash, FieldHashes, RecordHash};

/// Short content hash of one field value.
pub fn hash_value<T: Serialize>(v: &T) -> FieldHash {
    // the JSON goes straight into the hash, not into a buffer first
    let mut h = Sha256::new();
    serde_json::to_writer(&mut h, v).expect("plain data serialises");
    FieldHash::from_bytes(&h.finalize()[..16])
}

impl PlatformUser {
    /// Hash of each tracked field; change detection compares these.
    pub fn field_hashes(&self) -> FieldHashes {
        let name = (&self.given_name, &self.middle_name, &self.family_name);
        [
            (TrackedField::UserName, hash_value(&self.user_name)),
            (TrackedField::Name, hash_value(&name)),
            (TrackedField::Email, hash_value(&self.email)),
            (TrackedField::Role, hash_value(&self.role)),
            (TrackedField::Org, hash_value(&self.org)),
            (
                TrackedField::Accommodations,
                hash_value(&self.accommodations),
            ),
            (TrackedField::Active, hash_value(&self.active)),
        ]
        .into_iter()
        .chain(self.bsn_hash.map(|h| (TrackedField::Bsn, h)))
        .filter(|(k, _)| !self.unknown.contains(k))
        .collect()
    }
}

impl PlatformUser {
    /// Whether a tracked field carries a value, i.e. goes out with a
    /// create (the audit lists exactly these).
    pub fn carries(&self, field: TrackedField) -> bool {
        match field {
            TrackedField::UserName | TrackedField::Active => true,
            TrackedField::Name => {
                self.given_name.is_some()
                    || self.middle_name.is_some()
                    || self.family_name.is_some()
            }
            TrackedField::Email => self.email.is_some(),
            TrackedField::Role => self.role.is_some(),
            TrackedField::Org => self.org.is_some(),
            TrackedField::Accommodations => self.accommodations.is_some(),
            TrackedField::Bsn => self.bsn.is_some(),
            _ => false,
        }
    }
}

impl PlatformGroup {
    pub fn field_hashes(&self) -> FieldHashes {
        self.field_hashes_for(&self.members)
    }

    /// The hashes with `members` (sorted) in place of the record's own:
    /// the planner hashes a class's members before it copies them into a
    /// group that changed.
    pub fn field_hashes_for<S: Serialize>(&self, members: &[S]) -> FieldHashes {
        let mut m = FieldHashes::new();
        if !self.partial {
            m.insert(TrackedField::DisplayName, hash_value(&self.display_name));
            m.insert(TrackedField::Org, hash_value(&self.org));
            m.insert(TrackedField::Active, hash_value(&self.active));
        }
        m.insert(TrackedField::Members, hash_value(&members));
        m
    }
}

/// A short deterministic tag for synthetic names: not the id itself.
fn synthetic_tag(id: &str) -> String {
    hex::encode(&Sha256::digest(format!("sisync-synthetic\x1f{id}").as_bytes())[..4])
}

/// The record hash: one hash over the field hashes.
pub fn record_hash(fields: &FieldHashes) -> RecordHash {
    let mut h = Sha256::new();
    for (k, v) in fields {
        h.update(k.as_str().as_bytes());
        h.update(b"=");
        h.update(v.hex().as_str());
        h.update(b"\n");
    }
    RecordHash::from_bytes(&h.finalize())
}

/// The privacy policy in force for one platform.
#[derive(Debug, Clone)]
pub struct Policy {
    fields: HashSet<Field>,
    scope: Vec<String>,
    user_name: UserNameFrom,
    user_name_suffix: Option<String>,
    pseudonyms: Option<Pseudonymizer>,
    /// Restricted and erased persons.
    holds: Holds,
    /// Keys the BSN's change-detection hash (the subject key).
    bsn_key: Option<SubjectKey>,
    /// Acceptance: synthetic names and e-mail addresses.
    synthetic: bool,
    /// The person's ECK iD, when the SIS gives one, is their platform id.
    eck_ids: bool,
}

impl Policy {
    pub fn new(privacy: &Privacy, user_name: UserNameFrom, suffix: Option<String>) -> Policy {
        Policy {
            fields: privacy.fields.iter().copied().collect(),
            scope: privacy.scope_orgs.clone(),
            user_name,
            user_name_suffix: suffix,
            pseudonyms: None,
            holds: Holds::default(),
            bsn_key: None,
            synthetic: false,
            eck_ids: privacy.use_eck_id,
        }
    }

    /// Platform ids become pseudonyms.
    pub fn with_pseudonyms(mut self, p: Option<Pseudonymizer>) -> Policy {
        self.pseudonyms = p;
        self
    }

    /// Persons under a restriction or erased: not processed.
    /// The key for the BSN's change-detection hash.
    pub fn with_bsn_key(mut self, key: Option<SubjectKey>) -> Policy {
        self.bsn_key = key;
        self
    }

    pub fn with_holds(mut self, holds: Holds) -> Policy {
        self.holds = holds;
        self
    }

    /// Replace names and e-mail addresses by deterministic synthetic values
    /// (`institution.environment = "acceptance"`).
    pub fn with_synthetic_identities(mut self, on: bool) -> Policy {
        self.synthetic = on;
        self
    }

    /// The id a person has on the platform and in the state: their ECK iD
    /// (with `privacy.use_eck_id`), else the pseudonym or the SIS id.
    pub fn state_id_of(&self, p: &Person) -> String {
        match (&p.eck_id, self.eck_ids) {
            (Some(eck), true) => eck.clone(),
            _ => self.person_id(&p.sourced_id),
        }
    }

    /// The id of a SIS id on the platform (pseudonym or the id itself).
    pub fn person_id(&self, sis_id: &str) -> String {
        match &self.pseudonyms {
            Some(p) => p.id(sis_id),
            None => sis_id.to_string(),
        }
    }

    pub fn allows(&self, f: Field) -> bool {
        self.fields.contains(&f)
    }

    /// BSNs go to the platform: allowed, and not an acceptance platform.
    fn sends_bsn(&self) -> bool {
        self.allows(Field::Bsn) && !self.synthetic
    }

    pub fn apply(&self, roster: &Roster) -> Minimised {
        let orgs: HashMap<&str, &Org> = roster
            .orgs
            .iter()
            .map(|o| (o.sourced_id.as_str(), o))
            .collect();
        let mut out = Minimised {
            users_completeness: roster.persons_completeness,
            groups_completeness: roster.groups_completeness,
            held_users: roster
                .held_persons
                .iter()
                .map(|id| self.person_id(id))
                .collect(),
            held_groups: roster.held_groups.clone(),
            ..Minimised::default()
        };
        // sized once: a large roster's tables are otherwise copied each
        // time they double
        out.users.reserve(roster.persons.len());
        let mut in_scope_users: HashSet<&str> =
            HashSet::with_capacity_and_hasher(roster.persons.len(), Default::default());
        let mut state_ids: HashMap<&str, Id> = HashMap::default();
        for p in &roster.persons {
            let state_id = self.state_id_of(p);
            if !self.holds.is_empty() && self.holds.kind_of(&p.sourced_id).is_some() {
                // restricted or erased: no create, update or deactivation,
                // and no new trace (a pseudonym mapping) in the state
                out.held_users.insert(state_id);
                out.on_hold += 1;
                continue;
            }
            if state_id != p.sourced_id {
                out.pseudonyms
                    .push((state_id.clone(), p.sourced_id.clone()));
                state_ids.insert(p.sourced_id.as_str(), Id::from(state_id.as_str()));
            }
            if p.status == Status::ToBeDeleted {
                out.leaving.push(state_id);
                continue;
            }
            if !p.orgs.iter().any(|o| self.in_scope(o, &orgs)) && !self.scope.is_empty() {
                out.out_of_scope += 1;
                continue;
            }
            match self.user(p, &orgs) {
                Ok(u) => {
                    if self.sends_bsn() && p.bsn.as_deref().is_some_and(|b| !bsn_valid(b)) {
                        out.issues.push(SourceIssue {
                            location: "policy".into(),
                            record_id: Some(p.sourced_id.clone()),
                            reason: "the BSN fails the 11-test (elfproef) and was not sent; correct it in the SIS".into(),
                        });
                    }
                    in_scope_users.insert(p.sourced_id.as_str());
                    out.users.push(u);
                }
                Err(reason) => {
                    out.held_users.insert(p.sourced_id.clone());
                    out.issues.push(SourceIssue {
                        location: "policy".into(),
                        record_id: Some(p.sourced_id.clone()),
                        reason,
                    });
                }
            }
        }
        out.exams = crate::privacy::exams::minimise(
            self,
            roster,
            &state_ids,
            &in_scope_users,
            &out.held_users,
        );
        out.out_of_scope += out.exams.out_of_scope;
        if !self.allows(Field::Groups) {
            out.groups_completeness = Completeness::Absent;
            out.memberships_completeness = Completeness::Absent;
            return out;
        }
        let mut out_of_scope_groups: HashSet<&str> = HashSet::default();
        out.groups.reserve(roster.groups.len());
        for g in &roster.groups {
            if g.status == Status::ToBeDeleted {
                out.groups_leaving.push(g.sourced_id.clone());
                continue;
            }
            let in_scope = match &g.org {
                Some(o) => self.in_scope(o, &orgs),
                None => self.scope.is_empty(),
            };
            if !in_scope {
                out.out_of_scope += 1;
                out_of_scope_groups.insert(g.sourced_id.as_str());
                continue;
            }
            out.groups.push(PlatformGroup {
                external_id: g.sourced_id.clone(),
                display_name: Some(g.title.clone()),
                org: if self.allows(Field::Org) {
                    g.org.as_deref().map(|o| org_label(o, &orgs))
                } else {
                    None
                },
                members: Vec::new(),
                active: true,
                partial: false,
            });
        }
        // Members per group from the enrolments; the planner merges them
        // with stored membership.
        out.memberships_completeness = roster.memberships_completeness;
        // a bulk's members gathered per group first and each set built
        // once (sorted, in one pass): inserting them one by one into a
        // tree of groups and a tree per group cost two tree searches of
        // string comparisons per enrolment
        let mut gathered: HashMap<&str, Vec<Id>> =
            HashMap::with_capacity_and_hasher(roster.groups.len(), Default::default());
        for m in &roster.memberships {
            if out_of_scope_groups.contains(m.group.as_str()) {
                continue;
            }
            match roster.memberships_completeness {
                Completeness::Delta => {
                    let person = match state_ids.get(m.person.as_str()) {
                        Some(p) => p.to_string(),
                        None => self.person_id(&m.person),
                    };
                    let d = out.member_deltas.entry(m.group.to_string()).or_default();
                    if m.status == Status::Active {
                        d.add.insert(person);
                    } else {
                        d.remove.insert(person);
                    }
                }
                _ => {
                    if m.status == Status::Active && in_scope_users.contains(m.person.as_str()) {
                        // the shared id, not a copy: no allocation per enrolment
                        let person = match state_ids.get(m.person.as_str()) {
                            Some(p) => p.clone(),
                            None => m.person.clone(),
                        };
                        gathered.entry(m.group.as_str()).or_default().push(person);
                    }
                }
            }
        }
        for (group, persons) in gathered {
            match out.members.get_mut(group) {
                Some(set) => set.extend(persons),
                None => {
                    out.members
                        .insert(group.to_string(), persons.into_iter().collect());
                }
            }
        }
        out
    }

    fn in_scope(&self, org: &str, orgs: &HashMap<&str, &Org>) -> bool {
        if self.scope.is_empty() {
            return true;
        }
        // the org itself or any parent (a district covers its schools)
        let mut current = Some(org);
        for _ in 0..8 {
            let Some(id) = current else { break };
            if self.scope.iter().any(|s| s == id) {
                return true;
            }
            let Some(o) = orgs.get(id) else { break };
            if let Some(ident) = &o.identifier {
                if self
                    .scope
                    .iter()
                    .any(|s| s == ident || (s.len() == 4 && ident.starts_with(s.as_str())))
                {
                    return true;
                }
            }
            current = o.parent.as_deref();
        }
        false
    }

    fn user(&self, p: &Person, orgs: &HashMap<&str, &Org>) -> Result<PlatformUser, String> {
        let state_id = self.state_id_of(p);
        let synthetic_email = format!("{}@example.invalid", synthetic_tag(&state_id));
        let email = if self.synthetic {
            Some(synthetic_email.as_str())
        } else {
            p.email.as_deref()
        };
        let base = match self.user_name {
            UserNameFrom::SourcedId => Some(state_id.as_str()),
            UserNameFrom::Username => p.username.as_deref(),
            UserNameFrom::Identifier => p.identifier.as_deref(),
            UserNameFrom::Email => email,
        };
        let Some(base) = base else {
            return Err(format!(
                "no value for platform.user_name = \"{}\"; fill it in the SIS or pick another source attribute",
                self.user_name.as_str()
            ));
        };
        let user_name = match &self.user_name_suffix {
            Some(s) => format!("{base}{s}"),
            None => base.to_string(),
        };
        let name = self.allows(Field::Name);
        let acc = &p.accommodations;
        let needs = self.allows(Field::PersonalNeeds);
        let codes = if needs {
            acc.needs_on(&crate::clock::today().format("%Y-%m-%d").to_string())
        } else {
            Vec::new()
        };
        let minutes = acc.extra_time_minutes.filter(|_| needs);
        // What this export does not resolve stays as last pushed.
        let mut unknown = Vec::new();
        if p.role.is_none() && self.allows(Field::Role) {
            unknown.push(TrackedField::Role);
        }
        let org = p
            .orgs
            .first()
            .and_then(|o| orgs.get(o.as_str()))
            .map(|o| o.identifier.clone().unwrap_or_else(|| o.sourced_id.clone()));
        if org.is_none() && self.allows(Field::Org) {
            unknown.push(TrackedField::Org);
        }
        let (given, middle, family) = if self.synthetic {
            (
                "Test".to_string(),
                None,
                format!("Kandidaat {}", synthetic_tag(&state_id)),
            )
        } else {
            (
                p.given_name.clone(),
                p.middle_name.clone(),
                p.family_name.clone(),
            )
        };
        let bsn = if self.sends_bsn() {
            p.bsn.clone().filter(|b| bsn_valid(b))
        } else {
            None
        };
        Ok(PlatformUser {
            external_id: state_id,
            user_name,
            active: true,
            given_name: name.then_some(given),
            middle_name: if name { middle } else { None },
            family_name: name.then_some(family),
            email: if self.allows(Field::Email) {
                email.map(String::from)
            } else {
                None
            },
            role: if self.allows(Field::Role) {
                p.role
            } else {
                None
            },
            org: if self.allows(Field::Org) {
                org.clone()
            } else {
                None
            },
            accommodations: ((self.allows(Field::Accommodations)
                && (acc.extra_time_percent.is_some()
                    || acc.font_scale.is_some()
                    || acc.screen_reader.is_some()))
                || minutes.is_some()
                || !codes.is_empty())
            .then(|| {
                let classic = self.allows(Field::Accommodations);
                ExamAccommodations {
                    extra_time_percent: acc.extra_time_percent.filter(|_| classic),
                    font_scale: acc.font_scale.filter(|_| classic),
                    screen_reader: acc.screen_reader.filter(|_| classic),
                    extra_time_minutes: minutes,
                    personal_needs: (!codes.is_empty()).then_some(codes),
                }
            }),
            bsn_hash: self.sends_bsn().then(|| match (&self.bsn_key, &bsn) {
                (Some(k), Some(b)) => k.field_hash(&format!("bsn\x1f{b}")),
                // without a key only its presence is tracked
                _ => hash_value(&bsn.is_some()),
            }),
            bsn,
            unknown,
        })
    }
}

/// The label of an org on the platform: its BRIN/location code if known.
fn org_label(id: &str, orgs: &HashMap<&str, &Org>) -> String {
    orgs.get(id)
        .and_then(|o| o.identifier.clone())
        .unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Accommodations, Group, Membership, Role};

    fn org(id: &str, ident: &str) -> Org {
        Org {
            sourced_id: id.into(),
            name: "School".into(),
            identifier: Some(ident.into()),
            kind: "school".into(),
            parent: None,
        }
    }

    fn person(id: &str, org: &str) -> Person {
        Person {
            sourced_id: id.into(),
            status: Status::Active,
            role: Some(Role::Student),
            username: Some(format!("u{id}")),
            identifier: None,
            given_name: "Zoë".into(),
            middle_name: Some("de".into()),
            family_name: "Vries".into(),
            email: Some(format!("{id}@example.nl")),
            eck_id: Some(format!("https://ketenid.nl/201703/{id}")),
            bsn: Some("999990019".into()),
            orgs: vec![org.into()],
            accommodations: Accommodations {
                extra_time_percent: Some(25),
                ..Default::default()
            },
        }
    }

    fn roster() -> Roster {
        Roster {
            orgs: vec![org("o1", "99AA00"), org("o2", "99BB01")],
            persons: vec![person("s1", "o1"), person("s2", "o2")],
            groups: vec![Group {
                sourced_id: "c1".into(),
                status: Status::Active,
                title: "4havo-a".into(),
                code: None,
                org: Some("o1".into()),
                sessions: vec![],
                course: None,
            }],
            memberships: vec![
                Membership {
                    status: Status::Active,
                    group: "c1".into(),
                    person: "s1".into(),
                    role: Role::Student,
                },
                Membership {
                    status: Status::Active,
                    group: "c1".into(),
                    person: "s2".into(),
                    role: Role::Student,
                },
            ],
            ..Roster::default()
        }
    }

    fn privacy(fields: &[Field], scope: &[&str]) -> Privacy {
        Privacy {
            fields: fields.to_vec(),
            scope_orgs: scope.iter().map(|s| s.to_string()).collect(),
            ..Privacy::default()
        }
    }

    #[test]
    fn eck_id_passes_through_as_the_platform_id_when_configured() {
        let mut pv = Privacy::default();
        let plain = Policy::new(&pv, UserNameFrom::SourcedId, None).apply(&roster());
        assert_eq!(plain.users[0].external_id, "s1");
        pv.use_eck_id = true;
        let mut r = roster();
        r.persons[1].eck_id = None;
        let m = Policy::new(&pv, UserNameFrom::SourcedId, None).apply(&r);
        assert_eq!(m.users[0].external_id, "https://ketenid.nl/201703/s1");
        assert_eq!(m.users[0].user_name, "https://ketenid.nl/201703/s1");
        // no ECK iD in the SIS: the usual id
        assert_eq!(m.users[1].external_id, "s2");
        // the way back for results
        assert_eq!(
            m.pseudonyms,
            vec![("https://ketenid.nl/201703/s1".to_string(), "s1".to_string())]
        );
    }

    #[test]
    fn eck_id_is_found_among_user_ids() {
        use crate::model::eck_id_in;
        assert_eq!(
            eck_id_in("{ECK:https://ketenid.nl/201703/abc}"),
            Some("https://ketenid.nl/201703/abc".into())
        );
        assert_eq!(
            eck_id_in("{LDAP:jdv},{eck:https://ketenid.nl/201703/def}"),
            Some("https://ketenid.nl/201703/def".into())
        );
        assert_eq!(eck_id_in("{LDAP:jdv}"), None);
        assert_eq!(eck_id_in("{ECK:}"), None);
        assert_eq!(eck_id_in(""), None);
    }

    #[test]
    fn bsn_is_found_and_checked_with_the_eleven_test() {
        use crate::model::{bsn_in, bsn_valid};
        assert_eq!(bsn_in("{LDAP:x},{BSN:999990019}"), Some("999990019".into()));
        assert_eq!(bsn_in("{ECK:https://ketenid.nl/1}"), None);
        assert!(bsn_valid("999990019"));
        assert!(bsn_valid("111222333"));
        assert!(!bsn_valid("999990018"), "last digit off");
        assert!(!bsn_valid("99999001"), "eight digits");
        assert!(!bsn_valid("9999900l9"), "not a digit");
        assert!(!bsn_valid("000000000"));
    }

    #[test]
    fn bsn_leaves_only_when_allowed_and_never_to_acceptance() {
        let roster = {
            let mut r = roster();
            r.persons[1].bsn = Some("123456789".into()); // fails the 11-test
            r
        };
        // default: dropped, not tracked, no issue
        let p = Policy::new(&Privacy::default(), UserNameFrom::SourcedId, None);
        let m = p.apply(&roster);
        assert!(
            m.users
                .iter()
                .all(|u| u.bsn.is_none() && u.bsn_hash.is_none())
        );
        assert!(m.issues.is_empty());
        assert!(!m.users[0].field_hashes().contains_key(&TrackedField::Bsn));
        // allowed: sent, change-tracked by a keyed hash, a bad one reported
        let mut pv = Privacy {
            allow_bsn: true,
            ..Default::default()
        };
        pv.fields.push(Field::Bsn);
        let key = {
            let s = crate::store::Store::in_memory().unwrap();
            s.subject_key(true).unwrap()
        };
        let p = Policy::new(&pv, UserNameFrom::SourcedId, None).with_bsn_key(key.clone());
        let m = p.apply(&roster);
        let u0 = &m.users[0];
        assert_eq!(u0.bsn.as_deref(), Some("999990019"));
        let h = u0.field_hashes()[&TrackedField::Bsn];
        assert_ne!(h, hash_value(&u0.bsn), "a plain hash could be reversed");
        assert!(m.users[1].bsn.is_none());
        assert_eq!(m.issues.len(), 1, "{:?}", m.issues);
        assert!(m.issues[0].reason.contains("11-test"));
        assert!(!m.issues[0].reason.contains("123456789"));
        assert!(!serde_json::to_string(u0).unwrap().contains("999990019"));
        // acceptance: never
        let p = Policy::new(&pv, UserNameFrom::SourcedId, None)
            .with_bsn_key(key)
            .with_synthetic_identities(true);
        assert!(p.apply(&roster).users.iter().all(|u| u.bsn.is_none()));
    }

    #[test]
    fn email_is_opt_in() {
        let p = Policy::new(&Privacy::default(), UserNameFrom::SourcedId, None);
        let m = p.apply(&roster());
        assert!(m.users.iter().all(|u| u.email.is_none()));
        assert_eq!(m.users[0].org.as_deref(), Some("99AA00"));
        assert_eq!(
            m.users[0]
                .accommodations
                .as_ref()
                .unwrap()
                .extra_time_percent,
            Some(25)
        );
        let p = Policy::new(
            &privacy(&[Field::Email], &[]),
            UserNameFrom::SourcedId,
            None,
        );
        let m = p.apply(&roster());
        assert_eq!(m.users[0].email.as_deref(), Some("s1@example.nl"));
        assert!(m.users[0].given_name.is_none());
        assert!(m.users[0].role.is_none() && m.users[0].org.is_none());
        assert!(m.users[0].accommodations.is_none());
        assert!(m.groups.is_empty(), "groups not allowed");
    }

    #[test]
    fn scope_by_brin_keeps_only_listed_orgs_and_their_members() {
        let p = Policy::new(
            &privacy(&[Field::Name, Field::Groups], &["99AA"]),
            UserNameFrom::Username,
            Some("@school.nl".into()),
        );
        let m = p.apply(&roster());
        assert_eq!(m.users.len(), 1);
        assert_eq!(m.users[0].user_name, "us1@school.nl");
        assert_eq!(m.out_of_scope, 1);
        assert_eq!(m.members["c1"].iter().collect::<Vec<_>>(), vec!["s1"]);
    }

    #[test]
    fn missing_user_name_holds_the_person() {
        let mut r = roster();
        r.persons[0].identifier = None;
        let p = Policy::new(&Privacy::default(), UserNameFrom::Identifier, None);
        let m = p.apply(&r);
        assert!(m.users.is_empty());
        assert!(m.held_users.contains("s1"));
        assert_eq!(m.issues.len(), 2);
    }

    #[test]
    fn field_hash_changes_only_for_changed_field() {
        let p = Policy::new(&Privacy::default(), UserNameFrom::SourcedId, None);
        let a = p.apply(&roster()).users[0].field_hashes();
        let mut r = roster();
        r.persons[0].family_name = "Jansen".into();
        let b = p.apply(&r).users[0].field_hashes();
        let changed: Vec<TrackedField> = a.keys().copied().filter(|k| a[k] != b[k]).collect();
        assert_eq!(changed, vec![TrackedField::Name]);
    }
}
