use switchboard_proto::pb::{self, group_service_server::GroupService};
use tonic::{Request, Response, Status};

use super::{Api, forward};

#[tonic::async_trait]
impl GroupService for Api {
    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::CreateGroupResponse>, Status> {
        forward!(self, request, CreateGroup)
    }

    async fn invite_member(
        &self,
        request: Request<pb::InviteMemberRequest>,
    ) -> Result<Response<pb::InviteMemberResponse>, Status> {
        forward!(self, request, InviteMember)
    }

    async fn join_group(
        &self,
        request: Request<pb::JoinGroupRequest>,
    ) -> Result<Response<pb::JoinGroupResponse>, Status> {
        forward!(self, request, JoinGroup)
    }

    async fn leave_group(
        &self,
        request: Request<pb::LeaveGroupRequest>,
    ) -> Result<Response<pb::LeaveGroupResponse>, Status> {
        forward!(self, request, LeaveGroup)
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        forward!(self, request, RemoveMember)
    }

    async fn set_member_role(
        &self,
        request: Request<pb::SetMemberRoleRequest>,
    ) -> Result<Response<pb::SetMemberRoleResponse>, Status> {
        forward!(self, request, SetMemberRole)
    }

    async fn transfer_ownership(
        &self,
        request: Request<pb::TransferOwnershipRequest>,
    ) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
        forward!(self, request, TransferOwnership)
    }

    async fn disband_group(
        &self,
        request: Request<pb::DisbandGroupRequest>,
    ) -> Result<Response<pb::DisbandGroupResponse>, Status> {
        forward!(self, request, DisbandGroup)
    }

    async fn update_group(
        &self,
        request: Request<pb::UpdateGroupRequest>,
    ) -> Result<Response<pb::UpdateGroupResponse>, Status> {
        forward!(self, request, UpdateGroup)
    }

    async fn list_my_groups(
        &self,
        request: Request<pb::ListMyGroupsRequest>,
    ) -> Result<Response<pb::ListMyGroupsResponse>, Status> {
        forward!(self, request, ListMyGroups)
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        forward!(self, request, ListMembers)
    }
}
