//! Held plans: the full plan as JSON for the store, the source fingerprint,
//! and `sisync plan approve`, which applies exactly the stored plan when
//! the state has not moved since it was planned.
//!
//! BSNs are never stored: a held plan leaves them out (the stored field
//! hash says "not sent yet"), and the first run after the approval sends
//! them.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Loaded;
use crate::model::Completeness;
use crate::model::TrackedField;
use crate::privacy::exams::{PlatformOffering, PlatformRegistration};
use crate::privacy::policy::{PlatformGroup, PlatformUser};
use crate::store::{
    AuditAction, AuditEntry, AuditKind, AuditOutcome, Direction, FieldHash, FieldHashes, Store,
};
use crate::sync::plan::{
    Action, GateCounts, GroupChange, OfferingChange, Plan, RegistrationChange, State, UserChange,
};

#[derive(Serialize, Deserialize)]
struct WireUser {
    action: Action,
    external_id: String,
    platform_id: Option<String>,
    user: Option<PlatformUser>,
    changed: Vec<String>,
    field_hashes: BTreeMap<String, String>,
    reduces_accommodations: bool,
}

#[derive(Serialize, Deserialize)]
struct WireGroup {
    action: Action,
    external_id: String,
    platform_id: Option<String>,
    group: PlatformGroup,
    changed: Vec<String>,
    field_hashes: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct WireOffering {
    action: Action,
    external_id: String,
    platform_id: Option<String>,
    offering: Option<PlatformOffering>,
    changed: Vec<String>,
    field_hashes: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct WireRegistration {
    action: Action,
    external_id: String,
    platform_id: Option<String>,
    registration: Option<PlatformRegistration>,
    offering: Option<String>,
    changed: Vec<String>,
    field_hashes: BTreeMap<String, String>,
}

/// The exam part of a held plan (absent from plans held before).
#[derive(Serialize, Deserialize)]
struct WireExams {
    offerings: Vec<WireOffering>,
    registrations: Vec<WireRegistration>,
    unchanged_offerings: usize,
    unchanged_registrations: usize,
    held_registrations: usize,
    completeness: Completeness,
}

impl Default for WireExams {
    fn default() -> Self {
        WireExams {
            offerings: Vec::new(),
            registrations: Vec::new(),
            unchanged_offerings: 0,
            unchanged_registrations: 0,
            held_registrations: 0,
            completeness: Completeness::Absent,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WirePlan {
    #[serde(default)]
    exams: WireExams,
    users: Vec<WireUser>,
    groups: Vec<WireGroup>,
    unchanged_users: usize,
    unchanged_groups: usize,
    held_users: usize,
    held_groups: usize,
    known_active_users: usize,
    known_active_groups: usize,
    source_users: usize,
    users_completeness: Completeness,
    groups_completeness: Completeness,
    memberships_completeness: Completeness,
    gate: GateCounts,
}

fn wire_hashes(fh: &FieldHashes) -> BTreeMap<String, String> {
    fh.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn wire_names(v: &[TrackedField]) -> Vec<String> {
    v.iter().map(|f| f.to_string()).collect()
}

fn names(v: Vec<String>) -> Result<Vec<TrackedField>> {
    v.iter()
        .map(|n| TrackedField::parse(n).with_context(|| format!("unknown field `{n}`")))
        .collect()
}

fn hashes(m: BTreeMap<String, String>) -> Result<FieldHashes> {
    m.into_iter()
        .map(|(k, v)| {
            Ok((
                TrackedField::parse(&k).with_context(|| format!("unknown field `{k}`"))?,
                FieldHash::from_hex(&v)
                    .with_context(|| format!("field `{k}`: `{v}` is no hash"))?,
            ))
        })
        .collect()
}

/// The plan as stored. A BSN change is left out (and its stored hash kept
/// as it was), so no BSN enters the state file.
pub fn to_json(plan: &Plan, state: &State) -> Result<String> {
    let users = plan
        .users
        .iter()
        .map(|c| {
            let mut fh = c.field_hashes.clone();
            let mut changed = c.changed.clone();
            if fh.contains_key(&TrackedField::Bsn) || changed.contains(&TrackedField::Bsn) {
                changed.retain(|f| *f != TrackedField::Bsn);
                match state
                    .users
                    .get(&c.external_id)
                    .and_then(|s| s.field_hashes.get(&TrackedField::Bsn))
                {
                    Some(old) => fh.insert(TrackedField::Bsn, *old),
                    None => fh.remove(&TrackedField::Bsn),
                };
            }
            WireUser {
                action: c.action,
                external_id: c.external_id.clone(),
                platform_id: c.platform_id.clone(),
                user: c.user.clone(),
                changed: wire_names(&changed),
                field_hashes: wire_hashes(&fh),
                reduces_accommodations: c.reduces_accommodations,
            }
        })
        .collect();
    let groups = plan
        .groups
        .iter()
        .map(|c| WireGroup {
            action: c.action,
            external_id: c.external_id.clone(),
            platform_id: c.platform_id.clone(),
            group: c.group.clone(),
            changed: wire_names(&c.changed),
            field_hashes: wire_hashes(&c.field_hashes),
        })
        .collect();
    let exams = WireExams {
        offerings: plan
            .offerings
            .iter()
            .map(|c| WireOffering {
                action: c.action,
                external_id: c.external_id.clone(),
                platform_id: c.platform_id.clone(),
                offering: c.offering.clone(),
                changed: wire_names(&c.changed),
                field_hashes: wire_hashes(&c.field_hashes),
            })
            .collect(),
        registrations: plan
            .registrations
            .iter()
            .map(|c| WireRegistration {
                action: c.action,
                external_id: c.external_id.clone(),
                platform_id: c.platform_id.clone(),
                registration: c.registration.clone(),
                offering: c.offering.clone(),
                changed: wire_names(&c.changed),
                field_hashes: wire_hashes(&c.field_hashes),
            })
            .collect(),
        unchanged_offerings: plan.unchanged_offerings,
        unchanged_registrations: plan.unchanged_registrations,
        held_registrations: plan.held_registrations,
        completeness: plan.exams_completeness,
    };
    Ok(serde_json::to_string(&WirePlan {
        exams,
        users,
        groups,
        unchanged_users: plan.unchanged_users,
        unchanged_groups: plan.unchanged_groups,
        held_users: plan.held_users,
        held_groups: plan.held_groups,
        known_active_users: plan.known_active_users,
        known_active_groups: plan.known_active_groups,
        source_users: plan.source_users,
        users_completeness: plan.users_completeness,
        groups_completeness: plan.groups_completeness,
        memberships_completeness: plan.memberships_completeness,
        gate: plan.gate,
    })?)
}

/// A stored plan back.
pub fn from_json(text: &str) -> Result<Plan> {
    let w: WirePlan = serde_json::from_str(text)?;
    let users = w
        .users
        .into_iter()
        .map(|u| {
            Ok(UserChange {
                action: u.action,
                external_id: u.external_id,
                platform_id: u.platform_id,
                user: u.user,
                changed: names(u.changed)?,
                field_hashes: hashes(u.field_hashes)?,
                reduces_accommodations: u.reduces_accommodations,
            })
        })
        .collect::<Result<_>>()?;
    let groups = w
        .groups
        .into_iter()
        .map(|g| {
            Ok(GroupChange {
                action: g.action,
                external_id: g.external_id,
                platform_id: g.platform_id,
                group: g.group,
                changed: names(g.changed)?,
                field_hashes: hashes(g.field_hashes)?,
            })
        })
        .collect::<Result<_>>()?;
    let offerings = w
        .exams
        .offerings
        .into_iter()
        .map(|c| {
            Ok(OfferingChange {
                action: c.action,
                external_id: c.external_id,
                platform_id: c.platform_id,
                offering: c.offering,
                changed: names(c.changed)?,
                field_hashes: hashes(c.field_hashes)?,
            })
        })
        .collect::<Result<_>>()?;
    let registrations = w
        .exams
        .registrations
        .into_iter()
        .map(|c| {
            Ok(RegistrationChange {
                action: c.action,
                external_id: c.external_id,
                platform_id: c.platform_id,
                registration: c.registration,
                offering: c.offering,
                changed: names(c.changed)?,
                field_hashes: hashes(c.field_hashes)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Plan {
        offerings,
        registrations,
        unchanged_offerings: w.exams.unchanged_offerings,
        unchanged_registrations: w.exams.unchanged_registrations,
        held_registrations: w.exams.held_registrations,
        exams_completeness: w.exams.completeness,
        users,
        groups,
        unchanged_users: w.unchanged_users,
        unchanged_groups: w.unchanged_groups,
        held_users: w.held_users,
        held_groups: w.held_groups,
        known_active_users: w.known_active_users,
        known_active_groups: w.known_active_groups,
        source_users: w.source_users,
        users_completeness: w.users_completeness,
        groups_completeness: w.groups_completeness,
        memberships_completeness: w.memberships_completeness,
        gate: w.gate,
        issues: Vec::new(),
    })
}

/// The per-kind counts shown by `plan list` and `plan show`.
pub fn summary(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "users_create": plan.count_users(Action::Create),
        "users_update": plan.count_users(Action::Update),
        "users_deactivate": plan.count_users(Action::Deactivate),
        "groups_create": plan.count_groups(Action::Create),
        "groups_update": plan.count_groups(Action::Update),
        "groups_retire": plan.count_groups(Action::Deactivate),
        "registrations_withdraw": plan.gate.registrations_withdrawn,
        "memberships_removed": plan.gate.memberships_removed,
        "accommodations_lost": plan.gate.accommodations_lost,
    })
}

fn sha256_file(p: &Path) -> Result<String> {
    let mut f = std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// What the plan was made from: the SHA-256 of each source file (a
/// folder: every file in it, by name), or for a REST source the digest of
/// the planned changes (its responses are not kept).
pub fn source_fingerprint(loaded: &Loaded, plan_json: &str) -> Result<String> {
    let Some(path) = crate::connector::source::roster_source(&loaded.config.source).file() else {
        return Ok(format!(
            "responses:sha256:{}",
            hex::encode(Sha256::digest(plan_json.as_bytes()))
        ));
    };
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .flatten()
            .filter(|e| e.path().is_file())
            .map(|e| e.path())
            .collect();
        files.sort();
        let parts: Vec<String> = files
            .iter()
            .map(|f| {
                Ok(format!(
                    "{}:sha256:{}",
                    f.file_name().unwrap_or_default().to_string_lossy(),
                    sha256_file(f)?
                ))
            })
            .collect::<Result<_>>()?;
        Ok(parts.join(" "))
    } else {
        Ok(format!(
            "{}:sha256:{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            sha256_file(path)?
        ))
    }
}

/// What `plan approve` did.
#[derive(Debug)]
pub enum Approval {
    Applied(Box<crate::sync::RosterReport>),
    /// Approved before: nothing to do.
    AlreadyApproved {
        run: Option<i64>,
    },
    /// Refused: the plan is stale. One line for the admin.
    Moved(String),
}

/// `sisync plan approve ID`.
pub async fn approve(
    loaded: &Loaded,
    id: i64,
    actor: &str,
    progress: &dyn crate::sync::Progress,
) -> Result<Approval> {
    let cfg = &loaded.config;
    let _lock = crate::sync::lock::RunLock::acquire(&cfg.state.path)?;
    let mut store = Store::open(&cfg.state.path)?;
    let Some(held) = store.held_plan(id)? else {
        anyhow::bail!(
            "no plan {id} in {}; see `sisync plan list`",
            cfg.state.path.display()
        );
    };
    match held.status.as_str() {
        "approved" => {
            return Ok(Approval::AlreadyApproved {
                run: held.applied_run,
            });
        }
        "superseded" => {
            return Ok(Approval::Moved(format!(
                "plan {id} was superseded by a newer source read{}; see `sisync plan list` for the plan held now, or run `sisync sync roster`",
                held.superseded_by_run
                    .map(|r| format!(" (run {r})"))
                    .unwrap_or_default()
            )));
        }
        _ => {}
    }
    if let Some(w) = cfg.safety.freeze_on(crate::sync::today()) {
        let plan = from_json(held.plan.as_deref().unwrap_or("{}"))
            .with_context(|| format!("plan {id} in the state file is damaged"))?;
        let mut check = plan.clone();
        let d = crate::sync::freeze::defer(&mut check, &State::default(), w);
        if d.total() > 0 {
            return Ok(Approval::Moved(format!(
                "plan {id} takes something away during a {}; nothing was written. Approve it after {}, or end the window in [[safety.freeze]]",
                d, w.until
            )));
        }
    }
    let version = store.state_version()?;
    if version != held.state_version {
        let since: Vec<String> = store
            .recent_runs(50)?
            .into_iter()
            .filter(|r| r.started_at > held.created_at && r.kind != "results")
            .map(|r| format!("run {} ({} {}, {})", r.id, r.kind, r.outcome, r.started_at))
            .collect();
        return Ok(Approval::Moved(format!(
            "the state changed since plan {id} was made ({}): {}; nothing was written. Run `sisync sync roster` for a new plan",
            held.created_at,
            if since.is_empty() {
                "records changed".to_string()
            } else {
                format!("changed by {}", since.join(", "))
            }
        )));
    }
    let body = held
        .plan
        .as_deref()
        .with_context(|| format!("plan {id} has no stored body"))?;
    let plan =
        from_json(body).with_context(|| format!("plan {id} in the state file is damaged"))?;
    let state = State::load(&store)?;
    // its own run kind: an approval is no source read (the incremental
    // REST pull keeps counting from the last roster run)
    let run_id = store.begin_run("plan-approve", actor, false)?;
    store.audit_append(&[AuditEntry {
        actor: actor.to_string(),
        run_id: Some(run_id),
        direction: Direction::Local,
        endpoint: "state".into(),
        action: AuditAction::PlanApprove,
        record_kind: AuditKind::Plan,
        record_id: format!("plan-{id}"),
        fields: String::new(),
        payload_sha256: None,
        outcome: AuditOutcome::Ok,
        detail: Some(held.reason.chars().take(300).collect()),
    }])?;
    let report =
        crate::sync::apply_held(loaded, plan, &state, &mut store, run_id, actor, progress).await;
    match report {
        Ok(r) => {
            store.mark_plan_approved(id, actor, run_id)?;
            Ok(Approval::Applied(Box::new(r)))
        }
        Err(e) => {
            store.fail_run(run_id, &e)?;
            Err(e)
        }
    }
}
