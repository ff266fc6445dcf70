//! Sending one outbound request: resolve the host name once, check every
//! address against the plugin's [`NetworkPolicy`], connect to an address
//! that passed (never resolving again, so a name cannot change its answer
//! between the check and the connection), then TLS and HTTP/1.1 over that
//! connection, with the timeouts and the response cap.

use super::NetworkPolicy;
use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, WasiBody};

/// Timeouts and the response cap for one request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub(super) connect: Duration,
    pub(super) first_byte: Duration,
    pub(super) between_bytes: Duration,
    pub(super) max_response_bytes: u64,
}

/// Why a request was not sent.
#[derive(Debug)]
pub(super) enum Refusal {
    /// Every address the name resolves to is one this plugin may not reach.
    Prohibited(String),
    /// Anything else, as `wasi:http` reports it.
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Failed(e)
    }
}

/// The connection's I/O, driven until the response body is read.
pub(super) type IoTask = Box<dyn Future<Output = Result<(), Error>> + Send>;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Send `request` within `budget` to an address `policy` allows.
pub(super) async fn send(
    mut request: Request<WasiBody>,
    policy: &NetworkPolicy,
    budget: Budget,
) -> Result<(Response<WasiBody>, IoTask), Refusal> {
    let uri = request.uri();
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();

    let connect = async {
        let addr = resolve(&bare, port, policy).await?;
        let tcp = TcpStream::connect(addr).await.map_err(|e| {
            Refusal::Failed(match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
                _ => Error::Connect(e),
            })
        })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if tls {
            let name = server_name(&bare)?;
            let tls = tokio_rustls::TlsConnector::from(tls_config())
                .connect(name, tcp)
                .await
                .map_err(Error::Tls)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let handshake = hyper::client::conn::http1::Builder::new()
            .handshake::<_, WasiBody>(TokioIo::new(stream))
            .await
            .map_err(Error::from)?;
        Ok::<_, Refusal>(handshake)
    };
    let (mut sender, conn) = tokio::time::timeout(budget.connect, connect)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;

    // The request line carries only the path: scheme and authority are for
    // proxies (the Host header still names the host).
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;

    // Drive the connection while waiting for the response head.
    let mut conn = Box::pin(conn);
    let response = tokio::time::timeout(budget.first_byte, sender.send_request(request));
    tokio::pin!(response);
    let mut ended: Option<Result<(), hyper::Error>> = None;
    let response = loop {
        tokio::select! {
            r = &mut response => break r,
            c = &mut conn, if ended.is_none() => ended = Some(c),
        }
    };
    let response = response
        .map_err(|_| Error::ConnectionReadTimeout)?
        .map_err(Error::from)?;
    let io: IoTask = match ended {
        Some(result) => Box::new(async move { result.map_err(Error::from) }),
        None => Box::new(async move { conn.await.map_err(Error::from) }),
    };
    let response = response.map(|incoming| {
        Inbound {
            inner: incoming.map_err(Error::from).boxed_unsync(),
            idle: Box::pin(tokio::time::sleep(budget.between_bytes)),
            between_bytes: budget.between_bytes,
            left: budget.max_response_bytes,
            cap: budget.max_response_bytes,
        }
        .boxed_unsync()
    });
    Ok((response, io))
}

/// The first address `host` resolves to that `policy` allows.
async fn resolve(host: &str, port: u16, policy: &NetworkPolicy) -> Result<SocketAddr, Refusal> {
    let candidates: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                Refusal::Failed(Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                })
            })?
            .map(|a| a.ip())
            .collect(),
    };
    let mut refused = None;
    for ip in &candidates {
        match policy.check(*ip) {
            Ok(ip) => return Ok(SocketAddr::new(ip, port)),
            Err(why) => refused = refused.or(Some((*ip, why.0))),
        }
    }
    Err(match refused {
        Some((ip, range)) if host.parse::<IpAddr>().is_ok() => Refusal::Prohibited(format!(
            "{ip} is a {range} address, which this plugin is not granted"
        )),
        Some((ip, range)) => Refusal::Prohibited(format!(
            "`{host}` resolves to {ip}, a {range} address, which this plugin is not granted"
        )),
        None => Refusal::Failed(Error::DestinationNotFound),
    })
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    use rustls::pki_types::ServerName;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => Ok(ServerName::try_from(host.to_string())?),
    }
}

/// One TLS client configuration (the web PKI's roots) for every request.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.into(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            match config {
                Ok(config) => Arc::new(config),
                // The ring provider supports the default versions; this is
                // unreachable, but a TLS failure beats a panic if it is not.
                Err(_) => Arc::new(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                ),
            }
        })
        .clone()
}

/// A response body with a quiet-time limit between frames and a cap on its
/// size.
struct Inbound {
    inner: WasiBody,
    idle: Pin<Box<tokio::time::Sleep>>,
    between_bytes: Duration,
    left: u64,
    cap: u64,
}

impl Body for Inbound {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Pending => {
                return match self.idle.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                    Poll::Pending => Poll::Pending,
                };
            }
            other => return other,
        };
        let deadline = tokio::time::Instant::now() + self.between_bytes;
        self.idle.as_mut().reset(deadline);
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                self.left = 0;
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.cap)))));
            }
            self.left -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
