//! Reading an uploaded image: raw body with an image content type, or a
//! multipart form whose field `image` holds it (other fields come back as text).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header::CONTENT_TYPE, StatusCode};

use crate::error::{AppError, Error};

/// An image and the form's other text fields.
#[derive(Debug, Default)]
pub struct Upload {
    /// The image bytes (not yet decoded).
    pub image: Bytes,
    /// Other multipart fields, by name.
    pub fields: BTreeMap<String, String>,
}

fn body_error(status: StatusCode, text: String) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::new(
            status,
            "payload_too_large",
            "request body is over the size limit; send a smaller image",
        )
        .with_detail(text)
    } else {
        AppError::new(
            status,
            "invalid_body",
            format!("cannot read request body: {text}"),
        )
    }
}

/// Reads the request as an image upload.
///
/// # Errors
///
/// 413 `payload_too_large` over the body limit, 415 for other content
/// types, 400 for a malformed form or a missing/empty image.
pub async fn read_upload(request: Request) -> Result<Upload, AppError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut upload = Upload::default();
    if mime == "multipart/form-data" {
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| body_error(e.status(), e.body_text()))?;
            let Some(field) = field else { break };
            let name = field.name().unwrap_or("").to_owned();
            let data = field
                .bytes()
                .await
                .map_err(|e| body_error(e.status(), e.body_text()))?;
            if name == "image" {
                upload.image = data;
            } else {
                let text = String::from_utf8(data.to_vec()).map_err(|_| {
                    AppError::bad_request(
                        "invalid_field",
                        format!("form field {name:?} is not utf-8 text"),
                    )
                })?;
                upload.fields.insert(name, text);
            }
        }
    } else if mime.starts_with("image/") || mime == "application/octet-stream" {
        upload.image = Bytes::from_request(request, &())
            .await
            .map_err(|e| body_error(e.status(), e.body_text()))?;
    } else {
        return Err(Error::UnsupportedContentType(content_type).into());
    }
    if upload.image.is_empty() {
        return Err(Error::MissingImage.into());
    }
    Ok(upload)
}
