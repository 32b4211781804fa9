//! Who and which class a result belongs to: the roster state as a
//! directory, and the class rules.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::keys::{legacy_key, result_key, value_hash};
use crate::config::results::{ClassRule, Results, pattern_matches};
use crate::connector::results::result_sink;
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
                d.classes
                    .entry(m.to_string())
                    .or_default()
                    .push(group.clone());
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
            // a sink without classes (UWLR) takes the result as it is
            Err(_) if !result_sink(&cfg.sink).needs_class() => {
                (Some(person.to_string()), None, None)
            }
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
        // no rule places it and the candidate is not in exactly one class
        (_, Some(d)) => Ok(d.to_string()),
        ([], None) => Err(format!(
            "candidate is in no {what}; add a results.class_rules entry or set results.default_class"
        )),
        (many, None) => Err(format!(
            "candidate is in {} of which one cannot be chosen ({what}); add or narrow a results.class_rules entry for exam {exam}, or set results.default_class",
            many.len()
        )),
    }
}

/// Why a result's score cannot be right (it is parked until the platform
/// sends a corrected one). No values in the reason: it is shown and logged.
pub fn value_problem(score: Option<f64>, max_score: Option<f64>) -> Option<String> {
    const FIX: &str = "correct it on the platform and export the result again";
    match (score, max_score) {
        (_, Some(m)) if m <= 0.0 => Some(format!("MAXSCORE is 0 or negative; {FIX}")),
        (Some(s), _) if s < 0.0 => Some(format!("score is negative; {FIX}")),
        (Some(s), Some(m)) if s > m => Some(format!("score is above MAXSCORE; {FIX}")),
        _ => None,
    }
}

pub(super) fn incoming(cfg: &Results, dir: &Directory, r: ExamResult) -> Incoming {
    let (person_id, class_id, parked) = if result_sink(&cfg.sink).matches_at_delivery() {
        // an OKE SIS is asked for the registration when the result is
        // delivered: no roster class needed
        let person = dir.person(&r.candidate).unwrap_or(&r.candidate);
        (Some(person.to_string()), None, None)
    } else {
        dir.place(cfg, &r.candidate, &r.exam)
    };
    let parked = value_problem(r.value.score, r.value.max_score).or(parked);
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::strings;

    #[test]
    fn default_class_places_a_candidate_in_several_classes() {
        let several = strings::<Vec<_>>(&["cls-en-h3a", "cls-ne-h3a"]);
        assert!(choose_class(&[], None, "EX-ENG-1", &several).is_err());
        assert_eq!(
            choose_class(&[], Some("cls-examens"), "EX-ENG-1", &several),
            Ok("cls-examens".to_string())
        );
        // a rule that places it still wins, as does an only class
        let rule = ClassRule {
            exam: "EX-NED-*".into(),
            class: "cls-ne-*".into(),
        };
        assert_eq!(
            choose_class(&[rule], Some("cls-examens"), "EX-NED-1", &several),
            Ok("cls-ne-h3a".to_string())
        );
        assert_eq!(
            choose_class(
                &[],
                Some("cls-examens"),
                "EX-1",
                &strings::<Vec<_>>(&["cls-a"])
            ),
            Ok("cls-a".to_string())
        );
        assert_eq!(
            choose_class(&[], Some("cls-examens"), "EX-1", &[]),
            Ok("cls-examens".to_string())
        );
    }

    #[test]
    fn impossible_scores_are_named() {
        assert!(
            value_problem(Some(-1.0), Some(10.0))
                .unwrap()
                .contains("negative")
        );
        assert!(
            value_problem(Some(11.0), Some(10.0))
                .unwrap()
                .contains("above MAXSCORE")
        );
        assert!(
            value_problem(Some(0.0), Some(0.0))
                .unwrap()
                .contains("MAXSCORE is 0")
        );
        assert!(value_problem(None, Some(0.0)).is_some());
        assert_eq!(value_problem(Some(10.0), Some(10.0)), None);
        assert_eq!(value_problem(Some(0.0), None), None);
        assert_eq!(value_problem(None, None), None);
    }
}
