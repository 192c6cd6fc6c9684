//! Finding one cookie's values in `Cookie` headers, on every request.
//!
//! The general reader is [`named_values`]: split on `;`, trim, compare the name. Every
//! request pays for it over the whole header (analytics cookies make it long), so the
//! layer's own name goes through [`CookieName`], which searches for the name with a
//! SIMD substring finder built once, and checks only where it occurs. A differential
//! property test holds the two equal.

use std::fmt;

use memchr::memmem;

/// A cookie name (a cookie token, as the configuration checks) and its finder, built once.
#[derive(Clone)]
pub(crate) struct CookieName {
    name: Box<str>,
    finder: memmem::Finder<'static>,
}

impl CookieName {
    pub(crate) fn new(name: &str) -> Self {
        CookieName {
            name: name.into(),
            finder: memmem::Finder::new(name.as_bytes()).into_owned(),
        }
    }

    /// Exactly what [`named_values`] yields for this name in one `Cookie` header value.
    pub(crate) fn values<'h>(&'h self, header: &'h [u8]) -> Values<'h> {
        Values {
            header: if printable(header) { header } else { &[] },
            at: 0,
            name: self,
        }
    }
}

impl std::ops::Deref for CookieName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for CookieName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.name, f)
    }
}

/// The iterator of [`CookieName::values`].
pub(crate) struct Values<'h> {
    header: &'h [u8],
    /// Where the search goes on.
    at: usize,
    name: &'h CookieName,
}

impl<'h> Iterator for Values<'h> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let header = self.header;
        let len = self.name.name.len();
        while let Some(found) = self.name.finder.find(&header[self.at..]) {
            let start = self.at + found;
            // One past the match, not past the name: a match inside another pair's value can
            // overlap the name at the start of the next pair only through a `;`, which a
            // cookie token never holds, but searching on from `start + 1` needs no argument.
            self.at = start + 1;
            // The name starts a pair: only spaces or tabs since the last `;` (or the start).
            let before = header[..start].trim_ascii_end();
            if !(before.is_empty() || before.ends_with(b";")) {
                continue;
            }
            let rest = &header[start + len..];
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            let Some(value) = rest[..end].trim_ascii_start().strip_prefix(b"=") else {
                continue;
            };
            // The next pair starts at or after the `;`.
            self.at = start + len + end;
            return Some(value.trim_ascii());
        }
        self.at = header.len();
        None
    }
}

/// Whether every byte passes [`http::HeaderValue::to_str`]'s test (visible ASCII, space,
/// tab): a header that fails it is skipped whole, as the `cookie` crate never sees it.
/// One branch-free OR over the bytes, which compiles to vector compares.
fn printable(header: &[u8]) -> bool {
    header.iter().fold(0u8, |bad, &b| {
        bad | u8::from((b.wrapping_sub(0x20) >= 0x5f) & (b != b'\t'))
    }) == 0
}

/// The values of the cookies named `name` (a cookie token, as the config checks) in one
/// `Cookie` header value: what [`cookie_pairs`] yields for that name, but only pairs that
/// start with `name` are looked at past their first bytes. A header that fails
/// [`http::HeaderValue::to_str`]'s test yields nothing, as the `cookie` crate would never
/// see it. For names read once in a while (bring-your-own-session mode); the reference for
/// [`CookieName::values`].
pub(crate) fn named_values<'a>(header: &'a [u8], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    let pairs = if printable(header) { header } else { &[][..] };
    pairs.split(|&b| b == b';').filter_map(move |pair| {
        let rest = pair.trim_ascii_start().strip_prefix(name.as_bytes())?;
        let value = rest.trim_ascii_start().strip_prefix(b"=")?;
        Some(value.trim_ascii())
    })
}

