//! The typed error for anything a client sent that we refuse. The HTTP edge turns it
//! into the contract's JSON error body; nothing here knows about status codes.

/// Why an input was refused; `as_str` is the wire `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputErrorCode {
    UnknownParameter,
    InvalidParameter,
    DuplicateParameter,
    TooManyValues,
    InvalidCursor,
    CursorTooOld,
    InvalidJson,
    InvalidField,
    UnknownField,
    InvalidPageToken,
    IdempotencyKeyReused,
}

impl InputErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownParameter => "unknown_parameter",
            Self::InvalidParameter => "invalid_parameter",
            Self::DuplicateParameter => "duplicate_parameter",
            Self::TooManyValues => "too_many_values",
            Self::InvalidCursor => "invalid_cursor",
            Self::CursorTooOld => "cursor_too_old",
            Self::InvalidJson => "invalid_json",
            Self::InvalidField => "invalid_field",
            Self::UnknownField => "unknown_field",
            Self::InvalidPageToken => "invalid_page_token",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
        }
    }

    /// Body-level problems (valid JSON, wrong content) are 422; the rest are 400.
    pub fn is_semantic(self) -> bool {
        matches!(
            self,
            Self::InvalidField | Self::UnknownField | Self::IdempotencyKeyReused
        )
    }
}

/// A refused input: which parameter or field, and a sentence a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct InputError {
    pub code: InputErrorCode,
    pub param: String,
    pub message: String,
}

impl InputError {
    pub fn new(code: InputErrorCode, param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code,
            param: param.into(),
            message: message.into(),
        }
    }
}
