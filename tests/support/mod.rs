//! Shared by the tests that drive `examples/shop` as a real process over TCP.
//!
//! [`ShopProcess::start`] builds the example (a no-op when it is up to date), starts it on two
//! free loopback ports with a fixed signing key and the given flags, waits until it answers,
//! and kills it on drop, also when the test panics (its log is then printed to help). With
//! `--tls` it also gets `--cert-out`, and [`http`] trusts exactly that certificate.
//! [`http`] sends requests to it with the `Host` a browser would send.

// Each test crate uses a different part of this module.
#![allow(dead_code, unused_imports)]

pub mod h2;
pub mod http;
pub mod nginx;
pub mod ports;
pub mod redis_server;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use self::http::{Endpoint, Reply};

/// The signing key the shop gets in tests (base64 of 32 bytes), so runs are reproducible.
pub const TEST_KEY: &str = "dGVzdC1rZXktZm9yLXRoZS1zaG9wLWV4YW1wbGUtMzI=";
/// The publisher host of the shop.
pub const ORIGIN_HOST: &str = "shop.localhost";
/// The simulated cache's host for the shop: its cache subdomain on `cache.localhost`.
pub const CACHE_HOST: &str = "shop-localhost.cache.localhost";
/// The names the layer's session cookie may have: `__Host-amp_session` (the default once a
/// cookie prefix is used) or the older `amp_session`.
pub const SESSION_COOKIES: [&str; 2] = ["__Host-amp_session", "amp_session"];

const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `examples/shop`; killed on drop.
#[derive(Debug)]
pub struct ShopProcess {
    child: Child,
    origin_port: u16,
    cache_port: u16,
    log_path: PathBuf,
    /// With `--tls`: the certificate the shop wrote (`--cert-out`), removed on drop. Behind
    /// a proxy: a copy of the proxy's certificate.
    cert_path: Option<PathBuf>,
    /// Behind a proxy ([`ShopProcess::start_behind_proxy`]): where the shop itself listens
    /// (origin, cache); the public ports above are the proxy's.
    listen: Option<(u16, u16)>,
}

impl ShopProcess {
    /// Builds and starts the shop with `--origin-port P --cache-port Q` plus `extra_args`
    /// (`--tls` adds `--cert-out FILE`), and waits (up to 20 s) until both sites answer.
    pub fn start(extra_args: &[&str]) -> ShopProcess {
        let [origin_port, cache_port] = ports::free_ports::<2>();
        let stem = std::env::temp_dir().join(format!(
            "tower-amp-session-shop-{}-{origin_port}",
            std::process::id()
        ));
        let mut args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let cert_path = extra_args
            .contains(&"--tls")
            .then(|| stem.with_extension("pem"));
        if let Some(path) = &cert_path {
            let _ = std::fs::remove_file(path);
            args.push("--cert-out".to_owned());
            args.push(path.display().to_string());
        }
        ShopProcess::spawn(
            (origin_port, cache_port),
            None,
            &stem,
            cert_path,
            &args,
            &[],
        )
    }

