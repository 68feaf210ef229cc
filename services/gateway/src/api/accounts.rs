use switchboard_proto::bus::{RouterRequest, router_request::Op};
use switchboard_proto::pb::{self, account_service_server::AccountService};
use tonic::{Request, Response, Status};

use std::time::Instant;

use super::{Api, forward, method_label, observe};
use crate::error::GatewayError;
use crate::expect_reply;

/// A call made before there is a session (no token): checked for size and
/// its address's rate, answered by a router with the same-named reply, and
/// counted like any call.
macro_rules! anonymous {
    ($api:expr, $request:expr, $variant:ident) => {{
        let started = Instant::now();
        let request = $request;
        let method = method_label(&request);
        let result = async {
            $api.check_size(request.get_ref())?;
            $api.check_anonymous_rate(&request).await?;
            let reply = $api
                .shared
                .router
                .call(None, Op::$variant(request.into_inner()))
                .await?;
            Ok(Response::new(expect_reply!(reply, $variant)?))
        }
        .await;
        observe(&method, started, &result);
        result
    }};
}

#[tonic::async_trait]
impl AccountService for Api {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        anonymous!(self, request, Register)
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let started = Instant::now();
        let method = method_label(&request);
        let result = async {
            self.check_size(request.get_ref())?;
            self.check_anonymous_rate(&request).await?;
            // Failed logins are counted per address too.
            let client_address = super::client_address(&request)
                .map(|address| address.to_string())
                .unwrap_or_default();
            let reply = self
                .shared
                .router
                .request(RouterRequest {
                    op: Some(Op::Login(request.into_inner())),
                    client_address,
                    ..RouterRequest::default()
                })
                .await;
            // A login refused for too many failures is held like any refusal.
            let reply = match reply {
                Err(GatewayError::Upstream(refusal)) if refusal.retry_after_ms > 0 => {
                    let wait = std::time::Duration::from_millis(refusal.retry_after_ms);
                    return Err(crate::limits::tarpit(wait, GatewayError::Upstream(refusal))
                        .await
                        .into());
                }
                other => other?,
            };
            Ok(Response::new(expect_reply!(reply, Login)?))
        }
        .await;
        observe(&method, started, &result);
        result
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        forward!(self, request, Logout)
    }

    async fn update_profile(
        &self,
        request: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        forward!(self, request, UpdateProfile)
    }

    async fn get_push_key(
        &self,
        request: Request<pb::GetPushKeyRequest>,
    ) -> Result<Response<pb::GetPushKeyResponse>, Status> {
        forward!(self, request, GetPushKey)
    }

    async fn set_push_subscription(
        &self,
        request: Request<pb::SetPushSubscriptionRequest>,
    ) -> Result<Response<pb::SetPushSubscriptionResponse>, Status> {
        forward!(self, request, SetPushSubscription)
    }

    async fn login_with_token(
        &self,
        request: Request<pb::LoginWithTokenRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        anonymous!(self, request, LoginWithToken)
    }
}
