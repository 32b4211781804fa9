//! One HTTP/1.1 request read off a stream (plain or TLS): the part of the
//! protocol the hand-written SOAP fakes (`fake_las`, `fake_las_roster`)
//! share; and the loopback listeners every fake serves on.

use std::collections::BTreeMap;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Serve `app` on a free port of 127.0.0.1, for the rest of the test.
pub async fn serve_router(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Hand every connection to a free port of 127.0.0.1 to `serve`, each on
/// its own task; the port.
pub async fn listen<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve(tcp));
        }
    });
    port
}

/// [`listen`] over TLS: a client whose handshake `acceptor` refuses (no or
/// a bad client certificate) is dropped unserved.
pub async fn listen_tls<F, Fut>(acceptor: TlsAcceptor, serve: F) -> u16
where
    F: Fn(TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    listen(move |tcp| {
        let (acceptor, serve) = (acceptor.clone(), serve.clone());
        async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve(tls).await;
            }
        }
    })
    .await
}

pub struct Request {
    /// `POST /path HTTP/1.1`.
    pub line: String,
    /// By lowercase name.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// The next request on `io`; `None` when the client hangs up first.
pub async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + len].to_vec();
    Some(Request {
        line,
        headers,
        body,
    })
}
