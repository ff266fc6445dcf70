//! A headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by `cargo xtask test`), for the console's
//! browser tests.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A chromedriver process and one browser session on it.
pub struct Browser {
    pub client: Client,
    driver: Child,
}

fn found(env: &str, candidates: &[&str]) -> String {
    if let Ok(path) = std::env::var(env) {
        return path;
    }
    candidates
        .iter()
        .find(|c| std::path::Path::new(c).exists())
        .map(|c| c.to_string())
        .unwrap_or_else(|| {
            panic!(
                "{} not found (looked in {candidates:?}; set {env}): `cargo xtask test` installs \
                 Debian's chromium and chromium-driver",
                candidates[0]
            )
        })
}

impl Browser {
    /// A headless browser with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        let driver_path = found("GRIDLET_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let chromium = found("GRIDLET_CHROMIUM", &["/usr/bin/chromium"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        let browser = Browser { client, driver };
        browser.viewport(width, height).await;
        browser
    }

    /// Make the page's viewport (not the window) `width`×`height`.
    pub async fn viewport(&self, width: u32, height: u32) {
        for _ in 0..3 {
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .expect("viewport");
            let (w, h) = (
                inner[0].as_i64().unwrap_or(0),
                inner[1].as_i64().unwrap_or(0),
            );
            if (w, h) == (i64::from(width), i64::from(height)) {
                return;
            }
            let (ow, oh) = self.client.get_window_size().await.expect("window size");
            let grow = |outer: u64, want: u32, is: i64| {
                (outer as i64 + i64::from(want) - is).max(100) as u32
            };
            self.client
                .set_window_size(grow(ow, width, w), grow(oh, height, h))
                .await
                .expect("resize");
        }
    }

    /// The element `css`, once it is there (10 s).
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
    }

    /// Wait until the page's text contains `text` (10 s).
    pub async fn text_appears(&self, text: &str) {
        let started = Instant::now();
        loop {
            let body = self.body_text().await;
            if body.contains(text) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "`{text}` never appeared; the page shows:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text the page shows.
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Click `css` once it is there.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click `{css}`: {e}"));
    }

    /// Save a screenshot of the window as `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Browser {
    /// End the session (the browser exits) and the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
