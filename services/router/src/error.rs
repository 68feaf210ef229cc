//! The router's errors: the cases a caller branches on, plus `Internal`.
//! [`RouterError::to_rpc`] is the one mapping to the closed set of wire codes.

use switchboard_proto::bus::{ErrorCode, RpcError};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after_ms: u64,
    },
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    /// The store lost its data since this router learnt things from it; the
    /// request is tried again once from scratch (`service::handle`).
    #[error("the store was reset; try again")]
    StoreReset,
    #[error("internal error: {0}")]
    Internal(String),
}

impl RouterError {
    pub fn to_rpc(&self) -> RpcError {
        let (code, retry_after_ms) = match self {
            Self::InvalidArgument(_) => (ErrorCode::InvalidArgument, 0),
            Self::NotFound(_) => (ErrorCode::NotFound, 0),
            Self::AlreadyExists(_) => (ErrorCode::AlreadyExists, 0),
            Self::PermissionDenied(_) => (ErrorCode::PermissionDenied, 0),
            Self::Unauthenticated(_) => (ErrorCode::Unauthenticated, 0),
            Self::FailedPrecondition(_) => (ErrorCode::FailedPrecondition, 0),
            Self::ResourceExhausted { retry_after_ms, .. } => {
                (ErrorCode::ResourceExhausted, *retry_after_ms)
            }
            Self::Unavailable(_) | Self::StoreReset => (ErrorCode::Unavailable, 0),
            Self::Internal(_) => (ErrorCode::Internal, 0),
        };
        // Internal details (and where the store is) stay in the log, not on
        // the wire.
        let message = match self {
            Self::Internal(_) => "internal error".to_owned(),
            Self::Unavailable(_) => "storage is briefly unavailable; try again".to_owned(),
            other => other.to_string(),
        };
        RpcError {
            code: code as i32,
            message,
            retry_after_ms,
        }
    }
}

impl From<StoreError> for RouterError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(msg) => Self::Unavailable(msg),
            StoreError::EpochChanged => Self::StoreReset,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<switchboard_shared::ids::InvalidId> for RouterError {
    fn from(err: switchboard_shared::ids::InvalidId) -> Self {
        Self::InvalidArgument(err.0)
    }
}

pub type RouterResult<T> = Result<T, RouterError>;
