//! What a platform sink receives: the roster after the privacy policy
//! (only allowed fields), as protocol-free types. The policy
//! (`crate::privacy`) builds these; sinks (`crate::connector`) read them.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::model::{
    Completeness, RegistrationRole, RegistrationState, Role, SittingDetails, SourceIssue,
    TrackedField,
};

/// Accommodations as sent to the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ExamAccommodations {
    pub extra_time_percent: Option<u32>,
    pub font_scale: Option<f64>,
    pub screen_reader: Option<bool>,
    /// Extra time in minutes (with `personal_needs` allowed); absent from
    /// the hash when none, so older state keeps its hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_time_minutes: Option<u32>,
    /// OKE personal-needs codes valid today (with `personal_needs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personal_needs: Option<Vec<String>>,
}

/// A user as the platform may see it: nothing beyond the allow-list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformUser {
    /// The SIS sourcedId.
    pub external_id: String,
    pub user_name: String,
    pub active: bool,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    /// BRIN + location code of the person's school.
    pub org: Option<String>,
    pub accommodations: Option<ExamAccommodations>,
    /// Only with `privacy.allow_bsn` and `"bsn"` in `privacy.fields`;
    /// never serialised (no plan or report shows it).
    #[serde(skip)]
    pub bsn: Option<String>,
    /// Change-detection hash of the BSN, keyed with the subject key (a
    /// plain hash of a 9-digit number could be reversed by trying them
    /// all); `None` when the BSN is not sent.
    #[serde(skip)]
    pub bsn_hash: Option<super::field_hashes::FieldHash>,
    /// Tracked fields this source run did not carry (a delta row without
    /// its role): the planner keeps what was last pushed for them.
    #[serde(skip)]
    pub unknown: Vec<TrackedField>,
}

/// A class as the platform may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformGroup {
    pub external_id: String,
    /// None when only membership changes are known (delta enrolments).
    pub display_name: Option<String>,
    pub org: Option<String>,
    /// External ids of the members, sorted.
    pub members: Vec<String>,
    pub active: bool,
    /// True when the record carries only `members` (delta enrolments); the
    /// planner keeps the stored hashes of the other fields.
    pub partial: bool,
}

/// Membership changes from a delta enrolment file, per group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberDelta {
    pub add: BTreeSet<String>,
    pub remove: BTreeSet<String>,
}

/// The roster after policy: what may reach the platform.
#[derive(Debug, Clone, Default)]
pub struct Minimised {
    /// Active, in-scope users.
    pub users: Vec<PlatformUser>,
    /// External ids the source marks as gone (tobedeleted / disabled).
    pub leaving: Vec<String>,
    pub groups: Vec<PlatformGroup>,
    pub groups_leaving: Vec<String>,
    /// Members per group from a bulk enrolment file.
    /// (Shared ids: one allocation per person, not per enrolment.)
    pub members: BTreeMap<String, BTreeSet<crate::model::Id>>,
    /// Enrolment changes from a delta enrolment file.
    pub member_deltas: BTreeMap<String, MemberDelta>,
    pub memberships_completeness: Completeness,
    pub users_completeness: Completeness,
    pub groups_completeness: Completeness,
    /// Source records not synced because their org is out of scope.
    pub out_of_scope: usize,
    /// External ids to leave untouched this run (malformed source rows).
    pub held_users: HashSet<String>,
    pub held_groups: HashSet<String>,
    pub issues: Vec<SourceIssue>,
    /// Persons not processed because of a restriction or an erasure.
    pub on_hold: usize,
    /// (pseudonym, SIS id) of the users, when ids are pseudonymised.
    pub pseudonyms: Vec<(String, String)>,
    /// Exam sittings and registrations (with `registrations` allowed).
    pub exams: MinimisedExams,
}

/// An exam sitting as the platform may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformOffering {
    pub external_id: String,
    /// Serialised in line: the plan and held-plan JSON keep their keys.
    #[serde(flatten)]
    pub details: SittingDetails,
    pub active: bool,
}

/// A registration as the platform may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformRegistration {
    pub external_id: String,
    /// The person's platform id (SIS id, ECK iD or pseudonym).
    pub person: String,
    pub offering: String,
    pub role: RegistrationRole,
    pub state: RegistrationState,
    /// None unless `personal_needs` is allowed.
    pub personal_needs: Option<Vec<String>>,
    pub extra_minutes: Option<u32>,
    pub attempt: Option<u32>,
    /// The person as the platform sees them, for platforms that take the
    /// person inside the registration (OKE); filled by the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_record: Option<PlatformUser>,
}

/// The exam planning after policy.
#[derive(Debug, Clone, Default)]
pub struct MinimisedExams {
    pub offerings: Vec<PlatformOffering>,
    /// Offerings the source marks as canceled.
    pub offerings_leaving: Vec<String>,
    /// Registrations in force (associated or finished).
    pub registrations: Vec<PlatformRegistration>,
    /// Registrations the source marks as canceled: withdrawn.
    pub registrations_leaving: Vec<String>,
    /// (offering, person) of the canceled registrations.
    pub withdrawn: Vec<(String, String)>,
    pub completeness: Completeness,
    /// Registrations to leave as they are this run.
    pub held: HashSet<String>,
    /// Offerings the read covered.
    pub covered: HashSet<String>,
    /// Registrations not synced because their person is out of scope.
    pub out_of_scope: usize,
}
