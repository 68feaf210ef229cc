use switchboard_proto::bus::{RouterRequest, router_request::Op};
use switchboard_proto::pb::{self, account_service_server::AccountService};
use tonic::{Request, Response, Status};

use std::time::Instant;

use super::{Api, forward, observe};
use crate::expect_reply;
use crate::listener::ClientConnection;

#[tonic::async_trait]
impl AccountService for Api {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let started = Instant::now();
        let result = async {
            self.check_size(request.get_ref())?;
            let reply = self
                .shared
                .router
                .call(None, Op::Register(request.into_inner()))
                .await?;
            Ok(Response::new(expect_reply!(reply, Register)?))
        }
        .await;
        observe("Register", started, &result);
        result
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let started = Instant::now();
        let result = async {
            self.check_size(request.get_ref())?;
            // Failed logins are counted per address too.
            let client_address = request
                .extensions()
                .get::<ClientConnection>()
                .map(|connection| connection.0.peer.ip().to_string())
                .unwrap_or_default();
            let reply = self
                .shared
                .router
                .request(RouterRequest {
                    op: Some(Op::Login(request.into_inner())),
                    client_address,
                    ..RouterRequest::default()
                })
                .await?;
            Ok(Response::new(expect_reply!(reply, Login)?))
        }
        .await;
        observe("Login", started, &result);
        result
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        forward!(self, request, Logout)
    }
}
