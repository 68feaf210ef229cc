//! The gateway's errors, and the one mapping to gRPC statuses (including the
//! closed set of codes routers and presence answer with).

use std::time::Duration;

use switchboard_proto::bus::{ErrorCode, RpcError};
use switchboard_shared::bus::BusError;
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A router or presence answered with an error.
    #[error("{}", .0.message)]
    Upstream(RpcError),
    #[error("{0}")]
    Unavailable(String),
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Duration,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type GatewayResult<T> = Result<T, GatewayError>;

fn code_of(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::NotFound => Code::NotFound,
        ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::Unauthenticated => Code::Unauthenticated,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Internal | ErrorCode::Unspecified => Code::Internal,
    }
}

/// The canonical name of a gRPC code (a metrics label).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Metadata key carrying how long to wait before retrying, in milliseconds.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

fn with_retry_hint(mut status: Status, retry_after_ms: u64) -> Status {
    if retry_after_ms > 0
        && let Ok(value) = retry_after_ms.to_string().parse()
    {
        status.metadata_mut().insert(RETRY_AFTER_MS, value);
    }
    status
}

impl From<GatewayError> for Status {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::Unauthenticated(m) => Status::unauthenticated(m),
            GatewayError::InvalidArgument(m) => Status::invalid_argument(m),
            GatewayError::Upstream(rpc) => with_retry_hint(
                Status::new(code_of(rpc.code()), rpc.message.clone()),
                rpc.retry_after_ms,
            ),
            GatewayError::Unavailable(m) => Status::unavailable(m),
            GatewayError::ResourceExhausted {
                message,
                retry_after,
            } => with_retry_hint(
                Status::resource_exhausted(message),
                u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
            ),
            GatewayError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// A refused send inside a SendStream call: the status a unary Send would
/// have ended with, as data.
pub fn send_failure(status: &Status) -> switchboard_proto::pb::SendFailure {
    switchboard_proto::pb::SendFailure {
        code: status.code() as i32,
        message: status.message().to_owned(),
        retry_after_ms: status
            .metadata()
            .get(RETRY_AFTER_MS)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0),
    }
}

impl From<BusError> for GatewayError {
    fn from(err: BusError) -> Self {
        Self::Unavailable(match err {
            BusError::NoResponders(_) => "the service is not running; try again shortly".into(),
            BusError::TimedOut(_) => "the service did not answer in time; try again".into(),
            BusError::Failed(m) => format!("the message bus failed: {m}"),
        })
    }
}

impl From<switchboard_shared::ids::InvalidId> for GatewayError {
    fn from(err: switchboard_shared::ids::InvalidId) -> Self {
        Self::InvalidArgument(err.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_codes_map_one_to_one() {
        let status: Status = GatewayError::Upstream(RpcError {
            code: ErrorCode::PermissionDenied as i32,
            message: "you are not a member of group gx".into(),
            retry_after_ms: 0,
        })
        .into();
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(status.message(), "you are not a member of group gx");
    }

    #[test]
    fn exhaustion_carries_a_retry_hint() {
        let status: Status = GatewayError::ResourceExhausted {
            message: "slow down".into(),
            retry_after: Duration::from_millis(1500),
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().get(RETRY_AFTER_MS).unwrap(), "1500");
        let failure = send_failure(&status);
        assert_eq!(
            (failure.code, failure.retry_after_ms),
            (Code::ResourceExhausted as i32, 1500)
        );
    }

    #[test]
    fn internal_details_stay_inside() {
        let status: Status = GatewayError::Internal("redis said boom".into()).into();
        assert_eq!(status.message(), "internal error");
    }
}
