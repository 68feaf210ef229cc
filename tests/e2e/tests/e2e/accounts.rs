//! Contacts.

use switchboard_proto::pb::{self, event::Kind};
use switchboard_testkit::eventually;
use tonic::Code;

use crate::both_modes;
use crate::harness::{Cluster, WAIT};

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

/// An app with its own accounts signs a JWT for its user; the user logs in
/// with it (created on first sight, no password) and chats like anyone.
mod an_app_signed_token_opens_a_session {
    use super::*;
    use crate::harness::Mode;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_redis() {
        app_login(Mode::distributed()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone() {
        app_login(Mode::Standalone).await;
    }
}

const APP_ISSUER: &str = "https://app.example.com";

/// The app's signing key (ES256) and its public half as a JWKS document.
struct AppKey {
    private_pem: String,
    jwks: String,
}

fn app_key() -> AppKey {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().unwrap();
    let raw = key.public_key_raw();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    AppKey {
        private_pem: key.serialize_pem(),
        jwks: serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "app-2026", "alg": "ES256",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]})
        .to_string(),
    }
}

/// What the app's backend does: sign a short-lived token for its user.
fn app_token(key: &AppKey, sub: &str, audience: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("app-2026".into());
    let exp = switchboard_shared::clock::now_ms() / 1000 + 300;
    let claims = serde_json::json!({
        "iss": APP_ISSUER, "aud": audience, "sub": sub, "name": "Ada from the app", "exp": exp,
    });
    let signing = jsonwebtoken::EncodingKey::from_ec_pem(key.private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, &claims, &signing).unwrap()
}

