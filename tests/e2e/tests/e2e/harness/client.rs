//! Test users: real gRPC clients of a gateway, with helpers that wait on
//! conditions (an event arriving) with a deadline.

use std::collections::HashMap;

use switchboard_proto::client::{Authed, Bearer};
use switchboard_proto::pb::{
    self, account_service_client::AccountServiceClient, chat_service_client::ChatServiceClient,
    contact_service_client::ContactServiceClient, event::Kind,
    group_service_client::GroupServiceClient, send_request::To,
    topic_service_client::TopicServiceClient,
};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::WAIT;
use super::cluster::Cluster;

pub const PASSWORD: &str = "correct horse battery";

/// The endpoint for `url`: over TLS trusting the tests' CA for `https://`.
pub fn endpoint(url: &str) -> tonic::transport::Endpoint {
    let ca = url
        .starts_with("https://")
        .then(|| super::test_ca().pem().as_bytes());
    switchboard_proto::client::endpoint(url, ca).expect("url")
}

pub async fn channel(url: &str) -> Channel {
    endpoint(url)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
}

/// A logged-in device of a user.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
    pub url: String,
    channel: Channel,
}

impl User {
    pub async fn register(cluster: &Cluster, name: &str, gateway: usize, device: &str) -> Self {
        let url = cluster.gateway_url(gateway);
        AccountServiceClient::new(channel(&url).await)
            .register(pb::RegisterRequest {
                user_id: name.into(),
                password: PASSWORD.into(),
                display_name: format!("{name} (display)"),
            })
            .await
            .unwrap_or_else(|s| panic!("register {name}: {s}"));
        Self::login(&url, name, device).await
    }

