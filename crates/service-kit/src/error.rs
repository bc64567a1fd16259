//! Errors: the crate's [`Error`] enum and the HTTP-facing [`AppError`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Failures of the shared plumbing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image header claims more pixels or a larger side than allowed.
    #[error("image is {width}x{height} pixels, over the limit of {max_side} per side or {max_pixels} in total; send a smaller image")]
    ImageTooLarge {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Allowed longest side.
        max_side: u32,
        /// Allowed pixel count.
        max_pixels: u64,
    },
    /// Decoding the image would allocate more than the decoded-bytes budget
    /// (bit depth and channels counted, not only pixels).
    #[error("image is {width}x{height} {color}: decoding it takes {bytes} bytes, over the budget of {max_bytes} (MAX_DECODED_BYTES); send a smaller or 8-bit image")]
    ImageTooCostly {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The decoder's pixel layout, e.g. `Rgba16`.
        color: String,
        /// Bytes decoding would allocate.
        bytes: u64,
        /// The budget.
        max_bytes: u64,
    },
    /// The bytes are not a JPEG, PNG or WebP image, or are corrupt.
    #[error("cannot decode image: {0}; send a complete JPEG, PNG or WebP file")]
    ImageDecode(String),
    /// The request carried no image.
    #[error("no image in the request; send it as the raw body or as multipart field `image`")]
    MissingImage,
    /// The request's content type is not an image or multipart form.
    #[error("content type {0:?} is not accepted; use image/jpeg, image/png, image/webp or multipart/form-data")]
    UnsupportedContentType(String),
    /// Loading an ONNX model or running it failed.
    #[error("onnx runtime: {0}")]
    Onnx(String),
    /// A setting or a secret file is unusable.
    #[error("{0}")]
    Config(String),
    /// Binding the listening socket or serving failed.
    #[error("server i/o on {addr}: {source}")]
    Serve {
        /// The address involved.
        addr: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// The one error type handlers return.
///
/// The client gets the status, a stable machine-readable `code` and a
/// human `message`; `detail` (internal causes) only goes to the log.
#[derive(Debug)]
pub struct AppError {
    /// HTTP status sent back.
    pub status: StatusCode,
    /// Stable code, e.g. `image_too_large`.
    pub code: &'static str,
    /// Message for the client.
    pub message: String,
    /// Internal detail, logged and never sent.
    pub detail: Option<String>,
    /// Extra response headers, e.g. `Retry-After`, `WWW-Authenticate`.
    pub headers: Vec<(&'static str, String)>,
}

impl AppError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500 whose cause is logged but not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error, see the service log",
        )
        .with_detail(detail)
    }

    /// Attaches internal detail for the log.
    #[must_use]
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(crate::secrets::redact(&detail.to_string()));
        self
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, detail = ?self.detail, "request failed");
        } else {
            tracing::info!(status = self.status.as_u16(), code = self.code, message = %self.message, detail = ?self.detail, "request rejected");
        }
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in &self.headers {
            if let Ok(v) = axum::http::HeaderValue::from_str(value) {
                response.headers_mut().insert(*name, v);
            }
        }
        // Lets the metrics layer count errors by code without parsing bodies.
        response.extensions_mut().insert(ErrorCode(self.code));
        response
    }
}

/// The code of an [`AppError`], left in the response extensions for metrics.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::ImageTooLarge { .. } | Error::ImageTooCostly { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", message)
            }
            Error::ImageDecode(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", message)
            }
            Error::MissingImage => Self::bad_request("missing_image", message),
            Error::UnsupportedContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_type",
                message,
            ),
            Error::Onnx(_) | Error::Serve { .. } | Error::Config(_) => Self::internal(message),
        }
    }
}
