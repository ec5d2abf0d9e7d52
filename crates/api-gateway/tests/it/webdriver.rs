//! Just enough of the W3C WebDriver protocol to drive Debian's headless Chromium
//! through `chromedriver`, over the reqwest client the tests already use: a
//! session per test, its own chromedriver on a free port, its own empty
//! profile; all of it goes with the `Chrome` value (also on panic).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use queue_core::testing::{PATIENCE, eventually_within};
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's binary: the real one, not Debian's launcher script.
fn chromium_binary() -> PathBuf {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect(
            "Chromium is installed (Debian's chromium and chromium-driver; scripts/test.sh \
             installs them)",
        )
}

fn chromedriver_binary() -> PathBuf {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromedriver is installed (Debian's chromium-driver; scripts/test.sh installs it)")
}

pub struct Chrome {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

/// An element found on the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Chrome {
    /// Starts chromedriver and a headless Chromium with an empty profile.
    pub async fn start() -> Self {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let driver = tokio::process::Command::new(chromedriver_binary())
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        eventually_within("chromedriver is ready", PATIENCE, async || {
            let status: Value = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (status["value"]["ready"] == true).then_some(())
        })
        .await;
        let profile = tempfile::tempdir().expect("a profile dir");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium_binary(), "args": args},
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("a session request")
            .json()
            .await
            .expect("json");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("a session: {res}"))
            .to_owned();
        Self {
            http,
            session: format!("{base}/session/{id}"),
            _driver: driver,
            _profile: profile,
        }
    }

    /// A command's value, or WebDriver's error (`stale element reference`
    /// while a click's navigation replaces the page, ...).
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session))
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("a WebDriver request");
        let status = res.status();
        let body: Value = res.json().await.expect("json");
        if status.is_success() {
            Ok(body["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {body}"))
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().expect("a url").to_owned()
    }

    /// The elements matching `css` now (maybe none).
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        self.try_find_all(css)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn try_find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        let found = self
            .try_call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found
            .as_array()
            .expect("a list")
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().expect("an element").to_owned()))
            .collect())
    }

    /// The first element matching `css`, waiting for it to appear (also
    /// while a navigation is under way).
    pub async fn find(&self, css: &str) -> Element {
        eventually_within(&format!("{css} is on the page"), PATIENCE, async || {
            self.try_find_all(css).await.ok()?.into_iter().next()
        })
        .await
    }

    /// Clicks the first element matching `css`, found again if the page
    /// replaced it between finding and clicking (a live list refresh).
    pub async fn click(&self, css: &str) {
        eventually_within(&format!("a click on {css}"), PATIENCE, async || {
            let e = self.try_find_all(css).await.ok()?.into_iter().next()?;
            self.try_call(
                reqwest::Method::POST,
                &format!("/element/{}/click", e.0),
                Some(json!({})),
            )
            .await
            .ok()
        })
        .await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({"text": text}))
            .await;
    }

    /// The text of the first element matching `css`, once it is there: found
    /// again when a navigation replaced the one found first.
    pub async fn text_of(&self, css: &str) -> String {
        eventually_within(&format!("the text of {css}"), PATIENCE, async || {
            let e = self.try_find_all(css).await.ok()?.into_iter().next()?;
            let text = self
                .try_call(
                    reqwest::Method::GET,
                    &format!("/element/{}/text", e.0),
                    None,
                )
                .await
                .ok()?;
            Some(text.as_str().unwrap_or_default().to_owned())
        })
        .await
    }

    /// The page's whole visible text.
    pub async fn body_text(&self) -> String {
        self.text_of("body").await
    }

    /// Runs `script` in the page; its return value.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits until the page's text contains `needle`, without reloading.
    pub async fn until_text(&self, needle: &str) {
        eventually_within(
            &format!("the page shows {needle:?}"),
            PATIENCE,
            async || self.body_text().await.contains(needle).then_some(()),
        )
        .await;
    }

    /// A PNG of the window, saved at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        std::fs::write(path, bytes).expect("write the screenshot");
    }

    pub async fn quit(self) {
        let _ = self
            .http
            .delete(&self.session)
            .timeout(Duration::from_secs(30))
            .send()
            .await;
    }
}
