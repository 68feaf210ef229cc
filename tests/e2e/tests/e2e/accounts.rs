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
