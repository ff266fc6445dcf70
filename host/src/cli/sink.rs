//! `gridlet sink`: print every request, answer a fixed status.

use super::one_line::one_line;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Arguments of `gridlet sink`.
#[derive(Args)]
pub struct SinkArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// The status to answer every request with (try 503 to see a plugin retry).
    #[arg(long, default_value_t = 200)]
    status: u16,
}

/// Serve until interrupted.
pub async fn sink(args: SinkArgs) -> anyhow::Result<ExitCode> {
    super::init_logging("info");
    let status = StatusCode::from_u16(args.status)?;
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            // What plugins send, as terminal text (see `one_line`).
            println!(
                "{method} {} ({}, {} bytes)",
                one_line(&uri.to_string()),
                one_line(content_type),
                body.len()
            );
            println!("  {}", one_line(&String::from_utf8_lossy(&body)));
            status
        },
    );
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "sink listening on http://{} answering {status}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(ExitCode::SUCCESS)
}