    pub async fn login(url: &str, name: &str, device: &str) -> Self {
        let channel = channel(url).await;
        let login = AccountServiceClient::new(channel.clone())
            .login(pb::LoginRequest {
                user_id: name.into(),
                password: PASSWORD.into(),
                device_id: device.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("login {name}: {s}"))
            .into_inner();
        Self {
            id: name.into(),
            token: login.token,
            url: url.into(),
            channel,
        }
    }

    /// A user whose session was opened some other way (an app token).
    pub async fn from_session(url: &str, id: &str, token: String) -> Self {
        Self {
            id: id.into(),
            token,
            url: url.into(),
            channel: channel(url).await,
        }
    }

    /// The same user on another device, through another gateway.
    pub async fn another_device(&self, cluster: &Cluster, gateway: usize, device: &str) -> Self {
        Self::login(&cluster.gateway_url(gateway), &self.id, device).await
    }

    /// The same connection with another token (a forged or short-lived one).
    pub fn with_token(&self, token: String) -> Self {
        Self {
            token,
            ..self.clone()
        }
    }

    /// The same session over a connection of the caller's making.
    pub fn with_channel(&self, channel: Channel) -> Self {
        Self {
            channel,
            ..self.clone()
        }
    }

    /// The same session, connected to another gateway (a client failing over).
    pub async fn via(&self, url: &str) -> Self {
        Self {
            url: url.into(),
            channel: channel(url).await,
            ..self.clone()
        }
    }

    fn bearer(&self) -> Bearer {
        Bearer::new(&self.token).expect("token")
    }

    pub fn chat(&self) -> ChatServiceClient<Authed> {
        ChatServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn groups(&self) -> GroupServiceClient<Authed> {
        GroupServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn contacts(&self) -> ContactServiceClient<Authed> {
        ContactServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn topics(&self) -> TopicServiceClient<Authed> {
        TopicServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub fn accounts(&self) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer())
    }

    pub async fn send(
        &self,
        to: To,
        text: &str,
        client_msg_id: &str,
    ) -> Result<pb::SendResponse, Status> {
        self.chat()
            .send(pb::SendRequest {
                to: Some(to),
                client_msg_id: client_msg_id.into(),
                text: text.into(),
                reply_to: String::new(),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn dm(&self, to: &User, text: &str) -> pb::SendResponse {
        self.send(To::UserId(to.id.clone()), text, "")
            .await
            .unwrap_or_else(|s| panic!("{} -> {}: {s}", self.id, to.id))
    }

    pub async fn post(&self, group: &str, text: &str) -> pb::SendResponse {
        self.send(To::GroupId(group.into()), text, "")
            .await
            .unwrap_or_else(|s| panic!("{} -> {group}: {s}", self.id))
    }

    pub async fn create_group(&self, name: &str, policy: pb::JoinPolicy) -> pb::Group {
        self.groups()
            .create_group(pb::CreateGroupRequest {
                name: name.into(),
                policy: policy as i32,
                invite: vec![],
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("create group: {s}"))
            .into_inner()
            .group
            .expect("group")
    }

    pub async fn join(&self, group: &str) -> pb::JoinGroupResponse {
        self.groups()
            .join_group(pb::JoinGroupRequest {
                group_id: group.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} join {group}: {s}", self.id))
            .into_inner()
    }

    pub async fn history(&self, conversation: &str) -> Vec<pb::Message> {
        let mut all = Vec::new();
        let mut before = 0;
        loop {
            let page = self
                .chat()
                .history(pb::HistoryRequest {
                    conversation_id: conversation.into(),
                    before_seq: before,
                    after_seq: None,
                    limit: 500,
                })
                .await
                .unwrap_or_else(|s| panic!("history {conversation}: {s}"))
                .into_inner();
            let first = page.messages.first().map(|m| m.seq);
            all.splice(0..0, page.messages);
            match (page.has_more, first) {
                (true, Some(seq)) => before = seq,
                _ => return all,
            }
        }
    }

    /// A topic of this user's bound to `contacts` (mutual contacts
    /// already), with one broadcast of `text` to all of them.
    pub async fn topic_with_broadcast(
        &self,
        name: &str,
        contacts: &[&User],
        text: &str,
    ) -> pb::Topic {
        let topic = self
            .topics()
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                contacts: contacts.iter().map(|c| c.id.clone()).collect(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} creates topic {name}: {s}", self.id))
            .into_inner()
            .topic
            .expect("topic");
        self.topics()
            .send_to_topic(pb::SendToTopicRequest {
                topic_id: topic.topic_id.clone(),
                text: text.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{} sends to topic {name}: {s}", self.id));
        topic
    }

    pub async fn add_contact(&self, other: &User) {
        self.contacts()
            .add_contact(pb::AddContactRequest {
                user_id: other.id.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("{} adds {}: {s}", self.id, other.id));
    }

    /// Opens the stream with no cursors and reads up to SyncComplete.
    pub async fn subscribe(&self) -> Events {
        self.subscribe_from(&[], "").await
    }

    pub async fn subscribe_from(&self, cursors: &[pb::Cursor], epoch: &str) -> Events {
        self.try_subscribe_from(cursors, epoch)
            .await
            .unwrap_or_else(|s| panic!("{} subscribe: {s}", self.id))
    }

    pub async fn try_subscribe_from(
        &self,
        cursors: &[pb::Cursor],
        epoch: &str,
    ) -> Result<Events, Status> {
        let stream = self
            .chat()
            .subscribe(pb::SubscribeRequest {
                cursors: cursors.to_vec(),
                epoch: epoch.into(),
            })
            .await?
            .into_inner();
        let mut events = Events {
            user: self.id.clone(),
            stream,
            epoch: String::new(),
            replayed: Vec::new(),
            before_sync: Vec::new(),
            seen: HashMap::new(),
            recent: std::collections::VecDeque::new(),
        };
        loop {
            let event = events.next().await;
            match event.kind {
                Some(Kind::Ready(ready)) => events.epoch = ready.epoch,
                Some(Kind::Synced(_)) => return Ok(events),
                Some(Kind::Message(message)) => events.replayed.push(message),
                _ => events.before_sync.push(event),
            }
        }
    }
}

/// One open stream.
pub struct Events {
    pub user: String,
    stream: Streaming<pb::Event>,
    pub epoch: String,
    /// Messages replayed before SyncComplete.
    pub replayed: Vec<pb::Message>,
    /// Other events before SyncComplete (gaps, removals).
    pub before_sync: Vec<pb::Event>,
    /// Highest seq received per conversation.
    seen: HashMap<String, u64>,
    /// The last events received, shown when a wait times out.
    recent: std::collections::VecDeque<String>,
}

impl Events {
    /// The next event (heartbeats included), or a panic after the deadline.
    pub async fn next(&mut self) -> pb::Event {
        match self.next_result().await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("{}: the stream ended", self.user),
            Err(status) => panic!("{}: the stream failed: {status}", self.user),
        }
    }

    pub async fn next_result(&mut self) -> Result<Option<pb::Event>, Status> {
        let event = match tokio::time::timeout(WAIT, self.stream.message()).await {
            Ok(event) => event?,
            Err(_) => panic!(
                "{}: no event within {WAIT:?}; the last ones were: {:#?}",
                self.user, self.recent
            ),
        };
        if let Some(event) = &event {
            if self.recent.len() == 8 {
                self.recent.pop_front();
            }
            self.recent.push_back(format!("{:?}", event.kind));
        }
        if let Some(pb::Event {
            kind: Some(Kind::Message(m)),
        }) = &event
        {
            let seen = self.seen.entry(m.conversation_id.clone()).or_insert(0);
            *seen = (*seen).max(m.seq);
        }
        Ok(event)
    }

    /// Waits until the stream ends or fails; returns the final status if any.
    pub async fn wait_closed(&mut self) -> Option<Status> {
        loop {
            match self.next_result().await {
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(status) => return Some(status),
            }
        }
    }

    /// Waits for the first event `pick` accepts; the events before it are
    /// returned too. Fails after [`WAIT`] however many other events (such as
    /// heartbeats) arrive meanwhile.
    pub async fn until<T>(
        &mut self,
        mut pick: impl FnMut(&pb::Event) -> Option<T>,
    ) -> (T, Vec<pb::Event>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut skipped = Vec::new();
        loop {
            let event = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(event) => event,
                Err(_) => panic!(
                    "{}: the awaited event did not come within {WAIT:?}; the last ones were: {:#?}",
                    self.user, self.recent
                ),
            };
            if let Some(found) = pick(&event) {
                return (found, skipped);
            }
            skipped.push(event);
        }
    }

    /// Waits for the next ConversationChanged of kind `change`; its
    /// conversation.
    pub async fn until_changed(
        &mut self,
        change: pb::conversation_changed::Change,
    ) -> pb::Conversation {
        self.until(|e| match &e.kind {
            Some(Kind::Conversation(c)) if c.change() == change => c.conversation.clone(),
            _ => None,
        })
        .await
        .0
    }

    /// Waits until the stream says `conversation` was removed.
    pub async fn until_removed(&mut self, conversation: &str) {
        self.until(|e| match &e.kind {
            Some(Kind::Conversation(c))
                if c.change() == pb::conversation_changed::Change::Removed
                    && c.conversation
                        .as_ref()
                        .is_some_and(|c| c.conversation_id == conversation) =>
            {
                Some(())
            }
            _ => None,
        })
        .await;
    }

    /// The next message (other events are skipped).
    pub async fn message(&mut self) -> pb::Message {
        self.until(|e| match &e.kind {
            Some(Kind::Message(m)) => Some(m.clone()),
            _ => None,
        })
        .await
        .0
    }

    pub async fn messages(&mut self, n: usize) -> Vec<pb::Message> {
        let mut messages = Vec::with_capacity(n);
        for _ in 0..n {
            messages.push(self.message().await);
        }
        messages
    }

    /// Messages until one with this text arrives (inclusive).
    pub async fn messages_until(&mut self, text: &str) -> Vec<pb::Message> {
        let mut messages = Vec::new();
        loop {
            let message = self.message().await;
            let done = message.text == text;
            messages.push(message);
            if done {
                return messages;
            }
        }
    }

    /// Cursors for every conversation this stream saw a message of.
    pub fn cursors(&self) -> Vec<pb::Cursor> {
        let mut cursors: Vec<pb::Cursor> = self
            .seen
            .iter()
            .map(|(conversation_id, seq)| pb::Cursor {
                conversation_id: conversation_id.clone(),
                seq: *seq,
            })
            .collect();
        cursors.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
        cursors
    }
}

/// Picks the system message of `kind` out of a stream (for [`Events::until`]).
pub fn system_of(kind: pb::system_event::Kind) -> impl FnMut(&pb::Event) -> Option<pb::Message> {
    move |event| match &event.kind {
        Some(Kind::Message(m)) if m.system.as_ref().is_some_and(|s| s.kind() == kind) => {
            Some(m.clone())
        }
        _ => None,
    }
}

pub fn texts(messages: &[pb::Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

pub fn seqs(messages: &[pb::Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}
