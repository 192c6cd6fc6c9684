//! What the published package holds and says: its licence texts, and which of its test
//! targets a plain `cargo test` skips.
//!
//! Built without any feature, so that it runs in the packaged crate too, where the
//! feature-gated targets are skipped unless `cargo test --all-features`: there its ignored
//! test names them in `cargo test`'s own output.

use std::path::Path;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The manifest's `[[test]]` and `[[example]]` targets that need features: (kind, name,
/// features).
fn gated_targets() -> Vec<(String, String, Vec<String>)> {
    let manifest = read("Cargo.toml");
    let mut found = Vec::new();
    let mut kind = None;
    let mut name = None;
    // `cargo package` writes arrays one item a line: join them into one line first.
    let mut lines: Vec<String> = Vec::new();
    for line in manifest.lines().map(str::trim) {
        match lines.last_mut() {
            Some(open) if open.contains('[') && !open.contains(']') && !open.starts_with('[') => {
                open.push_str(line)
            }
            _ => lines.push(line.to_owned()),
        }
    }
    for line in lines.iter().map(String::as_str) {
        if line.starts_with('[') {
            kind = match line {
                "[[test]]" => Some("test"),
                "[[example]]" => Some("example"),
                _ => None,
            };
            name = None;
        } else if let (Some(_), Some(value)) = (kind, line.strip_prefix("name = ")) {
            name = Some(value.trim_matches('"').to_owned());
        } else if let (Some(k), Some(n), Some(list)) =
            (kind, &name, line.strip_prefix("required-features = "))
        {
            let features = list
                .trim_matches(['[', ']'])
                .split(',')
                .map(|f| f.trim().trim_matches('"').to_owned())
                .filter(|f| !f.is_empty())
                .collect();
            found.push((k.to_owned(), n.clone(), features));
        }
    }
    found
}

fn enabled(feature: &str) -> bool {
    match feature {
        "axum" => cfg!(feature = "axum"),
        "axum-core" => cfg!(feature = "axum-core"),
        "redis" => cfg!(feature = "redis"),
        "test-util" => cfg!(feature = "test-util"),
        "metrics" => cfg!(feature = "metrics"),
        other => panic!("a feature this test does not know: {other}"),
    }
}

#[test]
fn both_licence_texts_exist_and_ship_with_the_package() {
    let manifest = read("Cargo.toml");
    assert!(manifest.contains(r#"license = "MIT OR Apache-2.0""#));
    // (file, how it starts, a line the standard text holds)
    let rows = [
        (
            "LICENSE-MIT",
            "Copyright (c) The tower-amp-session developers",
            "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF",
        ),
        (
            "LICENSE-APACHE",
            "Apache License",
            "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        ),
    ];
    let exclude = manifest
        .lines()
        .find(|l| l.starts_with("exclude = "))
        .unwrap_or("");
    let include = manifest.lines().find(|l| l.starts_with("include = "));
    for (file, start, standard) in rows {
        let text = read(file);
        assert_eq!(
            text.trim_start().lines().next().map(str::trim),
            Some(start),
            "{file}"
        );
        assert!(text.contains(standard), "{file} is not the standard text");
        assert!(
            !exclude.contains(file),
            "{file} is excluded from the package"
        );
        if let Some(include) = include {
            assert!(
                include.contains(file),
                "{file} is not in the package's include"
            );
        }
    }
}

/// Shown by a plain `cargo test` in the packaged crate, where the targets below are not built.
#[test]
#[cfg_attr(
    not(all(
        feature = "axum",
        feature = "redis",
        feature = "test-util",
        feature = "metrics"
    )),
    ignore = "feature-gated targets skipped: examples/shop and tests axum_router, byo_session, failures, readme, stacking, testing, redis, metrics, shop, browser, curl_md, pass_through, near_miss, browser_attacks, proxy, soak, browser_lure; run `cargo test --all-features`"
)]
fn feature_gated_targets_run_or_are_named() {
    // This runs only when every feature is on; then the ignore reason above must name every
    // gated target, so that it stays true where it is shown.
    let source = read("tests/package.rs");
    let reason = source
        .lines()
        .find(|l| l.contains("ignore = \"feature-gated targets skipped"))
        .expect("the ignore reason");
    for (kind, name, features) in gated_targets() {
        assert!(
            features.iter().all(|f| enabled(f)),
            "{kind} {name}: {features:?}"
        );
        assert!(
            reason.contains(&name),
            "the ignore reason does not name {kind} {name}"
        );
    }
}

#[test]
fn the_readme_says_how_to_run_the_gated_targets() {
    let gated = gated_targets();
    assert!(gated.len() >= 9, "{gated:?}");
    let skipped: Vec<String> = gated
        .iter()
        .filter(|(_, _, features)| !features.iter().all(|f| enabled(f)))
        .map(|(kind, name, _)| format!("{kind} {name}"))
        .collect();
    if !skipped.is_empty() {
        println!("skipped (features off; run `cargo test --all-features`): {skipped:?}");
    }
    assert!(
        read("README.md").contains("cargo test --all-features"),
        "the README must say `cargo test --all-features`"
    );
}
