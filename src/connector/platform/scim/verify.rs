//! Read-back verification: the resource a platform answers with (or
//! returns on a GET) is compared with what was sent, attribute by
//! attribute. A platform that accepts a write and drops a field is caught
//! here, not by a parent on exam day.

use serde_json::{Map, Value};

/// Attributes never compared: protocol bookkeeping, and write-only values
/// the platform must not return.
const SKIP: &[&str] = &["schemas", "meta", "id", "bsn", "password"];

/// The first difference between what was sent and what the platform
/// holds, as `dropped name.middleName` or `changed active`; None when
/// everything sent is there.
pub fn difference(sent: &Value, stored: &Value) -> Option<String> {
    let (Value::Object(sent), Value::Object(stored)) = (sent, stored) else {
        return None;
    };
    object(sent, stored, "")
}

fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn object(sent: &Map<String, Value>, stored: &Map<String, Value>, path: &str) -> Option<String> {
    for (k, v) in sent {
        if SKIP.iter().any(|s| s.eq_ignore_ascii_case(k)) {
            continue;
        }
        // an extension's attributes read as `urn:…:User:role`; made only
        // when needed (a difference, a nested object), not per attribute
        let here = || {
            if path.is_empty() {
                k.clone()
            } else if path.starts_with("urn:") {
                format!("{path}:{k}")
            } else {
                format!("{path}.{k}")
            }
        };
        let Some(got) = field(stored, k).filter(|g| !g.is_null()) else {
            // servers leave out empty and null attributes
            if v.is_null() || v.as_array().is_some_and(Vec::is_empty) {
                continue;
            }
            return Some(format!("dropped {}", here()));
        };
        let differs = match (v, got) {
            (Value::Object(a), Value::Object(b)) => {
                if let Some(d) = object(a, b, &here()) {
                    return Some(d);
                }
                false
            }
            (Value::Array(a), Value::Array(b)) => !same_values(a, b),
            (Value::Number(a), Value::Number(b)) => {
                (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(f64::NAN)).abs() > 1e-9
            }
            // userName and e-mail are case-insensitive in SCIM
            (Value::String(a), Value::String(b)) if k.eq_ignore_ascii_case("userName") => {
                !a.eq_ignore_ascii_case(b)
            }
            (a, b) => a != b,
        };
        if differs {
            return Some(format!("changed {}", here()));
        }
    }
    None
}

/// Multi-valued attributes (emails, members) compare as sets of `value`.
fn same_values(a: &[Value], b: &[Value]) -> bool {
    // most platforms answer with the values as sent, in the same order:
    // equal then, without a lower-cased key per value (a class's members)
    if a == b {
        return true;
    }
    let key = |v: &Value| -> String {
        match v {
            Value::Object(m) => field(m, "value")
                .map(|x| x.as_str().map(str::to_lowercase).unwrap_or(x.to_string()))
                .unwrap_or_else(|| v.to_string()),
            other => other.to_string(),
        }
    };
    let mut x: Vec<String> = a.iter().map(key).collect();
    let mut y: Vec<String> = b.iter().map(key).collect();
    x.sort();
    y.sort();
    x.dedup();
    y.dedup();
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_dropped_and_changed_attributes() {
        let sent = json!({
            "schemas": ["x"], "externalId": "stu-1", "active": true,
            "name": {"givenName": "Zoë", "middleName": "van der", "familyName": "Berg"},
            "urn:sisync:schemas:extension:exam:1.0:User": {"extraTimePercent": 25, "fontScale": 1.5, "bsn": "123"}
        });
        let mut stored = sent.clone();
        stored["id"] = json!("p1");
        stored["meta"] = json!({"created": "now"});
        stored["urn:sisync:schemas:extension:exam:1.0:User"]
            .as_object_mut()
            .unwrap()
            .remove("bsn");
        assert_eq!(difference(&sent, &stored), None);
        stored["name"].as_object_mut().unwrap().remove("middleName");
        assert_eq!(
            difference(&sent, &stored).as_deref(),
            Some("dropped name.middleName")
        );
        let mut stored = sent.clone();
        stored
            .as_object_mut()
            .unwrap()
            .remove("urn:sisync:schemas:extension:exam:1.0:User");
        assert_eq!(
            difference(&sent, &stored).as_deref(),
            Some("dropped urn:sisync:schemas:extension:exam:1.0:User")
        );
        let mut stored = sent.clone();
        stored["urn:sisync:schemas:extension:exam:1.0:User"]["fontScale"] = json!(2);
        assert_eq!(
            difference(&sent, &stored).as_deref(),
            Some("changed urn:sisync:schemas:extension:exam:1.0:User:fontScale")
        );
    }

    #[test]
    fn members_compare_as_sets() {
        let sent = json!({"displayName": "H3A", "members": [{"value": "a"}, {"value": "b"}]});
        let stored = json!({"displayName": "H3A", "members": [{"value": "b", "display": "B"}, {"value": "a"}]});
        assert_eq!(difference(&sent, &stored), None);
        let stored = json!({"displayName": "H3A", "members": []});
        assert_eq!(
            difference(&sent, &stored).as_deref(),
            Some("changed members")
        );
        let stored = json!({"displayName": "H3A"});
        assert_eq!(
            difference(&sent, &stored).as_deref(),
            Some("dropped members")
        );
        let emptied = json!({"displayName": "H3A", "members": []});
        assert_eq!(difference(&emptied, &stored), None);
    }
}
