//! The webhook fails closed and holds up against whoever reaches the port:
//! no auth means no public listener, Entra tokens are checked completely,
//! slow clients are cut off, readiness tells outsiders nothing internal, and
//! the admin API checks its token before reading anything else.

use crate::common::Recorder;
use crate::common::entra::{AUDIENCE, ISSUER, bearer, fixture, keys, now, token};
use crate::common::fort::{ADMIN_TOKEN, Fort, SECRET, event};
use gridlet::ingest::{Auth, EntraAuth};
use gridlet::serve::{self, ServeSettings};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const KID: &str = "gridlet-test-key";

#[tokio::test]
async fn serving_without_auth_on_a_public_address_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = ServeSettings {
        listen: "0.0.0.0:0".parse().expect("addr"),
        plugins_dir: dir.path().join("plugins"),
        state_dir: dir.path().join("state"),
        ..ServeSettings::default()
    };
    let error = serve::start(settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        error,
        "refusing to serve without auth on 0.0.0.0:0: set GRIDLET_SECRET (and put ?code=<secret> \
         in the Event Grid endpoint URL) or configure [entra], listen on a loopback address, or \
         pass --insecure-no-auth"
    );
    // The same from the command line, with nothing started.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gridlet"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .env_remove("GRIDLET_SECRET")
        .env_remove("GRIDLET_CONFIG")
        .env_remove("GRIDLET_INSECURE_NO_AUTH")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to serve without auth"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !dir.path().join("state").exists(),
        "refused before touching state"
    );
}

#[tokio::test]
async fn running_open_on_purpose_is_loud_in_readyz() {
    let fort = Fort::start(vec![], |s| {
        s.listen = "0.0.0.0:0".parse().expect("addr");
        s.ingest.auth = Auth::default();
        s.insecure_no_auth = true;
    })
    .await;
    let url = format!("http://127.0.0.1:{}/readyz", fort.server.addr.port());
    let started = std::time::Instant::now();
    let body = loop {
        let body: Value = fort
            .client
            .get(&url)
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("json");
        if body["status"] == "ready" {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(body["checks"]["auth"], "OFF (--insecure-no-auth)", "{body}");
}

#[tokio::test]
async fn an_entra_token_missing_or_mismatching_iss_aud_nbf_or_roles_is_refused() {
    let auth = Auth {
        secret: None,
        entra: Some(
            EntraAuth::new(ISSUER, AUDIENCE, keys())
                .with_required_roles(vec!["AzureEventGridSecureWebhookSubscriber".into()]),
        ),
    };
    let role = json!(["AzureEventGridSecureWebhookSubscriber"]);
    let good = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() - 60, "roles": role});
    assert!(auth.check(None, &bearer(&token(good, Some(KID)))).await);
    let refused = [
        (
            "no aud",
            json!({"iss": ISSUER, "exp": now() + 600, "roles": role}),
        ),
        (
            "no iss",
            json!({"aud": AUDIENCE, "exp": now() + 600, "roles": role}),
        ),
        (
            "no exp",
            json!({"iss": ISSUER, "aud": AUDIENCE, "roles": role}),
        ),
        (
            "another audience",
            json!({"iss": ISSUER, "aud": "api://other", "exp": now() + 600, "roles": role}),
        ),
        (
            "not yet valid",
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 7200, "nbf": now() + 3600, "roles": role}),
        ),
        (
            "no role",
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}),
        ),
        (
            "another role",
            json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "roles": ["Reader"]}),
        ),
    ];
    for (what, claims) in refused {
        assert!(
            !auth.check(None, &bearer(&token(claims, Some(KID)))).await,
            "{what}"
        );
    }
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_key_set_at_most_once_per_interval() {
    // A key-set endpoint that first serves an empty set, then the real one.
    let jwks = Recorder::start().await;
    jwks.answer_body(br#"{"keys": []}"#.to_vec());
    let entra = EntraAuth::new(
        ISSUER,
        AUDIENCE,
        serde_json::from_str(r#"{"keys": []}"#).expect("set"),
    )
    .with_key_url(&jwks.url("/keys"), None);
    jwks.answer_body(std::fs::read(fixture("entra-jwks.json")).expect("jwks"));
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600});
    // The key rotated in: the first token naming it fetches the set again.
    assert!(
        entra
            .check(&bearer(&token(claims.clone(), Some(KID))))
            .await
            .is_ok()
    );
    assert_eq!(jwks.received().len(), 1);
    // A flood of made-up key ids fetches nothing more.
    for i in 0..50 {
        let refused = entra
            .check(&bearer(&token(
                claims.clone(),
                Some(&format!("forged-{i}")),
            )))
            .await;
        assert_eq!(refused, Err(format!("no key with kid forged-{i}")));
    }
    assert_eq!(jwks.received().len(), 1, "at most one fetch per interval");
}

