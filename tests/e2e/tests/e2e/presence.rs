//! Presence: mutual contacts are told when someone comes and goes, and a
//! crashed gateway's users go offline within the configured bound.

use std::time::{Duration, Instant};

use switchboard_proto::pb::{self, event::Kind};

use crate::both_modes;
use crate::harness::{Cluster, Events, Mode};

async fn presence_of(events: &mut Events, user: &str) -> bool {
    events
        .until(|e| match &e.kind {
            Some(Kind::Presence(p)) if p.user_id == user => Some(p.online),
            _ => None,
        })
        .await
        .0
}

async fn listed_online(user: &crate::harness::User, contact: &str) -> bool {
    user.contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner()
        .contacts
        .iter()
        .find(|c| c.user_id == contact)
        .map(|c| c.online)
        .unwrap_or_else(|| panic!("{contact} is not a contact"))
}

both_modes!(
    mutual_contacts_see_each_other_come_and_go,
    contacts_presence
);
async fn contacts_presence(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let stranger = cluster.user("stranger", 1).await;
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    // One-sided: the stranger added alice, alice did not add them back.
    stranger.add_contact(&alice).await;

    let mut alice_events = alice.subscribe().await;
    assert!(!listed_online(&alice, "bob").await);
    let bob_events = bob.subscribe().await;
    assert!(presence_of(&mut alice_events, "bob").await);
    assert!(listed_online(&alice, "bob").await);
    // Presence is shown to mutual contacts only.
    assert!(!listed_online(&stranger, "alice").await);

    // A second device does not flip anything; the last one leaving does.
    let bob_phone = bob.another_device(&cluster, 0, "phone").await;
    let phone_events = bob_phone.subscribe().await;
    drop(bob_events);
    drop(phone_events);
    assert!(!presence_of(&mut alice_events, "bob").await);
    assert!(!listed_online(&alice, "bob").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_gateways_users_go_offline_within_the_bound() {
    let mut cluster = Cluster::start(Mode::distributed()).await;
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    let mut alice_events = alice.subscribe().await;
    let _bob_events = bob.subscribe().await;
    assert!(presence_of(&mut alice_events, "bob").await);

    cluster.gateways[1].kill();
    let killed_at = Instant::now();
    assert!(!presence_of(&mut alice_events, "bob").await);
    // The cluster runs presence with a 2 s lease and a 250 ms reaper.
    let bound = Duration::from_millis(2_000 + 250) + Duration::from_secs(2);
    assert!(
        killed_at.elapsed() <= bound,
        "offline after {:?}, bound {bound:?}",
        killed_at.elapsed()
    );
}
