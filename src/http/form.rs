//! Request bodies and query strings, read strictly.
//!
//! `serde_urlencoded` and `form_urlencoded` replace bytes that are not UTF-8 with
//! U+FFFD, so a corrupted `refresh_token` or `state` would be answered as if it
//! were a different, valid-looking value. OAuth endpoints refuse such input as
//! `invalid_request` instead, and refuse an oversized body with `413` in the one
//! JSON error shape rather than actix's plain-text answer.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use percent_encoding::percent_decode;

use super::error::ApiError;
use crate::error::ErrorCode;

/// The largest body any JSON or form endpoint reads (passkey attestations are the
/// largest legitimate ones, a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// Decodes `application/x-www-form-urlencoded` input, refusing any name or value
/// that is not UTF-8 once percent-decoded.
pub fn strict_pairs(input: &[u8]) -> Result<Vec<(String, String)>, &'static str> {
    input
        .split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| "the request is not valid UTF-8")
}

/// A request body of at most [`MAX_BODY`] bytes.
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(Body).map_err(|e| match e.as_error() {
                Some(PayloadError::Overflow) => ApiError::Refused {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: ErrorCode::InvalidRequest,
                    description: format!("the request body is larger than {MAX_BODY} bytes"),
                },
                _ => ApiError::BadRequest("the request body could not be read".to_owned()),
            })
        })
    }
}

/// Whether the request says its body is `application/x-www-form-urlencoded`.
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// The largest form a browser page posts (an authorization request carried
/// through the consent page is the longest).
pub const MAX_PAGE_FORM: usize = 16 * 1024;

/// A form posted by one of our pages, read as strictly as the OAuth endpoints
/// read theirs: every pair in order, and anything that is not
/// `application/x-www-form-urlencoded` UTF-8 refused with the HTML error page
/// (the lossy extractor would turn a corrupted value into a different one).
pub struct PageForm(pub Vec<(String, String)>);

impl FromRequest for PageForm {
    type Error = super::browser::PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        use super::browser::PageError;
        let sent_as_form = is_form(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !sent_as_form {
                return Err(PageError::BadForm("it was not sent as a form".to_owned()));
            }
            let body = bytes.await.map_err(|e| match e.as_error() {
                Some(PayloadError::Overflow) => PageError::TooLarge,
                _ => PageError::BadForm("the body could not be read".to_owned()),
            })?;
            if body.len() > MAX_PAGE_FORM {
                return Err(PageError::TooLarge);
            }
            strict_pairs(&body)
                .map(PageForm)
                .map_err(|why| PageError::BadForm(why.to_owned()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_the_standard_and_refuse_what_is_not_utf8() {
        assert_eq!(
            strict_pairs(b"a=1&b=two+words&c=%C3%A9&&d&e=").unwrap(),
            [
                ("a", "1"),
                ("b", "two words"),
                ("c", "é"),
                ("d", ""),
                ("e", "")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            strict_pairs(b"x=%2B%26%3D").unwrap(),
            [("x".to_owned(), "+&=".to_owned())]
        );
        assert!(strict_pairs(b"token=%FF%FE").is_err());
        assert!(strict_pairs(b"grant_type=refresh_\xff\xfetoken").is_err());
        assert!(strict_pairs(b"%C3=1").is_err());
        // A stray percent sign is kept as is, as browsers and form_urlencoded do.
        assert_eq!(
            strict_pairs(b"x=100%").unwrap(),
            [("x".to_owned(), "100%".to_owned())]
        );
    }
}
