//! A small AMP shop: the origin and a simulated AMP cache, showing how `tower-amp-session`
//! keeps one cart between them.
//!
//! ```text
//! cargo run --example shop -- --amp-runtime ~/amp-runtime   # the AMP build, saved
//! open http://shop-localhost.cache.localhost:8081/c/shop.localhost:8080/products/1
//!
//! cargo run --example shop -- --tls --amp-runtime ~/amp-runtime   # WebKit, Safari
//! open https://shop-localhost.cache.localhost:8444/c/s/shop.localhost:8443/products/1
//! ```
//!
//! Adding to the cart on the cache page posts to the origin. When the browser withholds the
//! origin's cookie there (third-party cookie blocking), the layer answers with a handoff
//! (`AMP-Redirect-To`, and `{"message": "Continuing on …"}` for the page to show), the
//! browser navigates to the origin, the add is applied to the first-party session there, and
//! the shopper lands back on the product page, which says what was added.

mod args;
mod cache;
mod cart;
mod catalogue;
mod describe;
mod form;
mod ledger;
mod metrics;
mod origin;
mod pages;
mod runtime;
mod site;
mod stats;
mod tls;

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use axum::ServiceExt as _;
use base64::Engine as _;
use tokio::net::TcpListener;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;
use tower_amp_session::{AmpSessionLayer, CacheDomain, Keyring, KeyringBuilder, RedisReplayGuard};
use tracing_subscriber::EnvFilter;

