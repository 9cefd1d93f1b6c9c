//! The ops endpoint: `/metrics`, `/healthz` and `/readyz` over a small, bounded HTTP/1.0 server.
//!
//! Hand-rolled rather than hyper: three fixed GET routes do not need a general HTTP stack, and the bounds are
//! what matters: at most [`MAX_CONNECTIONS`] open (the excess is closed at once), a deadline to send the request
//! and one to take the reply, a cap on the request size, and gone when the server stops.
//! Nothing here can slow the DNS path: the listener shares no state with it but the counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::Shared;

/// Open ops connections at most; a scraper and a probe or two need a handful.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// The whole request head must arrive within this.
const READ_DEADLINE: Duration = Duration::from_secs(2);
/// The client must take the whole reply within this.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);
/// Longer request heads are answered 431.
const MAX_HEAD: usize = 8 * 1024;

/// Accepts until the server stops. During a drain (`RunningServer::shutdown`) it keeps answering, so `/readyz`
/// says 503 to the load balancer; when the server stops, this task is aborted and its connections with it (they
/// live in its `JoinSet`).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                stream
            }
            Err(e) => {
                // Out of descriptors or similar: back off instead of spinning.
                warn!(error = %e, "ops accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        while conns.try_join_next().is_some() {}
        if conns.len() >= MAX_CONNECTIONS {
            debug!("ops connection limit reached; closing new connection");
            continue;
        }
        conns.spawn(connection(stream, shared.clone()));
    }
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let Ok(Some(head)) = tokio::time::timeout(READ_DEADLINE, read_head(&mut stream)).await else {
        return;
    };
    let reply = match parse(&head) {
        Ok(req) => route(&req, &shared),
        Err(status) => Reply::text(status, status.reason()),
    };
    let bytes = reply.encode();
    let _ = tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&bytes)).await;
    let _ = stream.shutdown().await;
}

/// Reads up to the blank line ending the head, or EOF after a complete request line (`GET /metrics` + EOF).
/// `None` when the client sends nothing usable.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if head_complete(&buf) || buf.len() > MAX_HEAD {
            return Some(buf);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf.contains(&b'\n').then_some(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeadTooLarge,
    Unavailable,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Self::Ok => "200 OK",
            Self::BadRequest => "400 Bad Request",
            Self::NotFound => "404 Not Found",
            Self::MethodNotAllowed => "405 Method Not Allowed",
            Self::HeadTooLarge => "431 Request Header Fields Too Large",
            Self::Unavailable => "503 Service Unavailable",
        }
    }
    fn reason(self) -> &'static str {
        self.line().split_once(' ').map_or("", |(_, r)| r)
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    head_only: bool,
    path: &'a str,
}

/// The request line: method, target (query string and fragment ignored), version.
fn parse(head: &[u8]) -> Result<Request<'_>, Status> {
    if head.len() > MAX_HEAD {
        return Err(Status::HeadTooLarge);
    }
    let end = head
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(Status::BadRequest)?;
    let line = std::str::from_utf8(&head[..end]).map_err(|_| Status::BadRequest)?;
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(Status::BadRequest);
    };
    match parts.next() {
        Some(v) if v.starts_with("HTTP/") => {}
        _ => return Err(Status::BadRequest),
    }
    if parts.next().is_some() || !target.starts_with('/') {
        return Err(Status::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Status::MethodNotAllowed),
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Request { head_only, path })
}

struct Reply {
    status: Status,
    content_type: &'static str,
    body: String,
    head_only: bool,
}

impl Reply {
    fn text(status: Status, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            head_only: false,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let allow = if self.status == Status::MethodNotAllowed {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status.line(),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

fn route(req: &Request<'_>, shared: &Shared) -> Reply {
    let generation = shared.reloads.generation();
    let mut reply = match req.path {
        "/metrics" => Reply {
            status: Status::Ok,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: shared.metrics.render(&shared.forwarder),
            head_only: false,
        },
        "/healthz" => Reply::text(Status::Ok, "ok"),
        "/readyz" if shared.ready.load(Ordering::Relaxed) => {
            Reply::text(Status::Ok, &format!("ready generation {generation}"))
        }
        "/readyz" => Reply::text(
            Status::Unavailable,
            &format!("draining generation {generation}"),
        ),
        _ => Reply::text(Status::NotFound, "not found"),
    };
    reply.head_only = req.head_only;
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let ok = |head: &'static str, head_only, path| {
            assert_eq!(
                parse(head.as_bytes()),
                Ok(Request { head_only, path }),
                "{head:?}"
            );
        };
        ok(
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            false,
            "/metrics",
        );
        ok("GET /metrics?name[]=x HTTP/1.0\r\n\r\n", false, "/metrics");
        ok("HEAD /readyz#frag HTTP/1.0\n\n", true, "/readyz");
        let bad = |head: &str, status| assert_eq!(parse(head.as_bytes()), Err(status), "{head:?}");
        bad("POST /metrics HTTP/1.0\r\n\r\n", Status::MethodNotAllowed);
        bad("GET /metrics\r\n\r\n", Status::BadRequest);
        bad("GET metrics HTTP/1.0\r\n\r\n", Status::BadRequest);
        bad("GET /a b HTTP/1.0\r\n\r\n", Status::BadRequest);
        bad("\u{0}\u{1}", Status::BadRequest);
        bad(&"x".repeat(MAX_HEAD + 1), Status::HeadTooLarge);
    }

    #[test]
    fn head_gets_headers_without_body() {
        let mut r = Reply::text(Status::Ok, "ok");
        r.head_only = true;
        let text = String::from_utf8(r.encode()).expect("utf8");
        assert!(text.ends_with("\r\n\r\n"), "{text:?}");
        assert!(text.contains("Content-Length: 3\r\n"), "{text:?}");
    }
}
