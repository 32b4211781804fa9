//! Canonical, protocol-free roster types. Connectors translate their wire
//! format into these; the planner and policy only ever see these.

pub mod field_hashes;
pub mod id_table;
pub mod platform;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

names! {
    /// The role a person has towards the test platform.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        Student = "student",
        Teacher = "teacher",
        Assessor = "assessor",
        Proctor = "proctor",
        Staff = "staff",
    }
}

impl Role {
    /// A source's role names → roles: its `defaults`, then the configured
    /// names (already normalised by the source) over them; a configured
    /// role that is no role is left out (`check-config` refuses it).
    pub fn map<'a>(
        defaults: &[(&str, Role)],
        configured: impl IntoIterator<Item = (String, &'a str)>,
    ) -> BTreeMap<String, Role> {
        let mut map: BTreeMap<String, Role> =
            defaults.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        for (from, to) in configured {
            if let Some(r) = Role::parse(to) {
                map.insert(from, r);
            }
        }
        map
    }
}

/// Exam accommodations ("faciliteiten") of a candidate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accommodations {
    pub extra_time_percent: Option<u32>,
    /// Extra time in minutes (OKE `additionalTimeInMin`).
    pub extra_time_minutes: Option<u32>,
    /// OKE personal-needs codes (`extraTime`, `spoken`,
    /// `spell-checker-on-screen`, …) with their validity dates.
    pub personal_needs: Vec<PersonalNeed>,
    pub font_scale: Option<f64>,
    pub screen_reader: Option<bool>,
    pub other: BTreeMap<String, String>,
}

impl Accommodations {
    /// No value at all (every field as by default).
    pub fn is_empty(&self) -> bool {
        *self == Accommodations::default()
    }

    /// The personal-needs codes valid on `day` (YYYY-MM-DD), sorted.
    pub fn needs_on(&self, day: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .personal_needs
            .iter()
            .filter(|n| n.valid_on(day))
            .map(|n| n.code.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// One personal need (OKE `assignedNeeds` entry, or a code of an
/// association's `personalNeeds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalNeed {
    pub code: String,
    /// First and last day it applies (YYYY-MM-DD), when limited.
    pub start: Option<String>,
    pub end: Option<String>,
}

impl PersonalNeed {
    /// Whether it applies on `day` (YYYY-MM-DD; dates compare as text).
    pub fn valid_on(&self, day: &str) -> bool {
        self.start.as_deref().is_none_or(|s| s <= day)
            && self.end.as_deref().is_none_or(|e| e >= day)
    }
}

/// A planned exam sitting (OKE component offering, "zitting").
#[derive(Debug, Clone, PartialEq)]
pub struct ExamOffering {
    pub id: String,
    pub status: Status,
    pub details: SittingDetails,
}

/// What a sitting is: its code, title, tests, time and place. The policy
/// passes it to the platform whole ([`platform::PlatformOffering`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SittingDetails {
    /// The offering's primary code (recognised by the invigilator).
    pub code: Option<String>,
    pub title: String,
    /// The tests to be used (component ids in the test system).
    pub tests: Vec<String>,
    /// RFC 3339 with offset.
    pub start: Option<String>,
    pub end: Option<String>,
    /// Room or location code.
    pub location: Option<String>,
}

names! {
    /// What a person does at an exam sitting.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum RegistrationRole {
        Candidate = "candidate",
        Staff = "staff",
        Surveillant = "surveillant",
    }
}

names! {
    /// Where a registration stands (OKE association state).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum RegistrationState {
        Associated = "associated",
        Canceled = "canceled",
        Finished = "finished",
    }
}

/// A person registered for an exam sitting (OKE association).
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub id: String,
    /// The person's sourcedId.
    pub person: String,
    /// The offering id.
    pub offering: String,
    pub role: RegistrationRole,
    pub state: RegistrationState,
    /// Personal-needs codes for this sitting.
    pub personal_needs: Vec<String>,
    pub extra_minutes: Option<u32>,
    pub attempt: Option<u32>,
}

/// The exam planning a source delivered: none for sources without it.
#[derive(Debug, Clone)]
pub struct ExamPlanning {
    pub offerings: Vec<ExamOffering>,
    pub registrations: Vec<Registration>,
    /// `Absent` unless the source plans exams.
    pub completeness: Completeness,
    /// Registrations whose records were malformed: left as they are.
    pub held: std::collections::HashSet<String>,
    /// Offerings the read covered (the planning window): a registration of
    /// one of them that is absent from a bulk read is withdrawn.
    pub covered: std::collections::HashSet<String>,
}

impl Default for ExamPlanning {
    fn default() -> Self {
        ExamPlanning {
            offerings: Vec::new(),
            registrations: Vec::new(),
            completeness: Completeness::Absent,
            held: Default::default(),
            covered: Default::default(),
        }
    }
}

