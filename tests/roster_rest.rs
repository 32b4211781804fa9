//! OneRoster 1.2 REST source against an in-process fake OneRoster service
//! on 127.0.0.1 (serving the roster of `fixtures/oneroster-1.2`), synced
//! into the fake SCIM server.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::fake_oneroster::{self, CLIENT_BASIC, SIS_TOKEN, Shared};
use common::fake_scim::{FakeScim, TOKEN};
use common::*;
use serde_json::{Value, json};
use sisync::connector::source::oneroster::config::OneRosterCsvSource;
use sisync::connector::source::oneroster::csv::OneRosterCsv;
use sisync::sync::RosterOptions;

/// The fixture roster as OneRoster 1.2 JSON, with a guardian (not synced).
fn fixture_json() -> BTreeMap<String, Vec<Value>> {
    let r = OneRosterCsv::new(&OneRosterCsvSource {
        path: repo().join("fixtures/oneroster-1.2"),
        role_map: Default::default(),
        accommodations: Default::default(),
    })
    .read(&|_| {})
    .unwrap();
    let mut d = school::oneroster_json(&r);
    d.get_mut("users").unwrap().push(json!({"sourcedId": "grd-1", "status": "active", "dateLastModified": school::REST_MODIFIED, "givenName": "G", "familyName": "H",
                      "roles": [{"roleType": "primary", "role": "guardian", "org": {"sourcedId": "org-99AA00"}}]}));
    d
}

async fn start_sis() -> (Shared, String) {
    fake_oneroster::start(fixture_json()).await
}

/// The fake SIS (and its URL), a fake SCIM platform and a temporary
/// directory for the config.
async fn bed() -> (Shared, String, FakeScim, tempfile::TempDir) {
    let (sis, sis_url) = start_sis().await;
    let scim = FakeScim::start(true).await;
    (sis, sis_url, scim, tempfile::tempdir().unwrap())
}

/// The line a full run that must fail ends with; nothing reached the
/// platform.
async fn full_run_fails(cfg: &sisync::config::Loaded, scim: &FakeScim) -> String {
    let msg = sync_error(cfg, full()).await;
    assert_eq!(scim.requests().len(), 0, "{msg}");
    msg
}

fn rest_config(dir: &std::path::Path, sis: &str, scim: &str) -> sisync::config::Loaded {
    let source = token_source(
        dir,
        sis,
        "page_size = 7\ntimeout = \"5s\"\nmax_retries = 1\n",
    );
    scim_config_with_source(dir, &source, scim, TOKEN, "")
}

/// A `[source]` body reading the SIS at `sis` with the bearer token (in a
/// file in `dir`) and `keys`.
fn token_source(dir: &std::path::Path, sis: &str, keys: &str) -> String {
    std::fs::write(dir.join("sis-token"), SIS_TOKEN).unwrap();
    format!("kind = \"oneroster-rest\"\nbase_url = \"{sis}\"\ntoken_file = \"sis-token\"\n{keys}")
}

/// stu-1009 is renamed in the SIS (and modified after every earlier
/// read); the requests seen so far are forgotten.
fn rename_stu_1009(sis: &Shared) {
    let mut s = sis.lock().unwrap();
    s.requests.clear();
    let u = s
        .data
        .get_mut("users")
        .unwrap()
        .iter_mut()
        .find(|u| u["sourcedId"] == "stu-1009")
        .unwrap();
    u["familyName"] = json!("Brouwer");
    u["dateLastModified"] = json!("2099-01-01T00:00:00.000Z");
}

