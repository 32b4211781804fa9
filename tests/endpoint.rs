//! One HTTP endpoint config for every HTTP connector: the SCIM platform
//! with OAuth2 client credentials and with mutual TLS, the gradebook with
//! mutual TLS (its token endpoint behind the same gateway).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use common::fake_gradebook::{self, FakeGradebook};
use common::fake_scim::{self, FakeScim};
use common::test_pki::{Pki, pki};
use common::*;
use sisync::config::Loaded;
use sisync::sync::RosterOptions;

/// The OneRoster CSV fixture into `[platform]` (its body after `kind`),
/// then `rest` (more sections).
fn config(dir: &Path, platform: &str, rest: &str) -> Loaded {
    TestConfig::new(dir)
        .institution("Test College", "99AA")
        .platform(Platform::Toml(platform.into()))
        .extra(rest)
        .load()
}

/// The test CA, client certificate and key as files in `dir`.
fn write_pki(p: &Pki, dir: &Path) {
    std::fs::write(dir.join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(dir.join("client.pem"), &p.client_cert_pem).unwrap();
    std::fs::write(dir.join("client.key"), &p.client_key_pem).unwrap();
}

fn addr(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

const TLS: &str =
    "ca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_authenticates_with_oauth2_client_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let scim = FakeScim::start(true).await;
    let origin = scim.base.trim_end_matches("/scim/v2").to_string();
    std::fs::write(dir.path().join("scim-secret"), fake_scim::CLIENT_SECRET).unwrap();
    let platform = |id: &str| {
        format!(
            "kind = \"scim\"\nbase_url = \"{}\"\ntimeout = \"5s\"\n\n[platform.auth]\nkind = \"oauth2\"\ntoken_url = \"{origin}/token\"\nclient_id = \"{id}\"\nclient_secret_file = \"scim-secret\"\nscope = \"scim:write\"\n",
            scim.base
        )
    };
    let l = config(dir.path(), &platform(fake_scim::CLIENT_ID), "");
    let r = sync(&l, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert_eq!(scim.users().len(), 42, "every user written with the token");
    assert_eq!(
        scim.inner.lock().unwrap().token_scopes,
        vec!["scim:write".to_string()],
        "one token for the run, with the configured scope"
    );

    // a client the token endpoint does not know: the link check says so
    let l = config(dir.path(), &platform("someone-else"), "");
    let checks = sisync::sync::connect_checks(&l).await;
    let (name, result) = &checks[0];
    assert_eq!(name, "platform link");
    let e = format!("{:#}", result.as_ref().unwrap_err());
    assert!(e.contains("refused the client credentials"), "{e}");
    assert!(!e.contains(fake_scim::CLIENT_SECRET), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_presents_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pki(&p, dir.path());
    let scim = FakeScim::start(true).await;
    let (port, passed) = p.tls_front(addr(&scim.base)).await;
    std::fs::write(dir.path().join("scim-token"), fake_scim::TOKEN).unwrap();
    let platform = |tls: &str| {
        format!(
            "kind = \"scim\"\nbase_url = \"https://localhost:{port}/scim/v2\"\ntimeout = \"5s\"\n\n[platform.auth]\nkind = \"bearer\"\ntoken_file = \"scim-token\"\n\n[platform.tls]\n{tls}"
        )
    };
    let l = config(dir.path(), &platform(TLS), "");
    let r = sync(&l, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert_eq!(scim.users().len(), 42);
    assert!(passed.load(Ordering::SeqCst) >= 1);

    // the same platform without a client certificate: refused in the
    // handshake, nothing reaches the service
    let before = (passed.load(Ordering::SeqCst), scim.requests().len());
    let l = config(dir.path(), &platform("ca_file = \"ca.pem\"\n"), "");
    let checks = sisync::sync::connect_checks(&l).await;
    assert!(checks[0].1.is_err(), "{:?}", checks[0].1);
    assert_eq!(
        (passed.load(Ordering::SeqCst), scim.requests().len()),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gradebook_presents_a_client_certificate_to_its_token_endpoint_too() {
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    write_pki(&p, dir.path());
    let gb = FakeGradebook::start().await;
    let (port, passed) = p.tls_front(addr(&gb.base)).await;
    std::fs::write(dir.path().join("gb-secret"), fake_gradebook::CLIENT_SECRET).unwrap();
    let results = |tls: &str| {
        format!(
            "[results.source]\nkind = \"qti-folder\"\npath = \"inbox\"\n\n[results.sink]\nkind = \"oneroster-rest\"\nbase_url = \"https://localhost:{port}\"\nmax_retries = 0\n\n[results.sink.auth]\nkind = \"oauth2\"\ntoken_url = \"https://localhost:{port}/token\"\nclient_id = \"{}\"\nclient_secret_file = \"gb-secret\"\n\n[results.sink.tls]\n{tls}",
            fake_gradebook::CLIENT_ID
        )
    };
    let csv_drop = "kind = \"csv-drop\"\npath = \"drop\"\n";
    let l = config(dir.path(), csv_drop, &results(TLS));
    let checks = sisync::sync::results::connect_checks(&l).await;
    let (name, result) = &checks[0];
    assert_eq!(name, "results out");
    let line = result.as_ref().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(line.contains("authenticated"), "{line}");
    assert_eq!(gb.with(|g| g.token_requests), 1);
    assert!(passed.load(Ordering::SeqCst) >= 2, "token and gradebook");

    let l = config(dir.path(), csv_drop, &results("ca_file = \"ca.pem\"\n"));
    let checks = sisync::sync::results::connect_checks(&l).await;
    assert!(checks[0].1.is_err());
    assert_eq!(
        gb.with(|g| g.token_requests),
        1,
        "no token without a certificate"
    );
}
