//! Debian's nginx in front of the shop, as `src/docs/proxy.md` tells publishers to run it:
//! TLS and HTTP/2 on two free loopback ports (the origin's and the simulated cache's), plain
//! http to one or more shop instances, round robin.
//!
//! The origin's `upstream` and `server` blocks are the guide's own snippet (read from the
//! guide with `include_str!`); the test fills in its ports, host name and certificate, and
//! adds what only a test needs around it (no daemon, pid and logs in a temp dir, a server for
//! the simulated cache). Everything lives in that temp dir; nginx is stopped on drop, also
//! when the test panics (its error log is then printed).

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

use super::{CACHE_HOST, ORIGIN_HOST};

/// The guide whose nginx snippet the tests run.
pub const GUIDE: &str = include_str!("../../src/docs/proxy.md");
/// Debian's package installs it here (`/usr/sbin` is not always on a test's PATH).
const NGINX: &str = "/usr/sbin/nginx";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `CI=true`: then a missing nginx is a failure, not a skip.
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// nginx's binary, or `None` after a `proxy tests skipped: …` notice (a panic with `CI=true`).
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    });
    let found = Some(PathBuf::from(NGINX))
        .filter(|p| p.is_file())
        .or(on_path);
    if found.is_none() {
        let what = "nginx not found (apt-get install nginx)";
        assert!(
            !ci(),
            "proxy tests: {what}, and CI=true requires it (.ci/run installs it)"
        );
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("proxy tests skipped: {what}\n").as_bytes(),
        );
    }
    found
}

use super::ports::free_ports;

/// The nginx snippet of [`GUIDE`]: its first ```` ```nginx ```` block.
pub fn guide_snippet() -> &'static str {
    let start = GUIDE
        .find("```nginx\n")
        .expect("an nginx block in the guide")
        + 9;
    let len = GUIDE[start..]
        .find("```")
        .expect("the end of the nginx block");
    &GUIDE[start..start + len]
}

/// A self-signed certificate for the shop's two host names, made by the test.
#[derive(Debug)]
pub struct Certificate {
    pub cert_pem: String,
    key_pem: String,
}

impl Certificate {
    pub fn generate() -> Certificate {
        let names = vec![
            ORIGIN_HOST.to_owned(),
            CACHE_HOST.to_owned(),
            "localhost".to_owned(),
        ];
        let mut params = CertificateParams::new(names).expect("certificate names");
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(3600)).into();
        params.not_after = (now + Duration::from_secs(7 * 24 * 3600)).into();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("a key pair");
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        Certificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Where nginx sends the shop's two sites.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The instances' origin ports (plain http on 127.0.0.1), round robin.
    pub origin: Vec<u16>,
    /// The instances' simulated-cache ports.
    pub cache: Vec<u16>,
}

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub origin_port: u16,
    pub cache_port: u16,
    pub certificate: Certificate,
}

impl Nginx {
    /// Starts `binary` on two free ports in front of `upstreams`, and waits until it listens.
    pub fn start(binary: &Path, upstreams: &Upstreams) -> Nginx {
        let [origin_port, cache_port] = free_ports::<2>();
        let dir = std::env::temp_dir().join(format!(
            "tower-amp-session-nginx-{}-{origin_port}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("nginx's temp dir");
        let certificate = Certificate::generate();
        std::fs::write(dir.join("cert.pem"), &certificate.cert_pem).expect("write the cert");
        std::fs::write(dir.join("key.pem"), &certificate.key_pem).expect("write the key");
        let conf = config(&dir, origin_port, cache_port, upstreams);
        std::fs::write(dir.join("nginx.conf"), conf).expect("write nginx.conf");
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that drop can end the workers too if the master hangs.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut nginx = Nginx {
            child,
            dir,
            origin_port,
            cache_port,
            certificate,
        };
        nginx.wait_until_listening();
        nginx
    }

    /// The error log so far (start-up problems, upstream failures).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log so far: one line per request, `HTTP/2.0 GET /path 303 127.0.0.1:P`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited at start ({status}):\n{}", self.error_log());
            }
            let up = |port| TcpStream::connect(("127.0.0.1", port)).is_ok();
            if up(self.origin_port) && up(self.cache_port) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen within {START_TIMEOUT:?}:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: a fast shutdown of master and workers.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A worker left behind by a master that could not stop them: the group is ours.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The whole `nginx.conf`: the test's frame around the guide's snippet, filled in.
fn config(dir: &Path, origin_port: u16, cache_port: u16, upstreams: &Upstreams) -> String {
    let d = dir.display();
    let mut servers = String::new();
    for port in &upstreams.origin {
        let _ = writeln!(servers, "    server 127.0.0.1:{port};");
    }
    let mut caches = String::new();
    for port in &upstreams.cache {
        let _ = writeln!(caches, "    server 127.0.0.1:{port};");
    }
    let snippet = fill(
        guide_snippet(),
        &[
            (
                "    server 10.0.0.11:8080;\n    server 10.0.0.12:8080;\n",
                &servers,
            ),
            (
                "listen 443 ssl http2;",
                &format!("listen 127.0.0.1:{origin_port} ssl http2;"),
            ),
            (
                "server_name shop.example;",
                &format!("server_name {ORIGIN_HOST};"),
            ),
            ("/etc/ssl/shop.example.pem", &format!("{d}/cert.pem")),
            ("/etc/ssl/shop.example.key", &format!("{d}/key.pem")),
        ],
    );
    format!(
        "# Written by the test: the frame, then src/docs/proxy.md's snippet, then the cache.\n\
         daemon off;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n\
         log_format proxied '$server_protocol $request_method $uri $status $upstream_addr';\n\
         access_log {d}/access.log proxied;\n\
         client_body_temp_path {d}/client_body;\n\
         proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n\
         \n{snippet}\n\
         # The simulated AMP cache, a site of its own (a real cache is not behind your nginx).\n\
         upstream shop_cache {{\n{caches}}}\n\
         server {{\n\
         \x20   listen 127.0.0.1:{cache_port} ssl http2;\n\
         \x20   server_name {CACHE_HOST};\n\
         \x20   ssl_certificate     {d}/cert.pem;\n\
         \x20   ssl_certificate_key {d}/key.pem;\n\
         \x20   location / {{\n\
         \x20       proxy_pass http://shop_cache;\n\
         \x20       proxy_set_header Host $http_host;\n\
         \x20       proxy_set_header X-Forwarded-Proto $scheme;\n\
         \x20   }}\n\
         }}\n\
         }}\n"
    )
}

/// `text` with each `(from, to)` replaced; each `from` must occur exactly once, so that a
/// change of the guide's snippet fails here instead of running another config.
fn fill(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in replacements {
        assert_eq!(
            out.matches(from).count(),
            1,
            "the guide's nginx snippet must hold {from:?} exactly once:\n{text}"
        );
        out = out.replace(from, to);
    }
    out
}
