//! Guides: how to stack, wire, run, secure, observe and test the layer.
//!
//! Nothing here is code; each module is one guide.
//!
//! | guide | read it when |
//! |---|---|
//! | [`handoff`] | you want the handoff in detail: who may start one, what the page says, failures, rate limits, the token |
//! | [`configuration`] | you set options, the session cookie, key your store, cache pages, or log |
//! | [`stacking`] | you combine the layer with tower-http (CORS, CSRF, compression, timeouts, tracing) |
//! | [`own_session`] | you already keep sessions with tower-sessions, axum-login or your own cookie |
//! | [`several_instances`] | more than one origin process serves the publisher |
//! | [`proxy`] | nginx, a load balancer or a CDN terminates TLS in front of the application |
//! | [`security`] | you review what the layer protects against, and what it gives up |
//! | [`caching`] | you put a CDN in front, serve pages as signed exchanges, or choose lazy or eager cookies |
//! | [`confirmation`] | you describe changes in your shop's words, or review the confirmation step |
//! | [`tracing_events`] | you build logs, dashboards or alerts on the layer's events |
//! | [`metrics`] | you export handoff numbers (feature `metrics`) to Prometheus or another backend |
//! | [`testing`] | you test your handlers through the layer |
//! | [`development`] | you run the shop in Safari, read the performance figures, run browser tests or fuzz |
//! | [`mint_answer`] | you write the templates of a form posted from cache pages |

// The guides moved from the README use every feature (as the README's doctest does): their
// snippets are compiled whenever the features are on, and the text is always documented.
#[cfg_attr(
    any(not(doctest), all(feature = "axum", feature = "redis", feature = "test-util")),
    doc = include_str!("handoff.md")
)]
pub mod handoff {}

#[cfg_attr(
    any(not(doctest), all(feature = "axum", feature = "redis", feature = "test-util")),
    doc = include_str!("configuration.md")
)]
pub mod configuration {}

#[cfg_attr(
    any(not(doctest), all(feature = "axum", feature = "redis", feature = "test-util")),
    doc = include_str!("development.md")
)]
pub mod development {}

#[doc = include_str!("stacking.md")]
pub mod stacking {}

#[doc = include_str!("own_session.md")]
pub mod own_session {}

#[doc = include_str!("several_instances.md")]
pub mod several_instances {}

#[doc = include_str!("proxy.md")]
pub mod proxy {}

#[doc = include_str!("security.md")]
#[doc = include_str!("../../SECURITY.md")]
pub mod security {}

#[doc = include_str!("caching.md")]
pub mod caching {}
#[doc = include_str!("confirmation.md")]
pub mod confirmation {}

#[doc = include_str!("tracing_events.md")]
pub mod tracing_events {}

#[doc = include_str!("metrics.md")]
pub mod metrics {}

#[doc = include_str!("testing.md")]
pub mod testing {}

#[doc = include_str!("mint_answer.md")]
pub mod mint_answer {}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every `amp_session.*` event the crate emits, from its sources.
    fn events_in(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                events_in(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, _) in text.match_indices("\"amp_session.") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                        .collect();
                    if name.len() > "amp_session.".len() {
                        found.push(name);
                    }
                }
            }
        }
    }

    #[test]
    fn every_tracing_event_is_in_the_guide() {
        let mut found = Vec::new();
        events_in(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found.sort();
        found.dedup();
        assert!(found.len() >= 10, "{found:?}");
        let guide = include_str!("tracing_events.md");
        let missing: Vec<_> = found
            .iter()
            .filter(|name| !guide.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "not in src/docs/tracing_events.md: {missing:?}"
        );
    }
}
