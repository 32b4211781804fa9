//! OKE MBO-toetsafname 1.0.1 (the OOAPI v5 mbo profile): the shared wire
//! types (offerings, associations, persons, groups, consumer objects,
//! paging, problem bodies) and the two planning connectors built on them:
//! [`source`] (flow 1, the SIS is the server) and [`platform`] (flow 2,
//! the exam platform is the server). Other OKE connectors (results, flow
//! 3.4 and 5) use these types too.
//!
//! Wire types are lenient where the OKE examples differ from the spec
//! (`name` as a string or as language-typed strings, `assignedNeeds` as an
//! object or a list) and strict where sisync depends on a value (ids,
//! states, roles): a record that fails is reported with its URL and id.

pub mod results_wire;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The consumer key of the nl-test-admin extensions.
pub const CONSUMER: &str = "nl-test-admin";

/// The OKE scope of flows 1 and 5 (SIS ↔ planning).
pub const SCOPE_FLOW_1_5: &str = "nl-test-admin-flow-1-5";
/// The OKE scope of flows 2, 3 and 4 (planning ↔ exam platform).
pub const SCOPE_FLOW_2_3_4: &str = "nl-test-admin-flow-2-3-4";

/// The page sizes OOAPI allows (`pageSize`).
pub const PAGE_SIZES: [u32; 5] = [10, 20, 50, 100, 250];

/// Whether `n` is a page size OOAPI allows.
pub fn page_size_ok(n: u64) -> bool {
    PAGE_SIZES.iter().any(|&p| u64::from(p) == n)
}

/// The default `page_size` (of any integer type a config keeps it in).
pub fn default_page_size<T: From<u8>>() -> T {
    T::from(100)
}

/// The config check of a `page_size` key.
pub fn check_page_size(
    l: &crate::config::Loaded,
    section: &str,
    n: u64,
) -> Result<(), crate::config::ConfigError> {
    if page_size_ok(n) {
        return Ok(());
    }
    Err(l.error(
        section,
        "page_size",
        "must be 10, 20, 50, 100 or 250 (the OOAPI pageSize values)",
    ))
}

/// An OOAPI id is a UUID (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// One page of an OOAPI collection (`Pagination`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub page_size: Option<u32>,
    pub page_number: Option<u32>,
    #[serde(default)]
    pub has_previous_page: bool,
    #[serde(default)]
    pub has_next_page: bool,
    pub total_pages: Option<u32>,
    /// Kept as JSON so that one bad item is reported, not the page.
    pub items: Vec<Value>,
}

/// `IdentifierEntry`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierEntry {
    pub code_type: String,
    pub code: String,
}

/// `LanguageTypedString`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct LanguageTypedString {
    pub language: String,
    pub value: String,
}

/// A name as the spec gives it (language-typed strings) or as some
/// examples do (a plain string).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Plain(String),
    Typed(Vec<LanguageTypedString>),
}

impl Text {
    /// The Dutch value, else the first one.
    pub fn best(&self) -> Option<&str> {
        match self {
            Text::Plain(s) => Some(s.as_str()),
            Text::Typed(v) => v
                .iter()
                .find(|t| t.language.eq_ignore_ascii_case("nl-NL"))
                .or_else(|| v.first())
                .map(|t| t.value.as_str()),
        }
        .map(str::trim)
        .filter(|s| !s.is_empty())
    }
}

/// A record's title: its name (the Dutch value, see [`Text::best`]), else
/// its id.
pub fn title(name: &Option<Text>, id: &str) -> String {
    name.as_ref().and_then(Text::best).unwrap_or(id).to_string()
}

/// The nl-test-admin object among `consumers`, when there is one.
pub fn consumer(consumers: &Option<Vec<Value>>) -> Option<&Value> {
    consumers
        .as_ref()?
        .iter()
        .find(|c| c.get("consumerKey").and_then(Value::as_str) == Some(CONSUMER))
}

/// An id given as a string or as the expanded object holding `key`.
pub fn id_of(v: &Value, key: &str) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Object(o) => o
            .get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
        _ => None,
    }
}

/// A component offering (an exam sitting, "zitting").
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Offering {
    pub offering_id: String,
    pub primary_code: Option<IdentifierEntry>,
    pub offering_type: Option<String>,
    pub name: Option<Text>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    /// The component id, or the expanded component.
    pub component: Option<Value>,
    pub consumers: Option<Vec<Value>>,
}

/// The nl-test-admin extension of an offering.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OfferingConsumer {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests_to_be_used: Vec<TestToBeUsed>,
    pub offering_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestToBeUsed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_provider: Option<String>,
    pub component_id: String,
}

/// A component offering association (a registration).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    pub association_id: String,
    pub association_type: Option<String>,
    pub role: Option<String>,
    pub state: Option<String>,
    pub consumers: Option<Vec<Value>>,
    /// The person id, or the expanded person.
    pub person: Option<Value>,
    /// The offering id, or the expanded offering.
    pub offering: Option<Value>,
}

/// The nl-test-admin extension of an association.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationConsumer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_time_in_min: Option<u32>,
    #[serde(default)]
    pub personal_needs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_end_date: Option<String>,
}

/// A person.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub person_id: String,
    pub primary_code: Option<IdentifierEntry>,
    pub given_name: Option<String>,
    pub surname_prefix: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    #[serde(default)]
    pub affiliations: Vec<String>,
    #[serde(default)]
    pub other_codes: Vec<IdentifierEntry>,
    pub consumers: Option<Vec<Value>>,
}

/// One entry of a person's `assignedNeeds`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedNeed {
    pub code: String,
    pub start_date: Option<String>,
    pub end_date: Option<String>,
}

/// A group (class) for context (flow 1.1b).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub group_id: String,
    pub primary_code: Option<IdentifierEntry>,
    pub name: Option<Text>,
}

/// A member of a group.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MembershipItem {
    pub person_id: String,
    pub state: Option<String>,
    pub role: Option<String>,
}

/// An OOAPI problem body (`application/problem+json`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Problem {
    pub status: Option<u16>,
    pub title: Option<String>,
    pub detail: Option<String>,
}

/// A UUID for an id that is none (a pseudonym, an ECK iD): OOAPI ids are
/// UUIDs. The same id gives the same UUID (SHA-256 based, version 8).
pub fn uuid_for(id: &str) -> String {
    if is_uuid(id) {
        return id.to_ascii_lowercase();
    }
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("sisync-oke\x1f{id}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    uuid_text(b, 8)
}

/// 16 hash bytes as a UUID of `version` (the RFC 4122 variant bits set),
/// in the hyphenated lower-case form.
pub fn uuid_text(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_either_shape_and_uuids_for_other_ids() {
        let t: Text = serde_json::from_str(
            r#"[{"language":"en-GB","value":"Maths"},{"language":"nl-NL","value":"Rekenen"}]"#,
        )
        .unwrap();
        assert_eq!(t.best(), Some("Rekenen"));
        let t: Text = serde_json::from_str(r#""Rekenen 3F""#).unwrap();
        assert_eq!(t.best(), Some("Rekenen 3F"));
        let id = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(uuid_for(id), id);
        let u = uuid_for("https://ketenid.nl/201703/abc");
        assert!(is_uuid(&u));
        assert_eq!(u, uuid_for("https://ketenid.nl/201703/abc"));
        assert_ne!(u, uuid_for("https://ketenid.nl/201703/abd"));
    }
}
