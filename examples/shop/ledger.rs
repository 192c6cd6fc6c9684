//! `--ledger FILE`: every applied add that carries an `order_ref` field appends that ref to a
//! file, one a line. Several instances (and restarts of one) may share the file, so a test
//! can count how often each scripted order was applied, across instances, kills and restarts.
//!
//! Each line goes out in one `write` on a file opened for appending, before the handler
//! answers: once the layer sees the add succeed, the line is in the kernel, so even a killed
//! process has recorded it, and lines of two processes never interleave.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

/// The form field the ledger records.
pub const FIELD: &str = "order_ref";
/// Refs are short tokens of `A-Z a-z 0-9 - _`; anything else is not a scripted order.
const MAX_REF: usize = 64;

#[derive(Debug)]
pub struct Ledger {
    file: File,
}

impl Ledger {
    /// Opens (or creates) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<Ledger> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Ledger { file })
    }

    /// Records one application of `order_ref`. A few bytes to the page cache: short enough
    /// to do inline in the handler.
    pub fn record(&self, order_ref: &str) -> std::io::Result<()> {
        let line = format!("{order_ref}\n");
        (&self.file).write_all(line.as_bytes())
    }
}

/// The form's `order_ref`: `Ok(None)` without one, `Err` with a message when it is given
/// twice or is not a short token (it would otherwise end up verbatim in the file).
pub fn order_ref(fields: &[(String, String)]) -> Result<Option<&str>, String> {
    let mut refs = fields.iter().filter(|(k, _)| k == FIELD).map(|(_, v)| v);
    match (refs.next(), refs.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(format!("{FIELD} is given twice")),
        (Some(r), None) if is_token(r) => Ok(Some(r)),
        (Some(_), None) => Err(format!(
            "{FIELD} must be 1 to {MAX_REF} characters of A-Z a-z 0-9 - _"
        )),
    }
}

fn is_token(r: &str) -> bool {
    (1..=MAX_REF).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn order_ref_table() {
        assert_eq!(order_ref(&fields(&[("quantity", "1")])), Ok(None));
        assert_eq!(
            order_ref(&fields(&[("order_ref", "soak-17_a")])),
            Ok(Some("soak-17_a"))
        );
        let long = "x".repeat(MAX_REF + 1);
        for bad in [
            &[("order_ref", "")][..],
            &[("order_ref", "a\nb")],
            &[("order_ref", "a b")],
            &[("order_ref", long.as_str())],
            &[("order_ref", "a"), ("order_ref", "b")],
        ] {
            assert!(order_ref(&fields(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn records_append_one_line_each() {
        let path = std::env::temp_dir().join(format!("shop-ledger-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let first = Ledger::open(&path).unwrap();
        let second = Ledger::open(&path).unwrap();
        first.record("a").unwrap();
        second.record("b").unwrap();
        first.record("a").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\na\n");
        let _ = std::fs::remove_file(&path);
    }
}
