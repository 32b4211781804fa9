//! What a SCIM service provider says it supports, read once per run from
//! `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes` (RFC 7643
//! §5–7). A platform that lacks what the allowed fields need is refused
//! before the first write instead of dropping the data silently.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Shape, USER_SCHEMA};

/// Discovered capabilities. `None` means the platform did not say (no
/// `/Schemas` endpoint, say): read-back verification covers those cases.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Capabilities {
    pub patch: bool,
    pub filter: bool,
    pub bulk: bool,
    /// The core User schema has `name.middleName` (the tussenvoegsel).
    pub middle_name: Option<bool>,
    /// Schema URN → attribute names, from `/Schemas`; None without it.
    pub schemas: Option<BTreeMap<String, Vec<String>>>,
    /// Extension schema URNs the `User` resource type lists.
    pub user_extensions: Option<Vec<String>>,
}

/// The resources of a list answer (`Resources`) or a bare array.
fn resources(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Resources"))
            .and_then(|(_, v)| v.as_array())
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn names(attrs: Option<&Value>) -> Vec<String> {
    attrs
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| get(x, "name").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Capabilities {
    pub fn from_service_provider_config(v: &Value) -> Capabilities {
        let flag = |k: &str| {
            get(v, k)
                .and_then(|x| get(x, "supported"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        Capabilities {
            patch: flag("patch"),
            filter: flag("filter"),
            bulk: flag("bulk"),
            ..Capabilities::default()
        }
    }

    pub fn read_schemas(&mut self, v: &Value) {
        let mut schemas = BTreeMap::new();
        for s in resources(v) {
            let Some(id) = get(s, "id").and_then(Value::as_str) else {
                continue;
            };
            let attrs = get(s, "attributes");
            if id == USER_SCHEMA {
                let name = attrs.and_then(Value::as_array).and_then(|a| {
                    a.iter().find(|x| {
                        get(x, "name")
                            .and_then(Value::as_str)
                            .is_some_and(|n| n.eq_ignore_ascii_case("name"))
                    })
                });
                self.middle_name = Some(name.is_some_and(|n| {
                    names(get(n, "subAttributes"))
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case("middleName"))
                }));
            }
            schemas.insert(id.to_string(), names(attrs));
        }
        self.schemas = Some(schemas);
    }

    pub fn read_resource_types(&mut self, v: &Value) {
        let users = resources(v).into_iter().find(|r| {
            get(r, "schema").and_then(Value::as_str) == Some(USER_SCHEMA)
                || get(r, "name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("User"))
        });
        if let Some(u) = users {
            self.user_extensions = Some(
                get(u, "schemaExtensions")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| get(x, "schema").and_then(Value::as_str))
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            );
        }
    }

    /// The extension's attributes as the platform declares them: None
    /// when it did not say, an empty list when the schema is absent.
    pub fn extension_attributes(&self, urn: &str) -> Option<Vec<String>> {
        if let Some(exts) = &self.user_extensions {
            if !exts.iter().any(|e| e == urn) {
                return Some(Vec::new());
            }
        }
        let schemas = self.schemas.as_ref()?;
        match schemas.get(urn) {
            Some(a) => Some(a.clone()),
            // listed on the resource type but not described: trust it
            None if self.user_extensions.is_some() => None,
            None => Some(Vec::new()),
        }
    }

    /// One line per capability the allowed fields need and the platform
    /// lacks, with what to do.
    pub fn missing(&self, shape: &Shape, needs: &ScimNeeds) -> Vec<String> {
        let urn = shape.urn.as_str();
        let mut out = Vec::new();
        if !needs.extension.is_empty() {
            match self.extension_attributes(urn) {
                Some(a) if a.is_empty() => out.push(format!(
                    "the platform does not have the extension schema {urn} on Users, so it would drop {}; load deploy/scim/exam-extension.json on the platform (or set platform.extension_urn to the URN it has), or remove those fields from privacy.fields",
                    needs.extension.join(", ")
                )),
                Some(a) => {
                    for n in needs.extension.iter().map(|n| shape.attr(n)) {
                        if !a.iter().any(|x| x.eq_ignore_ascii_case(n)) {
                            out.push(format!(
                                "the platform's extension schema {urn} has no attribute {n}; load the current deploy/scim/exam-extension.json on the platform, or remove the field from privacy.fields"
                            ));
                        }
                    }
                }
                None => {}
            }
        }
        if needs.middle_name && self.middle_name == Some(false) {
            out.push(
                "the platform's User schema has no name.middleName, so tussenvoegsels (\"van der\") would be lost; ask the vendor to support it, or set platform.middle_name = \"in-family-name\"".to_string(),
            );
        }
        out
    }

    /// For `check-config --connect`.
    pub fn summary(&self, urn: &str) -> String {
        let yn = |b: bool| if b { "yes" } else { "no" };
        let ext = match self.extension_attributes(urn) {
            Some(a) if a.is_empty() => "absent".to_string(),
            Some(a) => format!("present ({})", a.join(", ")),
            None => "not declared (checked by reading back each write)".to_string(),
        };
        format!(
            "PATCH {}, filter {}, bulk {}, name.middleName {}, extension {urn}: {ext}",
            if self.patch {
                "supported"
            } else {
                "not supported (GET + PUT)"
            },
            yn(self.filter),
            yn(self.bulk),
            match self.middle_name {
                Some(b) => yn(b),
                None => "not declared",
            },
        )
    }
}

/// What the allowed fields need of the platform.
#[derive(Debug, Clone, Default)]
pub struct ScimNeeds {
    /// Extension attribute names.
    pub extension: Vec<&'static str>,
    pub middle_name: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URN: &str = "urn:sisync:schemas:extension:exam:1.0:User";

    fn shape() -> Shape {
        Shape::default()
    }

    fn needs() -> ScimNeeds {
        ScimNeeds {
            extension: vec!["role", "extraTimePercent"],
            middle_name: true,
        }
    }

    #[test]
    fn a_platform_without_the_extension_is_named_per_capability() {
        let mut c = Capabilities::from_service_provider_config(
            &json!({"patch": {"supported": true}, "filter": {"supported": false}}),
        );
        assert!(c.patch && !c.filter);
        c.read_schemas(&json!({"Resources": [
            {"id": USER_SCHEMA, "attributes": [{"name": "userName"}, {"name": "name", "subAttributes": [{"name": "givenName"}, {"name": "familyName"}]}]}
        ]}));
        let m = c.missing(&shape(), &needs());
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].contains("does not have the extension schema"));
        assert!(m[0].contains("deploy/scim/exam-extension.json"));
        assert!(m[1].contains("name.middleName"));
    }

    #[test]
    fn a_declared_extension_with_a_missing_attribute() {
        let mut c = Capabilities::default();
        c.read_schemas(&json!([
            {"id": USER_SCHEMA, "attributes": [{"name": "name", "subAttributes": [{"name": "middleName"}]}]},
            {"id": URN, "attributes": [{"name": "role"}]}
        ]));
        c.read_resource_types(&json!({"Resources": [{"name": "User", "schema": USER_SCHEMA, "schemaExtensions": [{"schema": URN}]}]}));
        let m = c.missing(&shape(), &needs());
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("no attribute extraTimePercent"));
        assert!(c.summary(URN).contains("present (role)"));
    }

    #[test]
    fn a_platform_that_says_nothing_is_not_refused() {
        let c = Capabilities::default();
        assert!(c.missing(&shape(), &needs()).is_empty());
    }

    #[test]
    fn mapped_attribute_names_are_looked_for() {
        let mut c = Capabilities::default();
        c.read_schemas(&json!([
            {"id": USER_SCHEMA, "attributes": [{"name": "name", "subAttributes": [{"name": "middleName"}]}]},
            {"id": "urn:ietf:params:scim:schemas:extension:vendor:2.0:User", "attributes": [{"name": "role"}, {"name": "extraTime"}]}
        ]));
        let mut s = Shape {
            urn: "urn:ietf:params:scim:schemas:extension:vendor:2.0:User".into(),
            ..Shape::default()
        };
        assert_eq!(c.missing(&s, &needs()).len(), 1);
        s.attributes
            .insert("extraTimePercent".into(), "extraTime".into());
        assert!(c.missing(&s, &needs()).is_empty());
    }
}
