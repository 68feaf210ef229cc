//! Contacts.

use switchboard_proto::pb;
use tonic::Code;

use crate::both_modes;
use crate::harness::Cluster;

both_modes!(contacts_are_added_listed_and_removed, contacts);
async fn contacts(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let add = |user: &str| {
        let alice = alice.clone();
        let user = user.to_owned();
        async move {
            alice
                .contacts()
                .add_contact(pb::AddContactRequest { user_id: user })
                .await
        }
    };
    assert_eq!(add("nobody").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        add("alice").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let first = add("bob").await.unwrap().into_inner();
    assert!(!first.already_added);
    assert_eq!(
        first.contact.as_ref().unwrap().display_name,
        "bob (display)"
    );
    assert!(!first.contact.unwrap().mutual);
    assert!(add("bob").await.unwrap().into_inner().already_added);

    // Bob sees the request, adds back: now mutual on both sides.
    let bobs = bob
        .contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        bobs.requests
            .iter()
            .map(|c| c.user_id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    bob.add_contact(&alice).await;
    let alices = alice
        .contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alices.contacts.len(), 1);
    assert!(alices.contacts[0].mutual);
    assert!(alices.requests.is_empty());

    alice
        .contacts()
        .remove_contact(pb::RemoveContactRequest {
            user_id: "bob".into(),
        })
        .await
        .unwrap();
    let again = alice
        .contacts()
        .remove_contact(pb::RemoveContactRequest {
            user_id: "bob".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let alices = alice
        .contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(alices.contacts.is_empty());
    assert_eq!(alices.requests[0].user_id, "bob", "bob still has alice");
}

/// The token secret is rotated the documented way (docs/DEPLOY.md): the new
/// one signs and the old one still verifies, so a session from before the
/// rotation keeps working through it; once the old secret is dropped, only
/// tokens of the new one are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_secret_rotation_logs_no_one_out() {
    const NEW: &str = "the-next-e2e-secret-also-long-enough-9876543210";
    let mut cluster = Cluster::start(crate::harness::Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;

    let restart_all = |cluster: &mut Cluster, previous: Option<&str>| {
        for node in cluster
            .routers
            .iter_mut()
            .chain(cluster.gateways.iter_mut())
        {
            node.set_flag("--token-secret", NEW);
            match previous {
                Some(old) => node.set_flag("--token-secrets-previous", old),
                None => node.set_flag("--token-secrets-previous", ""),
            }
        }
    };
    restart_all(&mut cluster, Some(crate::harness::cluster::SECRET));
    for node in cluster
        .routers
        .iter_mut()
        .chain(cluster.gateways.iter_mut())
    {
        node.restart().await;
    }
    // Alice's token from before the rotation still works, on a new connection.
    let alice = alice.via(&cluster.gateway_url(1)).await;
    alice.dm(&bob, "still logged in").await;
    // A login now gets a token of the new secret.
    let carol = cluster.user("carol", 0).await;
    carol.dm(&bob, "new token").await;

    // The old secret dropped: tokens it signed are refused, new ones are not.
    restart_all(&mut cluster, None);
    for node in cluster
        .routers
        .iter_mut()
        .chain(cluster.gateways.iter_mut())
    {
        node.restart().await;
    }
    let alice = alice.via(&cluster.gateway_url(0)).await;
    let refused = alice
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let carol = carol.via(&cluster.gateway_url(0)).await;
    carol
        .chat()
        .list_conversations(pb::ListConversationsRequest {})
        .await
        .unwrap();
}