/// Users by externalId without the platform's ids.
fn users(server: &FakeScim) -> BTreeMap<String, Value> {
    server
        .users()
        .into_iter()
        .map(|mut u| {
            u.as_object_mut().unwrap().remove("id");
            (u["externalId"].as_str().unwrap().to_string(), u)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_roster_gives_the_same_platform_as_csv_then_pulls_only_changes() {
    let (sis, sis_url) = start_sis().await;
    let via_rest = FakeScim::start(true).await;
    let via_csv = FakeScim::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = rest_config(dir.path(), &sis_url, &via_rest.base);
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0, "{:?}", r.issues);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(r.ignored, 1, "the guardian");

    let dir2 = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir2.path());
    sync(
        &scim_config(dir2.path(), &export, &via_csv.base, TOKEN, ""),
        RosterOptions::default(),
    )
    .await;
    assert_eq!(users(&via_rest), users(&via_csv));
    assert_eq!(via_rest.groups().len(), via_csv.groups().len());
    let members = |s: &FakeScim| -> usize {
        s.groups()
            .iter()
            .map(|g| g["members"].as_array().unwrap().len())
            .sum()
    };
    assert_eq!(members(&via_rest), 80);

    // paged: 43 users at 7 a page is 7 pages, each with limit and offset
    {
        let s = sis.lock().unwrap();
        let user_pages: Vec<&String> = s
            .requests
            .iter()
            .filter(|(e, _)| e == "users")
            .map(|(_, q)| q)
            .collect();
        assert_eq!(user_pages.len(), 7, "{user_pages:?}");
        for (i, offset) in (0..43).step_by(7).enumerate() {
            assert_eq!(
                user_pages
                    .iter()
                    .filter(|q| q.contains("limit=7") && q.ends_with(&format!("offset={offset}")))
                    .count(),
                1,
                "page {i}: {user_pages:?}"
            );
        }
        assert!(
            user_pages.iter().all(|q| !q.contains("filter")),
            "first run is a full pull"
        );
    }

    // one change in the SIS: the next run asks only for changes
    rename_stu_1009(&sis);
    via_rest.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert!(
        r.source_format.contains("changes since"),
        "{}",
        r.source_format
    );
    let o = r.outcome.unwrap();
    assert_eq!(
        (o.users.updated, o.users.deactivated, o.groups.updated),
        (1, 0, 0)
    );
    let w = via_rest.writes();
    assert_eq!(w.len(), 1);
    assert!(w[0].body.contains("Brouwer"));
    let s = sis.lock().unwrap();
    assert!(
        s.requests
            .iter()
            .all(|(_, q)| q.contains("filter=dateLastModified>'")),
        "{:?}",
        s.requests
    );
    assert_eq!(
        s.requests.iter().filter(|(e, _)| e == "users").count(),
        1,
        "one short page of changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_page_leaves_the_platform_untouched() {
    let (sis, sis_url, scim, dir) = bed().await;
    let cfg = rest_config(dir.path(), &sis_url, &scim.base);
    sync(&cfg, RosterOptions::default()).await;
    scim.clear_requests();
    sis.lock().unwrap().fail = Some(("users".into(), 14));
    // --full: a full pull in which everyone after page 2 would look gone
    let msg = sync_error(&cfg, full()).await;
    assert_has(&msg, &["HTTP 500", "offset=14", "nothing was sent"]);
    assert!(!msg.contains(SIS_TOKEN));
    assert_eq!(scim.requests().len(), 0, "no request to the platform");
    let store = sisync::store::Store::open(&dir.path().join("state.db")).unwrap();
    assert_eq!(store.recent_runs(1).unwrap()[0].outcome, "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_token_is_cached_and_fetched_again_after_a_401() {
    let (sis, sis_url, scim, dir) = bed().await;
    std::fs::write(dir.path().join("client-secret"), "s3cret-value\n").unwrap();
    let source = format!(
        "kind = \"oneroster-rest\"\nbase_url = \"{sis_url}\"\nauth = \"oauth2\"\ntoken_url = \"{sis_url}/token\"\nclient_id = \"sisync-client\"\nclient_secret_file = \"client-secret\"\npage_size = 10\n"
    );
    let cfg = scim_config_with_source(dir.path(), &source, &scim.base, TOKEN, "");
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert_eq!(scim.users().len(), 42);
    let pages = sis.lock().unwrap().requests.len();
    assert!(pages > 10, "{pages}");
    assert_eq!(
        sis.lock().unwrap().token_requests,
        1,
        "one token for the whole run"
    );

    // each run starts without a token: the next run fetches one new token
    sis.lock().unwrap().valid_tokens.clear();
    let r = sync(&cfg, full()).await;
    assert_eq!(r.failed(), 0);
    assert!(
        r.plan.users.iter().all(|c| c.changed.len() == 7),
        "--full resends"
    );
    assert_eq!(sis.lock().unwrap().token_requests, 2);
    assert_eq!(sis.lock().unwrap().unauthorized, 0);

    // wrong secret: one clear line, no secret in it
    std::fs::write(dir.path().join("client-secret"), "wrong-secret").unwrap();
    sis.lock().unwrap().valid_tokens.clear();
    let msg = common::sync_error(&cfg, RosterOptions::default()).await;
    assert!(msg.contains("refused the client credentials"), "{msg}");
    assert!(
        !msg.contains("wrong-secret") && !msg.contains("s3cret"),
        "{msg}"
    );
}

/// An OAuth2 REST source config against the fake SIS (`extra` lines go
/// into `[source]`).
fn oauth2_config(
    dir: &std::path::Path,
    sis: &str,
    scim: &str,
    extra: &str,
) -> sisync::config::Loaded {
    std::fs::write(dir.join("client-secret"), "s3cret-value\n").unwrap();
    let source = format!(
        "kind = \"oneroster-rest\"\nbase_url = \"{sis}\"\nauth = \"oauth2\"\ntoken_url = \"{sis}/token\"\nclient_id = \"sisync-client\"\nclient_secret_file = \"client-secret\"\n{extra}"
    );
    scim_config_with_source(dir, &source, scim, TOKEN, "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_renewed_before_expiry_and_once_after_a_401() {
    let (sis, sis_url, scim, dir) = bed().await;
    // 28 pages at 4 a second take about 7 s; tokens live 4 s and are
    // renewed halfway (at least three tokens in the run), which leaves 2 s
    // for a request to arrive on a loaded machine
    let cfg = oauth2_config(
        dir.path(),
        &sis_url,
        &scim.base,
        "page_size = 5\nrate_limit = 4\n",
    );
    sis.lock().unwrap().token_life = Some(4);
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert_eq!(scim.users().len(), 42);
    {
        let s = sis.lock().unwrap();
        assert_eq!(s.unauthorized, 0, "renewed before it expired, not after");
        assert!(s.token_requests >= 3, "{}", s.token_requests);
    }

    // tokens that stop working before they say (after 5 requests): each
    // 401 fetches a new token and the request goes out once more
    let dir = tempfile::tempdir().unwrap();
    let cfg = oauth2_config(
        dir.path(),
        &sis_url,
        &FakeScim::start(true).await.base,
        "page_size = 5\n",
    );
    {
        let mut s = sis.lock().unwrap();
        s.token_life = None;
        s.token_uses = Some(5);
        s.token_requests = 0;
        s.unauthorized = 0;
    }
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    {
        let s = sis.lock().unwrap();
        assert!(s.unauthorized >= 5, "{}", s.unauthorized);
        assert!(
            s.token_requests <= s.unauthorized + 1,
            "concurrent 401s on one token share one new token: {} tokens for {} 401s",
            s.token_requests,
            s.unauthorized
        );
    }

    // a service that refuses every token: one new token, then the run
    // fails with one line and no secret
    {
        let mut s = sis.lock().unwrap();
        s.token_uses = Some(0);
        s.token_requests = 0;
        s.unauthorized = 0;
    }
    let msg = common::sync_error(&cfg, RosterOptions::default()).await;
    assert!(msg.contains("orgs") && msg.contains("HTTP 401"), "{msg}");
    for secret in ["s3cret", "access-", "c2lzeW5jLWNsaWVudDpzM2NyZXQtdmFsdWU"] {
        assert!(!msg.contains(secret), "{msg}");
    }
    let s = sis.lock().unwrap();
    assert_eq!(
        (s.token_requests, s.unauthorized),
        (2, 2),
        "refreshed once, not in a loop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_after_the_first_are_fetched_concurrently_in_order() {
    let (sis, sis_url, scim, dir) = bed().await;
    let source = token_source(dir.path(), &sis_url, "page_size = 5\nconcurrency = 3\n");
    let cfg = scim_config_with_source(dir.path(), &source, &scim.base, TOKEN, "");
    {
        let mut s = sis.lock().unwrap();
        s.delay = Some(std::time::Duration::from_millis(100));
        s.max_limit = Some(4); // caps our page_size of 5
    }
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert!(r.issues.is_empty(), "{:?}", r.issues);
    assert_eq!(scim.users().len(), 42);
    {
        let mut s = sis.lock().unwrap();
        assert_eq!(s.max_in_flight, 3);
        let mut user_pages: Vec<String> = s
            .requests
            .iter()
            .filter(|(e, _)| e == "users")
            .map(|(_, q)| q.clone())
            .collect();
        user_pages.sort_by_key(|q| q.rsplit('=').next().unwrap().parse::<usize>().unwrap());
        assert_eq!(user_pages.len(), 11, "43 records, 4 a page: {user_pages:?}");
        assert_eq!(user_pages[0], "limit=5&offset=0");
        assert_eq!(
            user_pages[10], "limit=4&offset=40",
            "as large as the first page"
        );
        s.max_limit = None;
    }

    // a page that comes back short of X-Total-Count fails the run
    // (records removed while it was read)
    scim.clear_requests();
    sis.lock().unwrap().overcount = Some(("users", 5));
    let msg = full_run_fails(&cfg, &scim).await;
    assert_has(&msg, &["offset=40", "3 records where 5 were expected"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_connect_reports_each_endpoint() {
    let (_sis, sis_url, scim, dir) = bed().await;
    rest_config(dir.path(), &sis_url, &scim.base);
    let run = |dir: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            sisync_cmd(&dir.join("sisync.toml"))
                .args(["check-config", "--connect"])
                .output()
                .unwrap()
        })
    };
    let o = run(dir.path().to_path_buf()).await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_has(&out, &["source link", "orgs?limit=1: OK, authenticated"]);
    assert_has(&out, &["platform link", "PATCH supported"]);

    std::fs::write(dir.path().join("sis-token"), "revoked").unwrap();
    let o = run(dir.path().to_path_buf()).await.unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert_has(&out, &["source link", "FAILED", "HTTP 401"]);
    assert!(!out.contains("revoked"), "no secret in the output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_slow_pages_are_retried_a_truncated_page_fails_cleanly() {
    let (sis, sis_url, scim, dir) = bed().await;
    std::fs::write(dir.path().join("sis-token"), SIS_TOKEN).unwrap();
    let source = format!(
        "kind = \"oneroster-rest\"\nbase_url = \"{sis_url}\"\ntoken_file = \"sis-token\"\npage_size = 10\ntimeout = \"1s\"\nmax_retries = 3\n"
    );
    let cfg = scim_config_with_source(dir.path(), &source, &scim.base, TOKEN, "");
    sis.lock().unwrap().faults.extend(["429", "slow"]);
    let started = std::time::Instant::now();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    assert_eq!(
        scim.users().len(),
        42,
        "everything arrived despite the faults"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert!(sis.lock().unwrap().faults.is_empty());

    // a page cut off mid-JSON: the run fails and the platform is not touched
    scim.clear_requests();
    sis.lock().unwrap().faults.extend(["truncated"]);
    let msg = full_run_fails(&cfg, &scim).await;
    assert_has(&msg, &["not valid JSON", "Nothing was sent"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_spaces_the_requests() {
    let (sis, sis_url, scim, dir) = bed().await;
    let source = token_source(dir.path(), &sis_url, "page_size = 5\nrate_limit = 10\n");
    let cfg = scim_config_with_source(dir.path(), &source, &scim.base, TOKEN, "");
    let started = std::time::Instant::now();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0);
    let n = sis.lock().unwrap().requests.len();
    assert_eq!(
        n,
        1 + 2 + 9 + 16,
        "orgs, classes, users and enrolment pages of 5"
    );
    // a burst of 10, then 10 per second
    let min = std::time::Duration::from_millis((n as u64 - 10) * 100 - 100);
    assert!(
        started.elapsed() >= min,
        "{:?} < {min:?}",
        started.elapsed()
    );
}

/// Collects what every test of this binary logs from the moment it is first
/// called: all crates (reqwest, hyper, oauth2 through `log` too), TRACE.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(w.clone()))
            .init();
        buf
    })
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_or_errors() {
    let logs = captured_logs();
    let (sis, sis_url) = start_sis().await;
    let scim = FakeScim::start(true).await;
    let mut errors = Vec::new();

    // bearer: a 429, then a page that fails after its retry
    let dir = tempfile::tempdir().unwrap();
    let cfg = rest_config(dir.path(), &sis_url, &scim.base);
    sis.lock().unwrap().faults.extend(["429"]);
    sync(&cfg, RosterOptions::default()).await;
    sis.lock().unwrap().fail = Some(("users".into(), 7));
    let full = full();
    let err = sisync::sync::roster(&cfg, full, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap_err();
    errors.push(format!("{err:#} {err:?}"));

    // OAuth2: tokens that stop working (401, new token), then a wrong secret
    let dir = tempfile::tempdir().unwrap();
    let cfg = oauth2_config(dir.path(), &sis_url, &scim.base, "page_size = 10\n");
    {
        let mut s = sis.lock().unwrap();
        s.fail = None;
        // twice the page concurrency (4): a new token serves every request
        // that was refused with the old one, whatever order they retry in
        s.token_uses = Some(8);
    }
    let r = sync(&cfg, full).await;
    assert_eq!(r.failed(), 0);
    std::fs::write(dir.path().join("client-secret"), "wrong-secret").unwrap();
    let err = sisync::sync::roster(&cfg, full, "user:test", &sisync::sync::Quiet)
        .await
        .unwrap_err();
    errors.push(format!("{err:#} {err:?}"));

    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("retrying") && logged.contains("HTTP 429"),
        "the logs were captured"
    );
    let s = sis.lock().unwrap();
    assert!(s.unauthorized > 0 && s.token_requests > 1);
    let mut secrets = vec![
        SIS_TOKEN.to_string(),
        TOKEN.to_string(),
        "s3cret-value".to_string(),
        "wrong-secret".to_string(),
        CLIENT_BASIC.trim_start_matches("Basic ").to_string(),
        "c2lzeW5jLWNsaWVudDp3cm9uZy1zZWNyZXQ=".to_string(),
    ];
    secrets.extend(s.valid_tokens.keys().cloned());
    for text in errors.iter().chain([&logged]) {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{secret} in {text}");
        }
    }
}

/// An edexml-drop platform writes the whole roster, so a REST source is
/// pulled in full every run (no `filter=dateLastModified`), and a change
/// gives a complete file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edexml_drop_always_pulls_in_full() {
    let (sis, sis_url) = start_sis().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sis-token"), SIS_TOKEN).unwrap();
    let cfg = TestConfig::new(d)
        .source(Source::Toml(format!(
            "kind = \"oneroster-rest\"\nbase_url = \"{sis_url}\"\ntoken_file = \"sis-token\"\npage_size = 7\ntimeout = \"5s\"\n"
        )))
        .platform(Platform::Toml(
            "kind = \"edexml-drop\"\npath = \"drop\"\nschooljaar = \"2024-2025\"\n".into(),
        ))
        .extra("[privacy]\nfields = [\"name\", \"role\", \"groups\"]\n")
        .load();
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0, "{:?}", r.issues);
    rename_stu_1009(&sis);
    let r = sync(&cfg, RosterOptions::default()).await;
    assert_eq!(r.failed(), 0, "{:?}", r.outcome);
    assert_eq!(r.outcome.unwrap().users.updated, 1);
    let s = sis.lock().unwrap();
    assert!(
        !s.requests.is_empty() && s.requests.iter().all(|(_, q)| !q.contains("filter")),
        "{:?}",
        s.requests
    );
    let folders = entries(&d.join("drop"));
    assert_eq!(folders.len(), 2);
    let xml = std::fs::read_to_string(folders[1].join("edexml.xml")).unwrap();
    assert!(xml.contains("<achternaam>Brouwer</achternaam>"));
    assert!(
        xml.contains(r#"<leerling key="stu-1001">"#),
        "the whole roster"
    );
}
