//! API errors: one JSON shape, `{"success": false, "error": "<text>", "code": "<reason>"}`,
//! with the HTTP status of the shared table (`magnet_core::Reason`, docs/api.md "Error
//! codes").

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use magnet_core::{ErrorCode, Reason};

/// Any route's error; as a response, `{success: false, error, code}` with its status (and
/// `Retry-After` when set).
#[derive(Debug)]
pub struct ApiError {
    /// What went wrong, for clients: `code` in the answer, and the status.
    pub reason: Reason,
    pub message: String,
    /// An HTTP status more precise than the reason's (e.g. 415 for a body of the wrong type).
    pub status: Option<u16>,
    /// Seconds to wait before trying again (`Retry-After`, with status 429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of this kind with no more precise reason.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::because(code.reason(), message)
    }
    /// An error for this precise reason, which gives its `code` and status.
    pub fn because(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }
    /// A 429 whose caller may try again after `secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.status = Some(429);
        self.retry_after = Some(secs);
        self
    }
    /// A request body the server will not read, by its own status (400, 413, 415, …).
    pub fn body(status: u16, message: impl Into<String>) -> Self {
        let reason = if status == 413 {
            Reason::BodyTooLarge
        } else {
            Reason::BodyInvalid
        };
        Self {
            status: Some(status),
            ..Self::because(reason, message)
        }
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        let mut reason = magnet_runtime::grpc::reason_of(&s);
        let code = reason.code();
        let message = match code {
            ErrorCode::Unavailable => format!("node unavailable: {}", s.message()),
            _ => s.message().to_owned(),
        };
        if reason == Reason::Unavailable {
            reason = Reason::NodeUnavailable;
        }
        Self {
            reason,
            message,
            status: None,
            // A node restarting, or a segment still being made: soon is worth a try.
            retry_after: (code == ErrorCode::Unavailable).then_some(1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status.unwrap_or(self.reason.http_status()))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(serde_json::json!({
                "success": false,
                "error": self.message,
                "code": self.reason.as_str(),
            })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        // A body refused for its size was not read: the connection cannot carry another
        // request, and saying so keeps clients from picking it from their pool.
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// What handlers return: their answer, or an [`ApiError`] in the API's error shape.
pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body as handlers take it, so that a bad body gets our error shape.
pub type JsonBody<T> = Result<axum::Json<T>, axum::extract::rejection::JsonRejection>;

/// The body, or a 400/413/415 `ApiError` saying what is wrong with it.
pub fn json_body<T>(b: JsonBody<T>) -> ApiResult<T> {
    b.map(|axum::Json(v)| v).map_err(|e| {
        ApiError::body(
            e.status().as_u16(),
            format!("invalid request body: {}", e.body_text()),
        )
    })
}

/// Query parameters as handlers take them, so that bad ones get our error shape.
pub type QueryParams<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The parameters, or a 400 `ApiError` saying which is wrong.
pub fn query<T>(q: QueryParams<T>) -> ApiResult<T> {
    q.map(|axum::extract::Query(v)| v).map_err(|e| {
        ApiError::body(
            e.status().as_u16(),
            format!("invalid query parameters: {}", e.body_text()),
        )
    })
}