async fn app_login(mode: crate::harness::Mode) {
    use pb::account_service_client::AccountServiceClient;

    let dir = tempfile::tempdir().unwrap();
    let key = app_key();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, &key.jwks).unwrap();
    let options = crate::harness::Options {
        router_args: [
            "--jwt-issuer",
            APP_ISSUER,
            "--jwt-audience",
            "switchboard",
            "--jwt-keys",
            jwks.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
        ..crate::harness::Options::default()
    };
    let cluster = Cluster::start_with(mode, options).await;
    let url = cluster.gateway_url(0);
    let mut accounts = AccountServiceClient::new(crate::harness::client::channel(&url).await);
    let login = |token: String| pb::LoginWithTokenRequest {
        token,
        device_id: "app-phone".into(),
    };

    let session = accounts
        .login_with_token(login(app_token(&key, "app-ada", "switchboard")))
        .await
        .unwrap()
        .into_inner();
    let user = session.user.clone().unwrap();
    assert_eq!(user.user_id, "app-ada");
    assert_eq!(user.display_name, "Ada from the app");
    assert_eq!(session.device_id, "app-phone");

    // A user like any other: others can write to them, they read it live.
    let ada = crate::harness::User::from_session(&url, "app-ada", session.token.clone()).await;
    let mut stream = ada.subscribe().await;
    let bob = cluster.user("bob", 1).await;
    bob.dm(&ada, "hello, app user").await;
    stream.messages_until("hello, app user").await;

    // Again: the same user, a second session.
    let again = accounts
        .login_with_token(login(app_token(&key, "app-ada", "switchboard")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.user.unwrap().user_id, "app-ada");
    assert_ne!(again.session_id, session.session_id);

    // From a terminal: a token from `switchboard gentoken` (issuer and
    // audience from a config file, as a deployment's would be), `sb
    // login-app` with it, then commands as that user.
    let private_key = dir.path().join("app.key");
    std::fs::write(&private_key, &key.private_pem).unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("jwt-issuer = \"{APP_ISSUER}\"\njwt-audience = \"switchboard\"\n"),
    )
    .unwrap();
    let gentoken = |audience_env: Option<&str>| {
        let mut command = std::process::Command::new(crate::harness::cluster::NODE);
        command.args(["--config", config.to_str().unwrap(), "gentoken", "app-eve"]);
        command.args(["--jwt-private-key", private_key.to_str().unwrap()]);
        command
            .env_remove("SB_JWT_AUDIENCE")
            .env_remove("SB_JWT_ISSUER");
        if let Some(audience) = audience_env {
            command.env("SB_JWT_AUDIENCE", audience);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let token = gentoken(None);
    // The environment wins over the file: this one is for another audience.
    let elsewhere = gentoken(Some("another-service"));
    let refused = accounts
        .login_with_token(login(elsewhere))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let sb = crate::cli::Sb {
        server: url.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    let (logged_in, whoami) = tokio::task::spawn_blocking(move || {
        let logged_in = sb.json("eve", &["login-app", "--token", &token]);
        (logged_in, sb.json("eve", &["whoami"]))
    })
    .await
    .unwrap();
    assert_eq!(logged_in[0]["logged_in"], "app-eve", "{logged_in:?}");
    assert_eq!(whoami[0]["user_id"], "app-eve", "{whoami:?}");

    // Refused: a token for another audience, a forged one, and a password
    // login to the passwordless account.
    let wrong = accounts
        .login_with_token(login(app_token(&key, "app-ada", "another-service")))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let forged = accounts
        .login_with_token(login(app_token(&app_key(), "app-ada", "switchboard")))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");
    let password = accounts
        .login(pb::LoginRequest {
            user_id: "app-ada".into(),
            password: crate::harness::client::PASSWORD.into(),
            device_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(password.code(), Code::Unauthenticated, "{password:?}");
}

/// Where no app issuer is configured, app tokens are refused as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_tokens_are_refused_where_none_are_trusted() {
    use pb::account_service_client::AccountServiceClient;
    let cluster = Cluster::start(crate::harness::Mode::Standalone).await;
    let mut accounts =
        AccountServiceClient::new(crate::harness::client::channel(&cluster.gateway_url(0)).await);
    let refused = accounts
        .login_with_token(pb::LoginWithTokenRequest {
            token: app_token(&app_key(), "app-ada", "switchboard"),
            device_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("app tokens"), "{refused:?}");
}

/// `(id, display name)` of each user `finder` finds by `query`.
async fn find(
    finder: &crate::harness::User,
    query: &str,
) -> Result<Vec<(String, String)>, tonic::Status> {
    Ok(finder
        .contacts()
        .find_people(pb::FindPeopleRequest {
            query: query.into(),
            limit: 0,
        })
        .await?
        .into_inner()
        .users
        .into_iter()
        .map(|u| (u.user_id, u.display_name))
        .collect())
}

both_modes!(
    people_rename_themselves_and_are_found_by_those_who_know_them,
    profiles_and_lookup
);
async fn profiles_and_lookup(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let anna = cluster.user("anna", 1).await;
    let stranger = cluster.user("alfred", 0).await;
    let group = bob.create_group("Book club", pb::JoinPolicy::Open).await;
    alice.join(&group.group_id).await;
    anna.join(&group.group_id).await;

    // Alice renames herself; bob's list of contacts shows the new name.
    let renamed = alice
        .accounts()
        .update_profile(pb::UpdateProfileRequest {
            display_name: "  Alice Liddell ".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(renamed.display_name, "Alice Liddell");
    bob.add_contact(&alice).await;
    let listed = bob
        .contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(listed[0].display_name, "Alice Liddell");

    // By name: only people one shares a group with (or has as a contact);
    // by exact id: anyone.
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(id, name)| ((*id).to_owned(), (*name).to_owned()))
            .collect()
    };
    assert_eq!(
        find(&bob, "ali").await.unwrap(),
        owned(&[("alice", "Alice Liddell")])
    );
    assert_eq!(
        find(&bob, "A").await.unwrap(),
        owned(&[("alice", "Alice Liddell"), ("anna", "anna (display)")])
    );
    assert_eq!(
        find(&bob, "alfred").await.unwrap(),
        owned(&[("alfred", "alfred (display)")])
    );
    assert!(find(&stranger, "ali").await.unwrap().is_empty());
    assert!(
        find(&alice, "alice").await.unwrap().is_empty(),
        "not oneself"
    );

    // Back to the id when the name is cleared; bad input changes nothing.
    let cleared = anna
        .accounts()
        .update_profile(pb::UpdateProfileRequest {
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(cleared.display_name, "anna");
    let bad = alice
        .accounts()
        .update_profile(pb::UpdateProfileRequest {
            display_name: "a\u{7}b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    let long = alice
        .accounts()
        .update_profile(pb::UpdateProfileRequest {
            display_name: "x".repeat(81),
        })
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument, "{long:?}");
    assert_eq!(
        find(&bob, "alice").await.unwrap(),
        owned(&[("alice", "Alice Liddell")])
    );
    for query in ["", "   ", &"q".repeat(81)] {
        let refused = find(&bob, query).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{query:?}: {refused:?}"
        );
    }
}

async fn block(
    user: &crate::harness::User,
    other: &str,
    blocked: bool,
) -> Result<(), tonic::Status> {
    user.contacts()
        .block_user(pb::BlockUserRequest {
            user_id: other.into(),
            blocked,
        })
        .await
        .map(|_| ())
}

/// `(user, mutual, online)` of each of `user`'s contacts, and the ids of
/// their contact requests.
async fn contact_view(user: &crate::harness::User) -> (Vec<(String, bool, bool)>, Vec<String>) {
    let listed = user
        .contacts()
        .list_contacts(pb::ListContactsRequest {})
        .await
        .unwrap()
        .into_inner();
    (
        listed
            .contacts
            .into_iter()
            .map(|c| (c.user_id, c.mutual, c.online))
            .collect(),
        listed.requests.into_iter().map(|c| c.user_id).collect(),
    )
}

both_modes!(a_blocked_user_cannot_write_see_presence_or_bind, blocking);
async fn blocking(cluster: Cluster) {
    let alice = cluster.user("alice", 0).await;
    let bob = cluster.user("bob", 1).await;
    let mallory = cluster.user("mallory", 0).await;
    alice.add_contact(&bob).await;
    bob.add_contact(&alice).await;
    let _bob_online = bob.subscribe().await;
    let mut alice_events = alice.subscribe().await;
    alice.dm(&bob, "hi bob").await;
    let group = alice.create_group("Shared", pb::JoinPolicy::Open).await;
    bob.join(&group.group_id).await;
    let mutual_and_online = || async {
        (contact_view(&alice).await.0 == [("bob".to_owned(), true, true)]).then_some(())
    };
    eventually(WAIT, "bob mutual and online", mutual_and_online).await;

    // Alice blocks bob: she hears he is gone (after the news, still on its
    // way, that he came online), and neither can write.
    block(&alice, "bob", true).await.unwrap();
    alice_events
        .until(|e| match &e.kind {
            Some(Kind::Presence(p)) if p.user_id == "bob" && !p.online => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(
        contact_view(&alice).await.0,
        [("bob".to_owned(), false, false)]
    );
    assert_eq!(
        contact_view(&bob).await.0,
        [("alice".to_owned(), false, false)]
    );
    let refused = bob
        .send(pb::send_request::To::UserId("alice".into()), "hello?", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let own = alice
        .send(pb::send_request::To::UserId("bob".into()), "one more", "")
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::FailedPrecondition, "{own:?}");
    assert_eq!(
        alice.history("dm:alice:bob").await.len(),
        1,
        "nothing was stored past the block"
    );
    // The group they share still works.
    bob.post(&group.group_id, "still in the group").await;

    // Alice binds nobody who blocked her, nor whom she blocked.
    let topic = alice
        .topics()
        .create_topic(pb::CreateTopicRequest {
            name: "News".into(),
            contacts: vec!["bob".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        topic.results[0].outcome(),
        pb::binding_result::Outcome::NotAContact,
        "{topic:?}"
    );

    // A blocked user's contact request is not shown.
    mallory.add_contact(&alice).await;
    assert_eq!(contact_view(&alice).await.1, ["mallory".to_owned()]);
    block(&alice, "mallory", true).await.unwrap();
    assert!(contact_view(&alice).await.1.is_empty());
    let listed: Vec<String> = alice
        .contacts()
        .list_blocked(pb::ListBlockedRequest {})
        .await
        .unwrap()
        .into_inner()
        .blocked
        .into_iter()
        .map(|b| b.user_id)
        .collect();
    assert_eq!(listed, ["bob", "mallory"]);

    // Bad input is refused with why.
    let myself = block(&alice, "alice", true).await.unwrap_err();
    assert_eq!(myself.code(), Code::InvalidArgument, "{myself:?}");
    let nobody = block(&alice, "nobody", true).await.unwrap_err();
    assert_eq!(nobody.code(), Code::NotFound, "{nobody:?}");

    // Unblocked: as before.
    block(&alice, "bob", false).await.unwrap();
    block(&alice, "bob", false).await.unwrap();
    eventually(WAIT, "bob mutual and online again", mutual_and_online).await;
    bob.dm(&alice, "back again").await;
}
