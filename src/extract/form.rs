//! `AmpForm<T>`: a form in either encoding amp-form sends, into the handler's own type.

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequest, Request};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use crate::form::{form_kind, FormKind};

use crate::RETURN_PATH_FIELD;

/// The default body limit of [`AmpForm`]: 64 KiB.
const DEFAULT_LIMIT: usize = 64 * 1024;

/// Reads a form posted as `application/x-www-form-urlencoded` **or** `multipart/form-data`
/// into `T` (feature `axum`).
///
/// amp-form posts `multipart/form-data` by default, a plain `<form>` posts urlencoded, and a
/// change replayed by a completed handoff arrives in the encoding it was sent in. `AmpForm`
/// takes all three, so one handler serves the cache, the origin and the handoff. axum's own
/// `Form` reads only urlencoded bodies.
///
/// - `GET`/`HEAD`: the fields come from the query string, like axum's `Form`.
/// - The hidden `amp_return_path` field of the handoff is left out, so `T` sees the same
///   fields on every path (it matters for `#[serde(deny_unknown_fields)]` and maps).
/// - Multipart text fields only: a file part is refused.
/// - Rejections are [`AmpFormRejection`]s with a JSON body `{"error": "..."}`, which
///   amp-form's `submit-error` template can show: `415` for another content type, `413`
///   over the limit (64 KiB; `AmpForm<T, 1_048_576>` for 1 MiB), `422` for fields that do
///   not deserialize into `T` (or a file part), `400` for a malformed multipart body.
///
/// ```
/// use axum::{routing::post, Router};
/// use tower_amp_session::{AmpForm, AmpSession};
///
/// #[derive(serde::Deserialize)]
/// struct Add { product_id: u32, quantity: u32 }
///
/// async fn add(session: AmpSession, AmpForm(add): AmpForm<Add>) -> String {
///     format!("{} × {} for {}", add.quantity, add.product_id, session.id())
/// }
///
/// let app: Router = Router::new().route("/cart/add", post(add));
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct AmpForm<T, const LIMIT: usize = DEFAULT_LIMIT>(pub T);

/// Why [`AmpForm`] refused a request; answered as JSON `{"error": "..."}`.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use tower_amp_session::AmpFormRejection;
///
/// fn status(rejection: AmpFormRejection) -> http::StatusCode {
///     rejection.status()
/// }
/// # let _ = status;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmpFormRejection {
    status: StatusCode,
    message: String,
}

impl AmpFormRejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AmpFormRejection {
            status,
            message: message.into(),
        }
    }

    /// `415`, `413`, `422` or `400`.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message the JSON body carries.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AmpFormRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for AmpFormRejection {}

impl IntoResponse for AmpFormRejection {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut res = (self.status, body).into_response();
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    }
}

impl<T, S, const LIMIT: usize> FromRequest<S> for AmpForm<T, LIMIT>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AmpFormRejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let query = parts.uri.query().unwrap_or("");
            return deserialize(form_urlencoded::parse(query.as_bytes())).map(AmpForm);
        }
        let kind = match form_kind(&parts.headers) {
            Ok(FormKind::Empty) => {
                return Err(AmpFormRejection::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "expected a form: application/x-www-form-urlencoded or multipart/form-data",
                ))
            }
            Ok(kind) => kind,
            Err(r) => return Err(AmpFormRejection::new(r.status(), r.reason())),
        };
        let bytes = Limited::new(body, LIMIT)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    AmpFormRejection::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("the form is larger than {LIMIT} bytes"),
                    )
                } else {
                    AmpFormRejection::new(StatusCode::BAD_REQUEST, "the form could not be read")
                }
            })?
            .to_bytes();
        match kind {
            FormKind::Multipart { boundary } => {
                let fields = multipart_fields(boundary, bytes).await?;
                deserialize(
                    fields
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.as_str().into())),
                )
                .map(AmpForm)
            }
            _ => deserialize(form_urlencoded::parse(&bytes)).map(AmpForm),
        }
    }
}

/// The text fields of a multipart body, in order.
async fn multipart_fields(
    boundary: String,
    body: Bytes,
) -> Result<Vec<(String, String)>, AmpFormRejection> {
    let malformed = |_| AmpFormRejection::new(StatusCode::BAD_REQUEST, "malformed multipart body");
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        if field.file_name().is_some() {
            return Err(AmpFormRejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "file fields are not supported",
            ));
        }
        let name = field.name().unwrap_or("").to_owned();
        let value = field.bytes().await.map_err(malformed)?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| {
            AmpFormRejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field `{name}` is not UTF-8 text"),
            )
        })?;
        fields.push((name, value));
    }
    Ok(fields)
}

