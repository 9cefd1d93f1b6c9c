//! DNS over HTTPS (RFC 8484): TLS (rustls), HTTP/2 (h2) and `/dns-query` (POST and GET), bounded like TCP. Every
//! query then runs through the same request path as Do53 (`handler::handle`, and `handler::forward` when it needs
//! an upstream) with `Protocol::Https`, so the query log says `transport: DoH`.
//!
//! The view comes from the connection's local address (the accepted socket's), so a wildcard DoH listener serves
//! every address correctly, as the UDP and TCP listeners do.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::RecvStream;
use h2::server::SendResponse;
use http::{Method, Request, Response, StatusCode, header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::{Protocol, Shared, handler};

/// The path RFC 8484 suggests, and the one clients default to.
pub(super) const PATH: &str = "/dns-query";
const MIME: &str = "application/dns-message";
/// Concurrent streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
const MAX_STREAMS: u32 = 100;
/// A DNS message is at most 65535 bytes.
const MAX_BODY: usize = 65535;
/// A slow client gets this long to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why DoH could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "{path}: no certificate in it; give a PEM file with `-----BEGIN CERTIFICATE-----` blocks"
    )]
    NoCertificate { path: String },
    #[error("TLS certificate and key do not fit together: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS acceptor for DoH from PEM files; HTTP/2 only (ALPN `h2`), as RFC 8484 recommends.
pub(super) fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path, source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read(cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| read(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts DoH connections, at most `permits` open at once over all DoH listeners (a new one beyond that is
/// closed at once); backs off when accept fails (out of descriptors).
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, src) = match accepted {
            Ok(x) => {
                backoff = Duration::from_millis(10);
                x
            }
            Err(e) => {
                warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "DoH accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            debug!(%src, "DoH connection limit reached; closing new connection");
            continue;
        };
        let (tls, shared) = (tls.clone(), shared.clone());
        tokio::spawn(async move {
            connection(stream, src, tls, shared).await;
            drop(permit);
        });
    }
}

/// One connection: TLS and HTTP/2 handshakes within the idle time, then streams until it is idle that long.
async fn connection(tcp: TcpStream, src: SocketAddr, tls: TlsAcceptor, shared: Arc<Shared>) {
    let local = tcp.local_addr().ok().map(|a| a.ip());
    let _ = tcp.set_nodelay(true);
    let idle = shared.config.tcp_idle;
    let Ok(Ok(tls)) = timeout(idle, tls.accept(tcp)).await else {
        return debug!(%src, "DoH: TLS handshake failed or timed out");
    };
    let mut builder = h2::server::Builder::new();
    builder.max_concurrent_streams(MAX_STREAMS);
    let Ok(Ok(mut conn)) = timeout(idle, builder.handshake::<_, Bytes>(tls)).await else {
        return debug!(%src, "DoH: HTTP/2 handshake failed or timed out");
    };
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let next = tokio::select! {
            r = timeout(idle, conn.accept()) => r,
            _ = shutdown.changed() => break,
        };
        match next {
            Ok(Some(Ok((request, respond)))) => {
                let shared = shared.clone();
                tokio::spawn(async move { stream(request, respond, src, local, &shared).await });
            }
            // Idle, closed by the client, or a protocol error.
            _ => return,
        }
    }
    // Shutting down: streams already accepted finish, new ones are refused.
    conn.graceful_shutdown();
    let _ = timeout(Duration::from_secs(3), async {
        while let Some(Ok(_)) = conn.accept().await {}
    })
    .await;
}

/// One HTTP request: the DNS message out of it, the answer back (or an HTTP error status).
async fn stream(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    src: SocketAddr,
    local: Option<IpAddr>,
    shared: &Arc<Shared>,
) {
    let (status, body) = match read_query(request).await {
        Ok(packet) => match answer(shared, &packet, src, local).await {
            Some(reply) => (StatusCode::OK, reply),
            None => (StatusCode::BAD_REQUEST, Vec::new()),
        },
        Err(status) => (status, Vec::new()),
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, body.len());
    if status == StatusCode::OK {
        response = response.header(header::CONTENT_TYPE, MIME);
    }
    let Ok(response) = response.body(()) else {
        return;
    };
    match respond.send_response(response, body.is_empty()) {
        Ok(mut send) if !body.is_empty() => {
            if let Err(e) = send.send_data(Bytes::from(body), true) {
                debug!(%src, error = %e, "DoH: sending the answer failed");
            }
        }
        Ok(_) => {}
        Err(e) => debug!(%src, error = %e, "DoH: sending the response failed"),
    }
}

/// The DNS message of an RFC 8484 request: POST with an `application/dns-message` body, or GET with `?dns=`
/// (base64url, padding optional).
async fn read_query(request: Request<RecvStream>) -> Result<Vec<u8>, StatusCode> {
    if request.uri().path() != PATH {
        return Err(StatusCode::NOT_FOUND);
    }
    match *request.method() {
        Method::GET => {
            let param = request
                .uri()
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("dns="))
                .ok_or(StatusCode::BAD_REQUEST)?;
            data_encoding::BASE64URL_NOPAD
                .decode(param.trim_end_matches('=').as_bytes())
                .map_err(|_| StatusCode::BAD_REQUEST)
        }
        Method::POST => {
            let mime = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            if mime.is_none_or(|m| !m.trim().eq_ignore_ascii_case(MIME)) {
                return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            timeout(BODY_TIMEOUT, read_body(request.into_body()))
                .await
                .map_err(|_| StatusCode::REQUEST_TIMEOUT)?
        }
        _ => Err(StatusCode::METHOD_NOT_ALLOWED),
    }
}

async fn read_body(mut body: RecvStream) -> Result<Vec<u8>, StatusCode> {
    let mut out = Vec::with_capacity(512);
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        // Give the window back so a large body can keep coming.
        let _ = body.flow_control().release_capacity(chunk.len());
        if out.len() + chunk.len() > MAX_BODY {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The shared request path; `None` when it would send nothing (the message is no query).
async fn answer(
    shared: &Arc<Shared>,
    packet: &[u8],
    src: SocketAddr,
    local: Option<IpAddr>,
) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(512);
    let snap = shared.snapshot.load_full();
    let mut scratch = handler::Scratch::default();
    let req = handler::Request {
        packet,
        src,
        local,
        protocol: Protocol::Https,
    };
    match handler::handle(&snap, req, &mut scratch, &mut out) {
        handler::Handled::Reply => {}
        handler::Handled::Drop => return None,
        handler::Handled::Forward(job) => match super::Pending::take(shared) {
            Ok(_pending) => handler::forward(snap, &shared.forwarder, job, &mut out).await,
            Err(pending) => handler::busy(&snap, job, pending, &mut out),
        },
    }
    (!out.is_empty()).then_some(out)
}
