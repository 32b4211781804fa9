//! The externalId lookup before a SCIM create (issue 17): with many
//! creates planned, the platform's list is read once per run instead of one
//! `externalId eq` filter GET per create; with few, the filter is used. A
//! lost state file still makes no duplicates either way.

mod common;

use common::fake_scim::Request;
use common::*;
use sisync::sync::RosterOptions;

/// Lookups: GETs of a whole resource list (a filter or a page of it; the
/// fake records the path without the query), per resource.
fn lookups(r: &[Request]) -> (usize, usize) {
    let n = |p: &str| {
        r.iter()
            .filter(|r| r.method == "GET" && r.path == p)
            .count()
    };
    (n("/Users"), n("/Groups"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_creates_read_the_list_once_few_use_the_filter() {
    let (server, dir, export, cfg) = scim_bed("").await;

    // 1. 42 users and 6 classes to create into an empty platform: per
    // resource one GET for the list's size and one for its (empty) page
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.groups.created, o.failed()), (42, 6, 0));
    // (one filter GET per create would be 42 and 6)
    let req = server.requests();
    assert_eq!(lookups(&req), (2, 2), "{req:?}");
    assert_eq!(server.writes().len(), 48);

    // 2. the state file is lost: everything is planned as a create again,
    // found in the list read once, adopted; nothing is created twice
    std::fs::remove_file(dir.path().join("state.db")).unwrap();
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!(o.failed(), 0, "{:?}", o.failures);
    assert_eq!((server.users().len(), server.groups().len()), (42, 6));
    let req = server.requests();
    assert!(req.iter().all(|r| r.method != "POST"), "{req:?}");
    // the size, then the one page per resource
    assert_eq!(lookups(&req), (2, 2), "{req:?}");

    // 3. one new student: one filter GET is cheaper than the list
    edit(&export, "users.csv", |l| {
        Some(if l.starts_with("stu-1001,") {
            format!(
                "{l}\n{}",
                l.replace("stu-1001,", "stu-1999,")
                    .replace("j.devries,", "j.new,")
            )
        } else {
            l.to_string()
        })
    });
    edit(&export, "roles.csv", |l| {
        Some(if l.starts_with("rol-stu-1001,") {
            format!("{l}\n{}", l.replace("stu-1001", "stu-1999"))
        } else {
            l.to_string()
        })
    });
    server.clear_requests();
    let r = sync(&cfg, RosterOptions::default()).await;
    let o = r.outcome.as_ref().unwrap();
    assert_eq!((o.users.created, o.failed()), (1, 0), "{:?}", o.failures);
    // (the list would take two: its size and its page)
    let req = server.requests();
    assert_eq!(lookups(&req), (1, 0), "{req:?}");
    assert_eq!(server.users().len(), 43);
}
