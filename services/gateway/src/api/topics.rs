use switchboard_proto::pb::{self, topic_service_server::TopicService};
use switchboard_shared::ids::ClientMsgId;
use tonic::{Request, Response, Status};

use super::{Api, forward};

#[tonic::async_trait]
impl TopicService for Api {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        forward!(self, request, CreateTopic)
    }

    async fn rename_topic(
        &self,
        request: Request<pb::RenameTopicRequest>,
    ) -> Result<Response<pb::RenameTopicResponse>, Status> {
        forward!(self, request, RenameTopic)
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        forward!(self, request, DeleteTopic)
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        forward!(self, request, ListTopics)
    }

    async fn add_topic_contacts(
        &self,
        request: Request<pb::AddTopicContactsRequest>,
    ) -> Result<Response<pb::AddTopicContactsResponse>, Status> {
        forward!(self, request, AddTopicContacts)
    }

    async fn remove_topic_contacts(
        &self,
        request: Request<pb::RemoveTopicContactsRequest>,
    ) -> Result<Response<pb::RemoveTopicContactsResponse>, Status> {
        forward!(self, request, RemoveTopicContacts)
    }

    async fn send_to_topic(
        &self,
        request: Request<pb::SendToTopicRequest>,
    ) -> Result<Response<pb::SendToTopicResponse>, Status> {
        let mut request = request;
        self.rate_limit(&request).await?;
        // As for Send: the gateway's own retries stay idempotent.
        if request.get_ref().client_msg_id.is_empty() {
            request.get_mut().client_msg_id = ClientMsgId::generate().to_string();
        }
        forward!(self, request, SendToTopic)
    }

    async fn topic_timeline(
        &self,
        request: Request<pb::TopicTimelineRequest>,
    ) -> Result<Response<pb::TopicTimelineResponse>, Status> {
        forward!(self, request, TopicTimeline)
    }

    async fn broadcast_status(
        &self,
        request: Request<pb::BroadcastStatusRequest>,
    ) -> Result<Response<pb::BroadcastStatusResponse>, Status> {
        forward!(self, request, BroadcastStatus)
    }

    async fn leave_topic(
        &self,
        request: Request<pb::LeaveTopicRequest>,
    ) -> Result<Response<pb::LeaveTopicResponse>, Status> {
        forward!(self, request, LeaveTopic)
    }

    async fn mute_topic(
        &self,
        request: Request<pb::MuteTopicRequest>,
    ) -> Result<Response<pb::MuteTopicResponse>, Status> {
        forward!(self, request, MuteTopic)
    }
}
