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
use switchboard_proto::status::code_name;
use switchboard_shared::ids::UserId;
use switchboard_shared::metrics::{MethodLabels, RpcLabels, metrics};
use switchboard_shared::token::Claims;
use tonic::{Request, Status};

use crate::Shared;
use crate::admission::Authentication;
use crate::auth;
use crate::error::{GatewayError, GatewayResult, retry_ms};

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
                &self.shared.token_key,
                &request.metadata().clone().into_headers(),
            ),
        }
    }

    /// The per-user send rate: RESOURCE_EXHAUSTED with a retry hint past it.
    async fn rate_limit<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let claims = self.claims(request)?;
        Ok(self.check_send_rate(&claims.user).await?)
    }

    /// Refused past a limit: held for the wait (see [`crate::limits::tarpit`]),
    /// then answered RESOURCE_EXHAUSTED with the wait as its retry hint.
    async fn over_limit(what: &str, wait: std::time::Duration) -> GatewayError {
        metrics().rate_limited.inc();
        let refusal = GatewayError::ResourceExhausted {
            message: format!("{what}; try again in {} ms", retry_ms(wait)),
            retry_after: Some(wait),
        };
        crate::limits::tarpit(wait, refusal).await
    }

    async fn check_send_rate(&self, user: &UserId) -> GatewayResult<()> {
        match self.shared.send_limiter.take(user, 1, Instant::now()) {
            Ok(()) => Ok(()),
            Err(wait) => Err(Self::over_limit("you are sending too fast", wait).await),
        }
    }

    /// Every call a user makes takes its cost from their call budget.
    async fn check_call_rate(&self, user: &UserId, cost: u32) -> GatewayResult<()> {
        match self.shared.call_limiter.take(user, cost, Instant::now()) {
            Ok(()) => Ok(()),
            Err(wait) => Err(Self::over_limit("you are making requests too fast", wait).await),
        }
    }

    /// Calls made before logging in (register, login) are limited per client
    /// address, so guessing or registering in a loop is slowed at the door.
    async fn check_anonymous_rate<T>(&self, request: &Request<T>) -> GatewayResult<()> {
        let Some(address) = client_address(request) else {
            return Ok(());
        };
        match self
            .shared
            .anonymous_limiter
            .take(&address, 1, Instant::now())
        {
            Ok(()) => Ok(()),
            Err(wait) => Err(Self::over_limit("too many attempts from your address", wait).await),
        }
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
        self.check_call_rate(&claims.user, crate::limits::call_cost(&op))
            .await?;
        self.shared
            .router
            .call(Some(auth::caller(&claims, &self.shared.id)), op)
            .await
    }
}

/// The client's address, as the connection it came on says.
pub(crate) fn client_address<T>(request: &Request<T>) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<crate::listener::ClientConnection>()
        .map(|connection| connection.0.peer.ip())
}

/// The call's method as the RPC metrics label it (`ChatService/Send`).
pub(crate) fn method_label<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<crate::admission::RpcMethod>()
        .map_or_else(|| "unknown/unknown".to_owned(), |m| m.0.clone())
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
        let method = $crate::api::method_label(&request);
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
        $crate::api::observe(&method, started, &result);
        result
    }};
}
pub(crate) use forward;
