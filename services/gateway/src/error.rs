//! The gateway's errors, and the one mapping to gRPC statuses (including the
//! closed set of codes routers and presence answer with).
//!
//! Retrying is a property of the error: a refusal that waiting lifts (too
//! many requests, a dependency briefly away) carries the standard
//! `google.rpc.RetryInfo` in the status details, never with a zero delay; one
//! that waiting does not lift (a request too large) carries none.

use std::time::Duration;

use switchboard_proto::bus::RpcError;
use switchboard_proto::status::code_of;
use switchboard_shared::bus::BusError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A router or presence answered with an error.
    #[error("{}", .0.message)]
    Upstream(RpcError),
    /// A dependency (the bus, a router, presence) is away; retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// Over a limit: with `retry_after` one that waiting lifts (a rate),
    /// without it one that it does not (a size).
    #[error("{message}")]
    ResourceExhausted {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type GatewayResult<T> = Result<T, GatewayError>;

/// How long clients are told to wait before trying an unavailable
/// dependency again.
pub const UNAVAILABLE_RETRY: Duration = Duration::from_millis(500);

/// A retry delay as clients are told it: whole milliseconds, rounded up, at
/// least one (so "try again in N ms" and the RetryInfo say the same N).
pub fn retry_ms(delay: Duration) -> u64 {
    let nanos = delay.as_nanos();
    u64::try_from(nanos.div_ceil(1_000_000))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A status whose details carry `google.rpc.RetryInfo`.
fn retryable(code: Code, message: String, delay: Duration) -> Status {
    let delay = Duration::from_millis(retry_ms(delay));
    Status::with_error_details(code, message, ErrorDetails::with_retry_info(Some(delay)))
}

impl From<GatewayError> for Status {
    fn from(err: GatewayError) -> Self {
        match err {
            GatewayError::Unauthenticated(m) => Status::unauthenticated(m),
            GatewayError::InvalidArgument(m) => Status::invalid_argument(m),
            GatewayError::Upstream(rpc) => {
                let code = code_of(rpc.code());
                match (code, rpc.retry_after_ms) {
                    (Code::Unavailable, 0) => retryable(code, rpc.message, UNAVAILABLE_RETRY),
                    (_, 0) => Status::new(code, rpc.message),
                    (_, ms) => retryable(code, rpc.message, Duration::from_millis(ms)),
                }
            }
            GatewayError::Unavailable(m) => retryable(Code::Unavailable, m, UNAVAILABLE_RETRY),
            GatewayError::ResourceExhausted {
                message,
                retry_after: Some(delay),
            } => retryable(Code::ResourceExhausted, message, delay),
            GatewayError::ResourceExhausted {
                message,
                retry_after: None,
            } => Status::resource_exhausted(message),
            GatewayError::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

/// The delay a status's RetryInfo asks for, in milliseconds (0: none; do
/// not retry as is).
pub fn retry_after_ms(status: &Status) -> u64 {
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .map_or(0, retry_ms)
}

/// A refused send inside a SendStream call: the status a unary Send would
/// have ended with, as data.
pub fn send_failure(status: &Status) -> switchboard_proto::pb::SendFailure {
    switchboard_proto::pb::SendFailure {
        code: status.code() as i32,
        message: status.message().to_owned(),
        retry_after_ms: retry_after_ms(status),
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
    use switchboard_proto::bus::ErrorCode;

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
    fn rate_refusals_carry_retry_info_rounded_up() {
        let status: Status = GatewayError::ResourceExhausted {
            message: "slow down".into(),
            retry_after: Some(Duration::from_micros(1_500_200)),
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(retry_after_ms(&status), 1501);
        let failure = send_failure(&status);
        assert_eq!(
            (failure.code, failure.retry_after_ms),
            (Code::ResourceExhausted as i32, 1501)
        );
        // Never zero, however short the wait.
        let status: Status = GatewayError::ResourceExhausted {
            message: "slow down".into(),
            retry_after: Some(Duration::ZERO),
        }
        .into();
        assert_eq!(retry_after_ms(&status), 1);
    }

    #[test]
    fn size_refusals_are_not_retryable() {
        let status: Status = GatewayError::ResourceExhausted {
            message: "too large".into(),
            retry_after: None,
        }
        .into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_none());
        let upstream: Status = GatewayError::Upstream(RpcError {
            code: ErrorCode::ResourceExhausted as i32,
            message: "the message is 20000 bytes; the limit is 16384".into(),
            retry_after_ms: 0,
        })
        .into();
        assert!(upstream.get_details_retry_info().is_none());
        assert_eq!(send_failure(&upstream).retry_after_ms, 0);
    }

    #[test]
    fn unavailable_is_retryable() {
        let status: Status = GatewayError::Unavailable("no router".into()).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(retry_after_ms(&status), retry_ms(UNAVAILABLE_RETRY));
        let upstream: Status = GatewayError::Upstream(RpcError {
            code: ErrorCode::Unavailable as i32,
            message: "storage is unavailable".into(),
            retry_after_ms: 0,
        })
        .into();
        assert!(retry_after_ms(&upstream) > 0);
    }

    #[test]
    fn internal_details_stay_inside() {
        let status: Status = GatewayError::Internal("redis said boom".into()).into();
        assert_eq!(status.message(), "internal error");
    }
}