/// The `name=value` pairs of one `Cookie` header, exactly as the `cookie` crate's
/// `Cookie::split_parse(text).flatten()` yields them (no percent-decoding, quotes kept):
/// `;`-separated, each pair and each side of its first `=` trimmed, pairs without `=` or with
/// an empty name skipped. Hand-written because the crate's `Cookie` is a large struct (dates,
/// attributes) that is built and moved for every pair: most of the cost of reading a header.
/// The reference for [`named_values`] in tests.
///
/// `text` is a header value that passed [`http::HeaderValue::to_str`] (visible ASCII, space,
/// tab), where ASCII trimming is the crate's Unicode trimming.
#[cfg(test)]
pub(crate) fn cookie_pairs(text: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    text.split(|&b| b == b';').filter_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let name = pair[..eq].trim_ascii();
        (!name.is_empty()).then(|| (name, pair[eq + 1..].trim_ascii()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn printable_is_header_value_to_str() {
        for b in 0..=255u8 {
            for len in [1, 15, 16, 17, 40] {
                let mut v = vec![b'a'; len];
                v[len / 2] = b;
                let want = http::HeaderValue::from_bytes(&v)
                    .map(|h| h.to_str().is_ok())
                    .unwrap_or(false);
                assert_eq!(printable(&v), want, "byte {b:#x} in {len}");
            }
        }
    }

    #[test]
    fn finder_reading_table() {
        // (header, name, values the finder yields)
        let rows: &[(&str, &str, &[&str])] = &[
            ("", "s", &[]),
            ("s=1", "s", &["1"]),
            ("a=1; s=2; b=3", "s", &["2"]),
            ("s = 1 ; s=2", "s", &["1", "2"]),
            ("ss=1; s=2", "s", &["2"]),
            ("xs=1", "s", &[]),
            ("a=s=1", "s", &[]),
            ("a=xs; s=2", "s", &["2"]),
            ("s", "s", &[]),
            ("s;s=1", "s", &["1"]),
            ("s=;s=1", "s", &["", "1"]),
            ("\ts=1", "s", &["1"]),
            ("ab=1; aab=2; ab=3", "ab", &["1", "3"]),
            ("abab=1;ab=2", "ab", &["2"]),
        ];
        for (header, name, want) in rows {
            let name = CookieName::new(name);
            let got: Vec<&[u8]> = name.values(header.as_bytes()).collect();
            let want: Vec<&[u8]> = want.iter().map(|v| v.as_bytes()).collect();
            assert_eq!(got, want, "{header:?} / {name:?}");
        }
    }

    fn header() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            // Near-misses: the name's letters, separators and whitespace in every order.
            proptest::collection::vec(
                prop_oneof![
                    Just(b'a'),
                    Just(b'b'),
                    Just(b';'),
                    Just(b'='),
                    Just(b' '),
                    Just(b'\t'),
                    Just(b'"')
                ],
                0..48
            ),
            // Any visible ASCII, with now and then a byte that fails `to_str`.
            proptest::collection::vec(prop_oneof![20 => 0x20u8..0x7f, 1 => any::<u8>()], 0..120),
            // The common shape: a real header with the name among other cookies.
            (
                "[a-z_]{1,8}",
                "[ -~&&[^;]]{0,30}",
                "[a-zA-Z0-9_-]{0,24}",
                "[a-z]{1,6}"
            )
                .prop_map(|(other, v1, v2, last)| {
                    format!("{other}={v1}; __Host-amp_session={v2}; {last}=x").into_bytes()
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(25_000))]
        /// The finder yields, for a name, exactly what the general reader and the reference
        /// split do.
        #[test]
        fn finder_agrees_with_the_general_reader(
            text in header(),
            name in prop_oneof![Just("a"), Just("b"), Just("ab"), Just("aba"), Just("__Host-amp_session")],
        ) {
            let cookie = CookieName::new(name);
            let finder: Vec<&[u8]> = cookie.values(&text).collect();
            let general: Vec<&[u8]> = named_values(&text, name).collect();
            prop_assert_eq!(&finder, &general);
            if printable(&text) {
                let reference: Vec<&[u8]> = cookie_pairs(&text)
                    .filter(|(n, _)| *n == name.as_bytes())
                    .map(|(_, v)| v)
                    .collect();
                prop_assert_eq!(&finder, &reference);
            }
        }
    }

    #[test]
    fn cookie_pairs_match_the_cookie_crate() {
        let rows = [
            "",
            ";",
            " ; ;; ",
            "a=1",
            "a=1; b=2",
            "a=1;b=2",
            "  a = 1 ;\tb=\t2\t",
            "a",
            "a; b=2",
            "=1; b=2",
            " =1",
            "a==1",
            "a=; b",
            "a=\"q\"; b=%41",
            "a=1; a=2; a=1",
            "a=1;;;b=2;",
            "x y=1; z =2",
            "\t",
            "a=1 2 ; b",
        ];
        for text in rows {
            let ours: Vec<(&str, &str)> = cookie_pairs(text.as_bytes())
                .map(|(n, v)| {
                    (
                        std::str::from_utf8(n).unwrap(),
                        std::str::from_utf8(v).unwrap(),
                    )
                })
                .collect();
            let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(text)
                .flatten()
                .map(|c| (c.name().to_owned(), c.value().to_owned()))
                .collect();
            let theirs: Vec<(&str, &str)> = theirs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn cookie_pairs_agree_with_the_cookie_crate(text in "[ab;= \t\"%]{0,40}|[ -~\t]{0,80}") {
            let ours: Vec<(String, String)> = cookie_pairs(text.as_bytes())
                .map(|(n, v)| (String::from_utf8(n.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
                .collect();
            let theirs: Vec<(String, String)> = cookie::Cookie::split_parse(text.as_str())
                .flatten()
                .map(|c| (c.name().to_owned(), c.value().to_owned()))
                .collect();
            proptest::prop_assert_eq!(ours, theirs);
        }
    }
}
