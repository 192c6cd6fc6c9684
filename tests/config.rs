//! Invalid configuration is an error from `build()`, never a panic at request time.

// Rows of behaviours are tuples: their types are long by design.
#![allow(clippy::type_complexity)]

use std::time::Duration;

use tower_amp_session::{
    AmpSessionLayer, CacheDomain, ConfigBuilder, ConfigError, KeyError, Keyring, ReturnTo, SameSite,
};

fn base() -> ConfigBuilder {
    AmpSessionLayer::builder()
        .publisher_origin("https://shop.example")
        .keyring(Keyring::builder().signing("k1", [7u8; 32]))
}

#[test]
fn build_errors_table() {
    let rows: Vec<(&str, ConfigBuilder, fn(&ConfigError) -> bool)> = vec![
        (
            "no publisher origin",
            AmpSessionLayer::builder().keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::NoPublisherOrigin),
        ),
        (
            "no keyring",
            AmpSessionLayer::builder().publisher_origin("https://shop.example"),
            |e| matches!(e, ConfigError::NoKeyring),
        ),
        (
            "key under 32 bytes",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(Keyring::builder().signing("k1", [7u8; 31])),
            |e| matches!(e, ConfigError::Key(KeyError::TooShort { .. })),
        ),
        (
            "key not base64",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(Keyring::builder().signing_base64("k1", "not base64!")),
            |e| matches!(e, ConfigError::Key(KeyError::InvalidBase64(_))),
        ),
        (
            "empty key id",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(Keyring::builder().signing("", [7u8; 32])),
            |e| matches!(e, ConfigError::Key(KeyError::InvalidId(_))),
        ),
        (
            "duplicate key id",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(
                    Keyring::builder()
                        .signing("k1", [7u8; 32])
                        .verifying("k1", [8u8; 32]),
                ),
            |e| matches!(e, ConfigError::Key(KeyError::DuplicateId(_))),
        ),
        (
            "only verifying keys",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(Keyring::builder().verifying("k1", [8u8; 32])),
            |e| matches!(e, ConfigError::Key(KeyError::NoSigningKey)),
        ),
        ("SameSite=Strict", base().same_site(SameSite::Strict), |e| {
            matches!(e, ConfigError::SameSiteStrict)
        }),
        (
            "origin with a path",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example/shop")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::InvalidPublisherOrigin(_)),
        ),
        (
            "origin over http",
            AmpSessionLayer::builder()
                .publisher_origin("http://shop.example")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::InvalidPublisherOrigin(_)),
        ),
        (
            "origin not a URL",
            AmpSessionLayer::builder()
                .publisher_origin("shop.example")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::InvalidPublisherOrigin(_)),
        ),
        (
            "origin with userinfo",
            AmpSessionLayer::builder()
                .publisher_origin("https://u@shop.example")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::InvalidPublisherOrigin(_)),
        ),
        (
            "IP origin",
            AmpSessionLayer::builder()
                .publisher_origin("https://10.0.0.1")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
            |e| matches!(e, ConfigError::InvalidPublisherOrigin(_)),
        ),
        (
            "handoff path not a path",
            base().handoff_path("handoff"),
            |e| matches!(e, ConfigError::InvalidHandoffPath(_)),
        ),
        (
            "handoff path with query",
            base().handoff_path("/h?x=1"),
            |e| matches!(e, ConfigError::InvalidHandoffPath(_)),
        ),
        (
            "handoff path protocol-relative",
            base().handoff_path("//evil.com/h"),
            |e| matches!(e, ConfigError::InvalidHandoffPath(_)),
        ),
        (
            "cookie name with space",
            base().cookie_name("my session"),
            |e| matches!(e, ConfigError::InvalidCookieName(_)),
        ),
        ("empty cookie name", base().cookie_name(""), |e| {
            matches!(e, ConfigError::InvalidCookieName(_))
        }),
        (
            "cookie domain with slash",
            base().cookie_domain("a/b"),
            |e| matches!(e, ConfigError::InvalidCookieDomain(_)),
        ),
        ("zero ttl", base().handoff_ttl(Duration::ZERO), |e| {
            matches!(e, ConfigError::InvalidLimit(_))
        }),
        (
            "ttl over an hour",
            base().handoff_ttl(Duration::from_secs(3601)),
            |e| matches!(e, ConfigError::InvalidLimit(_)),
        ),
        ("zero body limit", base().body_limit(0), |e| {
            matches!(e, ConfigError::InvalidLimit(_))
        }),
        (
            "body limit that cannot fit a URL",
            base().body_limit(64 * 1024),
            |e| matches!(e, ConfigError::InvalidLimit(_)),
        ),
        (
            "return path off-origin",
            base().return_to(ReturnTo::Path("//evil.com".into())),
            |e| matches!(e, ConfigError::InvalidReturnPath(_)),
        ),
        (
            "cache domain without a dot",
            base().cache(CacheDomain::custom("localhost")),
            |e| matches!(e, ConfigError::InvalidCacheDomain(_)),
        ),
        (
            "cache domain with slash",
            base().cache(CacheDomain::custom("a.b/c")),
            |e| matches!(e, ConfigError::InvalidCacheDomain(_)),
        ),
    ];
    for (name, builder, check) in rows {
        match builder.build() {
            Ok(_) => panic!("{name}: built"),
            Err(e) => {
                assert!(check(&e), "{name}: {e:?}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}

#[test]
fn valid_configurations_build() {
    let rows: Vec<(&str, ConfigBuilder)> = vec![
        ("minimal", base()),
        (
            "localhost over http with port",
            AmpSessionLayer::builder()
                .publisher_origin("http://shop.localhost:8080")
                .keyring(Keyring::builder().signing("k1", [7u8; 32])),
        ),
        (
            "two publishers",
            base().publisher_origin("https://www.shop.example"),
        ),
        (
            "key from base64",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(
                    Keyring::builder()
                        .signing_base64("k1", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="),
                ),
        ),
        (
            "rotation",
            AmpSessionLayer::builder()
                .publisher_origin("https://shop.example")
                .keyring(
                    Keyring::builder()
                        .signing("k2", [2u8; 32])
                        .verifying("k1", [1u8; 32]),
                ),
        ),
        ("Lax", base().same_site(SameSite::Lax)),
        (
            "fixed return path",
            base().return_to(ReturnTo::Path("/cart".into())),
        ),
        ("only Google", base().caches([CacheDomain::google()])),
    ];
    for (name, builder) in rows {
        assert!(builder.build().is_ok(), "{name}");
    }
}

#[test]
fn cache_origins_are_computed_for_each_publisher() {
    let layer = base()
        .publisher_origin("https://en-us.example.com")
        .build()
        .unwrap();
    let origins: Vec<&str> = layer.cache_origins().collect();
    for want in [
        "https://shop-example.cdn.ampproject.org",
        "https://shop-example.www.bing-amp.com",
        "https://shop-example.bing-amp.com",
        "https://0-en--us-example-com-0.cdn.ampproject.org",
    ] {
        assert!(origins.contains(&want), "{want} in {origins:?}");
    }
}

#[test]
fn keyring_from_environment_list() {
    let k = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    assert_eq!(
        Keyring::from_list(&format!("k2:{k}, k1:{k}"))
            .unwrap()
            .signing_key_id(),
        "k2"
    );
    for bad in [
        "",
        "k1",
        "k1:",
        "k1:short",
        &format!("k1:{k},k1:{k}"),
        &format!(":{k}"),
    ] {
        assert!(Keyring::from_list(bad).is_err(), "{bad:?}");
    }
}

/// `Keyring::from_env` names the variable and what was wrong with it, and never echoes key
/// material. Each row uses its own variable, so the rows never race.
#[test]
fn keyring_from_env_errors_name_the_variable() {
    let k = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let bare = "a".repeat(44);
    std::env::set_var("TAS_CFG_KEYS_OK", format!("k2:{k},k1:{k}"));
    let ok = Keyring::from_env("TAS_CFG_KEYS_OK").unwrap();
    assert_eq!(ok.signing_key_id(), "k2");

    let in_env = |var: &str, error: KeyError| KeyError::Env {
        var: var.into(),
        error: Box::new(error),
    };
    // (variable, value (None: unset), error, message)
    let rows: Vec<(&str, Option<String>, KeyError, &str)> = vec![
        (
            "TAS_CFG_KEYS_UNSET",
            None,
            KeyError::EnvNotSet("TAS_CFG_KEYS_UNSET".into()),
            "TAS_CFG_KEYS_UNSET is not set; it must hold the handoff keys as id:<base64>[,id:<base64>...], the first one signing, each at least 32 random bytes (e.g. k1:$(openssl rand -base64 32))",
        ),
        (
            "TAS_CFG_KEYS_EMPTY",
            Some(String::new()),
            KeyError::EnvEmpty("TAS_CFG_KEYS_EMPTY".into()),
            "TAS_CFG_KEYS_EMPTY is empty; it must hold the handoff keys as id:<base64>[,id:<base64>...], the first one signing, each at least 32 random bytes (e.g. k1:$(openssl rand -base64 32))",
        ),
        (
            "TAS_CFG_KEYS_BLANK",
            Some(" \n".into()),
            KeyError::EnvEmpty("TAS_CFG_KEYS_BLANK".into()),
            "TAS_CFG_KEYS_BLANK is empty; it must hold the handoff keys as id:<base64>[,id:<base64>...], the first one signing, each at least 32 random bytes (e.g. k1:$(openssl rand -base64 32))",
        ),
        (
            "TAS_CFG_KEYS_B64",
            Some("k1:not*base64!".into()),
            in_env("TAS_CFG_KEYS_B64", KeyError::InvalidBase64("k1".into())),
            "TAS_CFG_KEYS_B64: key \"k1\" is not valid base64",
        ),
        (
            "TAS_CFG_KEYS_SHORT",
            Some("k1:c2hvcnQ=".into()),
            in_env(
                "TAS_CFG_KEYS_SHORT",
                KeyError::TooShort {
                    id: "k1".into(),
                    len: 5,
                },
            ),
            "TAS_CFG_KEYS_SHORT: key \"k1\" is 5 bytes; keys must be at least 32 bytes",
        ),
        (
            "TAS_CFG_KEYS_BARE",
            Some(bare.clone()),
            in_env("TAS_CFG_KEYS_BARE", KeyError::MissingId { entry: 1 }),
            "TAS_CFG_KEYS_BARE: key list entry 1 is not of the form id:<base64>",
        ),
        (
            "TAS_CFG_KEYS_TRAILING",
            Some(format!("k1:{k},")),
            in_env("TAS_CFG_KEYS_TRAILING", KeyError::MissingId { entry: 2 }),
            "TAS_CFG_KEYS_TRAILING: key list entry 2 is not of the form id:<base64>",
        ),
        (
            "TAS_CFG_KEYS_DUP",
            Some(format!("k1:{k},k1:{k}")),
            in_env("TAS_CFG_KEYS_DUP", KeyError::DuplicateId("k1".into())),
            "TAS_CFG_KEYS_DUP: key id \"k1\" is used twice",
        ),
        (
            "TAS_CFG_KEYS_ID",
            Some(format!("k 1:{k}")),
            in_env("TAS_CFG_KEYS_ID", KeyError::InvalidId("k 1".into())),
            "TAS_CFG_KEYS_ID: key id \"k 1\" must be 1 to 32 characters of A-Z a-z 0-9 - _ .",
        ),
        (
            "TAS_CFG_KEYS_NOID",
            Some(format!(":{k}")),
            in_env("TAS_CFG_KEYS_NOID", KeyError::InvalidId(String::new())),
            "TAS_CFG_KEYS_NOID: key id \"\" must be 1 to 32 characters of A-Z a-z 0-9 - _ .",
        ),
    ];
    for (var, value, want, message) in rows {
        match &value {
            Some(v) => std::env::set_var(var, v),
            None => std::env::remove_var(var),
        }
        let got = Keyring::from_env(var).unwrap_err();
        assert_eq!(got, want, "{var}");
        assert_eq!(got.to_string(), message, "{var}");
        assert!(!got.to_string().contains(k), "{var}: key material in {got}");
        assert!(
            !got.to_string().contains(&bare),
            "{var}: key material in {got}"
        );
        // Wrapped in a `ConfigError` (the `?` of a `build()` chain), the name stays.
        assert!(ConfigError::from(got).to_string().contains(var), "{var}");
    }
}
