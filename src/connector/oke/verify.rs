//! Verified delivery for the OKE platform (docs/connector-contract.md,
//! rule 16): after `PUT /offerings/{id}` and `PUT /associations/{id}` the
//! platform's own view (its answer when it carries the record, else a
//! `GET` of it) is compared with what sisync sent, for the attributes
//! sisync owns. The result is a list of attribute names that were dropped
//! or changed: never values, so it can go into logs and the audit log.
//!
//! Comparisons are semantic where OOAPI allows several spellings of one
//! value: ids case-insensitively, `person`/`offering` as an id or as the
//! expanded object, date-times as instants, `personalNeeds` as a set (an
//! empty list and none are the same), numbers as numbers.

use serde_json::Value;

use super::CONSUMER;

/// Whether an answer body carries the record itself (not only an id or a
/// message), so that it can be compared without a `GET`.
pub fn carries_record(body: &Value) -> bool {
    body.get("consumers").is_some_and(Value::is_array)
}

/// The attributes of a sitting that the platform did not keep.
pub fn offering_differences(sent: &Value, got: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    if id(sent.get("offeringId")) != id(got.get("offeringId")) {
        out.push("offeringId");
    }
    for f in ["startDateTime", "endDateTime"] {
        if instant(sent.get(f)) != instant(got.get(f)) {
            out.push(f);
        }
    }
    let (s, g) = (consumer(sent), consumer(got));
    for f in ["offeringState", "locationCode"] {
        if text(s.and_then(|c| c.get(f))) != text(g.and_then(|c| c.get(f))) {
            out.push(f);
        }
    }
    let tests = |c| sorted_items(c, "testsToBeUsed", |t| id(t.get("componentId")));
    if tests(s) != tests(g) {
        out.push("testsToBeUsed");
    }
    out
}

/// The attributes of a registration that the platform did not keep.
pub fn association_differences(sent: &Value, got: &Value) -> Vec<&'static str> {
    let mut out = Vec::new();
    if id(sent.get("associationId")) != id(got.get("associationId")) {
        out.push("associationId");
    }
    if text(sent.get("state")) != text(got.get("state")) {
        out.push("state");
    }
    if text(sent.get("role")) != text(got.get("role")) {
        out.push("role");
    }
    if reference(sent.get("offering"), "offeringId") != reference(got.get("offering"), "offeringId")
    {
        out.push("offering");
    }
    if reference(sent.get("person"), "personId") != reference(got.get("person"), "personId") {
        out.push("person");
    }
    let (s, g) = (consumer(sent), consumer(got));
    let minutes = |c: Option<&Value>| {
        c.and_then(|c| c.get("additionalTimeInMin"))
            .and_then(Value::as_f64)
    };
    if minutes(s) != minutes(g) {
        out.push("additionalTimeInMin");
    }
    let needs = |c| {
        let mut v = sorted_items(c, "personalNeeds", |n| n.as_str().map(String::from));
        v.dedup();
        v
    };
    if needs(s) != needs(g) {
        out.push("personalNeeds");
    }
    out
}

/// The nl-test-admin consumer object.
fn consumer(v: &Value) -> Option<&Value> {
    v.get("consumers")?
        .as_array()?
        .iter()
        .find(|c| c.get("consumerKey").and_then(Value::as_str) == Some(CONSUMER))
}

/// The items of the array `key` of `c`, as `item` reads them, sorted.
fn sorted_items(c: Option<&Value>, key: &str, item: fn(&Value) -> Option<String>) -> Vec<String> {
    let mut v: Vec<String> = c
        .and_then(|c| c.get(key))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(item).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str)
}

fn id(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_ascii_lowercase)
}

/// An id given as a string or as the expanded object.
fn reference(v: Option<&Value>, key: &str) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.to_ascii_lowercase()),
        o @ Value::Object(_) => id(o.get(key)),
        _ => None,
    }
}

/// A date-time as an instant; a value that is no RFC 3339 date-time is
/// compared as written.
fn instant(v: Option<&Value>) -> Option<String> {
    let s = v.and_then(Value::as_str)?;
    Some(match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.timestamp_millis().to_string(),
        Err(_) => s.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn assoc() -> Value {
        json!({
            "associationId": "00000003-0000-4000-8000-000000000001",
            "associationType": "componentOfferingAssociation",
            "role": "student",
            "state": "associated",
            "consumers": [{"consumerKey": "nl-test-admin", "additionalTimeInMin": 30,
                           "personalNeeds": ["extraTime", "spoken"], "attempt": 1}],
            "person": {"personId": "00000002-0000-4000-8000-000000000001", "givenName": "X"},
            "offering": "00000001-0000-4000-8000-000000000000",
        })
    }

    #[test]
    fn the_same_record_in_other_spellings_is_kept() {
        let mut got = assoc();
        got["associationId"] = json!("00000003-0000-4000-8000-000000000001".to_uppercase());
        got["person"] = json!("00000002-0000-4000-8000-000000000001");
        got["offering"] = json!({"offeringId": "00000001-0000-4000-8000-000000000000"});
        got["consumers"][0]["personalNeeds"] = json!(["spoken", "extraTime"]);
        got["consumers"][0]["additionalTimeInMin"] = json!(30.0);
        assert!(association_differences(&assoc(), &got).is_empty());
    }

    #[test]
    fn dropped_and_changed_attributes_are_named() {
        let mut got = assoc();
        got["consumers"][0]
            .as_object_mut()
            .unwrap()
            .remove("additionalTimeInMin");
        got["consumers"][0]["personalNeeds"] = json!(["extraTime"]);
        got["state"] = json!("canceled");
        got["person"] = json!("00000002-0000-4000-8000-000000000009");
        assert_eq!(
            association_differences(&assoc(), &got),
            ["state", "person", "additionalTimeInMin", "personalNeeds"]
        );
        // extra minutes the platform kept from before are a change too
        let mut sent = assoc();
        sent["consumers"][0]
            .as_object_mut()
            .unwrap()
            .remove("additionalTimeInMin");
        assert_eq!(
            association_differences(&sent, &assoc()),
            ["additionalTimeInMin"]
        );
    }

    #[test]
    fn offerings_compare_instants_and_tests() {
        let sent = json!({
            "offeringId": "a", "startDateTime": "2027-01-21T12:45:00.000Z",
            "endDateTime": "2027-01-21T13:45:00Z",
            "consumers": [{"consumerKey": "nl-test-admin", "offeringState": "active",
                           "testsToBeUsed": [{"componentId": "t1"}]}],
        });
        let mut got = sent.clone();
        got["startDateTime"] = json!("2027-01-21T13:45:00+01:00");
        assert!(offering_differences(&sent, &got).is_empty());
        got["endDateTime"] = json!("2027-01-21T14:45:00Z");
        got["consumers"][0]["testsToBeUsed"] = json!([]);
        got["consumers"][0]["offeringState"] = json!("canceled");
        assert_eq!(
            offering_differences(&sent, &got),
            ["endDateTime", "offeringState", "testsToBeUsed"]
        );
        assert!(!carries_record(
            &json!({"associationId": "a", "message": []})
        ));
        assert!(carries_record(&sent));
    }
}