/// Whether a record is live in the source or marked for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Active,
    /// OneRoster `tobedeleted`, IMS `recstatus=3`: the platform deactivates it.
    ToBeDeleted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub sourced_id: String,
    pub status: Status,
    /// None only for a delta row whose role the source did not repeat: the
    /// role on the platform stays as it is.
    pub role: Option<Role>,
    pub username: Option<String>,
    /// Institution-facing number (student number, staff code).
    pub identifier: Option<String>,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub family_name: String,
    pub email: Option<String>,
    /// The person's ECK iD (the Dutch education chain's pseudonym), when
    /// the SIS gives one.
    pub eck_id: Option<String>,
    /// The person's BSN (burgerservicenummer) when the SIS export carries
    /// one. Dropped by the privacy policy unless `privacy.allow_bsn` and
    /// `"bsn"` in `privacy.fields`; never stored.
    pub bsn: Option<String>,
    /// Org sourcedIds this person belongs to; the first is the primary one.
    pub orgs: Vec<String>,
    pub accommodations: Accommodations,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub sourced_id: String,
    pub status: Status,
    pub title: String,
    pub code: Option<String>,
    pub org: Option<String>,
    pub sessions: Vec<String>,
    pub course: Option<String>,
}

/// A person in a class. The ids are shared with every other membership of
/// the same class or person ([`SharedIds`]): a roster holds eight or more
/// memberships per person, and two strings of their own each were half of
/// a parsed roster's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub status: Status,
    pub group: Id,
    pub person: Id,
    pub role: Role,
}

/// An id shared by reference: a clone copies a pointer. Reads, compares
/// and prints as the `str` it holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(Arc<str>);

impl Id {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Id {
        Id(Arc::from(s))
    }
}

impl From<String> for Id {
    fn from(s: String) -> Id {
        Id(Arc::from(s))
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Id {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Id {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for Id {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Id> for String {
    fn eq(&self, other: &Id) -> bool {
        **self == *other.0
    }
}

impl Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Ids for [`Membership`]s, one allocation per distinct id however many
/// memberships name it.
#[derive(Debug, Default)]
pub struct SharedIds(rustc_hash::FxHashSet<Id>);

impl SharedIds {
    /// The shared id equal to `id`.
    pub fn get(&mut self, id: &str) -> Id {
        if let Some(a) = self.0.get(id) {
            return a.clone();
        }
        let a = Id::from(id);
        self.0.insert(a.clone());
        a
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub sourced_id: String,
    pub name: String,
    /// BRIN + location code ("99AA00"), or just the BRIN.
    pub identifier: Option<String>,
    pub kind: String,
    pub parent: Option<String>,
}

/// Whether a source delivered everything (absence means "left") or only changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Completeness {
    #[default]
    Bulk,
    Delta,
    /// The source did not deliver this kind of record at all.
    Absent,
}

/// A problem with one source record: reported, counted, skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceIssue {
    /// Where: `users.csv:17`, an URL, an XML path.
    pub location: String,
    pub record_id: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for SourceIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.record_id {
            Some(id) => write!(f, "{}: record {id}: {}", self.location, self.reason),
            None => write!(f, "{}: {}", self.location, self.reason),
        }
    }
}

/// The canonical roster as read from one source in one run.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    pub orgs: Vec<Org>,
    pub persons: Vec<Person>,
    pub groups: Vec<Group>,
    pub memberships: Vec<Membership>,
    pub persons_completeness: Completeness,
    pub groups_completeness: Completeness,
    pub memberships_completeness: Completeness,
    /// Records skipped because they were malformed or dangling.
    pub issues: Vec<SourceIssue>,
    /// Records read but outside what sisync syncs (guardians, ...).
    pub ignored: usize,
    /// Persons present in the source but skipped as malformed: the platform
    /// keeps them as they are (never deactivated for a bad row).
    pub held_persons: std::collections::HashSet<String>,
    /// Groups whose rows (or enrolment rows) were malformed: left as they are.
    pub held_groups: std::collections::HashSet<String>,
    /// Human description of the source version ("OneRoster 1.2 CSV").
    pub format: String,
    /// Exam sittings and registrations (OKE); none for other sources.
    pub exams: ExamPlanning,
}

/// The ECK iD in a OneRoster `userIds` value: `{ECK:https://ketenid.nl/...}`
/// among other `{type:identifier}` entries (the type in any case).
pub fn eck_id_in(user_ids: &str) -> Option<String> {
    user_id_of_type(user_ids, "eck")
}

/// The BSN in a OneRoster `userIds` value (`{BSN:123456782}`).
pub fn bsn_in(user_ids: &str) -> Option<String> {
    user_id_of_type(user_ids, "bsn")
}

fn user_id_of_type(user_ids: &str, wanted: &str) -> Option<String> {
    user_ids
        .split('{')
        .filter_map(|part| part.split('}').next())
        .find_map(|entry| {
            let (kind, value) = entry.split_once(':')?;
            let value = value.trim();
            (kind.trim().eq_ignore_ascii_case(wanted) && !value.is_empty())
                .then(|| value.to_string())
        })
}

/// Whether a BSN passes the Dutch 11-test (elfproef): nine digits whose
/// sum weighted 9, 8, …, 2, −1 is a multiple of 11 (and not all zero).
pub fn bsn_valid(bsn: &str) -> bool {
    let d = bsn.as_bytes();
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&c| c == b'0') {
        return false;
    }
    let sum: i64 = d[..8]
        .iter()
        .zip((2..=9).rev())
        .map(|(&c, w)| i64::from(c - b'0') * w)
        .sum::<i64>()
        - i64::from(d[8] - b'0');
    sum % 11 == 0
}

/// One exam result as the platform reported it, before it is matched to a
/// person of the roster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExamResult {
    /// The candidate as the platform names them: the SIS sourcedId or the
    /// platform's own id.
    pub candidate: String,
    /// The exam (test identifier); it becomes the SIS line item.
    pub exam: String,
    /// The platform's session (attempt) id, when it gives one.
    pub session_id: Option<String>,
    /// The system that issued the session id (QTI
    /// `sessionIdentifier/@sourceID`), part of the result's key.
    pub session_source: Option<String>,
    pub value: ResultValue,
    /// When the result was recorded (RFC 3339 as given).
    pub taken_at: Option<String>,
    /// Where it was read: `file:line` or URL.
    pub origin: String,
    /// Read from an OKE exam platform (flow 3.4): the registration it
    /// belongs to and the nl-test-admin result details.
    pub oke: Option<OkeResult>,
}

