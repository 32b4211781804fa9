//! How exam planning reaches each kind of platform: an OKE platform takes
//! sittings and registrations (with the person inside each registration)
//! and no separate users or classes; csv-drop writes `exams.csv` and
//! `registrations.csv` beside its user files; a SCIM platform gets every
//! sitting as a group of its registered persons and the personal needs in
//! the user's extension.

use std::collections::HashMap;

use crate::config::Section;
use crate::connector::platform::ExamShape;
use crate::model::Completeness;
use crate::privacy::policy::{Minimised, PlatformUser};

/// Reshape the minimised roster for the configured platform.
pub fn shape_for_platform(platform: &Section, m: &mut Minimised) {
    match crate::connector::platform::platform_sink(platform).exam_shape() {
        ExamShape::Groups => crate::privacy::exams::fold_into_groups(m),
        ExamShape::Files => {}
        ExamShape::Registrations => embed_persons(m),
    }
}

/// For a platform that takes persons inside registrations: attach each
/// registration's person record; users and classes are not sent on their
/// own. A registration whose person did not pass the policy is held.
pub fn embed_persons(m: &mut Minimised) {
    let users: HashMap<String, PlatformUser> = std::mem::take(&mut m.users)
        .into_iter()
        .map(|u| (u.external_id.clone(), u))
        .collect();
    let mut held = Vec::new();
    for r in &mut m.exams.registrations {
        match users.get(&r.person) {
            Some(u) => r.person_record = Some(u.clone()),
            None => held.push(r.external_id.clone()),
        }
    }
    m.exams.held.extend(held);
    m.leaving.clear();
    m.users_completeness = Completeness::Absent;
    m.groups.clear();
    m.groups_leaving.clear();
    m.members.clear();
    m.member_deltas.clear();
    m.groups_completeness = Completeness::Absent;
    m.memberships_completeness = Completeness::Absent;
}
