//! The gRPC services clients call. Each handler authenticates, forwards to a
//! router, and returns the answer; the logic lives elsewhere.

mod accounts;
mod chat;
mod contacts;
mod groups;
mod topics;

use std::sync::Arc;

use std::time::Instant;

use switchboard_proto::bus::{router_request::Op, router_response::Result as Reply};
use switchboard_shared::ids::UserId;
use switchboard_shared::metrics::{MethodLabels, RpcLabels, metrics};
use switchboard_shared::token::Claims;
use tonic::{Request, Status};

use crate::Shared;
use crate::admission::Authentication;
use crate::auth;
use crate::error::{GatewayError, GatewayResult, code_name, retry_ms};

/// Implements every client-facing service.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

impl Api {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Who is calling, as [`crate::admission`] found when the call arrived.
    fn claims<T>(&self, request: &Request<T>) -> GatewayResult<Claims> {
        match request.extensions().get::<Authentication>() {
            Some(Authentication(outcome)) => outcome.clone(),
            // Served without the admission layer: check the token here.
            None => auth::authenticate(
                &self.shared.config.token_key,
                &request.metadata().clone().into_headers(),
            ),
        }
    }

    /// The per-user send rate: RESOURCE_EXHAUSTED with a retry hint past it.
    fn rate_limit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let claims = self.claims(request)?;
        Ok(self.check_send_rate(&claims.user)?)
    }

    fn check_send_rate(&self, user: &UserId) -> GatewayResult<()> {
        self.shared
            .send_limiter
            .take(user, 1, Instant::now())
            .map_err(|wait| {
                metrics().rate_limited.inc();
                GatewayError::ResourceExhausted {
                    message: format!(
                        "you are sending too fast; try again in {} ms",
                        retry_ms(wait)
                    ),
                    retry_after: Some(wait),
                }
            })
    }

    /// Every call a user makes takes its cost from their call budget.
    fn check_call_rate(&self, user: &UserId, cost: u32) -> GatewayResult<()> {
        self.shared
            .call_limiter
            .take(user, cost, Instant::now())
            .map_err(|wait| {
                metrics().rate_limited.inc();
                GatewayError::ResourceExhausted {
                    message: format!(
                        "you are making requests too fast; try again in {} ms",
                        retry_ms(wait)
                    ),
                    retry_after: Some(wait),
                }
            })
    }

    /// Requests larger than `max_request_bytes` are refused here, one by one
    /// (on a SendStream the call goes on). Only frames past the transport's
    /// hard cap ([`crate::config::GatewayConfig::max_frame_bytes`]) cannot be
    /// read at all and end their call.
    fn check_size<T: prost::Message>(&self, message: &T) -> GatewayResult<()> {
        let size = message.encoded_len();
        let limit = self.shared.config.max_request_bytes;
        if size > limit {
            return Err(GatewayError::ResourceExhausted {
                message: format!("the request is too large: {size} bytes; the limit is {limit}"),
                retry_after: None,
            });
        }
        Ok(())
    }

    /// Forwards an authenticated action to a router.
    async fn forward<T: prost::Message>(
        &self,
        request: &Request<T>,
        op: Op,
    ) -> GatewayResult<Reply> {
        let claims = self.claims(request)?;
        self.check_size(request.get_ref())?;
        self.check_call_rate(&claims.user, crate::limits::call_cost(&op))?;
        self.shared
            .router
            .call(Some(auth::caller(&claims, &self.shared.id)), op)
            .await
    }
}

/// Counts a finished call and its latency, by method and code.
pub(crate) fn observe<T>(method: &str, started: Instant, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => tonic::Code::Ok,
        Err(status) => status.code(),
    };
    let m = metrics();
    m.rpc_requests
        .get_or_create(&RpcLabels {
            method: method.to_owned(),
            code: code_name(code).to_owned(),
        })
        .inc();
    m.rpc_duration
        .get_or_create(&MethodLabels {
            method: method.to_owned(),
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Forwards a request whose router reply has the same variant name, and
/// counts it.
macro_rules! forward {
    ($api:expr, $request:expr, $variant:ident) => {{
        let started = std::time::Instant::now();
        let request = $request;
        let result: Result<tonic::Response<_>, tonic::Status> = async {
            let inner = request.get_ref().clone();
            let reply = $api
                .forward(
                    &request,
                    switchboard_proto::bus::router_request::Op::$variant(inner),
                )
                .await?;
            Ok(tonic::Response::new($crate::expect_reply!(
                reply, $variant
            )?))
        }
        .await;
        $crate::api::observe(stringify!($variant), started, &result);
        result
    }};
}
pub(crate) use forward;
