//! WebDriver servers (`chromedriver`, `geckodriver`, `WebKitWebDriver` under its own Xvfb)
//! and browser sessions, started on free loopback ports and stopped on drop, also when a
//! test panics.
//!
//! Cleanup happens in layers, because a panicking test never reaches its `close().await`:
//! 1. [`Browser::close`] ends the WebDriver session (the driver quits the browser);
//! 2. dropping an unclosed [`Browser`] sends the same `DELETE /session/{id}` with a blocking
//!    socket (the async runtime may already be unwinding);
//! 3. dropping a [`Driver`] kills the driver and then its process group, so a browser whose
//!    session could not be ended does not outlive the test; then stops its Xvfb (WebKit) and
//!    removes the driver's temporary directory (driver log, browser profiles).

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

/// How long a driver may take to answer `/status`.
const DRIVER_START: Duration = Duration::from_secs(20);
/// Page loads and scripts: a hung page fails the test instead of hanging it.
const PAGE_LOAD_MS: u64 = 15_000;
const SCRIPT_MS: u64 = 10_000;

/// Chromium's binary: the real one first (the `/usr/bin/chromium` launcher script also works).
const CHROMIUM_BINARIES: [&str; 2] = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"];

/// Flags that work headless as root on this kind of machine (AMP-NOTES.md, "Browsers on this
/// machine"); `--user-data-dir` is added per session.
const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1000,700",
];

/// Writes a line to the real stderr, past libtest's output capture, so that skip notices,
/// durations and versions show in a plain `cargo test` run.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The engines under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Chromium,
    Firefox,
    /// WebKitGTK's MiniBrowser (Safari's engine), driven by `WebKitWebDriver` under Xvfb.
    WebKit,
}

impl Engine {
    fn driver_name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromedriver",
            Engine::Firefox => "geckodriver",
            Engine::WebKit => "WebKitWebDriver",
        }
    }

    fn browser_name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox-esr",
            Engine::WebKit => "MiniBrowser (webkit2gtk-driver)",
        }
    }
}

/// Whether `CI=true`: then a missing browser, driver or runtime fails a test instead of
/// skipping it (CI installs them, so missing there is a broken set-up).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// With `CI=true` panics with `what`; else prints `browser tests skipped: <what>`.
pub fn skip_or_fail(what: &str) {
    if ci() {
        panic!("browser tests: {what}, and CI=true requires it (.ci/run installs it)");
    }
    note(&format!("browser tests skipped: {what}"));
}

/// The driver and browser binaries of an engine, found on this machine.
#[derive(Debug, Clone)]
pub struct Installed {
    pub engine: Engine,
    pub driver: PathBuf,
    pub browser: PathBuf,
    /// WebKit only: the X server the browser gets (there is no headless MiniBrowser).
    pub xvfb: Option<PathBuf>,
}

impl Installed {
    /// Finds the engine's programs. When one is missing: prints
    /// `browser tests skipped: <program> not found` and returns `None`, or panics when
    /// `CI=true` (CI installs them, so missing there is a broken set-up, not a skip).
    pub fn find(engine: Engine) -> Option<Installed> {
        let driver = on_path(engine.driver_name());
        let browser = match engine {
            Engine::Chromium => CHROMIUM_BINARIES
                .iter()
                .map(PathBuf::from)
                .find(|p| is_executable(p))
                .or_else(|| on_path("chromium")),
            Engine::Firefox => on_path("firefox-esr"),
            Engine::WebKit => minibrowser(),
        };
        let xvfb = (engine == Engine::WebKit)
            .then(|| on_path("Xvfb"))
            .flatten();
        let missing: Vec<&str> = [
            (engine.driver_name(), driver.is_none()),
            (engine.browser_name(), browser.is_none()),
            ("Xvfb", engine == Engine::WebKit && xvfb.is_none()),
        ]
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(name, _)| *name)
        .collect();
        if missing.is_empty() {
            return Some(Installed {
                engine,
                driver: driver?,
                browser: browser?,
                xvfb,
            });
        }
        skip_or_fail(&format!("{} not found", missing.join(", ")));
        None
    }

    /// `ChromeDriver 156.0...` / `geckodriver 0.37.1`: the first line of `--version`
    /// (`WebKitWebDriver` has none: it is the version of the WebKitGTK it comes with).
    pub fn driver_version(&self) -> String {
        if self.engine == Engine::WebKit {
            return "WebKitWebDriver (same version as the browser)".into();
        }
        Command::new(&self.driver)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into())
    }
}

