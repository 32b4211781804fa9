//! Source `ims-enterprise` in `check-config`. That the IMS Enterprise
//! fixture syncs to the same SCIM platform as the OneRoster fixture it
//! was made from is in `tests/conformance.rs`.

mod common;

use std::path::Path;

use common::fake_scim::TOKEN;
use common::*;
use sisync::config::Loaded;

/// A SCIM config reading the IMS fixture (the proctor is IMS "Staff").
fn ims_config(dir: &Path, xml: &Path, base: &str) -> Loaded {
    let source = format!(
        "kind = \"ims-enterprise\"\npath = \"{}\"\nrole_map = {{ staff = \"proctor\" }}\n",
        xml.display()
    );
    scim_config_with_source(dir, &source, base, TOKEN, "")
}

#[test]
fn check_config_probes_the_ims_file() {
    let dir = tempfile::tempdir().unwrap();
    let xml = repo().join("fixtures/ims-enterprise/roster.xml");
    let out = sisync(&dir.path().join("sisync.toml"), &["check-config"]);
    // no config yet: exit 2
    assert_eq!(out.status.code(), Some(2));
    ims_config(dir.path(), &xml, "http://127.0.0.1:9/scim/v2");
    let out = sisync(&dir.path().join("sisync.toml"), &["check-config"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_has(&stdout, &["ims-enterprise", "IMS Enterprise 1.1 XML"]);

    let bad = dir.path().join("xxe.xml");
    std::fs::copy(
        repo().join("fixtures/ims-enterprise/external-entity.xml"),
        &bad,
    )
    .unwrap();
    ims_config(dir.path(), &bad, "http://127.0.0.1:9/scim/v2");
    let out = sisync(&dir.path().join("sisync.toml"), &["check-config"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("xxe.xml:2:") && all.contains("DTD"), "{all}");
}
