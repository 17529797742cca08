//! The API's errors: a status, a code from the table of `shared/API.md`, a
//! message for people and, when one field is at fault, its path. Store
//! errors are translated here; their detail goes to the log, never to the
//! client.

use crate::http::Response;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

/// Seconds a client is asked to wait after a `503`.
pub const RETRY_AFTER_SECS: &str = "1";

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// `400 invalid_field` naming the field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_json", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "unavailable", message)
    }

    pub fn write(&self, res: &mut Response<'_>) {
        res.error(self.status, self.code, &self.message, self.field.as_deref());
        if self.status == 503 {
            let _ = res.header("Retry-After", RETRY_AFTER_SECS);
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(detail) => {
                crate::log_error!("request failed: {detail}");
                ApiError::unavailable("the database cannot be reached; try again shortly")
            }
            StoreError::UnknownReference { reference, index } => {
                // A batch item's field is named with its index.
                let field = match index {
                    Some(i) => format!("messages[{i}].{}", reference.field()),
                    None => reference.field().to_string(),
                };
                ApiError {
                    status: 422,
                    code: "unknown_reference",
                    message: format!("{field} names a row that does not exist"),
                    field: Some(field),
                }
            }
            StoreError::InvalidText(detail) => {
                crate::log_warn!("text refused by the database: {detail}");
                ApiError::new(
                    400,
                    "invalid_field",
                    "a text field holds characters the database cannot store",
                )
            }
            StoreError::CursorNotFound => {
                ApiError::field("cursor", "the cursor is not a message of this conversation")
            }
            StoreError::Internal(detail) => {
                crate::log_error!("internal error: {detail}");
                ApiError::new(500, "internal", "internal server error")
            }
        }
    }
}