/// What a result says, each part as the platform gave it (a platform may
/// send only points, only a grade, or only passed). One type from the
/// source through the outbox to the gradebook, so a part added here
/// travels the whole way.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ResultValue {
    pub score: Option<f64>,
    pub max_score: Option<f64>,
    pub passed: Option<bool>,
    /// A grade-like outcome (e.g. a Dutch 1–10 mark as text).
    pub grade: Option<String>,
}

impl ResultValue {
    /// The grade without surrounding blanks; None when absent or blank.
    pub fn grade_text(&self) -> Option<&str> {
        self.grade
            .as_deref()
            .map(str::trim)
            .filter(|g| !g.is_empty())
    }
}

/// The OKE (OOAPI v5, nl-test-admin) details of a result read from an exam
/// platform: which SIS registration (association) and attempt it is for,
/// and what flow 5 passes back besides the score.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OkeResult {
    /// The SIS's association id (`orgAssociationId`, else the platform's
    /// `associationId`).
    pub association_id: String,
    /// 1 for the registration itself; 2, 3 … for later attempts.
    pub attempt: u32,
    /// `result.state`: in progress, postponed, completed, queued.
    pub state: String,
    /// notKnown, notPresent, notStarted, notFinished, present.
    pub attendance: String,
    /// `result.pass`: unknown, passed, failed.
    pub pass: Option<String>,
    /// `result.score` as the platform gave it.
    pub score: Option<String>,
    #[serde(default)]
    pub final_result: bool,
    pub raw_score: Option<i64>,
    pub max_raw_score: Option<i64>,
    /// `result.resultDate` (full-date) and `testDate` (date-time).
    pub result_date: Option<String>,
    pub test_date: Option<String>,
}

/// Display, Serialize and Deserialize by name (`as_str` / `parse`): the
/// vocabularies sisync stores are written and read as their names.
macro_rules! by_name {
    ($t:ty, $what:literal) => {
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
                <$t>::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", $what, " `{}`"), s))
                })
            }
        }
    };
}
pub(crate) use by_name;

