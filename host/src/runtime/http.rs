//! `wasi:http/outgoing-handler`: a plugin reaches only the hosts on its
//! allow-list, with timeouts and a cap on the response body. A request to
//! any other host fails with the standard `HTTP-request-denied` error code,
//! and the denial is written to the plugin's log.

use super::activity::Activity;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// One allow-list entry: `host`, `host:port`, `*.domain` or any of these
/// behind `http://` or `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parse an entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = match entry.split_once("://") {
            Some((s, rest))
                if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") =>
            {
                (Some(s.to_ascii_lowercase()), rest)
            }
            Some((s, _)) => return Err(format!("`{entry}`: scheme `{s}` is not http or https")),
            None => (None, entry),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') {
            return Err(format!("`{entry}`: give a host, not a URL with a path"));
        }
        // `[v6]:port` keeps its brackets, as `http::Uri::host` does.
        let split = match rest.strip_prefix('[') {
            Some(v6) => v6.split_once("]:").map(|(h, p)| (&rest[..h.len() + 2], p)),
            None => rest.rsplit_once(':'),
        };
        let (host, port) = match split {
            Some((h, p)) => {
                let port = p.parse::<u16>().map_err(|_| {
                    format!("`{entry}`: port `{p}` is not a number from 0 to 65535")
                })?;
                (h, Some(port))
            }
            None => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        let bare = host.strip_prefix("*.").unwrap_or(&host);
        if bare.is_empty() || bare.contains('*') {
            return Err(format!("`{entry}`: a wildcard may only be a leading `*.`"));
        }
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match self.host.strip_prefix("*.") {
            Some(domain) => host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        }
    }
}

/// The hosts a plugin may reach. Empty by default: no outbound HTTP at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<AllowedHost>);

impl AllowList {
    /// Build from entries, failing on the first bad one.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Add one entry.
    pub fn push(&mut self, host: AllowedHost) {
        self.0.push(host);
    }

    /// Is this URI allowed?
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host() else { return false };
        let host = host.to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.0.iter().any(|a| a.allows(&scheme, &host, port))
    }

    /// The entries as written, for status output.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|a| {
                let scheme = a
                    .scheme
                    .as_ref()
                    .map(|s| format!("{s}://"))
                    .unwrap_or_default();
                let port = a.port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}{}{port}", a.host)
            })
            .collect()
    }
}

/// Timeouts and caps for outbound requests.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// To establish a connection.
    pub connect_timeout: Duration,
    /// To the first byte of the response (and between later ones).
    pub response_timeout: Duration,
    /// Largest response body a plugin may read.
    pub max_response_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            max_response_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The `wasi:http` hooks for one delivery.
pub struct OutboundHttp {
    pub(super) grants: Arc<super::Grants>,
    pub(super) limits: HttpLimits,
    pub(super) activity: Arc<Activity>,
}

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        drop(fut);
        let method = request.method().to_string();
        let url = request.uri().to_string();
        let activity = self.activity.clone();
        if !self.grants.allowed_hosts.allows(request.uri()) {
            let host = request.uri().host().unwrap_or("").to_string();
            activity.log(
                super::activity::Level::Warn,
                "gridlet",
                &format!("outbound request to `{host}` denied: not in this plugin's allowed_hosts"),
            );
            activity.http(
                &method,
                &url,
                Err("denied: host not in allowed_hosts".into()),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let limits = self.limits;
        // The guest may ask for shorter timeouts, never longer ones.
        let clamp =
            |asked: Option<Duration>, cap: Duration| Some(asked.map_or(cap, |a| a.min(cap)));
        let options = RequestOptions {
            connect_timeout: clamp(
                options.and_then(|o| o.connect_timeout),
                limits.connect_timeout,
            ),
            first_byte_timeout: clamp(
                options.and_then(|o| o.first_byte_timeout),
                limits.response_timeout,
            ),
            between_bytes_timeout: clamp(
                options.and_then(|o| o.between_bytes_timeout),
                limits.response_timeout,
            ),
        };
        Box::new(async move {
            match wasmtime_wasi_http::default_send_request(request, Some(options)).await {
                Ok((response, io)) => {
                    activity.http(&method, &url, Ok(response.status().as_u16()));
                    let response = response.map(|body| {
                        CappedBody {
                            inner: body.boxed_unsync(),
                            left: limits.max_response_bytes,
                            cap: limits.max_response_bytes,
                        }
                        .boxed_unsync()
                    });
                    Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
                }
                Err(e) => {
                    activity.http(&method, &url, Err(format!("{e:?}")));
                    Err(e)
                }
            }
        })
    }
}

/// A response body that fails once it passes its cap.
struct CappedBody {
    inner: WasiBody,
    left: u64,
    cap: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                let cap = self.cap;
                self.left = 0;
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(cap)))));
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
