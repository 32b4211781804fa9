//! Mutual TLS towards a REST source: a TLS server on 127.0.0.1 that only
//! talks to clients presenting a certificate from its test CA (as
//! Edukoppeling endpoints do with PKIoverheid certificates).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::http1::listen_tls;
use common::test_pki::{Pki, pki};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TLS server requiring client certificates; answers every request with
/// one org. Returns its port and a counter of served requests.
async fn start_server(p: &Pki) -> (u16, Arc<AtomicUsize>) {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let port = listen_tls(p.acceptor(), move |mut tls| {
        let counter = counter.clone();
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"orgs":[{"sourcedId":"org-1","status":"active","name":"School","type":"school","identifier":"99AA00"}]}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    })
    .await;
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_is_presented_and_required() {
    let p = pki();
    let (port, served) = start_server(&p).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &p.ca_pem).unwrap();
    std::fs::write(dir.path().join("client.pem"), &p.client_cert_pem).unwrap();
    std::fs::write(dir.path().join("client.key"), &p.client_key_pem).unwrap();
    std::fs::write(dir.path().join("sis-token"), "t").unwrap();
    let base = format!("https://localhost:{port}");
    let with_cert = format!(
        "kind = \"oneroster-rest\"\nbase_url = \"{base}\"\ntoken_file = \"sis-token\"\nca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\"\nmax_retries = 0\n"
    );
    let cfg = scim_config_with_source(dir.path(), &with_cert, "http://127.0.0.1:9/scim", "x", "");
    let checks = sisync::sync::connect_checks(&cfg).await;
    let (name, result) = &checks[0];
    assert_eq!(name, "source link");
    let line = result.as_ref().expect("mutual TLS works");
    assert!(line.contains("OK, authenticated"), "{line}");
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // the same endpoint without a client certificate is refused in the handshake
    let without = format!(
        "kind = \"oneroster-rest\"\nbase_url = \"{base}\"\ntoken_file = \"sis-token\"\nca_file = \"ca.pem\"\nmax_retries = 0\n"
    );
    let cfg = scim_config_with_source(dir.path(), &without, "http://127.0.0.1:9/scim", "x", "");
    let checks = sisync::sync::connect_checks(&cfg).await;
    assert!(checks[0].1.is_err());
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "nothing served without a certificate"
    );

    // a key file that is not a key: one config error with key and line
    std::fs::write(dir.path().join("client.key"), "not a key").unwrap();
    let config = TestConfig::new(dir.path())
        .state(None)
        .source(Source::Toml(with_cert.clone()));
    config.write();
    // loading reads no TLS file (read-only commands work without them);
    // check-config reports it and a run stops with it
    let l = sisync::connector::load(&dir.path().join("sisync.toml"))
        .expect("loading reads no TLS file");
    let problems = l.secret_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let e = &problems[0];
    assert_eq!(e.key.as_deref(), Some("source.client_cert_file"), "{e}");
    assert_eq!(e.line, Some(config.line_of("client_cert_file")), "{e}");
    let checks = sisync::sync::connect_checks(&l).await;
    let err = checks[0].1.as_ref().unwrap_err();
    assert_eq!(
        err.downcast_ref::<sisync::config::ConfigError>(),
        Some(e),
        "{err:#}"
    );
}