/// Read from `stream` until the server closes it (or 10 s pass); what came.
fn until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&seen).into_owned(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&seen).into_owned();
            }
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let fort = Fort::start(vec![], |s| {
        s.limits.header_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = fort.server.addr;
    let (partial, idle) = tokio::task::spawn_blocking(move || {
        // Half a request line and one header, then nothing.
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"POST /api/events HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        // Connected, never a byte.
        let mut idle = TcpStream::connect(addr).expect("connect");
        (until_closed(&mut slow), until_closed(&mut idle))
    })
    .await
    .expect("join");
    // hyper answers a header timeout with 408 before closing, or just closes.
    assert!(
        partial.is_empty() || partial.starts_with("HTTP/1.1 408"),
        "{partial}"
    );
    assert!(
        idle.is_empty() || idle.starts_with("HTTP/1.1 408"),
        "{idle}"
    );
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_gets_408_and_nothing_is_stored() {
    let fort = Fort::start(vec![], |s| {
        s.ingest.body_timeout = Duration::from_millis(300);
    })
    .await;
    let addr = fort.server.addr;
    let body = json!([event("slow-body-1")]).to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let head = format!(
            "POST /api/events?code={SECRET} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("head");
        stream.write_all(&body.as_bytes()[..10]).expect("a little body");
        until_closed(&mut stream)
    })
    .await
    .expect("join");
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer}"
    );
    assert!(answer.contains("\"type\":\"body-timeout\""), "{answer}");
    let journal = fort.server.dispatcher.journal().clone();
    assert!(
        journal
            .deliveries(None, 100)
            .expect("deliveries")
            .iter()
            .all(|d| d.event_id != "slow-body-1"),
        "nothing of it stored"
    );
    fort.good_still_delivers().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_closes() {
    let fort = Fort::start(vec![], |s| {
        s.limits.max_connections = 3;
        s.limits.header_timeout = Duration::from_millis(500);
    })
    .await;
    let addr = fort.server.addr;
    // Three idle connections take every slot...
    let hogs: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // ...yet a real sender gets through once the header timeout frees them.
    fort.good_still_delivers().await;
    let closed = tokio::task::spawn_blocking(move || {
        hogs.into_iter()
            .map(|mut h| until_closed(&mut h))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join");
    assert_eq!(closed.len(), 3, "every idle connection was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_tells_an_outsider_which_check_failed_and_nothing_more() {
    let fort = Fort::start(vec![], |_| {}).await;
    let url = format!("http://{}/readyz", fort.server.addr);
    let lock =
        rusqlite::Connection::open(fort.dir.path().join("state/journal.sqlite3")).expect("open");
    lock.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let client = fort.client.clone();
    let started = std::time::Instant::now();
    let body = loop {
        let r = client.get(&url).send().await.expect("readyz");
        let code = r.status().as_u16();
        let body = r.text().await.expect("body");
        if code == 503 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let json: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["checks"]["journal"], "not writable");
    for internal in ["locked", "database", "sqlite", "journal:", "/"] {
        assert!(!body.contains(internal), "{internal} in {body}");
    }
    lock.execute_batch("ROLLBACK").expect("unlock");
}

#[tokio::test]
async fn the_admin_token_is_checked_before_anything_is_parsed() {
    let fort = Fort::start(vec![], |_| {}).await;
    let base = format!("http://{}", fort.server.addr);
    let no_token = [
        fort.client
            .post(format!("{base}/admin/dead-letters/replay"))
            .header("content-type", "text/plain")
            .body("{not json"),
        fort.client
            .get(format!("{base}/admin/dead-letters/not-a-number")),
        fort.client
            .get(format!("{base}/admin/deliveries?limit=-5&state=nonsense")),
        fort.client
            .post(format!("{base}/admin/dead-letters/purge"))
            .bearer_auth("wrong")
            .json(&json!({"ids": "all of them"})),
    ];
    for request in no_token {
        let r = request.send().await.expect("request");
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.expect("problem");
        assert_eq!(body["type"], "unauthorized", "{body}");
    }
    // With the token, the same malformed body is a parse error.
    let r = fort
        .client
        .post(format!("{base}/admin/dead-letters/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 400);
    fort.good_still_delivers().await;
}

#[tokio::test]
async fn the_admin_api_on_its_own_listener_is_not_on_the_webhook_port() {
    let fort = Fort::start(vec![], |s| {
        s.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let admin = fort.server.admin_addr.expect("admin listener");
    let get = |addr: std::net::SocketAddr, path: &'static str| {
        fort.client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    for path in ["/admin/plugins", "/metrics"] {
        assert_eq!(
            get(fort.server.addr, path).await.expect("get").status(),
            404,
            "{path} on the webhook port"
        );
        assert_eq!(get(admin, path).await.expect("get").status(), 200, "{path}");
    }
    // Readiness waits for the journal's first probe (a moment after start).
    let started = std::time::Instant::now();
    while get(admin, "/readyz").await.expect("get").status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "/readyz on the admin listener never said ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(admin, "/api/events").await.expect("get").status(),
        404,
        "no webhook on the admin port"
    );
    fort.good_still_delivers().await;
}
