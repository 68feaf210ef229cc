#![allow(clippy::unwrap_used)]

//! The history store on a real PostgreSQL of the test's own: seqs, retries,
//! pages, the schema version, and a SIGKILL in the middle of appends.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use switchboard_router::store::StoreError;
use switchboard_router::store::history::{
    ChangeStored, HistoryAppend, HistoryWriter, PgHistory, SCHEMA_VERSION,
};
use switchboard_shared::ids::{ConversationId, TopicId, UserId};
use switchboard_testkit::{PostgresServer, eventually};

fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn dm(a: &str, b: &str) -> ConversationId {
    ConversationId::direct(user(a), user(b))
}

fn thread(topic: &str, contact: &str) -> ConversationId {
    ConversationId::TopicThread {
        topic: TopicId::parse(topic).unwrap(),
        contact: user(contact),
    }
}

fn message(conversation: &ConversationId, body: &str, retry_key: Option<&str>) -> HistoryAppend {
    HistoryAppend {
        conversation: conversation.clone(),
        sent_at_ms: 1_000,
        retry_key: retry_key.map(str::to_owned),
        body: Bytes::from(body.to_owned()),
        fence: None,
    }
}

async fn everything(history: &PgHistory, conversation: &ConversationId) -> Vec<(u64, String)> {
    history
        .after(conversation, 0, 1_000_000)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.seq, String::from_utf8(m.body.to_vec()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_number_each_conversation_from_one_without_holes() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 8).await.unwrap());
    let conversations = [
        dm("alice", "bob"),
        dm("alice", "carol"),
        ConversationId::Group(switchboard_shared::ids::GroupId::parse("gfriends").unwrap()),
        thread("tnews", "bob"),
        // A second thread of the same topic: same shard key, its own seqs.
        thread("tnews", "carol"),
    ];
    let mut writers = Vec::new();
    for writer in 0..8 {
        let (history, conversations) = (history.clone(), conversations.clone());
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for round in 0..40 {
                // Batches of 1 to 4 items, some to the same conversation twice.
                let batch: Vec<HistoryAppend> = (0..1 + (writer + round) % 4)
                    .map(|i| {
                        let conv =
                            &conversations[(writer * 3 + round + i * i) % conversations.len()];
                        message(conv, &format!("w{writer} r{round} i{i}"), None)
                    })
                    .collect();
                let answers = history.append(&batch).await.unwrap();
                assert_eq!(answers.len(), batch.len());
                for (item, answer) in batch.iter().zip(answers) {
                    assert!(!answer.repeated);
                    acked.push((item.conversation.clone(), answer.seq, item.body.clone()));
                }
            }
            acked
        }));
    }
    let mut acked: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for writer in writers {
        for (conv, seq, body) in writer.await.unwrap() {
            let seqs = acked.entry(conv.to_string()).or_default();
            let body = String::from_utf8(body.to_vec()).unwrap();
            assert!(
                seqs.insert(seq, body).is_none(),
                "{conv} seq {seq} given twice"
            );
        }
    }
    let heads = history.heads(&conversations).await.unwrap();
    for (conv, head) in conversations.iter().zip(heads) {
        let given = &acked[&conv.to_string()];
        let expected: Vec<u64> = (1..=given.len() as u64).collect();
        assert_eq!(
            given.keys().copied().collect::<Vec<_>>(),
            expected,
            "{conv}: holes"
        );
        assert_eq!(head, given.len() as u64, "{conv}: head");
        let stored = everything(&history, conv).await;
        assert_eq!(
            stored,
            given.clone().into_iter().collect::<Vec<_>>(),
            "{conv}: stored"
        );
    }
    // The messages of one batch to one conversation keep the batch's order.
    let conv = dm("dave", "erin");
    let answers = history
        .append(&[
            message(&conv, "first", None),
            message(&dm("alice", "bob"), "elsewhere", None),
            message(&conv, "second", None),
        ])
        .await
        .unwrap();
    assert_eq!((answers[0].seq, answers[2].seq), (1, 2));
    assert_eq!(
        everything(&history, &conv).await,
        vec![(1, "first".to_owned()), (2, "second".to_owned())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_answers_the_first_seq_and_stores_nothing() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 8).await.unwrap());
    let conv = dm("alice", "bob");

    let first = history
        .append(&[message(&conv, "hello", Some("alice c1"))])
        .await
        .unwrap();
    assert_eq!((first[0].seq, first[0].repeated), (1, false));

    // The retry, in a batch with a new message and with itself twice.
    let again = history
        .append(&[
            message(&conv, "hello", Some("alice c1")),
            message(&conv, "new", Some("alice c2")),
            message(&conv, "new", Some("alice c2")),
        ])
        .await
        .unwrap();
    assert_eq!(
        again
            .iter()
            .map(|a| (a.seq, a.repeated))
            .collect::<Vec<_>>(),
        vec![(1, true), (2, false), (2, true)]
    );
    // The same key in another conversation is another send.
    let other = history
        .append(&[message(&dm("alice", "carol"), "hi", Some("alice c1"))])
        .await
        .unwrap();
    assert_eq!((other[0].seq, other[0].repeated), (1, false));

    // Many routers retrying one send at once: one is stored, all answer its seq.
    let retries: Vec<_> = (0..8)
        .map(|_| {
            let (history, conv) = (history.clone(), conv.clone());
            tokio::spawn(async move {
                history
                    .append(&[message(&conv, "raced", Some("alice c3"))])
                    .await
                    .unwrap()[0]
            })
        })
        .collect();
    let mut seqs = HashSet::new();
    let mut stored = 0;
    for retry in retries {
        let answer = retry.await.unwrap();
        seqs.insert(answer.seq);
        stored += usize::from(!answer.repeated);
    }
    assert_eq!((seqs.len(), stored), (1, 1), "seqs {seqs:?}");
    assert_eq!(
        everything(&history, &conv).await,
        vec![
            (1, "hello".to_owned()),
            (2, "new".to_owned()),
            (3, "raced".to_owned())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_come_from_anywhere_in_a_long_conversation() {
    let pg = PostgresServer::start();
    let history = PgHistory::connect(&pg.url(), 4).await.unwrap();
    let conv = thread("tdeep", "bob");
    for chunk in 0..20 {
        let batch: Vec<_> = (1..=100)
            .map(|i| message(&conv, &format!("m{}", chunk * 100 + i), None))
            .collect();
        history.append(&batch).await.unwrap();
    }
    let seqs = |page: Vec<switchboard_router::store::history::StoredMessage>| {
        page.iter()
            .map(|m| {
                assert_eq!(m.body, Bytes::from(format!("m{}", m.seq)));
                m.seq
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(history.before(&conv, 0, 50).await.unwrap()),
        (1951..=2000).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(history.before(&conv, 1000, 50).await.unwrap()),
        (950..=999).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(history.before(&conv, 20, 50).await.unwrap()),
        (1..=19).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(history.after(&conv, 1990, 50).await.unwrap()),
        (1991..=2000).collect::<Vec<_>>()
    );
    let empty = thread("tdeep", "carol");
    assert!(history.before(&empty, 0, 50).await.unwrap().is_empty());
    assert_eq!(history.heads(&[conv, empty]).await.unwrap(), vec![2000, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_another_schema_version_is_refused() {
    let pg = PostgresServer::start();
    // An empty database gets the schema; connecting again finds it.
    PgHistory::connect(&pg.url(), 1).await.unwrap();
    let history = PgHistory::connect(&pg.url(), 1).await.unwrap();
    history
        .append(&[message(&dm("alice", "bob"), "kept", None)])
        .await
        .unwrap();

    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE switchboard_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    match PgHistory::connect(&pg.url(), 1).await {
        Err(StoreError::UnknownSchema(message)) => {
            assert!(
                message.contains(&format!("version {}", SCHEMA_VERSION + 1))
                    && message.contains(&format!("only {SCHEMA_VERSION}")),
                "{message}"
            );
        }
        Err(other) => panic!("refused for the wrong reason: {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
    // Refusing changed nothing.
    let count: i64 = client
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_the_server_is_killed_mid_load() {
    let mut pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 8).await.unwrap());
    let conversations: Vec<ConversationId> = (0..20)
        .map(|i| dm("alice", &format!("friend{i:02}")))
        .collect();
    type Acked = Arc<Mutex<Vec<(ConversationId, u64, Bytes)>>>;
    let acked: Acked = Arc::default();
    let mut writers = Vec::new();
    for writer in 0..6 {
        let (history, conversations, acked) =
            (history.clone(), conversations.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for round in 0.. {
                let batch: Vec<_> = (0..8)
                    .map(|i| {
                        let conv =
                            &conversations[(writer * 7 + round * 3 + i) % conversations.len()];
                        message(conv, &format!("w{writer} r{round} i{i}"), None)
                    })
                    .collect();
                // Until the server dies under it.
                let Ok(answers) = history.append(&batch).await else {
                    return;
                };
                let mut acked = acked.lock();
                for (item, answer) in batch.into_iter().zip(answers) {
                    acked.push((item.conversation, answer.seq, item.body));
                }
            }
        }));
    }
    eventually(Duration::from_secs(60), "appends under way", || {
        let done = acked.lock().len();
        async move { (done >= 3_000).then_some(()) }
    })
    .await;
    pg.kill();
    for writer in writers {
        writer.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock());
    pg.restart();

    // The same store object serves again once the server is back.
    let probe = dm("zed", "zoe");
    eventually(
        Duration::from_secs(60),
        "the history store answers again",
        || {
            let (history, probe) = (history.clone(), probe.clone());
            async move { history.append(&[message(&probe, "back", None)]).await.ok() }
        },
    )
    .await;
    let mut stored: BTreeMap<(String, u64), Bytes> = BTreeMap::new();
    for conv in &conversations {
        for m in history.after(conv, 0, 1_000_000).await.unwrap() {
            stored.insert((conv.to_string(), m.seq), m.body);
        }
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|(conv, seq, body)| stored.get(&(conv.to_string(), *seq)) != Some(body))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages missing or changed after the kill, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.first()
    );
    // New messages continue after everything stored: no seq is given twice.
    let heads = history.heads(&conversations).await.unwrap();
    let next = history
        .append(&[message(&conversations[0], "after", None)])
        .await
        .unwrap();
    assert_eq!(next[0].seq, heads[0] + 1);
}

/// With a gathering window, a message that arrives while another waits in
/// it shares its transaction, and a message alone waits the window out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gathering_window_puts_later_arrivals_in_the_same_transaction() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 4).await.unwrap());
    let window = std::time::Duration::from_millis(800);
    let writer = Arc::new(HistoryWriter::start(history.clone(), 1, 64, window));

    let started = std::time::Instant::now();
    let first = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .append(vec![message(&dm("alice", "bob"), "first", None)])
                .await
        }
    });
    // The second arrives well inside the first one's window (which is what
    // is tested: a later arrival, not two queued together).
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let second = writer
        .append(vec![message(&dm("carol", "dan"), "second", None)])
        .await
        .unwrap();
    let first = first.await.unwrap().unwrap();
    assert_eq!((first[0].seq, second[0].seq), (1, 1));
    assert_eq!(writer.transactions(), 1, "one transaction for both");
    assert!(started.elapsed() >= window, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_shares_transactions_between_callers_and_answers_each_its_own() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 4).await.unwrap());
    let writer = Arc::new(HistoryWriter::start(
        history.clone(),
        2,
        64,
        std::time::Duration::ZERO,
    ));

    // One caller alone: written at once, alone.
    let alone = writer
        .append(vec![message(&dm("alice", "bob"), "alone", None)])
        .await
        .unwrap();
    assert_eq!((alone[0].seq, writer.transactions()), (1, 1));

    // Many at once: fewer transactions than callers, each answered with the
    // seq its own message was stored at; a caller's several items together.
    let conversations: Vec<ConversationId> = (0..10)
        .map(|i| dm("carol", &format!("friend{i}")))
        .collect();
    let callers: Vec<_> = (0..300)
        .map(|i| {
            let (writer, conv) = (writer.clone(), conversations[i % 10].clone());
            tokio::spawn(async move {
                let items = if i % 50 == 0 {
                    // A broadcast-like caller: several conversations at once.
                    vec![
                        message(&conv, &format!("c{i} a"), None),
                        message(&dm("carol", "zed"), &format!("c{i} b"), None),
                    ]
                } else {
                    vec![message(
                        &conv,
                        &format!("c{i}"),
                        Some(&format!("carol {i}")),
                    )]
                };
                let answers = writer.append(items.clone()).await.unwrap();
                items
                    .into_iter()
                    .zip(answers)
                    .map(|(item, answer)| (item.conversation, answer.seq, item.body))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut answered = Vec::new();
    for caller in callers {
        answered.extend(caller.await.unwrap());
    }
    assert_eq!(answered.len(), 306);
    let transactions = writer.transactions() - 1;
    assert!(
        transactions < 300,
        "300 concurrent callers took {transactions} transactions"
    );
    for (conv, seq, body) in answered {
        let stored = history.after(&conv, seq - 1, 1).await.unwrap();
        assert_eq!(stored[0].seq, seq);
        assert_eq!(stored[0].body, body, "{conv} #{seq}");
    }
    // A retried send through the writer answers the first seq.
    let retried = writer
        .append(vec![message(&conversations[7], "c7", Some("carol 7"))])
        .await
        .unwrap();
    assert!(retried[0].repeated);
}

fn group(id: &str) -> ConversationId {
    ConversationId::Group(switchboard_shared::ids::GroupId::parse(id).unwrap())
}

fn fenced(conversation: &ConversationId, body: &str, fence: u64) -> HistoryAppend {
    HistoryAppend {
        fence: Some(fence),
        ..message(conversation, body, None)
    }
}

fn change(conversation: &ConversationId, text: &str) -> HistoryAppend {
    message(conversation, text, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_fences_out_sends_admitted_before_it() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 4).await.unwrap());
    let g = group("gfence");
    assert_eq!(
        history.append_change(&change(&g, "created")).await.unwrap(),
        Some(ChangeStored { seq: 1, version: 1 })
    );
    let sent = history.append(&[fenced(&g, "hello", 1)]).await.unwrap();
    assert_eq!((sent[0].seq, sent[0].fenced), (2, false));

    // Concurrent changes are numbered one at a time, each a version.
    let changes: Vec<_> = (0..8)
        .map(|i| {
            let (history, g) = (history.clone(), g.clone());
            tokio::spawn(async move {
                history
                    .append_change(&change(&g, &format!("change {i}")))
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut versions = Vec::new();
    for change in changes {
        versions.push(change.await.unwrap().version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=9).collect::<Vec<u64>>());
    // A change is found by its version (what a repair asks).
    let found = history.find(&g, "change 1").await.unwrap().unwrap();
    assert_eq!((found.seq, found.body.as_ref()), (1, b"created".as_ref()));
    assert_eq!(history.fences(std::slice::from_ref(&g)).await.unwrap(), [9]);

    // A send admitted under an older version is refused and writes nothing;
    // under the newest it lands; a system notice (no fence) is never
    // refused; neither is a direct message in the same batch.
    let d = dm("alice", "bob");
    let answers = history
        .append(&[
            fenced(&g, "stale", 8),
            message(&d, "direct", None),
            message(&g, "notice", None),
        ])
        .await
        .unwrap();
    assert!(answers[0].fenced && answers[0].seq == 0, "{answers:?}");
    assert_eq!((answers[1].seq, answers[1].fenced), (1, false));
    assert_eq!((answers[2].seq, answers[2].fenced), (11, false));
    let answers = history.append(&[fenced(&g, "fresh", 9)]).await.unwrap();
    assert_eq!((answers[0].seq, answers[0].fenced), (12, false));
    let bodies: Vec<String> = everything(&history, &g)
        .await
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    assert_eq!(bodies[..2], ["created", "hello"]);
    assert_eq!(bodies[10..], ["notice", "fresh"]);
    assert!(!bodies.contains(&"stale".to_owned()));

    // A change judged at an older version is refused and writes nothing;
    // at the current one it is made.
    let mut late = change(&g, "late");
    late.fence = Some(8);
    assert_eq!(history.append_change(&late).await.unwrap(), None);
    late.fence = Some(9);
    assert_eq!(
        history.append_change(&late).await.unwrap(),
        Some(ChangeStored {
            seq: 13,
            version: 10
        })
    );
}

/// The race the fence exists for, made to happen: a send that starts while
/// a change holds the conversation (after the send's snapshot was taken) is
/// judged by the change once it commits, not by what its snapshot saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_on_a_change_is_judged_by_the_change() {
    let pg = PostgresServer::start();
    let history = Arc::new(PgHistory::connect(&pg.url(), 4).await.unwrap());
    let g = group("grace");
    history.append_change(&change(&g, "created")).await.unwrap();
    history.append(&[fenced(&g, "first", 1)]).await.unwrap();

    // A change in progress: the row locked, the fence raised, not committed.
    let (mut client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "UPDATE conversations SET head = head + 1, fence = 2 WHERE conversation = $1",
        &[&g.to_string()],
    )
    .await
    .unwrap();
    tx.execute(
        "INSERT INTO messages (shard_key, conversation, seq, sent_at, body)
         VALUES ($1, $1, 3, 0, 'removed')",
        &[&g.to_string()],
    )
    .await
    .unwrap();

    let send = tokio::spawn({
        let (history, g) = (history.clone(), g.clone());
        async move { history.append(&[fenced(&g, "late", 1)]).await }
    });
    // Wait until the send is blocked on the change's lock.
    let (probe, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    eventually(
        Duration::from_secs(10),
        "the send waits for the change",
        || {
            let probe = &probe;
            async move {
                let waiting: i64 = probe
                    .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted", &[])
                    .await
                    .unwrap()
                    .get(0);
                (waiting > 0).then_some(())
            }
        },
    )
    .await;
    tx.commit().await.unwrap();

    let answer = send.await.unwrap().unwrap();
    assert!(answer[0].fenced, "{answer:?}");
    assert_eq!(
        everything(&history, &g)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect::<Vec<_>>(),
        ["created", "first", "removed"]
    );
}
