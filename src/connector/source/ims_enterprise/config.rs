//! `[source] kind = "ims-enterprise"`: an IMS Enterprise 1.1 XML file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConnectorConfig;

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
    #[serde(default)]
    pub accommodations: ImsAccommodationElements,
}

/// Which child elements of `person/extension` carry exam accommodations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImsAccommodationElements {
    #[serde(default = "default_ims_extra_time")]
    pub extra_time_percent: String,
    #[serde(default = "default_ims_font_scale")]
    pub font_scale: String,
    #[serde(default = "default_ims_screen_reader")]
    pub screen_reader: String,
}

impl Default for ImsAccommodationElements {
    fn default() -> Self {
        ImsAccommodationElements {
            extra_time_percent: default_ims_extra_time(),
            font_scale: default_ims_font_scale(),
            screen_reader: default_ims_screen_reader(),
        }
    }
}

fn default_ims_extra_time() -> String {
    "extraTimePercent".into()
}
fn default_ims_font_scale() -> String {
    "fontScale".into()
}
fn default_ims_screen_reader() -> String {
    "screenReader".into()
}

impl ConnectorConfig for ImsEnterpriseSource {
    fn resolve_paths(&mut self, abs: &dyn Fn(&mut PathBuf)) {
        abs(&mut self.path);
    }
    fn role_map(&self) -> Option<&BTreeMap<String, String>> {
        Some(&self.role_map)
    }
}
