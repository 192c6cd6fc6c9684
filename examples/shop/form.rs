//! The add-to-cart form, read from either encoding amp-form may send:
//! `multipart/form-data` (its default, a `FormData` body) or
//! `application/x-www-form-urlencoded` (when the form's `enctype` asks for it).

use std::convert::Infallible;

use axum::http::{header::CONTENT_TYPE, HeaderMap, StatusCode};
use bytes::Bytes;

use crate::cart::MAX_QUANTITY;

/// A form this small never has more fields; more is not our form.
const MAX_FIELDS: usize = 16;

/// A checked add: the product still has to exist, which the cart decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddForm {
    pub product_id: u32,
    pub quantity: u32,
}

/// A refused form: the status and the message for `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormError {
    pub status: StatusCode,
    pub message: String,
}

fn bad(status: StatusCode, message: impl Into<String>) -> FormError {
    FormError {
        status,
        message: message.into(),
    }
}

/// Reads the form's fields, in order, from either encoding; [`check`] then checks the add.
pub async fn fields(headers: &HeaderMap, body: Bytes) -> Result<Vec<(String, String)>, FormError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let fields = if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        urlencoded(&body)?
    } else if essence.eq_ignore_ascii_case("multipart/form-data") {
        multipart(content_type, body).await?
    } else {
        return Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the form as multipart/form-data or application/x-www-form-urlencoded",
        ));
    };
    Ok(fields)
}

fn urlencoded(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body)
        .take(MAX_FIELDS + 1)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if fields.len() > MAX_FIELDS {
        return Err(bad(StatusCode::BAD_REQUEST, "too many form fields"));
    }
    Ok(fields)
}

async fn multipart(content_type: &str, body: Bytes) -> Result<Vec<(String, String)>, FormError> {
    let malformed = || {
        bad(
            StatusCode::BAD_REQUEST,
            "malformed multipart/form-data body",
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(|_| malformed())?;
    // The body is already in memory (axum bounds its size); multer wants a stream.
    let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    while let Some(field) = parts.next_field().await.map_err(|_| malformed())? {
        if fields.len() == MAX_FIELDS {
            return Err(bad(StatusCode::BAD_REQUEST, "too many form fields"));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let value = field.text().await.map_err(|_| malformed())?;
        fields.push((name, value));
    }
    Ok(fields)
}

/// Exactly one `product_id` and one `quantity`, both numbers; the quantity 1..=99.
pub fn check(fields: &[(String, String)]) -> Result<AddForm, FormError> {
    let product_id = number(fields, "product_id")?;
    let quantity = number(fields, "quantity")?;
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        return Err(bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("quantity must be between 1 and {MAX_QUANTITY}"),
        ));
    }
    Ok(AddForm {
        product_id,
        quantity,
    })
}

fn number(fields: &[(String, String)], name: &str) -> Result<u32, FormError> {
    let mut values = fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let value = match (values.next(), values.next()) {
        (Some(v), None) => v,
        (None, _) => {
            return Err(bad(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{name} is missing"),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                format!("{name} is given twice"),
            ))
        }
    };
    // Only plain digits: "+3", " 3" or "3.0" are not what the form sends.
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} must be a whole number"),
        ));
    }
    value.parse().map_err(|_| {
        bad(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} is out of range"),
        )
    })
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
    fn check_table() {
        let ok = |p, q| {
            Ok(AddForm {
                product_id: p,
                quantity: q,
            })
        };
        assert_eq!(
            check(&fields(&[("product_id", "3"), ("quantity", "2")])),
            ok(3, 2)
        );
        assert_eq!(
            check(&fields(&[("quantity", "99"), ("product_id", "1")])),
            ok(1, 99)
        );
        for bad in [
            &[("product_id", "3"), ("quantity", "0")][..],
            &[("product_id", "3"), ("quantity", "100")],
            &[("product_id", "3"), ("quantity", "abc")],
            &[("product_id", "3"), ("quantity", "-1")],
            &[("product_id", "3"), ("quantity", "99999999999")],
            &[("product_id", "x"), ("quantity", "1")],
            &[("product_id", "3")],
            &[("product_id", "3"), ("product_id", "4"), ("quantity", "1")],
        ] {
            assert!(check(&fields(bad)).is_err(), "{bad:?}");
        }
    }
}
