use switchboard_proto::pb::{self, contact_service_server::ContactService};
use tonic::{Request, Response, Status};

use super::{Api, forward};

#[tonic::async_trait]
impl ContactService for Api {
    async fn add_contact(
        &self,
        request: Request<pb::AddContactRequest>,
    ) -> Result<Response<pb::AddContactResponse>, Status> {
        forward!(self, request, AddContact)
    }

    async fn remove_contact(
        &self,
        request: Request<pb::RemoveContactRequest>,
    ) -> Result<Response<pb::RemoveContactResponse>, Status> {
        forward!(self, request, RemoveContact)
    }

    async fn find_people(
        &self,
        request: Request<pb::FindPeopleRequest>,
    ) -> Result<Response<pb::FindPeopleResponse>, Status> {
        forward!(self, request, FindPeople)
    }

    async fn block_user(
        &self,
        request: Request<pb::BlockUserRequest>,
    ) -> Result<Response<pb::BlockUserResponse>, Status> {
        forward!(self, request, BlockUser)
    }

    async fn list_blocked(
        &self,
        request: Request<pb::ListBlockedRequest>,
    ) -> Result<Response<pb::ListBlockedResponse>, Status> {
        forward!(self, request, ListBlocked)
    }

    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        forward!(self, request, ListContacts)
    }
}