/// An enum of named values (a `Copy` enum, with its own derives and serde
/// attributes): the enum, `ALL`, `as_str()` (the name) and `parse`.
macro_rules! names {
    (
        $(#[$m:meta])*
        pub enum $name:ident {
            $($(#[$vm:meta])* $v:ident = $s:literal,)*
        }
    ) => {
        $(#[$m])*
        pub enum $name {
            $($(#[$vm])* $v,)*
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$v,)*];

            /// The name (stored, written or configured: never to change).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s,)*
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($s => Some($name::$v),)*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use names;

/// A closed set of names sisync stores: [`names`] with the common derives,
/// and [`by_name`].
macro_rules! vocabulary {
    (
        $(#[$m:meta])*
        pub enum $name:ident ($what:literal) {
            $($(#[$vm:meta])* $v:ident = $s:literal,)*
        }
    ) => {
        $crate::model::names! {
            $(#[$m])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum $name {
                $($(#[$vm])* $v = $s,)*
            }
        }

        $crate::model::by_name!($name, $what);
    };
}
pub(crate) use vocabulary;

vocabulary! {
    /// A field whose change the planner tracks, by a hash of its value
    /// (never the value). The names are stored in the state database
    /// (per-field hashes, held plans) and written to the audit log.
    pub enum TrackedField ("tracked field") {
        UserName = "userName",
        Name = "name",
        Email = "email",
        Role = "role",
        Org = "org",
        Accommodations = "accommodations",
        Bsn = "bsn",
        Active = "active",
        DisplayName = "displayName",
        Members = "members",
        Code = "code",
        Tests = "tests",
        Start = "start",
        End = "end",
        Location = "location",
        Person = "person",
        Offering = "offering",
        State = "state",
        PersonalNeeds = "personalNeeds",
        ExtraMinutes = "extraMinutes",
        Attempt = "attempt",
    }
}

impl TrackedField {
    /// A platform user's fields (a full update sends all of them).
    pub const USER: &[TrackedField] = &[
        TrackedField::UserName,
        TrackedField::Name,
        TrackedField::Email,
        TrackedField::Role,
        TrackedField::Org,
        TrackedField::Accommodations,
        TrackedField::Bsn,
        TrackedField::Active,
    ];

    /// A class's fields.
    pub const GROUP: &[TrackedField] = &[
        TrackedField::DisplayName,
        TrackedField::Org,
        TrackedField::Active,
        TrackedField::Members,
    ];

    /// The names of `fields` joined by `sep` (lines, the audit log).
    pub fn join(fields: &[TrackedField], sep: &str) -> String {
        let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        names.join(sep)
    }
}

/// Ordered by name, as the field names were before they had a type: maps
/// keyed by field iterate (and list changed fields) in the same order.
impl Ord for TrackedField {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for TrackedField {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is the serde name (held plans, reports) and `parse` reads
    /// it back, for every value.
    #[test]
    fn names_are_the_serde_names_and_parse_back() {
        fn check<T>(all: &[T], name: fn(T) -> &'static str, parse: fn(&str) -> Option<T>)
        where
            T: Copy + PartialEq + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
        {
            for &v in all {
                assert_eq!(parse(name(v)), Some(v));
                assert_eq!(serde_json::to_value(v).unwrap(), name(v));
                assert_eq!(serde_json::from_value::<T>(name(v).into()).unwrap(), v);
            }
        }
        check(Role::ALL, Role::as_str, Role::parse);
        check(
            RegistrationRole::ALL,
            RegistrationRole::as_str,
            RegistrationRole::parse,
        );
        check(
            RegistrationState::ALL,
            RegistrationState::as_str,
            RegistrationState::parse,
        );
    }

    #[test]
    fn tracked_fields_keep_their_stored_names_and_order() {
        // the names in state databases written before the enum existed
        let stored = [
            "userName",
            "name",
            "email",
            "role",
            "org",
            "accommodations",
            "bsn",
            "active",
            "displayName",
            "members",
            "code",
            "tests",
            "start",
            "end",
            "location",
            "person",
            "offering",
            "state",
            "personalNeeds",
            "extraMinutes",
            "attempt",
        ];
        let names: Vec<&str> = TrackedField::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(names, stored);
        for f in TrackedField::ALL {
            assert_eq!(TrackedField::parse(f.as_str()), Some(*f));
        }
        assert_eq!(TrackedField::parse("colour"), None);
        // maps keyed by field list (and hash) them in name order, as before
        let mut by_name = stored.to_vec();
        by_name.sort_unstable();
        let mut by_field = TrackedField::ALL.to_vec();
        by_field.sort();
        assert_eq!(
            by_field.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
            by_name
        );
        // JSON as in the state database and held plans
        let m: BTreeMap<TrackedField, String> = [
            (TrackedField::Members, "1".into()),
            (TrackedField::DisplayName, "2".into()),
        ]
        .into();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"displayName":"2","members":"1"}"#);
        assert_eq!(
            serde_json::from_str::<BTreeMap<TrackedField, String>>(&text).unwrap(),
            m
        );
        let e = serde_json::from_str::<TrackedField>(r#""colour""#).unwrap_err();
        assert!(
            e.to_string().contains("unknown tracked field `colour`"),
            "{e}"
        );
        assert_eq!(
            TrackedField::join(TrackedField::GROUP, ","),
            "displayName,org,active,members"
        );
        assert!(
            TrackedField::USER
                .iter()
                .all(|f| TrackedField::ALL.contains(f))
        );
    }
}
