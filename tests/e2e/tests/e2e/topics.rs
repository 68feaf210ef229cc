//! One-to-many topics, end to end: the owner on one gateway, contacts spread
//! over both; every contact's stream watched for leaks.

use switchboard_proto::pb::{
    self, binding_result::Outcome, event::Kind, follow_up::Who, send_request::To,
    topic_contact::State,
};
use tonic::Code;

use crate::both_modes;
use crate::harness::client::texts;
use crate::harness::{Cluster, Events, Mode, User};

/// An owner and contacts who are all mutual contacts of the owner.
struct World {
    owner: User,
    contacts: Vec<User>,
}

impl World {
    async fn new(cluster: &Cluster, names: &[&str]) -> Self {
        let owner = cluster.user("owner", 0).await;
        let mut contacts = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let contact = cluster.user(name, i + 1).await;
            owner.add_contact(&contact).await;
            contact.add_contact(&owner).await;
            contacts.push(contact);
        }
        Self { owner, contacts }
    }

    async fn topic(&self, name: &str, contacts: &[&str]) -> pb::Topic {
        let response = self
            .owner
            .topics()
            .create_topic(pb::CreateTopicRequest {
                name: name.into(),
                contacts: contacts.iter().map(|c| c.to_string()).collect(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            response
                .results
                .iter()
                .all(|r| r.outcome() == Outcome::Added),
            "{:?}",
            response.results
        );
        response.topic.unwrap()
    }

    async fn broadcast(&self, topic: &pb::Topic, text: &str) -> pb::SendToTopicResponse {
        self.send(topic, text, &[], None, "").await.unwrap()
    }

    async fn send(
        &self,
        topic: &pb::Topic,
        text: &str,
        only: &[&str],
        follow_up: Option<pb::FollowUp>,
        forward: &str,
    ) -> Result<pb::SendToTopicResponse, tonic::Status> {
        self.owner
            .topics()
            .send_to_topic(pb::SendToTopicRequest {
                topic_id: topic.topic_id.clone(),
                client_msg_id: String::new(),
                text: text.into(),
                only: only.iter().map(|c| c.to_string()).collect(),
                follow_up,
                forward_message_id: forward.into(),
            })
            .await
            .map(|r| r.into_inner())
    }

    fn contact(&self, name: &str) -> &User {
        self.contacts.iter().find(|c| c.id == name).unwrap()
    }
}

fn thread(topic: &pb::Topic, contact: &str) -> String {
    format!("t:{}:{contact}", topic.topic_id)
}

async fn reply(
    contact: &User,
    topic: &pb::Topic,
    text: &str,
) -> Result<pb::SendResponse, tonic::Status> {
    contact
        .send(To::ConversationId(thread(topic, &contact.id)), text, "")
        .await
}

/// Nothing in a message a contact received names `other` (another contact):
/// no word of any field is their id (random ids may hold it as a substring).
fn assert_names_nobody_else(message: &pb::Message, other: &str) {
    let shown = format!("{message:?}");
    assert!(
        !shown
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '.')
            .any(|word| word == other),
        "a contact's message names {other}: {shown}"
    );
}

/// Proves a stream got nothing more: the next message it sees is a marker
/// sent to it after everything else.
async fn assert_nothing_before_marker(owner: &User, user: &User, events: &mut Events) {
    owner.dm(user, "marker").await;
    let next = events.message().await;
    assert_eq!(
        next.text, "marker",
        "{} received something not meant for them: {next:?}",
        user.id
    );
}

both_modes!(a_bound_contact_is_told_of_an_open_dialog, told_when_bound);
async fn told_when_bound(cluster: Cluster) {
    let world = World::new(&cluster, &["ann"]).await;
    let mut ann = world.contact("ann").subscribe().await;
    let topic = world.topic("Picnic", &["ann"]).await;
    let dialog = ann
        .until_changed(pb::conversation_changed::Change::Added)
        .await;
    assert_eq!(dialog.conversation_id, thread(&topic, "ann"));
    assert_eq!(dialog.title, "Picnic (from owner)");
    assert!(!dialog.closed, "a freshly bound contact can reply");
}