use crate::args::{Args, USAGE};
use crate::cart::Carts;
use crate::origin::Shop;
use crate::runtime::{Runtime, RuntimeFiles};
use crate::site::{Site, CACHE_DOMAIN, HOST};
use crate::stats::Stats;
use crate::tls::Tls;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("shop: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let site = Site::new(args.origin_port, args.cache_port, args.public_https())?;
    let runtime = match (&args.amp_runtime, args.offline) {
        (Some(dir), _) => Runtime::Local(Arc::new(RuntimeFiles::load(dir)?)),
        (None, true) => Runtime::StandIn,
        (None, false) => Runtime::Cdn,
    };

    let mut cache = CacheDomain::custom(CACHE_DOMAIN).port(args.cache_port);
    if !args.public_https() {
        cache = cache.allow_http();
    }
    let mut builder = AmpSessionLayer::builder()
        .publisher_origin(&site.origin)
        .keyring(signing_key()?)
        // The simulated cache, besides the default Google and Bing caches.
        .cache(cache)
        // Adding to the cart is harmless enough to apply on arrival from the shop's own cache
        // page; any other route a handoff might carry gets the confirmation page.
        .direct_route("/cart/add")
        .handoff_ttl(args.handoff_ttl)
        .same_site(args.same_site);
    if let Some(url) = &args.redis {
        // Unreachable Redis is a start-up error, like any other configuration error.
        builder = builder.replay_guard(RedisReplayGuard::connect(url).await?);
        tracing::info!("handoff links are single use across instances (Redis)");
    }
    let layer = describe::describe_changes(builder).build()?;

    let stats = Arc::new(Stats::new(layer.handoff_path()));
    let shop = Arc::new(Shop {
        site: site.clone(),
        runtime: runtime.clone(),
        carts: Carts::default(),
        stats: stats.clone(),
        ledger: args
            .ledger
            .as_deref()
            .map(ledger::Ledger::open)
            .transpose()?,
    });
    // One layer enables the whole flow, the handoff endpoint included. It wraps the whole
    // Router rather than going in through `Router::layer`: that one wraps each route on its
    // own, so a handoff (which has no route of its own) would replay the add into the 404
    // fallback instead of `/cart/add`. The stats middleware sits outside the layer, so it
    // sees the layer's own answers (mints, 303s).
    let origin_app = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .layer(from_fn_with_state(stats, stats::count))
            .layer(layer)
            .service(origin::router(shop)),
    );
    // `GET /metrics`: the handoff counters as Prometheus text.
    let origin_app = metrics::serve(origin_app)?;
    let cache_app = BoxCloneSyncService::new(cache::router(
        site.clone(),
        runtime.clone(),
        origin_app.clone(),
    ));

    // Behind a proxy the shop listens elsewhere than its public ports.
    let origin_listener = TcpListener::bind(("127.0.0.1", args.listen_origin())).await?;
    let cache_listener = TcpListener::bind(("127.0.0.1", args.listen_cache())).await?;
    let tls = if args.tls {
        let tls = Tls::generate(&[HOST, &site.cache_host, "localhost", "127.0.0.1"])?;
        let pem = tls.write_pem(args.cert_out.as_deref())?;
        Some((tls, pem))
    } else {
        None
    };
    print_banner(&site, &runtime, tls.as_ref().map(|(_, pem)| pem.as_path()));

    match tls {
        Some((tls, _)) => {
            tokio::select! {
                r = tls::serve(origin_listener, tls.acceptor.clone(), origin_app) => r?,
                r = tls::serve(cache_listener, tls.acceptor, cache_app) => r?,
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
        }
        None => {
            let origin = axum::serve(origin_listener, origin_app.into_make_service());
            let cache = axum::serve(cache_listener, cache_app.into_make_service());
            tokio::select! {
                r = origin => r?,
                r = cache => r?,
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
        }
    }
    Ok(())
}

/// The keyring from `AMP_SESSION_KEYS` (shared by instances), else the signing key from
/// `AMP_SESSION_KEY` (base64), else a random one for this run only.
fn signing_key() -> Result<KeyringBuilder, tower_amp_session::KeyError> {
    if std::env::var_os("AMP_SESSION_KEYS").is_some() {
        return Keyring::from_env("AMP_SESSION_KEYS").map(KeyringBuilder::from);
    }
    Ok(match std::env::var("AMP_SESSION_KEY") {
        Ok(key) => Keyring::builder().signing_base64("k1", &key),
        Err(_) => {
            let key: [u8; 32] = rand::random();
            eprintln!(
                "warning: AMP_SESSION_KEY is not set; using a random signing key, so handoff \
                 links stop working when the shop restarts.\nTo keep a key across restarts, \
                 set your own (base64, at least 32 bytes), e.g. this fresh one:\n  \
                 AMP_SESSION_KEY={} cargo run --example shop",
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
            );
            Keyring::builder().signing("k1", key)
        }
    })
}

fn print_banner(site: &Site, runtime: &Runtime, cert: Option<&Path>) {
    let product = "/products/1";
    println!(
        "\nAMP shop ({runtime})\n\
         \n  origin     {origin}/\n  AMP cache  {cache}/\n\
         \nOpen the cache copy of a product page and add it to the cart:\n  {cache_page}\n\
         The same page on the origin:\n  {origin_page}",
        runtime = runtime.describe(),
        origin = site.origin,
        cache = site.cache_origin,
        cache_page = site.cache_page_url(product),
        origin_page = site.origin_url(product),
    );
    if matches!(runtime, Runtime::Cdn) {
        println!(
            "\nThe pages load the AMP runtime from https://cdn.ampproject.org. Without internet, \
             serve a local copy of the AMP project's build (v0.js, v0/amp-form-0.1.js,\n  v0/amp-mustache-0.2.js saved from https://cdn.ampproject.org): --amp-runtime DIR"
        );
    }
    match cert {
        Some(pem) => println!(
            "\nThe certificate was made at start for {HOST} and {cache_host}, and is not \
             trusted by any browser:\n\
             - click through: open {origin}/ first, then {cache}/, and accept the warning \
             on each (Safari: Show Details, visit this website; Chromium: Advanced, Proceed; \
             Firefox: Advanced, Accept the Risk). The origin must be accepted before the \
             cache page can post to it.\n\
             - or trust it (it changes every start): {pem}\n  \
             macOS:  security add-trusted-cert -r trustAsRoot -k ~/Library/Keychains/login.keychain-db {pem}\n  \
             curl:   curl --cacert {pem} {origin}/\n",
            cache_host = site.cache_host,
            origin = site.origin,
            cache = site.cache_origin,
            pem = pem.display(),
        ),
        None => println!(
            "\nWith curl (old versions need --connect-to ::127.0.0.1: for *.localhost names):\n  \
             curl {cache_page}\n  \
             curl -i -X POST '{origin}/cart/add' -H 'Origin: {cache}' -d product_id=1 -d quantity=2\n  \
             curl {origin}/_stats.json\n\
             A walk-through of the whole handoff with curl: examples/shop/CURL.md\n\
             WebKit and Safari keep no session over plain http: add --tls for them.\n",
            origin = site.origin,
            cache = site.cache_origin,
            cache_page = site.cache_page_url(product),
        ),
    }
}
