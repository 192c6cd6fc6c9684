//! A tiny HTTP client for the shop: requests go to 127.0.0.1:PORT with the `Host` a browser
//! would send for `*.localhost` names, so no name resolution is needed.
//!
//! ```ignore
//! let reply = shop.origin().post("/cart/add").header("Origin", &shop.cache_url())
//!     .urlencoded("product_id=3&quantity=2").send().await;
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, CONTENT_TYPE, HOST, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The boundary of multipart bodies built by [`Call::multipart`].
const BOUNDARY: &str = "----shop-test-boundary-7MA4YWxkTrZu0gW";

/// One of the shop's two servers.
#[derive(Debug, Clone)]
pub struct Endpoint {
    port: u16,
    host: String,
}

impl Endpoint {
    pub fn new(port: u16, host: String) -> Self {
        Endpoint { port, host }
    }

    pub fn get(&self, path_and_query: &str) -> Call {
        self.request(Method::GET, path_and_query)
    }

    pub fn post(&self, path_and_query: &str) -> Call {
        self.request(Method::POST, path_and_query)
    }

    pub fn request(&self, method: Method, path_and_query: &str) -> Call {
        Call {
            endpoint: self.clone(),
            method,
            path: path_and_query.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// A request being written; [`Call::send`] sends it.
#[derive(Debug)]
#[must_use]
pub struct Call {
    endpoint: Endpoint,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Call {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Cookie: <pair>` when there is one (`None`: the browser sends no cookie).
    pub fn cookie(self, pair: Option<&str>) -> Self {
        match pair {
            Some(p) => self.header("Cookie", p),
            None => self,
        }
    }

    /// A top-level navigation, as a browser following `AMP-Redirect-To` sends it.
    pub fn navigation(self) -> Self {
        self.header("Sec-Fetch-Mode", "navigate")
            .header("Sec-Fetch-Dest", "document")
    }

    /// An `application/x-www-form-urlencoded` body, given already encoded.
    pub fn urlencoded(mut self, body: &str) -> Self {
        self.body = Bytes::copy_from_slice(body.as_bytes());
        self.header(CONTENT_TYPE.as_str(), "application/x-www-form-urlencoded")
    }

    /// A `multipart/form-data` body of text fields, as amp-form sends a `FormData`.
    pub fn multipart(mut self, fields: &[(&str, &str)]) -> Self {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{BOUNDARY}--\r\n"));
        self.body = Bytes::from(body);
        self.header(
            CONTENT_TYPE.as_str(),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        )
    }

    pub async fn send(self) -> Reply {
        // A client per request: each test has its own runtime, and a pooled connection must
        // not outlive the runtime that drives it.
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let uri = format!("http://127.0.0.1:{}{}", self.endpoint.port, self.path);
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&uri)
            .header(HOST, &self.endpoint.host);
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(self.body)).expect("valid request");
        let res = client
            .request(req)
            .await
            .unwrap_or_else(|e| panic!("{} {uri}: {e}", self.method));
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("read the body").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The one value of a header, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The `name=value` pair of a `Set-Cookie` for `name`, ready for a `Cookie` header.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|pair| pair.split_once('=').is_some_and(|(n, _)| n.trim() == name))
            .map(|pair| pair.trim().to_owned())
    }
}