    /// Starts one instance of the shop behind a TLS-terminating proxy (`--behind-tls-proxy`):
    /// its public sites are https on `public` (origin, cache: the proxy's ports, with the
    /// proxy's `certificate_pem`), it listens in plain http on `listen`. `env` is added to
    /// the shop's environment (e.g. `AMP_SESSION_KEYS`). Waits until it answers on `listen`.
    pub fn start_behind_proxy(
        public: (u16, u16),
        listen: (u16, u16),
        certificate_pem: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> ShopProcess {
        let stem = std::env::temp_dir().join(format!(
            "tower-amp-session-shop-{}-{}",
            std::process::id(),
            listen.0
        ));
        let cert_path = stem.with_extension("pem");
        std::fs::write(&cert_path, certificate_pem).expect("write the proxy's certificate");
        let mut args: Vec<String> = vec![
            "--behind-tls-proxy".into(),
            "--listen-origin-port".into(),
            listen.0.to_string(),
            "--listen-cache-port".into(),
            listen.1.to_string(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        ShopProcess::spawn(public, Some(listen), &stem, Some(cert_path), &args, env)
    }

    fn spawn(
        (origin_port, cache_port): (u16, u16),
        listen: Option<(u16, u16)>,
        stem: &Path,
        cert_path: Option<PathBuf>,
        extra_args: &[String],
        env: &[(&str, &str)],
    ) -> ShopProcess {
        let binary = shop_binary();
        let log_path = stem.with_extension("log");
        let log = File::create(&log_path).expect("create the shop's log file");
        let mut args = vec![
            "--origin-port".to_owned(),
            origin_port.to_string(),
            "--cache-port".to_owned(),
            cache_port.to_string(),
        ];
        args.extend_from_slice(extra_args);
        let child = Command::new(&binary)
            .args(&args)
            .env("AMP_SESSION_KEY", TEST_KEY)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info,tower_amp_session=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        // From here on, Drop kills the child even if waiting fails.
        let mut shop = ShopProcess {
            child,
            origin_port,
            cache_port,
            log_path,
            cert_path,
            listen,
        };
        shop.wait_until_ready();
        shop
    }

    pub fn origin_port(&self) -> u16 {
        self.origin_port
    }

    pub fn cache_port(&self) -> u16 {
        self.cache_port
    }

    /// `shop.localhost:P`, the origin's `Host`.
    pub fn origin_host(&self) -> String {
        format!("{ORIGIN_HOST}:{}", self.origin_port)
    }

    /// `shop-localhost.cache.localhost:Q`, the cache's `Host`.
    pub fn cache_host(&self) -> String {
        format!("{CACHE_HOST}:{}", self.cache_port)
    }

    /// Whether the shop was started with `--tls`.
    pub fn tls(&self) -> bool {
        self.cert_path.is_some()
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls() {
            "https"
        } else {
            "http"
        }
    }

    /// `http://shop.localhost:P` (`https://` with `--tls`): the publisher origin.
    pub fn origin_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.origin_host())
    }

    /// `http://shop-localhost.cache.localhost:Q`: the cache origin (as browsers send `Origin`).
    pub fn cache_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.cache_host())
    }

    /// The cache copy of an origin page, e.g.
    /// `http://shop-localhost.cache.localhost:Q/c/shop.localhost:P<path>`.
    pub fn cache_page_url(&self, path: &str) -> String {
        format!("{}{}", self.cache_url(), self.cache_page_path(path))
    }

    /// The path of the cache copy on the cache, in the real caches' format:
    /// `/c/s/shop.localhost:P<path>` for an https origin, `/c/shop.localhost:P<path>` for http.
    pub fn cache_page_path(&self, path: &str) -> String {
        let s = if self.tls() { "s/" } else { "" };
        format!("/c/{s}{}{path}", self.origin_host())
    }

    /// The shop's certificate (DER), with `--tls`.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        let pem = std::fs::read_to_string(self.cert_path.as_ref()?).ok()?;
        http::pem_certificate(&pem)
    }

    fn endpoint(&self, port: u16, host: String) -> Endpoint {
        let endpoint = Endpoint::new(port, host);
        match self.certificate() {
            Some(cert) => endpoint.tls(cert),
            None => endpoint,
        }
    }

    /// Requests to the origin (sent to 127.0.0.1:P with `Host: shop.localhost:P`; over TLS
    /// with `--tls`, trusting only the shop's certificate).
    pub fn origin(&self) -> Endpoint {
        self.endpoint(self.origin_port, self.origin_host())
    }

    /// Requests to the simulated cache (sent to 127.0.0.1:Q with the cache's `Host`).
    pub fn cache(&self) -> Endpoint {
        self.endpoint(self.cache_port, self.cache_host())
    }

    /// What the shop has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the shop exited early ({status}):\n{}", self.log());
            }
            let ready = if let Some((origin, _)) = self.listen {
                answers(origin, &self.origin_host())
            } else if self.tls() {
                // The certificate is written before the servers run; both ports listening.
                self.certificate().is_some()
                    && TcpStream::connect(("127.0.0.1", self.origin_port)).is_ok()
                    && TcpStream::connect(("127.0.0.1", self.cache_port)).is_ok()
            } else {
                answers(self.origin_port, &self.origin_host())
            };
            if ready {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the shop did not answer within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- shop log ({}) ---\n{}",
                self.log_path.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
        if let Some(cert) = &self.cert_path {
            let _ = std::fs::remove_file(cert);
        }
    }
}

/// Whether the origin answers a plain GET (blocking, so it works outside any runtime).
fn answers(port: u16, host: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /_stats.json HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Builds the example once per test process and returns its path.
///
/// The test binary is `<target>/<profile>/deps/<test>`, the example
/// `<target>/<profile>/examples/shop`; the build uses the same target dir and profile.
pub fn shop_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current test binary");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("test binary lives in <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("<target>/<profile>");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev",
                Some(other) => other,
            };
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            // Output is kept (warnings would clutter the test's output) and shown on failure.
            let build = Command::new(&cargo)
                .args([
                    "build",
                    "--example",
                    "shop",
                    // Its required features: named, so the packaged crate (without the
                    // self dev-dependency that turns them on here) builds it too.
                    "--features",
                    "axum redis",
                    "--quiet",
                    "--profile",
                    profile,
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .unwrap_or_else(|e| panic!("run {cargo}: {e}"));
            assert!(
                build.status.success(),
                "cargo build --example shop failed:\n{}",
                String::from_utf8_lossy(&build.stderr)
            );
            let binary = profile_dir
                .join("examples")
                .join(format!("shop{}", std::env::consts::EXE_SUFFIX));
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .clone()
}
