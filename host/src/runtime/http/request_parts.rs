//! Caps on what an outgoing request holds before it is sent.
//!
//! A request's parts live in the host, outside the plugin's memory cap, and
//! a plugin may hold as many requests as it has handles. wasmtime checks an
//! authority's and an extension method's characters but not their length
//! (the `http` crate refuses a path past 64 KiB): one 8 MiB string set
//! as the authority of every request a plugin can hold would ask the host
//! for gigabytes. These wrap the three setters, refusing what is longer
//! than any server accepts with the setter's own error (the WIT `result`'s
//! `err`, which the guest sees as an invalid value) and handing the rest to
//! wasmtime's implementation.

use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{HostOutgoingRequest as Setters, Method};
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;

/// Longest authority (`user@host:port`): a DNS name is at most 253 bytes.
pub const MAX_AUTHORITY_BYTES: usize = 1024;

/// Longest path with query: servers and proxies refuse request lines past
/// 8–16 KiB.
pub const MAX_PATH_WITH_QUERY_BYTES: usize = 16 * 1024;

/// Longest extension method (`PROPFIND`, `MKCALENDAR`).
pub const MAX_METHOD_BYTES: usize = 64;

/// The interface whose setters are wrapped, as wasmtime-wasi-http defines it
/// (guests importing an older 0.2 release link to it by semver).
const TYPES: &str = "wasi:http/types@0.2.12";

type Taken = wasmtime::Result<(Result<(), ()>,)>;

/// Replace the request setters `wasmtime_wasi_http` linked with capped ones.
/// Call after linking wasi:http.
pub fn cap_request_parts<T: WasiHttpView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(TYPES)?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        |mut store,
         (request, authority): (Resource<HostOutgoingRequest>, Option<String>)|
         -> Taken {
            if authority
                .as_ref()
                .is_some_and(|a| a.len() > MAX_AUTHORITY_BYTES)
            {
                return Ok((Err(()),));
            }
            Ok((Setters::set_authority(
                &mut store.data_mut().http(),
                request,
                authority,
            )?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |mut store, (request, path): (Resource<HostOutgoingRequest>, Option<String>)| -> Taken {
            if path
                .as_ref()
                .is_some_and(|p| p.len() > MAX_PATH_WITH_QUERY_BYTES)
            {
                return Ok((Err(()),));
            }
            Ok((Setters::set_path_with_query(
                &mut store.data_mut().http(),
                request,
                path,
            )?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-method",
        |mut store, (request, method): (Resource<HostOutgoingRequest>, Method)| -> Taken {
            if matches!(&method, Method::Other(m) if m.len() > MAX_METHOD_BYTES) {
                return Ok((Err(()),));
            }
            Ok((Setters::set_method(
                &mut store.data_mut().http(),
                request,
                method,
            )?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