/// Deserializes `pairs` (without the return-path field) the way axum's `Form` does.
fn deserialize<'a, T: DeserializeOwned>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<T, AmpFormRejection> {
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if k != RETURN_PATH_FIELD {
            encoded.append_pair(&k, &v);
        }
    }
    serde_urlencoded::from_str(&encoded.finish()).map_err(|e| {
        AmpFormRejection::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the form's fields are not valid: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Add {
        product_id: u32,
        quantity: u32,
    }

    const MULTIPART: &str = "multipart/form-data; boundary=X";

    fn multipart(fields: &[(&str, &str)]) -> String {
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!(
                "--X\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        body.push_str("--X--\r\n");
        body
    }

    async fn extract<T: DeserializeOwned, const L: usize>(
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: String,
    ) -> Result<T, AmpFormRejection> {
        let mut req = http::Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let req = req.body(axum_core::body::Body::from(body)).unwrap();
        <AmpForm<T, L> as FromRequest<()>>::from_request(req, &())
            .await
            .map(|AmpForm(t)| t)
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("in-memory bodies never wait")
    }

    #[test]
    fn both_encodings_and_the_query_give_the_same_fields() {
        let want = Add {
            product_id: 3,
            quantity: 2,
        };
        // (what, method, uri, content type, body)
        let rows: [(&str, &str, &str, Option<&str>, String); 5] = [
            (
                "urlencoded",
                "POST",
                "/",
                Some("application/x-www-form-urlencoded"),
                "product_id=3&quantity=2".into(),
            ),
            (
                "urlencoded, return path left out",
                "POST",
                "/",
                Some("application/x-www-form-urlencoded; charset=UTF-8"),
                "product_id=3&amp_return_path=%2Fp%2F3&quantity=2".into(),
            ),
            (
                "multipart (amp-form's default)",
                "POST",
                "/",
                Some(MULTIPART),
                multipart(&[("product_id", "3"), ("quantity", "2")]),
            ),
            (
                "multipart, return path left out",
                "POST",
                "/",
                Some(MULTIPART),
                multipart(&[
                    ("amp_return_path", "/p/3"),
                    ("product_id", "3"),
                    ("quantity", "2"),
                ]),
            ),
            (
                "GET: the query",
                "GET",
                "/?product_id=3&quantity=2",
                None,
                String::new(),
            ),
        ];
        for (what, method, uri, ct, body) in rows {
            let got = block(extract::<Add, DEFAULT_LIMIT>(method, uri, ct, body));
            assert_eq!(got.as_ref(), Ok(&want), "{what}");
        }
    }

    #[test]
    fn rejections_are_json_with_a_fitting_status() {
        let big = format!("product_id=3&quantity=2&note={}", "x".repeat(200));
        let file = "--X\r\ncontent-disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhi\r\n--X--\r\n";
        // (what, content type, body, status)
        let rows: [(&str, Option<&str>, String, StatusCode); 7] = [
            (
                "no content type",
                None,
                "product_id=3".into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                "JSON",
                Some("application/json"),
                "{}".into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                "urlencoded in another charset",
                Some("application/x-www-form-urlencoded; charset=latin1"),
                "product_id=3".into(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                "over the limit",
                Some("application/x-www-form-urlencoded"),
                big,
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "a field that is not a number",
                Some("application/x-www-form-urlencoded"),
                "product_id=three&quantity=2".into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "a file part",
                Some(MULTIPART),
                file.into(),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "a broken multipart body",
                Some(MULTIPART),
                "--X\r\nnope".into(),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (what, ct, body, status) in rows {
            let err = block(extract::<Add, 128>("POST", "/", ct, body)).unwrap_err();
            assert_eq!(err.status(), status, "{what}: {err}");
            let res = err.clone().into_response();
            assert_eq!(res.status(), status, "{what}");
            assert_eq!(res.headers()[CONTENT_TYPE], "application/json", "{what}");
            let body = block(res.into_body().collect()).unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], err.message(), "{what}");
        }
    }

    #[test]
    fn a_map_sees_no_return_path() {
        let got: BTreeMap<String, String> = block(extract::<_, DEFAULT_LIMIT>(
            "POST",
            "/",
            Some("application/x-www-form-urlencoded"),
            "a=1&amp_return_path=%2F".into(),
        ))
        .unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [("a".into(), "1".into())]
        );
    }
}
