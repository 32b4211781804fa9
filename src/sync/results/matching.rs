//! Who and which class a result belongs to: the roster state as a
//! directory, and the class rules.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::keys::{legacy_key, result_key, value_hash};
use crate::config::results::{ClassRule, Results, pattern_matches};
use crate::model::ExamResult;
use crate::store::outbox::Incoming;
use crate::store::{RecordKind, Store};

/// What the roster sync knows: who is who, and who is in which class.
#[derive(Default)]
pub struct Directory {
    /// State ids (the pseudonym when ids are pseudonymised).
    users: HashSet<String>,
    by_platform_id: HashMap<String, String>,
    classes: HashMap<String, Vec<String>>,
    /// pseudonym → SIS id, and back.
    sis_of: HashMap<String, String>,
    state_of: HashMap<String, String>,
}

impl Directory {
    pub fn load(store: &Store) -> Result<Directory> {
        let users = store.load_state(RecordKind::User)?;
        let mut d = Directory::default();
        for (id, st) in users {
            if let Some(p) = st.platform_id {
                d.by_platform_id.insert(p, id.clone());
            }
            d.users.insert(id);
        }
        for (group, members) in store.load_members()? {
            for m in members {
                d.classes.entry(m).or_default().push(group.clone());
            }
        }
        for v in d.classes.values_mut() {
            v.sort();
        }
        d.sis_of = store.pseudonym_map()?;
        d.state_of = d
            .sis_of
            .iter()
            .map(|(p, s)| (s.clone(), p.clone()))
            .collect();
        Ok(d)
    }

    /// The state id of a candidate id the platform gave: its externalId
    /// (pseudonym or SIS id), the platform's own id, or the SIS id.
    fn state_id(&self, candidate: &str) -> Option<&str> {
        if let Some(u) = self.users.get(candidate) {
            return Some(u);
        }
        if let Some(u) = self.by_platform_id.get(candidate) {
            return Some(u);
        }
        self.state_of
            .get(candidate)
            .filter(|p| self.users.contains(*p))
            .map(String::as_str)
    }

    /// The id the audit log uses for a SIS id (its pseudonym when ids are
    /// pseudonymised).
    pub fn audit_id<'a>(&'a self, sis_id: &'a str) -> &'a str {
        self.state_of
            .get(sis_id)
            .map(String::as_str)
            .unwrap_or(sis_id)
    }

    /// The SIS sourcedId of a candidate id the platform gave.
    pub fn person(&self, candidate: &str) -> Option<&str> {
        let state = self.state_id(candidate)?;
        Some(self.sis_of.get(state).map(String::as_str).unwrap_or(state))
    }

    /// Match a result to a person and class: `(person, class, parked reason)`.
    pub fn place(
        &self,
        cfg: &Results,
        candidate: &str,
        exam: &str,
    ) -> (Option<String>, Option<String>, Option<String>) {
        let (Some(state), Some(person)) = (self.state_id(candidate), self.person(candidate)) else {
            return (
                None,
                None,
                Some(
                    "candidate unknown to the roster sync; parked until a roster sync brings them"
                        .into(),
                ),
            );
        };
        let classes = self
            .classes
            .get(state)
            .map(Vec::as_slice)
            .unwrap_or_default();
        match choose_class(
            &cfg.class_rules,
            cfg.default_class.as_deref(),
            exam,
            classes,
        ) {
            Ok(c) => (Some(person.to_string()), Some(c), None),
            Err(why) => (Some(person.to_string()), None, Some(why)),
        }
    }
}

/// Which of a candidate's classes a result of `exam` belongs to.
pub fn choose_class(
    rules: &[ClassRule],
    default_class: Option<&str>,
    exam: &str,
    classes: &[String],
) -> Result<String, String> {
    let rules: Vec<&ClassRule> = rules
        .iter()
        .filter(|r| pattern_matches(&r.exam, exam))
        .collect();
    let (candidates, what): (Vec<&String>, String) = if rules.is_empty() {
        (classes.iter().collect(), "class".into())
    } else {
        (
            classes
                .iter()
                .filter(|c| rules.iter().any(|r| pattern_matches(&r.class, c)))
                .collect(),
            format!("class matching results.class_rules for exam {exam}"),
        )
    };
    match (candidates.as_slice(), default_class) {
        ([one], _) => Ok((*one).clone()),
        ([], Some(d)) => Ok(d.to_string()),
        ([], None) => Err(format!(
            "candidate is in no {what}; add a results.class_rules entry or set results.default_class"
        )),
        (many, _) => Err(format!(
            "candidate is in {} of which one cannot be chosen ({what}); add or narrow a results.class_rules entry for exam {exam}",
            many.len()
        )),
    }
}

pub(super) fn incoming(cfg: &Results, dir: &Directory, r: ExamResult) -> Incoming {
    let (person_id, class_id, parked) = dir.place(cfg, &r.candidate, &r.exam);
    Incoming {
        key: result_key(&r),
        legacy_key: legacy_key(&r),
        value_hash: value_hash(&r),
        person_id,
        class_id,
        parked,
        result: r,
    }
}
