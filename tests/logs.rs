//! Logs never hold personal data, not even at `RUST_LOG=debug`: a platform
//! that echoes the request in its error body (names, e-mail, BSN, grades)
//! is logged by status, scimType and body length only.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use common::*;

/// A platform that answers every request with HTTP 400 and an error body
/// echoing personal data.
fn echoing_platform() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            // read the head and whatever body arrives with it
            while let Ok(n) = c.read(&mut chunk) {
                buf.extend_from_slice(&chunk[..n]);
                if n == 0 || buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"scimType":"invalidValue","detail":"user Jan Jansen <jan.jansen@example.nl> (BSN 123456782, grade 9,75 cum laude) is invalid","status":"400"}"#;
            let _ = write!(
                c,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/scim+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/scim/v2")
}

#[test]
fn an_echoed_error_body_never_reaches_the_debug_log() {
    let dir = tempfile::tempdir().unwrap();
    let export = copy_fixture("oneroster-1.2", dir.path());
    let base = echoing_platform();
    let loaded = scim_config(dir.path(), &export, &base, "t0ken", "max_retries = 0\n");
    let out = Command::new(env!("CARGO_BIN_EXE_sisync"))
        .arg("--config")
        .arg(&loaded.file)
        .args(["sync", "roster"])
        .env_remove("SISYNC_CONFIG")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let all = text(&out);
    // the grade is spelled so that no timestamp or port can contain it
    // the error response was logged: status, scimType and length
    assert_has(&all, &["error response", "invalidValue", "body_bytes"]);
    let personal = ["Jansen", "jan.jansen@example.nl", "123456782"];
    assert_lacks(&all, &personal, "the output");
    let grade = "9,75 cum laude";
    assert_lacks(&all, &[grade], "the output");
}
