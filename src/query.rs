//! A fast path for reading one parameter of a plain query (`token=...` on the handoff URL),
//! held equal to `form_urlencoded` by a differential property test.

use crate::handoff::TOKEN_PARAM;
use crate::reject::{reasons, Rejection};

/// The value of the one `token` pair of `query`, found without `form_urlencoded`'s decoding
/// and its per-pair allocations, when the query is plain enough to need none: every key that
/// could decode to `token` is literally `token` (no `%` or `+` in any key), and the token's
/// value has no `%` or `+` (so decoding would leave it unchanged).
///
/// `None`: not plain, ask `form_urlencoded` (the general code). Otherwise the same answer as
/// the general code: the value, or "several tokens", or "no token".
pub(crate) fn token_param_fast(query: &[u8]) -> Option<Result<&str, Rejection>> {
    match param_fast(query, TOKEN_PARAM)? {
        Pair::One(v) => Some(Ok(v)),
        Pair::Several => Some(Err(reasons::HANDOFF_SEVERAL_TOKENS)),
        Pair::Absent => Some(Err(reasons::HANDOFF_NO_TOKEN)),
    }
}

/// What a plain query holds under one key.
#[derive(Debug, PartialEq, Eq)]
enum Pair<'a> {
    One(&'a str),
    Several,
    Absent,
}

/// The pairs named `key` (plain ASCII, no `%`, `+`, `&` or `=`) in `query`, split the way
/// `form_urlencoded::parse` splits (`&`-separated, empty pairs skipped, the first `=` ends
/// the key, no `=`: an empty value); `None` when decoding could change the answer (or the
/// query is not UTF-8). `str` splitting by a `char` searches with `memchr`.
fn param_fast<'a>(query: &'a [u8], key: &str) -> Option<Pair<'a>> {
    let query = std::str::from_utf8(query).ok()?;
    let mut found = None;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != key {
            // Another key decodes to `key` only through `%` or `+`.
            if k.bytes().any(|b| b == b'%' || b == b'+') {
                return None;
            }
            continue;
        }
        // A token is a few hundred bytes: one SIMD search. Without `%` and `+`, decoding
        // leaves a value as it is (UTF-8 already, checked above).
        if memchr::memchr2(b'%', b'+', v.as_bytes()).is_some() {
            return None;
        }
        // Keep scanning after a second one: a later key that needs decoding hands the
        // answer to the general code (which can only say "several" too).
        found = Some(match found {
            None => Pair::One(v),
            Some(_) => Pair::Several,
        });
    }
    Some(found.unwrap_or(Pair::Absent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::return_path::tests::diff_cases;

    /// The general code: `token_param` of src/handoff/complete.rs, as it reads a query.
    fn general(form: &[u8]) -> Result<String, Rejection> {
        let mut found = None;
        for (k, v) in form_urlencoded::parse(form) {
            if k == TOKEN_PARAM {
                if found.is_some() {
                    return Err(reasons::HANDOFF_SEVERAL_TOKENS);
                }
                found = Some(v.into_owned());
            }
        }
        found.ok_or(reasons::HANDOFF_NO_TOKEN)
    }

    fn same(a: &Result<String, Rejection>, b: &Result<String, Rejection>) -> bool {
        match (a, b) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a.status() == b.status() && a.reason() == b.reason(),
            _ => false,
        }
    }

    #[test]
    fn query_table() {
        // (query, fast path taken?, token)
        let rows: &[(&str, bool, Option<&str>)] = &[
            ("token=abc", true, Some("abc")),
            ("token=abc&_gl=1*x*y", true, Some("abc")),
            ("utm_source=amp&token=a-b_c", true, Some("a-b_c")),
            ("&&token=abc&", true, Some("abc")),
            ("token=", true, Some("")),
            ("token", true, Some("")),
            ("token=a=b", true, Some("a=b")),
            ("", true, None),
            ("tokens=abc", true, None),
            ("Token=abc", true, None),
            ("token=a&token=b", true, None),
            ("token=a%41", false, Some("aA")),
            ("token=a+b", false, Some("a b")),
            ("t%6Fken=abc", false, Some("abc")),
            ("tok+en=abc", false, None),
            ("x=%zz&token=abc", true, Some("abc")),
        ];
        for (query, fast, token) in rows {
            let got = token_param_fast(query.as_bytes());
            assert_eq!(got.is_some(), *fast, "{query:?}");
            let want = general(query.as_bytes());
            assert_eq!(want.as_deref().ok(), *token, "{query:?}");
            if let Some(got) = got {
                let got = got.map(str::to_owned);
                assert!(same(&got, &want), "{query:?}: {got:?} vs {want:?}");
            }
        }
    }

    fn query_like() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            "token",
            "token=",
            "=",
            "&",
            "&&",
            "t",
            "oken",
            "tok",
            "%",
            "%6F",
            "%74",
            "+",
            "a",
            "Z",
            "9",
            "-",
            "_",
            "*",
            ".",
            "%zz",
            "\u{e9}",
            "x=1",
            "_gl=1*abc*",
            "TOKEN",
        ]);
        prop_oneof![
            prop::collection::vec(piece, 0..12).prop_map(|v| v.concat().into_bytes()),
            "token=[A-Za-z0-9_-]{0,400}(&[a-z_]{1,5}=[A-Za-z0-9*.]{0,10}){0,3}"
                .prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest::proptest! {
        #![proptest_config(diff_cases())]

        /// Where the fast path answers, it answers what `form_urlencoded` does.
        #[test]
        fn fast_token_param_agrees_with_form_urlencoded(q in query_like()) {
            if let Some(fast) = token_param_fast(&q) {
                let fast = fast.map(str::to_owned);
                let general = general(&q);
                proptest::prop_assert!(same(&fast, &general), "{:?}: {:?} vs {:?}", String::from_utf8_lossy(&q), fast, general);
            }
        }
    }

    #[test]
    fn minted_links_take_the_fast_path() {
        // What mint writes: `token=<base64url>`, maybe with linker parameters appended.
        let token = "AQJrMQAAAABmZmZm".repeat(20);
        for q in [
            format!("token={token}"),
            format!("token={token}&_gl=1*1x2y3z*_ga*MTIz"),
        ] {
            assert_eq!(
                token_param_fast(q.as_bytes()).map(|r| r.ok()),
                Some(Some(token.as_str()))
            );
        }
    }
}
