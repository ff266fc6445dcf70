//! `wasi:http/outgoing-handler`: a plugin reaches only the hosts on its
//! allow-list ([`AllowList`]), and only at addresses its [`NetworkPolicy`]
//! allows (checked after resolving, on the address connected to), with
//! timeouts and a cap on the response body. A request to any other host
//! fails with the standard `HTTP-request-denied` error code, one to a
//! prohibited address with `destination-IP-prohibited`; either denial is
//! written to the plugin's log.

mod allow;
mod on_host;
mod policy;
mod request_parts;
mod send;
mod unsent;

pub use allow::{AllowList, AllowedHost};
pub use policy::{NetworkPolicy, Prohibited};
pub use request_parts::{
    MAX_AUTHORITY_BYTES, MAX_METHOD_BYTES, MAX_PATH_WITH_QUERY_BYTES, cap_request_parts,
};

use super::activity::Activity;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Timeouts and caps for outbound requests.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// To establish a connection.
    pub connect_timeout: Duration,
    /// To the first byte of the response (and between later ones).
    pub response_timeout: Duration,
    /// Largest response body a plugin may read.
    pub max_response_bytes: u64,
    /// Outbound connections one plugin version may hold open at once,
    /// across its deliveries; a request beyond fails with
    /// `connection-limit-reached`.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            max_response_bytes: 4 * 1024 * 1024,
            max_connections: 32,
        }
    }
}

/// How every plugin's outbound requests run: the limits, and the host's
/// runtime their connections' I/O runs on (none: where the call runs).
#[derive(Debug, Clone)]
pub struct HttpRuntime {
    /// Timeouts and caps.
    pub limits: HttpLimits,
    /// See `on_host`.
    pub io: Option<tokio::runtime::Handle>,
}

/// Where a plugin may send requests: the host names it may address, and
/// the private networks (beyond public addresses) those may lead to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundGrant {
    /// Host names (and ports, schemes) requests may be addressed to.
    pub allowed_hosts: AllowList,
    /// Private or special networks the names may resolve to.
    pub networks: NetworkPolicy,
}

/// The `wasi:http` capability's state for one delivery: what the plugin
/// was granted, the limits, and where its requests are recorded.
pub struct OutboundHttp {
    grants: Arc<OutboundGrant>,
    limits: HttpLimits,
    activity: Arc<Activity>,
    /// The version's connection permits, shared by its deliveries.
    connections: Arc<Semaphore>,
    /// The host's runtime, where the connections' I/O runs (none: where
    /// the call runs).
    io: Option<tokio::runtime::Handle>,
}

impl OutboundHttp {
    /// The capability for one delivery of a version holding `connections`.
    pub fn new(
        grants: Arc<OutboundGrant>,
        runtime: HttpRuntime,
        activity: Arc<Activity>,
        connections: Arc<Semaphore>,
    ) -> Self {
        Self {
            grants,
            limits: runtime.limits,
            activity,
            connections,
            io: runtime.io,
        }
    }
}

/// Largest write into a request body's stream, and so what one unsent body
/// can hold in the host (its channel holds two writes): with wasmtime's
/// 1 MiB, a plugin keeping 1,365 unsent requests (3 handles each, 4,096
/// handles then) made the host hold 3 GB; with 16 KiB, 32 KiB a body. Guests
/// write in whatever pieces `check-write` allows, so only the number of
/// writes changes.
pub const BODY_CHUNK_BYTES: usize = 16 * 1024;

impl WasiHttpHooks for OutboundHttp {
    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_BYTES
    }

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
        // From here on, whatever happens to the request, the guest can
        // finish writing its body (see `unsent`).
        let request = request.map(unsent::guarded);
        let method = request.method().to_string();
        let url = request.uri().to_string();
        let activity = self.activity.clone();
        if !self.grants.allowed_hosts.allows(request.uri()) {
            let host = request.uri().host().unwrap_or("").to_string();
            activity.denied(
                &method,
                &url,
                "host not in allowed_hosts",
                &format!("outbound request to `{host}` denied: not in this plugin's allowed_hosts"),
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        // The guest may ask for shorter timeouts, never longer ones.
        let limits = self.limits;
        let clamp = |asked: Option<Duration>, cap: Duration| asked.map_or(cap, |a| a.min(cap));
        let budget = send::Budget {
            connect: clamp(
                options.and_then(|o| o.connect_timeout),
                limits.connect_timeout,
            ),
            first_byte: clamp(
                options.and_then(|o| o.first_byte_timeout),
                limits.response_timeout,
            ),
            between_bytes: clamp(
                options.and_then(|o| o.between_bytes_timeout),
                limits.response_timeout,
            ),
            max_response_bytes: limits.max_response_bytes,
        };
        // One permit per open connection, held until its I/O ends: a plugin
        // opening connections without end runs out of permits, not the host
        // out of file descriptors.
        let Ok(permit) = self.connections.clone().try_acquire_owned() else {
            activity.denied(
                &method,
                &url,
                "connection limit reached",
                &format!(
                    "outbound request denied: this plugin already holds {} connections",
                    limits.max_connections
                ),
            );
            return Box::new(async { Err(Error::ConnectionLimitReached) });
        };
        let grants = self.grants.clone();
        let host = self.io.clone();
        Box::new(async move {
            let sent = async move { Ok(send::send(request, &grants.networks, budget).await) };
            let sent = match &host {
                Some(host) => on_host::OnHost::spawn(host, sent).await?,
                None => sent.await?,
            };
            match sent {
                Ok((response, io)) => {
                    activity.http(&method, &url, Ok(response.status().as_u16()));
                    let io = async move {
                        let done = Box::into_pin(io).await;
                        drop(permit);
                        done
                    };
                    let io: send::IoTask = match &host {
                        Some(host) => Box::new(on_host::OnHost::spawn(host, io)),
                        None => Box::new(io),
                    };
                    Ok((response, io))
                }
                Err(send::Refusal::Prohibited(why)) => {
                    let message = format!("outbound request denied: {why}");
                    activity.denied(&method, &url, "address not granted", &message);
                    Err(Error::DestinationIpProhibited)
                }
                Err(send::Refusal::Failed(e)) => {
                    activity.http(&method, &url, Err(format!("{e:?}")));
                    Err(e)
                }
            }
        })
    }
}
