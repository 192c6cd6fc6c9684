//! Command-line flags, parsed by hand (the example should not need clap).

use std::path::PathBuf;
use std::time::Duration;

use tower_amp_session::SameSite;

pub const USAGE: &str = "\
usage: cargo run --example shop -- [options]

  --origin-port N        port of the origin, shop.localhost:N, over http, or https with --tls
                         (default 8080; 8443 with --tls)
  --cache-port N         port of the simulated AMP cache, shop-localhost.cache.localhost:N
                         (default 8081; 8444 with --tls)
  --tls                  serve both sites over https, with a certificate made at start
                         (needed for WebKit and Safari, which drop Secure cookies over http)
  --cert-out FILE        with --tls: where to write the certificate (PEM), to trust it
                         (default: a file in the system's temp directory)
  --amp-runtime DIR      serve the AMP runtime from DIR instead of cdn.ampproject.org, so
                         the real amp-form runs offline: DIR holds the AMP project's build
                         (https://cdn.ampproject.org/v0.js, v0/amp-form-0.1.js and
                         v0/amp-mustache-0.2.js, saved with the same paths)
  --handoff-ttl SECONDS  how long a handoff link stays valid (default 120)
  --same-site lax|none   SameSite of the session cookie (default none)
  --offline              load a small local stand-in for amp-form instead of the AMP runtime
  --redis URL            single use of handoff links across instances (redis://127.0.0.1:6379)
  --behind-tls-proxy     a TLS-terminating proxy (nginx) serves both sites over https at
                         --origin-port and --cache-port; the shop itself speaks plain http
                         on --listen-origin-port and --listen-cache-port
  --listen-origin-port N where the origin listens (default: --origin-port)
  --listen-cache-port N  where the cache listens (default: --cache-port)
  --ledger FILE          append the order_ref field of every applied add to FILE, one a line
                         (the soak test counts each order's applications from it)
  -h, --help             show this help

environment:
  AMP_SESSION_KEYS       shared keyring, k2:<base64>,k1:<base64> (first signs, all verify)
  AMP_SESSION_KEY        base64 signing key (at least 32 bytes); random when neither is set
  RUST_LOG               log filter (default info)";

/// What the shop was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub origin_port: u16,
    pub cache_port: u16,
    pub handoff_ttl: Duration,
    pub same_site: SameSite,
    pub tls: bool,
    pub cert_out: Option<PathBuf>,
    pub amp_runtime: Option<PathBuf>,
    pub offline: bool,
    pub redis: Option<String>,
    /// Public https through a proxy in front; the shop listens in plain http.
    pub behind_tls_proxy: bool,
    pub listen_origin_port: Option<u16>,
    pub listen_cache_port: Option<u16>,
    pub ledger: Option<PathBuf>,
    pub help: bool,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            origin_port: 8080,
            cache_port: 8081,
            handoff_ttl: Duration::from_secs(120),
            same_site: SameSite::None,
            tls: false,
            cert_out: None,
            amp_runtime: None,
            offline: false,
            redis: None,
            behind_tls_proxy: false,
            listen_origin_port: None,
            listen_cache_port: None,
            ledger: None,
            help: false,
        }
    }
}

