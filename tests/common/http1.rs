//! One HTTP/1.1 request read off a stream (plain or TLS): the part of the
//! protocol the hand-written SOAP fakes (`fake_las`, `fake_las_roster`)
//! share.

use std::collections::BTreeMap;

use tokio::io::{AsyncRead, AsyncReadExt};

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
