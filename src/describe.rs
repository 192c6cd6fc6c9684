//! The change a confirmation page asks about, as the app's describer sees it
//! ([`ConfigBuilder::describe`](crate::ConfigBuilder::describe)).

use std::fmt;
use std::sync::Arc;

use http::Method;

/// A handoff's change waiting for the shopper's confirmation: the method, the path, and the
/// decoded fields of its body and of its query string.
///
/// The app's describer turns it into one sentence in the shop's own words ("Add 1 × Paper
/// filters (100) to your cart?"), which the layer escapes and shows as the confirmation
/// page's headline; the page still lists the route and every field below it.
///
/// ```
/// use tower_amp_session::PendingChange;
///
/// fn describe(change: &PendingChange) -> Option<String> {
///     let id = change.field("product_id")?;
///     Some(format!("Add product {id} to your cart?"))
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingChange {
    method: Method,
    path: String,
    fields: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl PendingChange {
    pub(crate) fn new(
        method: Method,
        path: String,
        fields: Vec<(String, String)>,
        query: Vec<(String, String)>,
    ) -> Self {
        PendingChange {
            method,
            path,
            fields,
            query,
        }
    }

    /// The request method (`POST`).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, without the query (`/cart/add`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body's fields, decoded, in order (multipart reduced to its text fields).
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The query string's parameters, decoded, in order.
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// The first body field named `name`, else the first query parameter named so.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .chain(&self.query)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An app's describer of one route's changes.
pub(crate) type Describer = Arc<dyn Fn(&PendingChange) -> Option<String> + Send + Sync>;

/// The describers an app registered, by exact path.
#[derive(Clone, Default)]
pub(crate) struct Describers(Vec<(Box<str>, Describer)>);

impl Describers {
    pub(crate) fn add(&mut self, path: String, describer: Describer) {
        self.0.push((path.into_boxed_str(), describer));
    }

    /// The app's sentence for `change`, when a describer for its path gave one. Bounded in
    /// length: a headline, not a page.
    pub(crate) fn describe(&self, change: &PendingChange) -> Option<String> {
        let (_, d) = self.0.iter().find(|(p, _)| **p == *change.path())?;
        let mut text = d(change)?;
        if text.trim().is_empty() {
            return None;
        }
        if text.len() > MAX_SENTENCE {
            let mut end = MAX_SENTENCE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        Some(text)
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(p, _)| &**p)
    }
}

/// The longest headline shown (bytes); longer sentences are cut.
const MAX_SENTENCE: usize = 300;

impl fmt::Debug for Describers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.paths()).finish()
    }
}