impl Args {
    /// Parses the arguments after the program name; `Err` says what was wrong.
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
        let mut out = Args::default();
        let (mut origin_port, mut cache_port) = (None, None);
        while let Some(flag) = args.next() {
            // `--flag=value` and `--flag value` both work.
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (flag.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match name.as_str() {
                "--origin-port" => origin_port = Some(port(&name, &value()?)?),
                "--cache-port" => cache_port = Some(port(&name, &value()?)?),
                "--tls" if inline.is_none() => out.tls = true,
                "--cert-out" => out.cert_out = Some(PathBuf::from(value()?)),
                "--amp-runtime" => out.amp_runtime = Some(PathBuf::from(value()?)),
                "--handoff-ttl" => {
                    let v = value()?;
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| format!("--handoff-ttl: {v:?} is not a number of seconds"))?;
                    out.handoff_ttl = Duration::from_secs(secs);
                }
                "--same-site" => {
                    out.same_site = match value()?.to_ascii_lowercase().as_str() {
                        "lax" => SameSite::Lax,
                        "none" => SameSite::None,
                        other => return Err(format!("--same-site: {other:?} is not lax or none")),
                    }
                }
                "--offline" if inline.is_none() => out.offline = true,
                "--redis" => out.redis = Some(value()?),
                "--behind-tls-proxy" if inline.is_none() => out.behind_tls_proxy = true,
                "--listen-origin-port" => out.listen_origin_port = Some(port(&name, &value()?)?),
                "--listen-cache-port" => out.listen_cache_port = Some(port(&name, &value()?)?),
                "--ledger" => out.ledger = Some(PathBuf::from(value()?)),
                "-h" | "--help" => out.help = true,
                _ => return Err(format!("unknown argument {flag:?}")),
            }
        }
        let (origin_default, cache_default) = if out.tls { (8443, 8444) } else { (8080, 8081) };
        out.origin_port = origin_port.unwrap_or(origin_default);
        out.cache_port = cache_port.unwrap_or(cache_default);
        if out.origin_port == out.cache_port {
            return Err("--origin-port and --cache-port must differ".into());
        }
        if out.offline && out.amp_runtime.is_some() {
            return Err("--offline (the stand-in) and --amp-runtime exclude each other".into());
        }
        if out.cert_out.is_some() && !out.tls {
            return Err("--cert-out needs --tls".into());
        }
        if out.tls && out.behind_tls_proxy {
            return Err(
                "--tls (the shop's own https) and --behind-tls-proxy exclude each other".into(),
            );
        }
        if out.listen_origin() == out.listen_cache() {
            return Err("the origin and the cache must listen on different ports".into());
        }
        Ok(out)
    }

    /// Where the origin listens: `--listen-origin-port`, else its public port.
    pub fn listen_origin(&self) -> u16 {
        self.listen_origin_port.unwrap_or(self.origin_port)
    }

    /// Where the cache listens: `--listen-cache-port`, else its public port.
    pub fn listen_cache(&self) -> u16 {
        self.listen_cache_port.unwrap_or(self.cache_port)
    }

    /// Whether the public addresses are https (the shop's own `--tls`, or a proxy's).
    pub fn public_https(&self) -> bool {
        self.tls || self.behind_tls_proxy
    }
}

fn port(flag: &str, text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(format!("{flag}: {text:?} is not a port (1-65535)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_table() {
        assert_eq!(parse(&[]), Ok(Args::default()));
        let a = parse(&["--origin-port", "9000", "--cache-port=9001", "--offline"]).unwrap();
        assert_eq!((a.origin_port, a.cache_port, a.offline), (9000, 9001, true));
        let a = parse(&["--redis", "redis://127.0.0.1:6379"]).unwrap();
        assert_eq!(a.redis.as_deref(), Some("redis://127.0.0.1:6379"));
        let a = parse(&["--tls", "--amp-runtime", "../rt", "--cert-out=/tmp/c.pem"]).unwrap();
        assert_eq!((a.origin_port, a.cache_port, a.tls), (8443, 8444, true));
        assert_eq!(a.amp_runtime, Some(PathBuf::from("../rt")));
        assert_eq!(a.cert_out, Some(PathBuf::from("/tmp/c.pem")));
        let a = parse(&["--tls", "--origin-port", "9000"]).unwrap();
        assert_eq!((a.origin_port, a.cache_port), (9000, 8444));
        let a = parse(&[
            "--behind-tls-proxy",
            "--origin-port=8443",
            "--listen-origin-port=9000",
            "--listen-cache-port=9001",
            "--ledger=/tmp/ledger",
        ])
        .unwrap();
        assert!(a.public_https() && !a.tls);
        assert_eq!(
            (a.origin_port, a.listen_origin(), a.listen_cache()),
            (8443, 9000, 9001)
        );
        assert_eq!(a.ledger, Some(PathBuf::from("/tmp/ledger")));
        let a = parse(&["--handoff-ttl", "5", "--same-site", "LAX"]).unwrap();
        assert_eq!(a.handoff_ttl, Duration::from_secs(5));
        assert_eq!(a.same_site, SameSite::Lax);
        for bad in [
            &["--origin-port"][..],
            &["--origin-port", "0"],
            &["--cache-port", "x"],
            &["--same-site", "strict"],
            &["--handoff-ttl", "-1"],
            &["--offline=yes"],
            &["--what"],
            &["--origin-port", "8081"],
            &["--tls=yes"],
            &["--amp-runtime"],
            &["--offline", "--amp-runtime", "dir"],
            &["--cert-out", "c.pem"],
            &["--tls", "--cache-port", "8443"],
            &["--tls", "--behind-tls-proxy"],
            &["--behind-tls-proxy=yes"],
            &[
                "--listen-origin-port",
                "9000",
                "--listen-cache-port",
                "9000",
            ],
            &["--listen-origin-port", "8081"],
            &["--ledger"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
