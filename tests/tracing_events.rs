//! The layer's tracing events: stable names (the event message, `amp_session.*`), stable
//! field names and levels, and never a session ID or a handoff token in full.
//!
//! Dashboards and alerts key on these names and fields; changing one is a breaking change.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use common::{app, builder, path_of, request, send, Recorder, CACHE, NAV};
use http::StatusCode;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// One event as a subscriber sees it.
#[derive(Debug, Clone)]
struct Recorded {
    level: Level,
    /// The message up to the first `:` (`amp_session.handoff_minted`).
    name: String,
    fields: BTreeMap<String, String>,
}

/// Records every event's level, name and fields.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Recorded>>>);

#[derive(Default)]
struct Fields {
    message: String,
    fields: BTreeMap<String, String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().into(), format!("{value:?}"));
        }
    }
}

impl<S: Subscriber> Layer<S> for Events {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visit = Fields::default();
        event.record(&mut visit);
        let name = visit.message.split(':').next().unwrap_or("").to_owned();
        self.0.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            name,
            fields: visit.fields,
        });
    }
}

/// Everything the default `fmt` output would print (events and span fields).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Whether `secret` shows up in `text`, in full or as any run of `window` characters of it.
fn leaks(text: &str, secret: &str, window: usize) -> Option<String> {
    if text.contains(secret) {
        return Some(secret.to_owned());
    }
    let bytes = secret.as_bytes();
    bytes
        .windows(window.min(bytes.len()))
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .find(|w| text.contains(w.as_str()))
}

#[tokio::test]
async fn events_have_stable_names_and_fields_and_no_secrets() {
    let events = Events::default();
    let output = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(output.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        )
        .with(
            events
                .clone()
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        );
    // The test runtime is single-threaded: every poll happens under this default.
    let _guard = tracing::subscriber::set_default(subscriber);

    let rec = Recorder::default();
    let mut svc = common::service(&builder().build().unwrap(), app(&rec, StatusCode::OK, &[]));
    let form = "application/x-www-form-urlencoded";
    let mut session_ids = Vec::new();

    // 1. A cookieless GET from the cache page: a session is issued.
    let a = send(&mut svc, request("GET", "/", &[("origin", CACHE)], "")).await;
    let cookie = a.session_cookie().expect("session issued");
    session_ids.push(cookie.trim_start_matches("__Host-amp_session=").to_owned());

    // 2. The same browser, cookie sent: the session is read (and must not be logged either).
    send(
        &mut svc,
        request("GET", "/", &[("origin", CACHE), ("cookie", &cookie)], ""),
    )
    .await;

    // 3. A cookieless POST from the cache: minted.
    let headers = [("origin", CACHE), ("content-type", form)];
    let a = send(
        &mut svc,
        request("POST", "/cart/add", &headers, "product_id=1&quantity=2"),
    )
    .await;
    let to = a.header("amp-redirect-to").expect("minted").to_owned();
    let token = to.split("token=").nth(1).unwrap().to_owned();

    // 4. The handoff completed on the origin: a new first-party session.
    let a = send(&mut svc, request("GET", &path_of(&to), &NAV, "")).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    session_ids.push(
        a.session_cookie()
            .unwrap()
            .trim_start_matches("__Host-amp_session=")
            .to_owned(),
    );

    // 5. A reload of the handoff URL: not applied again.
    send(&mut svc, request("GET", &path_of(&to), &NAV, "")).await;

    // 6. Rejections: a foreign POST, and a tampered token.
    let headers = [("origin", "https://evil.example"), ("content-type", form)];
    send(&mut svc, request("POST", "/cart/add", &headers, "a=1")).await;
    let tampered = format!("/_amp/handoff?token={}x", &token[..token.len() - 1]);
    send(&mut svc, request("GET", &tampered, &NAV, "")).await;

    let got = events.0.lock().unwrap().clone();
    type Pick = fn(&Recorded) -> bool;
    let find = |name: &str, pick: Pick| -> Recorded {
        got.iter()
            .find(|e| e.name == name && pick(e))
            .unwrap_or_else(|| panic!("no {name} event in {got:#?}"))
            .clone()
    };
    // (event, level, which one, fields: exact value or "*" for present)
    type Row = (
        &'static str,
        Level,
        Pick,
        &'static [(&'static str, &'static str)],
    );
    let rows: &[Row] = &[
        (
            "amp_session.classified",
            Level::TRACE,
            |_| true,
            &[("source", "amp_cache")],
        ),
        (
            "amp_session.cors_answered",
            Level::TRACE,
            |_| true,
            &[("source", "amp_cache")],
        ),
        (
            "amp_session.session_issued",
            Level::DEBUG,
            |_| true,
            &[("source", "amp_cache"), ("session", "*")],
        ),
        (
            "amp_session.handoff_minted",
            Level::DEBUG,
            |_| true,
            &[("method", "POST"), ("path", "/cart/add"), ("body_len", "*")],
        ),
        (
            "amp_session.handoff_completed",
            Level::INFO,
            |_| true,
            &[
                ("status", "200"),
                ("new_session", "true"),
                ("method", "POST"),
                ("path", "/cart/add"),
            ],
        ),
        ("amp_session.handoff_replayed", Level::DEBUG, |_| true, &[]),
        (
            "amp_session.rejected",
            Level::DEBUG,
            |e| e.fields.get("status").is_some_and(|s| s == "403"),
            &[("status", "403"), ("reason", "*"), ("source", "foreign")],
        ),
        (
            "amp_session.rejected",
            Level::DEBUG,
            |e| e.fields.get("status").is_some_and(|s| s == "400"),
            &[("status", "400"), ("reason", "*")],
        ),
    ];
    for (name, level, pick, fields) in rows {
        let e = find(name, *pick);
        assert_eq!(e.level, *level, "{name}");
        for (field, want) in *fields {
            let value = e
                .fields
                .get(*field)
                .unwrap_or_else(|| panic!("{name} lacks {field}: {:?}", e.fields));
            if *want != "*" {
                assert_eq!(value, want, "{name}.{field}");
            }
        }
    }
    // The session field shows a prefix only, never the whole ID.
    let issued = find("amp_session.session_issued", |_| true);
    let shown = &issued.fields["session"];
    assert!(shown.chars().count() < 8, "{shown}");

    // Nothing printed anywhere holds a session ID or the token, in full or in part.
    let text = String::from_utf8_lossy(&output.0.lock().unwrap()).into_owned();
    assert!(text.contains("amp_session.handoff_completed"), "{text}");
    for id in &session_ids {
        assert_eq!(id.len(), 22);
        // 8 characters: more than the 4-character prefix the logs may show.
        assert_eq!(leaks(&text, id, 8), None, "session ID in the logs:\n{text}");
    }
    assert_eq!(leaks(&text, &token, 16), None, "token in the logs:\n{text}");
    for e in &got {
        for value in e.fields.values() {
            assert_eq!(leaks(value, &token, 16), None, "{e:?}");
        }
    }
}
