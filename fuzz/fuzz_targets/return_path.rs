//! `validate_return_path` and `return_path_from_referer` never panic, and whatever they
//! accept lands on the publisher origin however a browser resolves it.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_amp_session::return_path::{return_path_from_referer, validate_return_path};
use url::Url;

const ORIGINS: [&str; 2] = ["https://shop.example", "http://shop.localhost:8080"];

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Path(&'a str),
    Referer(&'a str),
    /// A cache page URL with an arbitrary tail: reaches the `/c/s/` decoding.
    CachePage(&'a str),
    /// An origin page URL with an arbitrary tail.
    OriginPage(&'a str),
}

fn on_cache(host: &str) -> bool {
    matches!(
        host,
        "shop-example.cdn.ampproject.org"
            | "shop-localhost.cdn.ampproject.org"
            | "shop-example.cache.localhost:8081"
    )
}

fn assert_lands_on_origin(input: &str, accepted: &str, origin: &str) {
    let base = Url::parse(&format!("{origin}/")).unwrap();
    let joined = base.join(accepted).expect("an accepted path joins");
    assert_eq!(joined.origin(), base.origin(), "{input:?} -> {accepted:?}");
    assert!(
        !joined.path().starts_with("//"),
        "{input:?} -> {accepted:?}"
    );
    // The layer writes `<origin><path>` into Location by concatenation.
    let written = Url::parse(&format!("{origin}{accepted}")).expect("written URL parses");
    assert_eq!(written.origin(), base.origin(), "{input:?} -> {accepted:?}");
    assert!(
        !written.path().starts_with("//"),
        "{input:?} -> {accepted:?}"
    );
    assert!(
        accepted.bytes().all(|b| b.is_ascii_graphic()),
        "{accepted:?}"
    );
    assert_eq!(
        validate_return_path(accepted, &base).as_deref(),
        Ok(accepted),
        "{input:?}: not a fixed point"
    );
}

fuzz_target!(|input: Input<'_>| {
    for origin in ORIGINS {
        let base = Url::parse(&format!("{origin}/")).unwrap();
        let referer = match input {
            Input::Path(p) => {
                if let Ok(accepted) = validate_return_path(p, &base) {
                    assert_lands_on_origin(p, &accepted, origin);
                    assert_eq!(base.join(p).unwrap().origin(), base.origin(), "{p:?}");
                }
                continue;
            }
            Input::Referer(r) => r.to_owned(),
            Input::CachePage(tail) => {
                let host = base.host_str().unwrap();
                let host = match base.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                };
                format!("https://shop-example.cdn.ampproject.org/c/s/{host}{tail}")
            }
            Input::OriginPage(tail) => format!("{origin}{tail}"),
        };
        if let Some(accepted) = return_path_from_referer(&referer, &base, on_cache) {
            assert_lands_on_origin(&referer, &accepted, origin);
        }
    }
});
