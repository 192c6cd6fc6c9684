//! Configurations that look right and are not: each is refused by `build()` with a message
//! that says what was meant, and the message survives `?` in `main` (which prints `Debug`).

use tower_amp_session::{AmpSessionLayer, CacheDomain, ConfigBuilder, ConfigError, Keyring};

fn builder() -> ConfigBuilder {
    AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
}

fn refusal(b: ConfigBuilder) -> ConfigError {
    b.build().expect_err("refused")
}

#[test]
fn routes_that_cover_the_handoff_path_are_refused() {
    let covers = |route: &str| ConfigError::RouteCoversHandoffPath {
        route: route.into(),
        handoff_path: "/_amp/handoff".into(),
    };
    // (builder, error)
    let rows: Vec<(ConfigBuilder, ConfigError)> = vec![
        (builder().direct_route("/_amp/"), covers("/_amp/")),
        (builder().direct_route("/"), covers("/")),
        (
            builder().direct_route("/_amp/handoff"),
            covers("/_amp/handoff"),
        ),
        (
            builder().direct_route("/_AMP/Handoff"),
            covers("/_AMP/Handoff"),
        ),
        (
            builder().direct_route("/%5Famp/handoff"),
            covers("/%5Famp/handoff"),
        ),
        (builder().pass_through("/_amp/"), covers("/_amp/")),
        (
            builder().pass_through("/cart/").direct_route("/cart/add"),
            ConfigError::PassThroughCoversDirectRoute {
                pass_through: "/cart/".into(),
                route: "/cart/add".into(),
            },
        ),
        (
            builder().pass_through("/api/ping").direct_route("/api/"),
            ConfigError::PassThroughCoversDirectRoute {
                pass_through: "/api/ping".into(),
                route: "/api/".into(),
            },
        ),
        (
            builder().pass_through("api/"),
            ConfigError::InvalidPassThrough("api/".into()),
        ),
        (
            builder().pass_through("/api/?x=1"),
            ConfigError::InvalidPassThrough("/api/?x=1".into()),
        ),
    ];
    for (b, want) in rows {
        assert_eq!(refusal(b), want);
    }
    // Routes next to the handoff path, not covering it, are fine.
    for ok in [
        builder().direct_route("/_amp/handoff/"),
        builder().direct_route("/_amp/other"),
        builder().pass_through("/api/").direct_route("/cart/add"),
    ] {
        assert!(ok.build().is_ok());
    }
    let message = covers("/_amp/").to_string();
    assert!(
        message.contains("covers the handoff path \"/_amp/handoff\""),
        "{message}"
    );
}

#[test]
fn a_page_host_given_as_a_cache_domain_is_refused_with_what_was_meant() {
    // (cache domain given, what the message says was meant)
    let rows = [
        ("shop-example.cdn.ampproject.org", "CacheDomain::google()"),
        ("shop.example.cdn.ampproject.org", "CacheDomain::google()"),
        ("shop-example.www.bing-amp.com", "CacheDomain::bing()"),
        (
            "shop-example.cache.test",
            "CacheDomain::custom(\"cache.test\")",
        ),
        (
            "shop.example.cache.test",
            "CacheDomain::custom(\"cache.test\")",
        ),
    ];
    for (domain, meant) in rows {
        let e = refusal(builder().cache(CacheDomain::custom(domain)));
        let ConfigError::CacheDomainIsPageHost {
            domain: d,
            meant: m,
        } = &e
        else {
            panic!("{domain}: {e:?}");
        };
        assert_eq!(d, domain);
        assert!(m.starts_with(meant), "{domain}: {m}");
        assert!(e.to_string().contains(meant), "{e}");
    }
    // Real cache domains stay accepted.
    for domain in ["cache.localhost", "cdn.ampproject.org", "amp.cache.test"] {
        assert!(
            builder().cache(CacheDomain::custom(domain)).build().is_ok(),
            "{domain}"
        );
    }
}

#[test]
fn debug_carries_the_message_for_question_mark_in_main() {
    fn main_like() -> Result<(), Box<dyn std::error::Error>> {
        let _layer = AmpSessionLayer::builder()
            .publisher_origin("http://shop.example")
            .keyring(Keyring::builder().signing("k1", [7u8; 32]))
            .build()?;
        Ok(())
    }
    // What `fn main() -> Result<(), E>` prints after `Error: `.
    let printed = format!("{:?}", main_like().unwrap_err());
    assert_eq!(
        printed,
        "publisher origin \"http://shop.example\" must be https://host[:port] (http only for \
         localhost names) (ConfigError::InvalidPublisherOrigin)"
    );

    std::env::remove_var("TAS_MISCONFIG_UNSET");
    fn keys_main() -> Result<(), Box<dyn std::error::Error>> {
        let _layer = AmpSessionLayer::builder()
            .publisher_origin("https://shop.example")
            .keyring(Keyring::from_env("TAS_MISCONFIG_UNSET")?)
            .build()?;
        Ok(())
    }
    let printed = format!("{:?}", keys_main().unwrap_err());
    assert!(
        printed.starts_with(
            "TAS_MISCONFIG_UNSET is not set; it must hold the handoff keys as id:<base64>"
        ),
        "{printed}"
    );
    assert!(printed.ends_with("(KeyError::EnvNotSet)"), "{printed}");

    let nested = format!(
        "{:?}",
        refusal(builder().keyring(Keyring::builder().signing("k1", [7u8; 3])))
    );
    assert_eq!(
        nested,
        "key \"k1\" is 3 bytes; keys must be at least 32 bytes (KeyError::TooShort) (ConfigError::Key)"
    );
}