both_modes!(send_once_each_contact_privately, send_once);
async fn send_once(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben", "cat"]).await;
    let topic = world
        .topic("Badminton Saturday", &["ann", "ben", "cat"])
        .await;
    let mut owner_events = world.owner.subscribe().await;
    let mut streams = Vec::new();
    for contact in &world.contacts {
        streams.push(contact.subscribe().await);
    }

    let sent = world.broadcast(&topic, "Court 3, 10:00?").await;
    assert!(!sent.broadcast_id.is_empty());
    let mut recipients: Vec<&str> = sent.recipients.iter().map(|r| r.user_id.as_str()).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["ann", "ben", "cat"],
        "the ack reports each recipient"
    );

    for (contact, events) in world.contacts.iter().zip(&mut streams) {
        let copy = events.message().await;
        assert_eq!(copy.text, "Court 3, 10:00?");
        assert_eq!(copy.sender, "owner");
        assert_eq!(
            copy.conversation_id,
            thread(&topic, &contact.id),
            "a private thread"
        );
        assert_eq!(copy.seq, 1, "each thread has its own sequence");
        let tag = copy.topic.unwrap();
        assert_eq!(
            (tag.topic_name.as_str(), tag.owner_id.as_str()),
            ("Badminton Saturday", "owner")
        );
        assert_eq!(tag.broadcast_id, sent.broadcast_id);
    }
    // The owner's devices see every copy, one per thread.
    let copies = owner_events.messages(3).await;
    assert!(
        copies
            .iter()
            .all(|m| m.topic.as_ref().unwrap().broadcast_id == sent.broadcast_id)
    );

    // A contact's dialog is apart from their plain chat with the owner.
    let listed = world.contacts[0]
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let dialog = &listed.conversations[0];
    assert_eq!(dialog.conversation_id, thread(&topic, "ann"));
    assert_eq!(dialog.kind(), pb::ConversationKind::TopicThread);
    assert_eq!(dialog.title, "Badminton Saturday (from owner)");
    assert_eq!(dialog.peer_id, "owner");
}

