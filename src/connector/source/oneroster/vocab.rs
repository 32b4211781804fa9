//! The OneRoster vocabulary shared by the CSV and the REST source: the
//! role map, `status`, the accommodation values, and the one rule for a
//! user's role, so both read a person the same way.

use std::collections::BTreeMap;

use crate::model::{Accommodations, Role, Status};

/// OneRoster role names → sisync roles: student, teacher and proctor by
/// default, plus the configured `role_map`. Shared by the CSV and REST
/// bindings.
pub(crate) fn role_map(configured: &BTreeMap<String, String>) -> BTreeMap<String, Role> {
    Role::map(
        &[
            ("student", Role::Student),
            ("teacher", Role::Teacher),
            ("proctor", Role::Proctor),
        ],
        configured
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str())),
    )
}

/// `status`: active unless `tobedeleted` (1.1/1.2) or `inactive` (1.0);
/// absent means active.
pub(crate) fn status_of(value: Option<&str>) -> Result<Status, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("active") => Ok(Status::Active),
        Some("tobedeleted") | Some("inactive") => Ok(Status::ToBeDeleted),
        Some(other) => Err(format!("status {other:?} is not active or tobedeleted")),
    }
}

/// What a user's role means for the sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleRule {
    /// Sync the person; `None`: the role stays as last sent.
    Sync(Option<Role>),
    /// Report and hold the person (an active user without a role).
    Hold,
    /// Not synced: a role sisync does not map (guardian, parent, other staff).
    Ignore,
}

/// The one rule for a user's role (`role_name` lower-case, empty when the
/// record names none). A record without a role keeps the role last sent
/// when it is a delta or when the user is leaving (a leaver is deactivated
/// whatever the role was); an active user without one in a full read is
/// held, never guessed.
pub(crate) fn role_rule(
    map: &BTreeMap<String, Role>,
    role_name: &str,
    status: Status,
    delta: bool,
) -> RoleRule {
    match map.get(role_name) {
        Some(r) => RoleRule::Sync(Some(*r)),
        None if role_name.is_empty() && (delta || status == Status::ToBeDeleted) => {
            RoleRule::Sync(None)
        }
        None if role_name.is_empty() => RoleRule::Hold,
        None => RoleRule::Ignore,
    }
}

/// Parse the three accommodation values (extra time, font scale, screen
/// reader), each given as (name for messages, raw value). Shared by the
/// sources so that every source accepts and refuses the same values.
pub(crate) fn parse_accommodation_values(
    [
        (extra_name, extra),
        (font_name, font),
        (reader_name, reader),
    ]: [(&str, Option<&str>); 3],
) -> Result<Accommodations, String> {
    let mut a = Accommodations::default();
    if let Some(v) = extra {
        let n: u32 = v
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("{extra_name} {v:?} is not a whole percentage"))?;
        if n > 300 {
            return Err(format!("{extra_name} {n} is above 300 %"));
        }
        a.extra_time_percent = Some(n);
    }
    if let Some(v) = font {
        let f: f64 = v
            .replace(',', ".")
            .parse()
            .map_err(|_| format!("{font_name} {v:?} is not a number"))?;
        if !(0.5..=5.0).contains(&f) {
            return Err(format!("{font_name} {f} is outside 0.5..5.0"));
        }
        a.font_scale = Some(f);
    }
    if let Some(v) = reader {
        a.screen_reader = Some(match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "ja" => true,
            "false" | "0" | "no" | "nee" => false,
            _ => return Err(format!("{reader_name} {v:?} is not true or false")),
        });
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_role_rule_for_csv_and_rest() {
        let map = role_map(&BTreeMap::from([("aide".into(), "assessor".into())]));
        let active = Status::Active;
        let leaving = Status::ToBeDeleted;
        assert_eq!(
            role_rule(&map, "aide", active, false),
            RoleRule::Sync(Some(Role::Assessor))
        );
        assert_eq!(
            role_rule(&map, "student", leaving, false),
            RoleRule::Sync(Some(Role::Student))
        );
        // a leaver without a role is deactivated, its role kept
        assert_eq!(role_rule(&map, "", leaving, false), RoleRule::Sync(None));
        assert_eq!(role_rule(&map, "", active, true), RoleRule::Sync(None));
        assert_eq!(role_rule(&map, "", active, false), RoleRule::Hold);
        assert_eq!(role_rule(&map, "guardian", active, false), RoleRule::Ignore);
        assert_eq!(status_of(Some("Inactive")), Ok(Status::ToBeDeleted));
        assert_eq!(status_of(None), Ok(Status::Active));
        assert!(status_of(Some("gone")).is_err());
    }
}
