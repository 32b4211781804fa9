//! Forgetting what was sent: `sisync reconcile --fix` drops stored field
//! hashes so that the planner sees those fields as changed and the next
//! run sends them again, through the safety gate like any change.

use anyhow::Result;
use rusqlite::{OptionalExtension, params};

use super::{RecordKind, Store};
use crate::model::TrackedField;

impl Store {
    /// Forget `fields` (every field when empty) of one record.
    pub fn forget_fields(
        &mut self,
        kind: RecordKind,
        id: &str,
        fields: &[TrackedField],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        let fh: Option<String> = tx
            .query_row(
                "SELECT field_hashes FROM records WHERE kind = ?1 AND sourced_id = ?2",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(fh) = fh else {
            return Ok(());
        };
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&fh).unwrap_or_default();
        if fields.is_empty() {
            map.clear();
        } else {
            map.retain(|k, _| !fields.iter().any(|f| f.as_str() == k));
        }
        tx.execute(
            "UPDATE records SET field_hashes = ?3, hash = '' WHERE kind = ?1 AND sourced_id = ?2",
            params![
                kind.as_str(),
                id,
                serde_json::Value::Object(map).to_string()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The groups whose stored members include `person_id`.
    pub fn groups_of(&self, person_id: &str) -> Result<Vec<String>> {
        super::groups_with_member(&self.conn, person_id)
    }

    /// A user came back under a new platform id: the groups that list it
    /// still hold the old one, so their members are sent again.
    pub fn resend_groups_of(&mut self, person_id: &str) -> Result<()> {
        for g in self.groups_of(person_id)? {
            self.forget_fields(RecordKind::Group, &g, &[TrackedField::Members])?;
        }
        Ok(())
    }
}
