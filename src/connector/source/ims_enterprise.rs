//! IMS Enterprise 1.1 XML (the format Moodle's "IMS Enterprise file"
//! enrolment plugin reads): one `<enterprise>` document holding
//! `<properties>`, `<person>`, `<group>` and `<membership>` records.
//!
//! # Reading
//! The file is streamed with quick-xml: one event loop, one reused buffer,
//! nothing but the records themselves kept, so memory follows the roster,
//! not the file. Element names match by local name (a namespace prefix or a
//! default namespace is fine). The line of each record is counted while
//! reading (newlines in the bytes the parser consumes).
//!
//! The code: `parser` (the event loop) hands `records` to the
//! `builder`, which keeps them compactly (`tables`) and makes the
//! roster.
//!
//! # Safety
//! No DTD and no entity is ever resolved. A `<!DOCTYPE` with an internal
//! subset (`[...]`) or any `<!ENTITY` declaration fails the read at once
//! (billion laughs, XXE). A DOCTYPE with only an external id is allowed and
//! ignored: it is never fetched. Only the five predefined entities
//! (`&lt;` `&gt;` `&amp;` `&apos;` `&quot;`) and numeric character
//! references are unescaped; any other entity reference is an error. A single
//! token larger than 16 MiB fails the read (no unbounded buffer). A
//! document that is not well-formed fails the whole read with
//! `file:line: what; what to do`.
//!
//! # Mapping
//! - Ids: `sourcedid/id`. With `source.qualify_ids = true` every id, also
//!   in references, becomes `source:id` (`sourcedid/source`, then `:`, then
//!   the id). The rule never depends on the data: a document that suddenly
//!   holds a second source does not rename everybody. Without qualification
//!   an id used by two records of one kind is a duplicate (reported, the
//!   second skipped).
//! - `person`: `name/n/given`, `name/n/family`; `name/n/partname` with
//!   `partnametype` Prefix, Tussenvoegsel, Voorvoegsel, Infix or Middlename
//!   → middle name (the Dutch *tussenvoegsel*); `email`; `userid` with
//!   `useridtype` studentnumber, studentid, employeenumber, staffcode,
//!   identifier, leerlingnummer or personeelsnummer → identifier, any other
//!   `userid` → username. Role: the `institutionrole` (`primaryrole="Yes"`
//!   first) looked up in the role map; a person without one gets the role of
//!   their first active, mapped membership `roletype`. An institution role that does
//!   not map (Administrator, Other, ...) means the person is not synced
//!   (counted as ignored).
//! - Accommodations: children of `person/extension` named by
//!   `source.accommodations` (default `extraTimePercent`, `fontScale`,
//!   `screenReader`), same values as the OneRoster source accepts.
//! - `group`: a group whose `grouptype/typevalue` is School, District,
//!   Organization/Organisation, OrgUnit, Institution, Department, Bestuur or
//!   Vestiging becomes an `Org` (kind = the typevalue lowercased, identifier
//!   = `org/id` such as the BRIN + location code, name =
//!   `description/long`, else `short`, else `org/orgname`); every other
//!   group is a class: title = `description/long` (else `short`, `full`),
//!   code = `description/short`. `relationship relation="1"` (parent) names
//!   the class's org, or its course when the parent is not an org.
//!   Academic sessions cannot be expressed: `sessions` stays empty.
//! - `membership`: a person `member` (`idtype` 1 or absent) of a class,
//!   one per `role`: `roletype` via the role map (01 → student, 02 →
//!   teacher; 03–08 only when mapped), `status` 0 or role `recstatus` 3 →
//!   to be deleted. Membership ids are made up as `group/person/roletype`.
//!   A person member of an org places the person in that org (first one =
//!   primary org). A group member (`idtype` 2) of an org gives a class
//!   without parent its org; other group members are ignored.
//! - `recstatus` (attribute, or child element): 1 add, 2 update, 3 delete
//!   (→ to be deleted: the platform deactivates).
//!
//!   In a delta, a membership of a group that the document does not hold
//!   is taken as a class membership: to place a new person in a school, a
//!   delta repeats the school's `group` record (`recstatus="2"`).
//!
//! # Bulk or delta
//! A document is a delta when `properties/type` says delta, event,
//! incremental or update, or when it holds records and every person and
//! group carries a `recstatus`. Otherwise it is bulk (a snapshot): persons
//! and classes absent from it leave. A bulk document without any group
//! (or membership) element leaves classes (memberships) as they are.
//!
//! # Skipped records
//! A record without sourcedid, a duplicate id, a bad recstatus, a person
//! without names or with a bad accommodation value, a member pointing at an
//! unknown person or group: reported as `file:line: record ID: reason` and
//! skipped. A skipped person or class with an id is *held* (never
//! deactivated for it); damaged members hold their class.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::{FxHashMap as HashMap, FxHashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::connector::source::accommodation_keys::{AccommodationKeys, Ims};
use crate::connector::xml_input::{Counting, Utf8Xml, count_newlines, doctype_refused, push_ref};
use crate::model::{
    Completeness, Group, Membership, Org, Person, Role, Roster, SourceIssue, Status,
};
use config::ImsEnterpriseSource;