both_modes!(partial_send_and_privacy, partial_send_and_privacy_test);
async fn partial_send_and_privacy_test(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben", "cat"]).await;
    let topic = world.topic("Secret party", &["ann", "ben", "cat"]).await;
    let mut ann = world.contact("ann").subscribe().await;
    let mut ben = world.contact("ben").subscribe().await;
    let mut cat = world.contact("cat").subscribe().await;

    let partial = world
        .send(&topic, "only for ann and cat", &["ann", "cat"], None, "")
        .await
        .unwrap();
    assert_eq!(partial.recipients.len(), 2);
    assert_eq!(ann.message().await.text, "only for ann and cat");
    assert_eq!(cat.message().await.text, "only for ann and cat");

    // Replies go to the owner only.
    reply(world.contact("ann"), &topic, "ann's private answer")
        .await
        .unwrap();
    reply(world.contact("cat"), &topic, "cat's private answer")
        .await
        .unwrap();
    // Ben saw nothing at all; ann and cat not each other's replies.
    assert_nothing_before_marker(&world.owner, world.contact("ben"), &mut ben).await;
    assert_eq!(
        ann.message().await.text,
        "ann's private answer",
        "her own reply, on her devices"
    );
    assert_nothing_before_marker(&world.owner, world.contact("ann"), &mut ann).await;
    assert_eq!(cat.message().await.text, "cat's private answer");
    assert_nothing_before_marker(&world.owner, world.contact("cat"), &mut cat).await;

    // No way around it: another thread, the member list, the timeline.
    let peek = world
        .contact("ben")
        .chat()
        .history(pb::HistoryRequest {
            conversation_id: thread(&topic, "ann"),
            ..Default::default()
        })
        .await;
    assert_eq!(peek.unwrap_err().code(), Code::PermissionDenied);
    let listing = world
        .contact("ben")
        .topics()
        .list_topics(pb::ListTopicsRequest {})
        .await
        .unwrap();
    assert!(
        listing.into_inner().topics.is_empty(),
        "contacts do not see the topic's members"
    );
    let timeline = world
        .contact("ben")
        .topics()
        .topic_timeline(pb::TopicTimelineRequest {
            topic_id: topic.topic_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(timeline.unwrap_err().code(), Code::PermissionDenied);
    let into_ann = world
        .contact("ben")
        .send(To::ConversationId(thread(&topic, "ann")), "pretending", "")
        .await
        .unwrap_err();
    assert_eq!(into_ann.code(), Code::PermissionDenied);
}

both_modes!(replies_come_home_tagged_with_their_topic, reply_attribution);
async fn reply_attribution(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben"]).await;
    let first = world.topic("Badminton", &["ann", "ben"]).await;
    let second = world.topic("Book club", &["ann"]).await;
    let mut owner_events = world.owner.subscribe().await;
    let mut ann = world.contact("ann").subscribe().await;
    world.broadcast(&first, "badminton at 10").await;
    world.broadcast(&second, "book club at 7").await;
    let got = ann.messages(2).await;
    assert_ne!(
        got[0].conversation_id, got[1].conversation_id,
        "one dialog per topic"
    );
    owner_events.messages(3).await;

    reply(world.contact("ann"), &second, "I'll bring the book")
        .await
        .unwrap();
    let home = owner_events.message().await;
    assert_eq!(home.conversation_id, thread(&second, "ann"));
    let tag = home.topic.unwrap();
    assert_eq!(
        (tag.topic_id.as_str(), tag.contact_id.as_str()),
        (second.topic_id.as_str(), "ann")
    );
    assert!(tag.broadcast_id.is_empty(), "a reply is not a broadcast");

    // The owner answers ann inside the topic: only she gets it.
    let mut ben = world.contact("ben").subscribe().await;
    world
        .owner
        .send(
            To::ConversationId(thread(&second, "ann")),
            "great, thanks",
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        ann.messages_until("great, thanks")
            .await
            .last()
            .unwrap()
            .conversation_id,
        thread(&second, "ann")
    );
    assert_nothing_before_marker(&world.owner, world.contact("ben"), &mut ben).await;

    // The merged timelines: each broadcast once, the reply in its own topic only.
    let timeline = |topic: pb::Topic| {
        let owner = world.owner.clone();
        async move {
            owner
                .topics()
                .topic_timeline(pb::TopicTimelineRequest {
                    topic_id: topic.topic_id,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .entries
        }
    };
    let of_second = timeline(second.clone()).await;
    let texts: Vec<&str> = of_second
        .iter()
        .map(|e| e.message.as_ref().unwrap().text.as_str())
        .collect();
    assert_eq!(
        texts,
        ["book club at 7", "I'll bring the book", "great, thanks"]
    );
    let of_first = timeline(first.clone()).await;
    assert_eq!(of_first.len(), 1);
    assert_eq!(of_first[0].recipients.len(), 2);
}

both_modes!(editing_the_binding, editing_the_binding_test);
async fn editing_the_binding_test(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben", "cat"]).await;
    let stranger = cluster.user("stranger", 1).await;
    let one_sided = cluster.user("onesided", 0).await;
    one_sided.add_contact(&world.owner).await; // the owner never added them back
    let topic = world.topic("Hiking", &["ann"]).await;

    let added = world
        .owner
        .topics()
        .add_topic_contacts(pb::AddTopicContactsRequest {
            topic_id: topic.topic_id.clone(),
            contacts: vec![
                "ann".into(),
                "ben".into(),
                "stranger".into(),
                "onesided".into(),
                "nobody".into(),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    let outcome = |user: &str| {
        added
            .results
            .iter()
            .find(|r| r.user_id == user)
            .unwrap()
            .clone()
    };
    assert_eq!(outcome("ann").outcome(), Outcome::AlreadyInTopic);
    assert_eq!(outcome("ann").message, "ann is already in this topic");
    assert_eq!(outcome("ben").outcome(), Outcome::Added);
    assert_eq!(outcome("stranger").outcome(), Outcome::NotAContact);
    assert_eq!(outcome("onesided").outcome(), Outcome::NotAContact);
    assert_eq!(outcome("nobody").outcome(), Outcome::NoSuchUser);
    let bound: Vec<&str> = added
        .topic
        .as_ref()
        .unwrap()
        .contacts
        .iter()
        .map(|c| c.user_id.as_str())
        .collect();
    assert_eq!(bound, ["ann", "ben"], "no duplicate, no stranger");
    let _ = stranger;

    world.broadcast(&topic, "trail at 8").await;
    world
        .owner
        .topics()
        .remove_topic_contacts(pb::RemoveTopicContactsRequest {
            topic_id: topic.topic_id.clone(),
            contacts: vec!["ben".into()],
        })
        .await
        .unwrap();
    let refused = reply(world.contact("ben"), &topic, "can I still come?")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("no longer in this topic"),
        "{}",
        refused.message()
    );
    // Forwarding stopped at once: the next broadcast skips him.
    let next = world.broadcast(&topic, "trail moved to 9").await;
    assert_eq!(
        next.recipients
            .iter()
            .map(|r| r.user_id.as_str())
            .collect::<Vec<_>>(),
        ["ann"]
    );
    // His plain chat with the owner still works, and his history stays readable.
    world
        .contact("ben")
        .dm(&world.owner, "sorry, by dm then")
        .await;
    let history = world.contact("ben").history(&thread(&topic, "ben")).await;
    assert_eq!(texts(&history)[0], "trail at 8");
    assert!(
        history.last().unwrap().system.is_some(),
        "the removal is in his thread"
    );
}

both_modes!(
    contacts_leave_and_mute_and_the_owner_sees_it,
    leave_and_mute
);
async fn leave_and_mute(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben"]).await;
    let topic = world.topic("Choir", &["ann", "ben"]).await;
    let mut owner_events = world.owner.subscribe().await;
    world
        .contact("ann")
        .topics()
        .mute_topic(pb::MuteTopicRequest {
            topic_id: topic.topic_id.clone(),
            muted: true,
        })
        .await
        .unwrap();
    let (muted, _) = owner_events
        .until(|e| match &e.kind {
            Some(Kind::Conversation(c)) => c.conversation.clone().filter(|c| c.muted),
            _ => None,
        })
        .await;
    assert_eq!(muted.conversation_id, thread(&topic, "ann"));
    // Muted contacts still receive.
    let sent = world.broadcast(&topic, "rehearsal moved").await;
    assert_eq!(sent.recipients.len(), 2);

    world
        .contact("ben")
        .topics()
        .leave_topic(pb::LeaveTopicRequest {
            topic_id: topic.topic_id.clone(),
        })
        .await
        .unwrap();
    let left = owner_events
        .until(|e| match &e.kind {
            Some(Kind::Message(m)) if m.system.is_some() => Some(m.clone()),
            _ => None,
        })
        .await
        .0;
    assert_eq!(left.conversation_id, thread(&topic, "ben"));
    assert_eq!(left.text, "ben left this topic");
    let listed = world
        .owner
        .topics()
        .list_topics(pb::ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner();
    let states: Vec<(&str, State)> = listed.topics[0]
        .contacts
        .iter()
        .map(|c| (c.user_id.as_str(), c.state()))
        .collect();
    assert_eq!(states, [("ann", State::Muted), ("ben", State::Left)]);
    assert_eq!(
        reply(world.contact("ben"), &topic, "oops")
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

both_modes!(status_roll_up_and_follow_ups, status_and_follow_up);
async fn status_and_follow_up(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben", "cat", "dan"]).await;
    let topic = world
        .topic("Team dinner", &["ann", "ben", "cat", "dan"])
        .await;
    let mut ann = world.contact("ann").subscribe().await;
    let mut ben = world.contact("ben").subscribe().await;
    let mut cat = world.contact("cat").subscribe().await;
    // dan stays offline.
    let mut owner_events = world.owner.subscribe().await;
    let sent = world.broadcast(&topic, "Friday 8pm, ok?").await;
    for events in [&mut ann, &mut ben, &mut cat] {
        events.message().await;
    }
    world
        .contact("ann")
        .chat()
        .mark_read(pb::MarkReadRequest {
            conversation_id: thread(&topic, "ann"),
            seq: 1,
        })
        .await
        .unwrap();
    reply(world.contact("ben"), &topic, "works for me")
        .await
        .unwrap();
    // Cat's copy reached her device: the owner hears of it.
    owner_events
        .until(|e| matches!(&e.kind, Some(Kind::Delivered(d)) if d.user_id == "cat").then_some(()))
        .await;

    let status = |broadcast: String| {
        let owner = world.owner.clone();
        let topic_id = topic.topic_id.clone();
        async move {
            owner
                .topics()
                .broadcast_status(pb::BroadcastStatusRequest {
                    topic_id,
                    broadcast_id: broadcast,
                })
                .await
                .unwrap()
                .into_inner()
                .contacts
        }
    };
    let rows = status(sent.broadcast_id.clone()).await;
    let of = |user: &str| {
        let s = rows.iter().find(|s| s.user_id == user).unwrap();
        (s.delivered, s.read, s.replied)
    };
    assert_eq!(of("ann"), (true, true, false));
    assert_eq!(of("ben"), (true, true, true));
    assert_eq!(of("cat"), (true, false, false));
    assert_eq!(of("dan"), (false, false, false));

    // Follow up with those who have not read: cat and dan.
    let nudge = world
        .send(
            &topic,
            "reminder: Friday 8pm",
            &[],
            Some(pb::FollowUp {
                broadcast_id: sent.broadcast_id.clone(),
                who: Who::NotRead as i32,
            }),
            "",
        )
        .await
        .unwrap();
    let mut nudged: Vec<&str> = nudge
        .recipients
        .iter()
        .map(|r| r.user_id.as_str())
        .collect();
    nudged.sort();
    assert_eq!(nudged, ["cat", "dan"]);
    let unreplied = world
        .send(
            &topic,
            "please answer",
            &[],
            Some(pb::FollowUp {
                broadcast_id: sent.broadcast_id,
                who: Who::NotReplied as i32,
            }),
            "",
        )
        .await
        .unwrap();
    assert_eq!(unreplied.recipients.len(), 3, "all but ben");
    assert_eq!(cat.message().await.text, "reminder: Friday 8pm");
    // Ann read but did not reply: the second follow-up only.
    assert_eq!(ann.message().await.text, "please answer");
    assert_nothing_before_marker(&world.owner, world.contact("ann"), &mut ann).await;
    assert_eq!(ben.message().await.text, "works for me", "his own reply");
    assert_nothing_before_marker(&world.owner, world.contact("ben"), &mut ben).await;
}

both_modes!(copy_and_resend, copy_and_resend_test);
async fn copy_and_resend_test(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben"]).await;
    let topic = world.topic("Carpool", &["ann", "ben"]).await;
    let mut ben = world.contact("ben").subscribe().await;
    world.broadcast(&topic, "who drives?").await;
    let answer = reply(world.contact("ann"), &topic, "I can drive, 4 seats")
        .await
        .unwrap();
    ben.message().await;

    // Copy ann's reply from her thread and resend it to everyone, as is...
    let resent = world
        .send(&topic, "", &[], None, &answer.message_id)
        .await
        .unwrap();
    assert_eq!(resent.recipients.len(), 2);
    let copy = ben.message().await;
    assert_eq!(copy.text, "I can drive, 4 seats");
    assert_eq!(copy.sender, "owner");
    // ...and nothing ben receives says where it came from: not the field,
    // not an id, not a name. (The owner may copy a contact's words; whose
    // they were stays the owner's to know.)
    assert_eq!(copy.topic.as_ref().unwrap().forwarded_from, "");
    assert_names_nobody_else(&copy, "ann");
    // ...or edited, to some.
    let edited = world
        .send(
            &topic,
            "Ann drives, 3 seats left",
            &["ben"],
            None,
            &answer.message_id,
        )
        .await
        .unwrap();
    let copy = ben.message().await;
    assert_eq!(copy.text, "Ann drives, 3 seats left");
    assert_names_nobody_else(&copy, "ann");
    // Nor what ben reads back later, or sees listed.
    let ben_user = world.contact("ben");
    for message in ben_user.history(&thread(&topic, "ben")).await {
        assert_names_nobody_else(&message, "ann");
    }
    let listed = ben_user
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{listed:?}").contains("ann"), "{listed:?}");
    // The owner's timeline keeps the provenance of both resends.
    let timeline = world
        .owner
        .topics()
        .topic_timeline(pb::TopicTimelineRequest {
            topic_id: topic.topic_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    for broadcast_id in [&resent.broadcast_id, &edited.broadcast_id] {
        let entry = timeline
            .entries
            .iter()
            .find(|e| &e.broadcast_id == broadcast_id)
            .unwrap();
        assert_eq!(
            entry
                .message
                .as_ref()
                .unwrap()
                .topic
                .as_ref()
                .unwrap()
                .forwarded_from,
            answer.message_id
        );
    }
    // Only messages of this topic can be copied.
    let elsewhere = world.owner.dm(world.contact("ann"), "a plain dm").await;
    let refused = world
        .send(&topic, "", &[], None, &elsewhere.message_id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

both_modes!(
    an_offline_contact_finds_the_message_in_the_right_dialog,
    offline_contact
);
async fn offline_contact(cluster: Cluster) {
    let world = World::new(&cluster, &["ann"]).await;
    let first = world.topic("Garden", &["ann"]).await;
    let second = world.topic("Kitchen", &["ann"]).await;
    // Ann has been online before: she holds an epoch.
    let ann_events = world.contact("ann").subscribe().await;
    let epoch = ann_events.epoch.clone();
    drop(ann_events);
    world.broadcast(&first, "seeds arrived").await;
    world.broadcast(&second, "new oven").await;
    world.owner.dm(world.contact("ann"), "and hello").await;

    let back = world.contact("ann").subscribe_from(&[], &epoch).await;
    let mut by_dialog: Vec<(String, String)> = back
        .replayed
        .iter()
        .map(|m| (m.conversation_id.clone(), m.text.clone()))
        .collect();
    by_dialog.sort();
    let mut expected = vec![
        (thread(&first, "ann"), "seeds arrived".to_owned()),
        (thread(&second, "ann"), "new oven".to_owned()),
        ("dm:ann:owner".to_owned(), "and hello".to_owned()),
    ];
    expected.sort();
    assert_eq!(by_dialog, expected);
}

both_modes!(strangers_cannot_touch_a_topic, non_owner_refusals);
async fn non_owner_refusals(cluster: Cluster) {
    let world = World::new(&cluster, &["ann"]).await;
    let topic = world.topic("Private", &["ann"]).await;
    let ann = world.contact("ann");
    let sent = ann
        .topics()
        .send_to_topic(pb::SendToTopicRequest {
            topic_id: topic.topic_id.clone(),
            text: "hijack".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(sent.code(), Code::PermissionDenied);
    let renamed = ann
        .topics()
        .rename_topic(pb::RenameTopicRequest {
            topic_id: topic.topic_id.clone(),
            name: "Mine now".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(renamed.code(), Code::PermissionDenied);
    let status = ann
        .topics()
        .broadcast_status(pb::BroadcastStatusRequest {
            topic_id: topic.topic_id.clone(),
            broadcast_id: "bxxxx".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Bad ids and oversized input: clear statuses, nothing stored.
    let send = |topic_id: &str, text: String| {
        let owner = world.owner.clone();
        let topic_id = topic_id.to_owned();
        async move {
            owner
                .topics()
                .send_to_topic(pb::SendToTopicRequest {
                    topic_id,
                    text,
                    ..Default::default()
                })
                .await
                .unwrap_err()
                .code()
        }
    };
    assert_eq!(send("not a topic", "x".into()).await, Code::InvalidArgument);
    assert_eq!(send("tnosuchtopic1", "x".into()).await, Code::NotFound);
    assert_eq!(
        send(&topic.topic_id, "x".repeat(17 * 1024)).await,
        Code::ResourceExhausted
    );
    assert_eq!(
        send(&topic.topic_id, "  ".into()).await,
        Code::InvalidArgument
    );
    let timeline = world
        .owner
        .topics()
        .topic_timeline(pb::TopicTimelineRequest {
            topic_id: topic.topic_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(timeline.entries.is_empty());

    // Rename reaches the contact; delete closes every thread but keeps it readable.
    let mut ann_events = ann.subscribe().await;
    world
        .owner
        .topics()
        .rename_topic(pb::RenameTopicRequest {
            topic_id: topic.topic_id.clone(),
            name: "Renamed".into(),
        })
        .await
        .unwrap();
    let (renamed, _) = ann_events
        .until(|e| match &e.kind {
            Some(Kind::Conversation(c)) => c.conversation.clone(),
            _ => None,
        })
        .await;
    assert_eq!(renamed.title, "Renamed (from owner)");
    world
        .owner
        .topics()
        .delete_topic(pb::DeleteTopicRequest {
            topic_id: topic.topic_id.clone(),
        })
        .await
        .unwrap();
    let after = reply(ann, &topic, "still there?").await.unwrap_err();
    assert_eq!(after.code(), Code::FailedPrecondition);
    assert!(after.message().contains("deleted"), "{}", after.message());
    let history = ann.history(&thread(&topic, "ann")).await;
    assert_eq!(texts(&history), ["this topic was deleted"]);
    // Nothing is left to finish: asked again, it is refused.
    let again = world
        .owner
        .topics()
        .delete_topic(pb::DeleteTopicRequest {
            topic_id: topic.topic_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
}

both_modes!(
    consent_is_checked_when_sending_not_only_when_binding,
    consent_at_send_time
);
async fn consent_at_send_time(cluster: Cluster) {
    use pb::topic_recipient::Outcome as Sent;
    let world = World::new(&cluster, &["ann", "ben"]).await;
    let topic = world.topic("Lunch", &["ann", "ben"]).await;
    let ann = world.contact("ann");
    let mut ann_events = ann.subscribe().await;
    // ann no longer wants the owner's messages.
    ann.contacts()
        .remove_contact(pb::RemoveContactRequest {
            user_id: "owner".into(),
        })
        .await
        .unwrap();
    let sent = world.broadcast(&topic, "pizza?").await;
    let outcomes: Vec<(String, Sent, u64)> = sent
        .recipients
        .iter()
        .map(|r| (r.user_id.clone(), r.outcome(), r.seq))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("ben".to_owned(), Sent::Sent, 1),
            ("ann".to_owned(), Sent::NotMutual, 0)
        ]
    );
    let skipped = &sent.recipients[1];
    assert!(skipped.message.contains("mutual"), "{skipped:?}");
    assert_nothing_before_marker(&world.owner, ann, &mut ann_events).await;
    assert!(ann.history(&thread(&topic, "ann")).await.is_empty());
    // The topic shows her as not reachable, not as bound.
    let listed = world
        .owner
        .topics()
        .list_topics(pb::ListTopicsRequest {})
        .await
        .unwrap()
        .into_inner();
    let states: Vec<(String, State)> = listed.topics[0]
        .contacts
        .iter()
        .map(|c| (c.user_id.clone(), c.state()))
        .collect();
    assert_eq!(
        states,
        [
            ("ann".to_owned(), State::NotMutual),
            ("ben".to_owned(), State::Bound)
        ]
    );
    // Nor can the owner answer her in the thread, or send to her alone.
    let answer = world
        .owner
        .send(To::ConversationId(thread(&topic, "ann")), "hello?", "")
        .await
        .unwrap_err();
    assert_eq!(answer.code(), Code::FailedPrecondition, "{answer:?}");
    let only_ann = world
        .send(&topic, "just you", &["ann"], None, "")
        .await
        .unwrap_err();
    assert_eq!(only_ann.code(), Code::FailedPrecondition, "{only_ann:?}");
    // Consent back: she receives again.
    ann.add_contact(&world.owner).await;
    let sent = world.broadcast(&topic, "pasta?").await;
    assert!(sent.recipients.iter().all(|r| r.outcome() == Sent::Sent));
    assert_eq!(ann_events.message().await.text, "pasta?");
}

both_modes!(
    a_retried_broadcast_answers_exactly_what_the_first_answered,
    retried_broadcast
);
async fn retried_broadcast(cluster: Cluster) {
    let world = World::new(&cluster, &["ann", "ben", "cat"]).await;
    let topic = world.topic("Trip", &["ann", "ben", "cat"]).await;
    // A reply first, so the broadcast's timeline seq is not 1.
    reply(world.contact("ann"), &topic, "hi").await.unwrap();
    // One recipient skipped, so the answer has every kind of line.
    world
        .contact("cat")
        .contacts()
        .remove_contact(pb::RemoveContactRequest {
            user_id: "owner".into(),
        })
        .await
        .unwrap();
    let request = pb::SendToTopicRequest {
        topic_id: topic.topic_id.clone(),
        client_msg_id: "trip-1".into(),
        text: "tickets booked".into(),
        ..Default::default()
    };
    let first = world
        .owner
        .topics()
        .send_to_topic(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(!first.duplicate);
    assert_eq!(first.timeline_seq, 2);
    // Even after the binding changed, the retry answers as the first did.
    world.contact("cat").add_contact(&world.owner).await;
    let retry = world
        .owner
        .topics()
        .send_to_topic(request)
        .await
        .unwrap()
        .into_inner();
    assert!(retry.duplicate);
    assert_eq!(
        pb::SendToTopicResponse {
            duplicate: false,
            ..retry
        },
        first,
        "field for field"
    );
    let ben = world.contact("ben");
    assert_eq!(
        texts(&ben.history(&thread(&topic, "ben")).await),
        ["tickets booked"]
    );
}

/// A router SIGKILLed while broadcasts are in flight: the owner retries each
/// with its client message id until acknowledged; every contact ends up with
/// exactly one copy of each, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_retried_after_a_router_crash_has_one_copy_each() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let world = World::new(&cluster, &["ann", "ben", "cat"]).await;
    let topic = world.topic("Relay", &["ann", "ben", "cat"]).await;
    let mut ann_events = world.contact("ann").subscribe().await;
    let total = 40;
    let owner = world.owner.clone();
    let topic_id = topic.topic_id.clone();
    let sender = tokio::spawn(async move {
        for i in 0..total {
            let request = pb::SendToTopicRequest {
                topic_id: topic_id.clone(),
                client_msg_id: format!("relay-{i}"),
                text: format!("leg {i:02}"),
                ..Default::default()
            };
            let mut attempts = 0;
            loop {
                attempts += 1;
                match owner.topics().send_to_topic(request.clone()).await {
                    Ok(ack) => {
                        assert_eq!(ack.into_inner().recipients.len(), 3);
                        break;
                    }
                    Err(status) if attempts < 20 => {
                        assert_ne!(status.code(), Code::InvalidArgument, "{status}");
                    }
                    Err(status) => panic!("leg {i} never acknowledged: {status}"),
                }
            }
        }
    });
    let mut received = ann_events.messages_until("leg 10").await;
    cluster.routers[0].kill();
    sender.await.unwrap();
    received.extend(
        ann_events
            .messages_until(&format!("leg {:02}", total - 1))
            .await,
    );
    let expected: Vec<String> = (0..total).map(|i| format!("leg {i:02}")).collect();
    assert_eq!(
        texts(&received),
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    for contact in &world.contacts {
        let history = contact.history(&thread(&topic, &contact.id)).await;
        assert_eq!(
            texts(&history),
            expected.iter().map(String::as_str).collect::<Vec<_>>(),
            "{}",
            contact.id
        );
    }
}

both_modes!(every_owner_device_stays_in_sync, owner_devices);
async fn owner_devices(cluster: Cluster) {
    let world = World::new(&cluster, &["ann"]).await;
    let topic = world.topic("Sync", &["ann"]).await;
    let phone = world.owner.another_device(&cluster, 1, "phone").await;
    let mut laptop_events = world.owner.subscribe().await;
    let mut phone_events = phone.subscribe().await;
    world.broadcast(&topic, "from the laptop").await;
    reply(world.contact("ann"), &topic, "got it").await.unwrap();
    for events in [&mut laptop_events, &mut phone_events] {
        assert_eq!(
            texts(&events.messages(2).await),
            ["from the laptop", "got it"]
        );
    }
}
