//! The gRPC services clients call. Each handler authenticates, forwards to a
//! router, and returns the answer; the logic lives elsewhere.

mod accounts;
mod chat;
mod contacts;
mod groups;
mod topics;

use std::sync::Arc;

use switchboard_proto::bus::{router_request::Op, router_response::Result as Reply};
use switchboard_shared::token::Claims;
use tonic::Request;

use crate::Shared;
use crate::auth;
use crate::error::GatewayResult;

/// Implements every client-facing service.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

impl Api {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn claims<T>(&self, request: &Request<T>) -> GatewayResult<Claims> {
        auth::authenticate(&self.shared.config.token_key, request.metadata())
    }

    /// Forwards an authenticated action to a router.
    async fn forward<T>(&self, request: &Request<T>, op: Op) -> GatewayResult<Reply> {
        let claims = self.claims(request)?;
        self.shared
            .router
            .call(Some(auth::caller(&claims, &self.shared.id)), op)
            .await
    }
}

/// Forwards a request whose router reply has the same variant name.
macro_rules! forward {
    ($api:expr, $request:expr, $variant:ident) => {{
        let request = $request;
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
    }};
}
pub(crate) use forward;
