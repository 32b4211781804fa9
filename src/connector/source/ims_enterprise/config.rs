//! `[source] kind = "ims-enterprise"`: an IMS Enterprise 1.1 XML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConnectorConfig;
use crate::connector::source::accommodation_keys::{AccommodationKeys, Ims};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImsEnterpriseSource {
    /// The IMS Enterprise 1.1 XML document.
    pub path: PathBuf,
    /// Extra IMS roles to sync, mapped to a sisync role. Keys are membership
    /// `roletype` codes (`"08" = "assessor"`) or `institutionroletype` names
    /// (`staff = "proctor"`). 01/Student/Learner → student and
    /// 02/Faculty/Instructor → teacher map by default.
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// `true`: canonical ids are `source:id` (for documents that merge
    /// several SIS whose ids may collide); `false` (default): `id` alone.
    #[serde(default)]
    pub qualify_ids: bool,
    /// Which child elements of `person/extension` carry exam accommodations.
    #[serde(default)]
    pub accommodations: AccommodationKeys<Ims>,
}

impl ConnectorConfig for ImsEnterpriseSource {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
}