mod builder;
pub mod config;
mod parser;
mod records;
mod tables;
super::file_roster_source!(
    ImsEnterpriseSource,
    ImsEnterprise,
    "ims-enterprise",
    "IMS Enterprise XML file"
);

#[cfg(test)]
mod tests;

use builder::*;
use records::*;
use tables::*;

/// Group types that are organisations, not classes (lowercase).
const ORG_TYPES: &[&str] = &[
    "school",
    "district",
    "organization",
    "organisation",
    "orgunit",
    "institution",
    "department",
    "bestuur",
    "vestiging",
];

const MIDDLE_NAME_PARTS: &[&str] = &[
    "prefix",
    "tussenvoegsel",
    "voorvoegsel",
    "infix",
    "middlename",
];

const IDENTIFIER_TYPES: &[&str] = &[
    "studentnumber",
    "studentid",
    "employeenumber",
    "staffcode",
    "identifier",
    "leerlingnummer",
    "personeelsnummer",
];

/// Reads an IMS Enterprise 1.1 XML document into a canonical [`Roster`].
pub struct ImsEnterprise {
    path: PathBuf,
    role_map: BTreeMap<String, Role>,
    qualify_ids: bool,
    accommodations: AccommodationKeys<Ims>,
}

impl ImsEnterprise {
    pub fn new(cfg: &ImsEnterpriseSource) -> ImsEnterprise {
        let role_map = Role::map(
            &[
                ("01", Role::Student),
                ("02", Role::Teacher),
                ("student", Role::Student),
                ("learner", Role::Student),
                ("faculty", Role::Teacher),
                ("instructor", Role::Teacher),
            ],
            cfg.role_map
                .iter()
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.as_str())),
        );
        ImsEnterprise {
            path: cfg.path.clone(),
            role_map,
            qualify_ids: cfg.qualify_ids,
            accommodations: cfg.accommodations.clone(),
        }
    }

    pub fn location(&self) -> &Path {
        &self.path
    }

    /// What is at the configured path, reading only up to the first record:
    /// "IMS Enterprise 1.1 XML, 1234 bytes, datasource X" (for `check-config`).
    pub fn probe(&self) -> Result<String> {
        let size = std::fs::metadata(&self.path)
            .with_context(|| {
                format!(
                    "IMS Enterprise file {} not found; check source.path",
                    self.path.display()
                )
            })?
            .len();
        let mut props = Properties::default();
        parser::run_file(&self.path, &mut |_, ev| match ev {
            Item::Properties(pr) => {
                props = pr;
                false
            }
            Item::Person(_) | Item::Group(_) | Item::Member(_) | Item::Membership(_) => false,
        })?;
        let mut out = format!("IMS Enterprise 1.1 XML, {size} bytes");
        if let Some(ds) = props.datasource.filter(|s| !s.is_empty()) {
            out.push_str(&format!(", datasource {ds}"));
        }
        if let Some(t) = props.kind.filter(|s| !s.is_empty()) {
            out.push_str(&format!(", type {t}"));
        }
        Ok(out)
    }

    /// Read the whole document on the calling thread. `progress` is
    /// called with records read.
    pub fn read(&self, progress: &dyn Fn(u64)) -> Result<Roster> {
        let mut b = Builder::new(self, self.path.display().to_string());
        parser::run_file(&self.path, &mut |line, item| {
            b.feed(line, item, progress);
            true
        })?;
        progress(b.records);
        Ok(b.finish())
    }
}
