//! `AdminService` over gRPC: checks the admin credential, hands the request
//! to the router's admin operations ([`switchboard_router::admin`]), and
//! answers with their result. Served on a router's internal port and, in
//! the standalone mode, on the client port.

use std::sync::{Arc, OnceLock};

use switchboard_proto::pb;
use switchboard_proto::pb::admin_service_server::{AdminService, AdminServiceServer};
use switchboard_router::Router;
use switchboard_router::admin::AdminTokens;
use switchboard_router::error::RouterError;
use tonic::{Request, Response, Status};

pub struct AdminApi {
    /// Set once the router is up; the port may serve before that.
    router: Arc<OnceLock<Arc<Router>>>,
    tokens: AdminTokens,
}

/// The service, to add to a server's routes, and where to put the router
/// once it is up (until then calls answer UNAVAILABLE).
pub fn service(tokens: AdminTokens) -> (AdminServiceServer<AdminApi>, Arc<OnceLock<Arc<Router>>>) {
    let router = Arc::new(OnceLock::new());
    let api = AdminApi {
        router: router.clone(),
        tokens,
    };
    (AdminServiceServer::new(api), router)
}

fn status(err: RouterError) -> Status {
    let rpc = err.to_rpc();
    Status::new(switchboard_proto::status::code_of(rpc.code()), rpc.message)
}

impl AdminApi {
    fn router(&self) -> Result<&Router, Status> {
        self.router
            .get()
            .map(|router| &**router)
            .ok_or_else(|| Status::unavailable("the router is still starting; try again shortly"))
    }

    /// The name of the admin credential the call carries.
    fn admin<T>(&self, request: &Request<T>) -> Result<String, Status> {
        if !self.tokens.any() {
            return Err(Status::failed_precondition(
                "the admin API is off here: set SB_ADMIN_TOKENS on the routers (docs/DEPLOY.md)",
            ));
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "an admin call needs `authorization: Bearer <admin secret>` metadata",
                )
            })?;
        self.tokens
            .who(presented)
            .map(str::to_owned)
            .ok_or_else(|| Status::unauthenticated("that is not an admin credential here"))
    }
}

/// Each method: who the admin is (`$admin` bound for those that change
/// something), then the router's operation of the same name.
macro_rules! admin_methods {
    ($( $method:ident($req:ty) -> $resp:ty => $op:ident $(as $admin:ident)?; )*) => {
        #[tonic::async_trait]
        impl AdminService for AdminApi {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    let admin = self.admin(&request)?;
                    let _ = &admin;
                    self.router()?
                        .$op($( &admin_methods!(@name admin $admin), )? request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(status)
                }
            )*
        }
    };
    (@name $admin:ident $_marker:ident) => { $admin };
}

admin_methods! {
    find_users(pb::FindUsersRequest) -> pb::FindUsersResponse => admin_find_users;
    ban_user(pb::BanUserRequest) -> pb::BanUserResponse => admin_ban_user as by;
    unban_user(pb::UnbanUserRequest) -> pb::UnbanUserResponse => admin_unban_user as by;
    reset_password(pb::ResetPasswordRequest) -> pb::ResetPasswordResponse => admin_reset_password as by;
    list_sessions(pb::ListSessionsRequest) -> pb::ListSessionsResponse => admin_list_sessions;
    revoke_sessions(pb::RevokeSessionsRequest) -> pb::RevokeSessionsResponse => admin_revoke_sessions as by;
    transfer_group(pb::TransferGroupRequest) -> pb::TransferGroupResponse => admin_transfer_group as by;
    delete_user(pb::DeleteUserRequest) -> pb::DeleteUserResponse => admin_delete_user as by;
    delete_group(pb::DeleteGroupRequest) -> pb::DeleteGroupResponse => admin_delete_group as by;
    audit_log(pb::AuditLogRequest) -> pb::AuditLogResponse => admin_audit_log;
}

#[cfg(test)]
mod tests {
    use switchboard_router::admin::AdminToken;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn call(secret: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(secret) = secret {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        }
        request
    }

    #[test]
    fn the_credential_decides_and_names_the_admin() {
        let tokens = AdminTokens::new(vec![AdminToken::parse(&format!("ops:{SECRET}")).unwrap()]);
        let api = AdminApi {
            router: Arc::new(OnceLock::new()),
            tokens,
        };
        assert_eq!(api.admin(&call(Some(SECRET))).unwrap(), "ops");
        for wrong in [None, Some("0123456789abcdef0123456789abcdeX"), Some("")] {
            let refused = api.admin(&call(wrong)).unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{wrong:?}");
        }
        // Recognised, but the router is not up yet: try again, not "denied".
        assert_eq!(
            api.router().err().map(|s| s.code()),
            Some(tonic::Code::Unavailable)
        );
    }

    #[test]
    fn without_credentials_the_api_is_off() {
        let api = AdminApi {
            router: Arc::new(OnceLock::new()),
            tokens: AdminTokens::default(),
        };
        let off = api.admin(&call(Some(SECRET))).unwrap_err();
        assert_eq!(off.code(), tonic::Code::FailedPrecondition);
        assert!(off.message().contains("SB_ADMIN_TOKENS"), "{off:?}");
    }
}
