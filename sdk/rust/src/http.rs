//! Outbound HTTP through `wasi:http/outgoing-handler`.
//!
//! The host only lets a plugin reach the hosts its operator granted; any
//! other host fails with [`HttpError::Denied`], and a granted name that
//! resolves to an address the plugin may not reach (loopback, a private
//! network, a metadata service) with [`HttpError::Prohibited`].

use crate::wasi::http::outgoing_handler;
pub use crate::wasi::http::types::Method;
use crate::wasi::http::types::{ErrorCode, Fields, OutgoingBody, OutgoingRequest, Scheme};
use crate::wasi::io::streams::StreamError;
use crate::HandlerError;
use std::fmt;

/// A response: status and the whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The response body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a request did not produce a response.
#[derive(Debug, Clone)]
pub enum HttpError {
    /// The URL could not be understood.
    BadUrl(String),
    /// The host is not on the plugin's allow-list.
    Denied(String),
    /// The host resolves to an address the plugin is not granted.
    Prohibited(String),
    /// The request failed on the way (DNS, connect, timeout, protocol).
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl(u) => write!(f, "bad URL `{u}`"),
            HttpError::Denied(u) => write!(f, "request to `{u}` denied: host not in allowed_hosts"),
            HttpError::Prohibited(u) => write!(
                f,
                "request to `{u}` denied: its address is not granted (private or special network)"
            ),
            HttpError::Failed(why) => write!(f, "request failed: {why}"),
        }
    }
}

impl From<HttpError> for HandlerError {
    /// A denied host or address, or a bad URL, will not get better by
    /// retrying (the operator has to grant it); a failed request may.
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Failed(_) => HandlerError::Retry(e.to_string()),
            _ => HandlerError::Reject(e.to_string()),
        }
    }
}

/// POST `body` as `application/json` to `url`.
pub fn post_json(url: &str, body: &[u8]) -> Result<Response, HttpError> {
    send(
        Method::Post,
        url,
        &[("content-type", "application/json")],
        body,
    )
}

/// Send a request and read the whole response.
pub fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let (scheme, authority, path) = split_url(url)?;
    let fields: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&fields).map_err(|e| HttpError::Failed(format!("{e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let bad = |_| HttpError::BadUrl(url.to_string());
    request.set_method(&method).map_err(bad)?;
    request.set_scheme(Some(&scheme)).map_err(bad)?;
    request.set_authority(Some(authority)).map_err(bad)?;
    request.set_path_with_query(Some(path)).map_err(bad)?;
    let outgoing = request
        .body()
        .map_err(|_| failed("request body already taken"))?;

    let pending = outgoing_handler::handle(request, None).map_err(|e| error_code(url, e))?;
    // Write the body, but look at the response first if that fails: a
    // request the host refused (a host not on the allow-list) shows up as a
    // closed body stream, and its error code is the useful answer.
    let written = write_body(&outgoing, body);
    let finished = match written {
        Ok(()) => OutgoingBody::finish(outgoing, None).map_err(|e| error_code(url, e)),
        Err(_) => {
            drop(outgoing);
            Ok(())
        }
    };

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(error_code(url, e)),
        _ => return Err(failed("no response")),
    };
    written?;
    finished?;
    let status = response.status();
    let incoming = response.consume().map_err(|_| failed("response body"))?;
    let stream = incoming
        .stream()
        .map_err(|_| failed("response body stream"))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(failed(&format!(
                    "reading response: {}",
                    e.to_debug_string()
                )))
            }
        }
    }
    Ok(Response { status, body })
}

fn write_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), HttpError> {
    let stream = outgoing
        .write()
        .map_err(|_| failed("request body stream"))?;
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| failed(&format!("writing request body: {e:?}")))?;
    }
    Ok(())
}

fn failed(why: &str) -> HttpError {
    HttpError::Failed(why.to_string())
}

fn error_code(url: &str, e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::HttpRequestDenied => HttpError::Denied(url.to_string()),
        ErrorCode::DestinationIpProhibited => HttpError::Prohibited(url.to_string()),
        other => HttpError::Failed(format!("{other:?}")),
    }
}

/// Split `scheme://authority/path?query`.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let bad = || HttpError::BadUrl(url.to_string());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return Err(bad()),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    Ok((scheme, authority, path))
}