/// `/usr/lib/<multiarch>/webkit2gtk-4.1/MiniBrowser` (Debian's `webkit2gtk-driver` pulls it
/// in with libwebkit2gtk), or `$WEBKIT_MINIBROWSER`.
fn minibrowser() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEBKIT_MINIBROWSER") {
        return Some(PathBuf::from(path)).filter(|p| is_executable(p));
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.push(PathBuf::from("/usr/lib"));
    dirs.sort();
    dirs.into_iter()
        .flat_map(|d| ["webkit2gtk-4.1", "webkit2gtk-4.0", "webkitgtk-6.0"].map(|v| d.join(v)))
        .map(|d| d.join("MiniBrowser"))
        .find(|p| is_executable(p))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// A directory under the system temp dir, removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "tower-amp-session-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A browser that just quit may still be flushing its profile: try twice.
        if std::fs::remove_dir_all(&self.0).is_err() {
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A running `chromedriver --port=N` or `geckodriver --port N`; stopped on drop.
#[derive(Debug)]
pub struct Driver {
    installed: Installed,
    child: Child,
    port: u16,
    /// WebKit: the X server its browsers draw on; stopped after the driver.
    xvfb: Option<Xvfb>,
    /// Holds the driver's log and, through `TMPDIR`, the profiles geckodriver creates.
    dir: TempDir,
}

impl Driver {
    pub fn start(installed: &Installed) -> Driver {
        let dir = TempDir::new(installed.engine.driver_name());
        let port = crate::support::ports::free_port();
        let log_path = dir.path().join("driver.log");
        let log = File::create(&log_path).expect("create the driver log");
        let xvfb = installed.xvfb.as_deref().map(Xvfb::start);
        let mut command = Command::new(&installed.driver);
        match installed.engine {
            Engine::Chromium => command.arg(format!("--port={port}")),
            Engine::Firefox => command
                .args(["--host", "127.0.0.1", "--port"])
                .arg(port.to_string()),
            Engine::WebKit => command.arg(format!("--port={port}")),
        };
        if let Some(x) = &xvfb {
            command.env("DISPLAY", x.display());
        }
        command
            // geckodriver copies a fresh profile per session into TMPDIR: keep it in our dir.
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log);
        // Its own process group: on drop the whole group goes, browser included.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", installed.driver.display()));
        let driver = Driver {
            installed: installed.clone(),
            child,
            port,
            xvfb,
            dir,
        };
        driver.wait_until_ready();
        driver
    }

    pub fn engine(&self) -> Engine {
        self.installed.engine
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("driver.log")).unwrap_or_default()
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + DRIVER_START;
        loop {
            if let Some((200, body)) = raw_request(self.port, "GET", "/status") {
                let ready = serde_json::from_str::<Value>(json_part(&body))
                    .is_ok_and(|v| v["value"]["ready"] == json!(true));
                if ready {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not get ready within {DRIVER_START:?}:\n{}",
                self.installed.driver.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens a Chromium session with a fresh profile and the given third-party cookie setting.
    pub async fn chromium(&self, third_party: ThirdPartyCookies) -> Browser {
        assert_eq!(self.engine(), Engine::Chromium);
        let profile = TempDir::new("chromium-profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            // The shop's `--tls` certificate is made at start and trusted by no one.
            "acceptInsecureCerts": true,
            "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": SCRIPT_MS, "implicit": 0 },
            "goog:chromeOptions": {
                "binary": self.installed.browser,
                "args": args,
                // Set explicitly every time: the default of a fresh profile is not something to
                // rely on (AMP-NOTES.md). 1 blocks third-party cookies, 0 allows them.
                "prefs": { "profile.cookie_controls_mode": third_party.cookie_controls_mode() },
            },
        });
        self.open(caps, Some(profile)).await
    }

    /// Opens a Firefox ESR session, headless, with the fresh profile geckodriver creates for
    /// every session and Firefox's default cookie policy (Total Cookie Protection).
    pub async fn firefox(&self) -> Browser {
        assert_eq!(self.engine(), Engine::Firefox);
        let caps = json!({
            "browserName": "firefox",
            "acceptInsecureCerts": true,
            "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": SCRIPT_MS, "implicit": 0 },
            "moz:firefoxOptions": {
                "binary": self.installed.browser,
                "args": ["-headless", "-width", "1000", "-height", "700"],
            },
        });
        self.open(caps, None).await
    }

    /// Opens a WebKitGTK MiniBrowser session with `--enable-itp` (Intelligent Tracking
    /// Prevention, Safari's setting: no cookie is ever sent third-party) on the driver's Xvfb.
    /// `acceptInsecureCerts` lets it use the shop's `--tls` certificate: WebKit refuses
    /// `Secure` cookies over plain http on every host, so the shop must run with `--tls`.
    pub async fn webkit(&self) -> Browser {
        assert_eq!(self.engine(), Engine::WebKit);
        let caps = json!({
            "acceptInsecureCerts": true,
            "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": SCRIPT_MS, "implicit": 0 },
            "webkitgtk:browserOptions": {
                "binary": self.installed.browser,
                // `args` replaces the defaults, so `--automation` is repeated.
                "args": ["--automation", "--enable-itp"],
            },
        });
        self.open(caps, None).await
    }

    async fn open(&self, caps: Value, profile: Option<TempDir>) -> Browser {
        let Value::Object(caps) = caps else {
            unreachable!("capabilities are an object")
        };
        let caps: Capabilities = caps;
        let client = ClientBuilder::rustls()
            .expect("rustls connector")
            .capabilities(caps)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "open a {:?} session: {e}\n--- driver log ---\n{}",
                    self.engine(),
                    self.log()
                )
            });
        let session_id = client
            .session_id()
            .await
            .expect("session id")
            .expect("a W3C session id");
        let version = client
            .capabilities()
            .and_then(|c| c.get("browserVersion"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned();
        Browser {
            client: Some(client),
            port: self.port,
            session_id,
            version,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if self.installed.engine == Engine::Chromium {
            // Quits the browsers of any session still open, then exits.
            let _ = raw_request(self.port, "GET", "/shutdown");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Anything left in the driver's process group (a browser whose session could not be
        // ended): the group id is the driver's pid, a process this test started.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        // After the browsers: they draw on it.
        self.xvfb.take();
        if std::thread::panicking() {
            note(&format!(
                "--- {} log ---\n{}",
                self.installed.engine.driver_name(),
                tail(&self.log(), 60)
            ));
        }
    }
}

/// A private X server (`Xvfb -displayfd`), on a display number it picks itself; killed on
/// drop.
#[derive(Debug)]
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start(binary: &Path) -> Xvfb {
        let mut child = Command::new(binary)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        // Xvfb writes the display number once it accepts connections.
        let stdout = child.stdout.take().expect("Xvfb's stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut xvfb = Xvfb {
            child,
            display: String::new(),
        };
        match rx.recv_timeout(DRIVER_START) {
            Ok(line) if !line.trim().is_empty() => xvfb.display = format!(":{}", line.trim()),
            _ => panic!("Xvfb did not report a display within {DRIVER_START:?}"),
        }
        xvfb
    }

    fn display(&self) -> &str {
        &self.display
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium's third-party cookie setting (`profile.cookie_controls_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThirdPartyCookies {
    Blocked,
    Allowed,
}

impl ThirdPartyCookies {
    fn cookie_controls_mode(self) -> u8 {
        match self {
            ThirdPartyCookies::Blocked => 1,
            ThirdPartyCookies::Allowed => 0,
        }
    }
}

/// A WebDriver session: a browser with its own fresh profile. Call [`Browser::close`]; if a
/// panic gets there first, drop ends the session instead.
#[derive(Debug)]
pub struct Browser {
    client: Option<Client>,
    port: u16,
    session_id: String,
    version: String,
    /// Removed after the session ended (fields drop after `Drop::drop`).
    _profile: Option<TempDir>,
}

impl Browser {
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// The browser's version, as the session reported it (`browserVersion`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Ends the session: the driver quits the browser.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.close().await.expect("end the WebDriver session");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.client.take().is_some() {
            let _ = raw_request(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session_id),
            );
        }
    }
}

/// One blocking HTTP/1.1 request to a driver on 127.0.0.1; `(status, body)`, or `None` when
/// it does not answer. Used where no async runtime can be relied on (readiness, drop).
fn raw_request(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    // chromedriver keeps the connection open despite `Connection: close`: read up to the end
    // of the body (Content-Length, or the last chunk), not to EOF.
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !is_complete(&response) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Whether `response` holds a whole HTTP response (head and body).
fn is_complete(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let head = head.to_ascii_lowercase();
    let length = head.lines().find_map(|line| {
        line.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    match length {
        Some(length) => body.len() >= length,
        None if head.contains("transfer-encoding: chunked") => body.ends_with("0\r\n\r\n"),
        None => false, // until EOF
    }
}

/// The JSON object in a body, also when it came chunk-encoded.
fn json_part(body: &str) -> &str {
    match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) if start < end => &body[start..=end],
        _ => body,
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
