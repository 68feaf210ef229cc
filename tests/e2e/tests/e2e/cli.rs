//! The `sb` command-line client against a running deployment.

use std::io::{Read as _, Write as _};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::both_modes;
use crate::harness::cluster::CLI;
use crate::harness::{Cluster, Mode, Options, WAIT};
use switchboard_testkit::eventually;

/// `sb` with a home of its own, against one gateway.
pub(crate) struct Sb {
    pub(crate) server: String,
    pub(crate) home: tempfile::TempDir,
}

impl Sb {
    pub(crate) fn run(&self, profile: &str, args: &[&str]) -> Output {
        self.run_at(Some(&self.server), profile, args)
    }

    /// Runs against `server`, or, without one, the saved login's.
    pub(crate) fn run_at(&self, server: Option<&str>, profile: &str, args: &[&str]) -> Output {
        let server = server.map(|s| ["--server", s]);
        Command::new(CLI)
            .args(["--json", "--profile", profile])
            .args(server.iter().flatten())
            .args(args)
            .env("SB_HOME", self.home.path())
            .env("SB_PASSWORD", "a long enough password")
            .output()
            .expect("run sb")
    }

    /// Runs and returns the JSON lines it printed; panics with stderr on failure.
    pub(crate) fn json(&self, profile: &str, args: &[&str]) -> Vec<Value> {
        let output = self.run(profile, args);
        assert!(
            output.status.success(),
            "sb {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
            .collect()
    }
}

both_modes!(the_cli_chains_commands_with_a_saved_login, cli_session);
async fn cli_session(cluster: Cluster) {
    let sb = Sb {
        server: cluster.gateway_url(1),
        home: tempfile::tempdir().unwrap(),
    };
    tokio::task::spawn_blocking(move || {
        sb.json("alice", &["register", "alice", "--name", "Alice"]);
        sb.json("bob", &["register", "bob"]);
        sb.json("alice", &["login", "alice", "--device", "terminal"]);
        sb.json("bob", &["login", "bob"]);
        // Bob's first watch catches up to now and saves his cursors.
        sb.json("bob", &["watch", "--until-synced"]);

        let sent = sb.json("alice", &["send", "bob", "hello", "from", "the", "cli"]);
        assert_eq!(sent[0]["conversation_id"], "dm:alice:bob");
        assert_eq!(sent[0]["seq"], 1);
        let retried = sb.json("alice", &["send", "bob", "again", "--id", "fixed-1"]);
        let repeated = sb.json("alice", &["send", "bob", "again", "--id", "fixed-1"]);
        assert_eq!(repeated[0]["duplicate"], true);
        assert_eq!(repeated[0]["seq"], retried[0]["seq"]);

        // The next watch resumes from the saved cursors.
        let events = sb.json("bob", &["watch", "--until-synced"]);
        let messages: Vec<&Value> = events.iter().filter(|e| e["event"] == "message").collect();
        let texts: Vec<&str> = messages
            .iter()
            .map(|m| m["message"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["hello from the cli", "again"]);
        assert_eq!(messages[0]["message"]["sender"], "alice");

        // A new device's first watch shows what bob has not read yet.
        sb.json("bob-laptop", &["login", "bob"]);
        let first = sb.json("bob-laptop", &["watch", "--until-synced"]);
        let unread: Vec<&str> = first
            .iter()
            .filter(|e| e["event"] == "message")
            .map(|m| m["message"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(unread, ["hello from the cli", "again"]);

        let history = sb.json("bob", &["history", "alice"]);
        assert_eq!(history.len(), 2);
        // Alice takes her retried message back; bob's history keeps its place.
        let id = retried[0]["message_id"].as_str().unwrap().to_owned();
        let refused = sb.run("bob", &["delete", &id]);
        let error: Value = serde_json::from_slice(&refused.stderr).unwrap();
        assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
        let deleted = sb.json("alice", &["delete", &id]);
        assert!(
            deleted[0]["notice_seq"].as_u64().unwrap() > 0,
            "{deleted:?}"
        );
        let history = sb.json("bob", &["history", "alice"]);
        let erased = history
            .iter()
            .find(|m| m["message_id"] == id.as_str())
            .unwrap();
        assert_eq!(
            (erased["deleted"].as_bool(), erased["text"].as_str()),
            (Some(true), Some(""))
        );
        assert_eq!(
            history.last().unwrap()["system"]["kind"],
            "KIND_MESSAGE_DELETED"
        );
        // Bob answers alice's first message: his reply quotes it.
        let first = sent[0]["message_id"].as_str().unwrap().to_owned();
        sb.json(
            "bob",
            &["send", "alice", "hello", "back", "--reply-to", &first],
        );
        let history = sb.json("bob", &["history", "alice"]);
        let quote = &history.last().unwrap()["reply_to"];
        assert_eq!(quote["message_id"], first.as_str(), "{history:?}");
        assert_eq!(
            (quote["sender"].as_str(), quote["excerpt"].as_str()),
            (Some("alice"), Some("hello from the cli"))
        );
        let group = sb.json("alice", &["groups", "create", "Team"]);
        let group_id = group[0]["group_id"].as_str().unwrap().to_owned();
        sb.json("bob", &["groups", "join", &group_id]);
        sb.json("bob", &["send", "--group", &group_id, "hi", "team"]);
        let conversations = sb.json("alice", &["conversations"]);
        assert_eq!(conversations.len(), 2);
        assert_eq!(conversations[0]["last_message"]["text"], "hi team");
        // An open group lets new members read everything by default; one
        // made with --history from-join shows them only what came after.
        assert_eq!(group[0]["history"], "HISTORY_VISIBILITY_ALL");
        let later = sb.json(
            "alice",
            &["groups", "create", "Later", "--history", "from-join"],
        );
        assert_eq!(later[0]["history"], "HISTORY_VISIBILITY_FROM_JOIN");
        let later_id = later[0]["group_id"].as_str().unwrap().to_owned();
        sb.json("alice", &["send", "--group", &later_id, "before", "bob"]);
        sb.json("bob", &["groups", "join", &later_id]);
        sb.json("alice", &["send", "--group", &later_id, "after", "bob"]);
        let seen = sb.json("bob", &["history", &format!("g:{later_id}")]);
        let texts: Vec<&str> = seen.iter().filter_map(|m| m["text"].as_str()).collect();
        assert!(texts.contains(&"after bob"), "{seen:?}");
        assert!(!texts.contains(&"before bob"), "{seen:?}");
        // The owner hands a group over; the new owner deletes it (with --yes).
        let not_owner = sb.run("bob", &["groups", "delete", &later_id, "--yes"]);
        let error: Value = serde_json::from_slice(&not_owner.stderr).unwrap();
        assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
        sb.json("alice", &["groups", "transfer", &later_id, "bob"]);
        assert!(
            !sb.run("bob", &["groups", "delete", &later_id])
                .status
                .success()
        );
        let deleted = sb.json("bob", &["groups", "delete", &later_id, "--yes"]);
        assert_eq!(deleted[0]["deleted"], later_id.as_str());

        let renamed = sb.json(
            "alice",
            &[
                "groups",
                "update",
                &group_id,
                "--name",
                "Team B",
                "--description",
                "the B team",
            ],
        );
        assert_eq!(
            (
                renamed[0]["name"].as_str(),
                renamed[0]["description"].as_str()
            ),
            (Some("Team B"), Some("the B team"))
        );

        // Reactions: set, counted per reader in history, listed by who.
        let reacted = sb.json("bob", &["react", &first, "👍"]);
        assert_eq!(
            reacted[0]["reactions"],
            serde_json::json!([{"emoji": "👍", "count": 1, "mine": true}])
        );
        let history = sb.json("alice", &["history", "bob"]);
        let reacted_to = history
            .iter()
            .find(|m| m["message_id"] == first.as_str())
            .unwrap();
        assert_eq!(
            reacted_to["reactions"],
            serde_json::json!([{"emoji": "👍", "count": 1, "mine": false}])
        );
        let who = sb.json("alice", &["reactions", &first]);
        assert_eq!(
            (who[0]["user_id"].as_str(), who[0]["emoji"].as_str()),
            (Some("bob"), Some("👍"))
        );
        let taken_back = sb.json("bob", &["react", &first, "👍", "--off"]);
        assert_eq!(taken_back[0]["reactions"], serde_json::json!([]));
        let bad = sb.run("bob", &["react", &first, "two words"]);
        let error: Value = serde_json::from_slice(&bad.stderr).unwrap();
        assert_eq!(error["error"]["code"], "INVALID_ARGUMENT");

        // Search: the hits with what matched, a page at a time.
        let found = sb.json("alice", &["search", "hel", "--limit", "1"]);
        assert_eq!(found.len(), 2, "a hit and the next page's token: {found:?}");
        assert_eq!(found[0]["text"], "hello back");
        assert_eq!(
            found[0]["pieces"],
            serde_json::json!([
                {"text": "hello", "matched": true},
                {"text": " back", "matched": false}
            ])
        );
        let token = found[1]["next_page_token"].as_str().unwrap();
        let next = sb.json("alice", &["search", "hel", "--limit", "1", "--page", token]);
        assert_eq!(next[0]["text"], "hello from the cli");
        let in_group = sb.json("bob", &["search", "hi", "--in", &format!("g:{group_id}")]);
        assert_eq!(in_group.len(), 1, "{in_group:?}");
        assert_eq!(in_group[0]["text"], "hi team");

        // Muting a group shows in the conversation list.
        let group_conversation = format!("g:{group_id}");
        sb.json("bob", &["mute", &group_conversation]);
        let listed = sb.json("bob", &["conversations"]);
        let muted = |listed: &[Value]| {
            listed
                .iter()
                .find(|c| c["conversation_id"] == group_conversation.as_str())
                .unwrap()["muted"]
                .as_bool()
        };
        assert_eq!(muted(&listed), Some(true));
        sb.json("bob", &["mute", &group_conversation, "--off"]);
        assert_eq!(muted(&sb.json("bob", &["conversations"])), Some(false));

        // A new name, found by its start.
        let renamed = sb.json("bob", &["rename", "Robert", "B."]);
        assert_eq!(renamed[0]["display_name"], "Robert B.");
        let found = sb.json("alice", &["contacts", "find", "rob"]);
        assert_eq!(
            found,
            [serde_json::json!({"user_id": "bob", "display_name": "Robert B."})]
        );

        // Blocked: bob cannot write to alice until she unblocks him.
        sb.json("alice", &["contacts", "block", "bob"]);
        let blocked = sb.json("alice", &["contacts", "blocked"]);
        assert_eq!(blocked[0]["user_id"], "bob");
        let refused = sb.run("bob", &["send", "alice", "still", "there?"]);
        let error: Value = serde_json::from_slice(&refused.stderr).unwrap();
        assert_eq!(error["error"]["code"], "PERMISSION_DENIED");
        sb.json("alice", &["contacts", "unblock", "bob"]);
        assert!(sb.json("alice", &["contacts", "blocked"]).is_empty());
        sb.json("bob", &["send", "alice", "still", "there?"]);

        // A logged-in command goes to the saved gateway, or to the one named.
        let saved = sb.run_at(None, "alice", &["conversations"]);
        assert!(saved.status.success(), "{saved:?}");
        let elsewhere = sb.run_at(Some("http://127.0.0.1:9"), "alice", &["conversations"]);
        assert!(!elsewhere.status.success(), "--server is honoured");

        // Errors are JSON on stderr with the gRPC code, and a failure exit.
        let refused = sb.run("alice", &["send", "nobody", "hi"]);
        assert!(!refused.status.success());
        let error: Value = serde_json::from_slice(&refused.stderr).unwrap();
        assert_eq!(error["error"]["code"], "NOT_FOUND");
        sb.json("alice", &["logout"]);
        let after = sb.run("alice", &["conversations"]);
        assert!(!after.status.success(), "logged out");
    })
    .await
    .unwrap();
}

both_modes!(the_cli_runs_a_topic_from_both_sides, cli_topic);
async fn cli_topic(cluster: Cluster) {
    let sb = Sb {
        server: cluster.gateway_url(0),
        home: tempfile::tempdir().unwrap(),
    };
    tokio::task::spawn_blocking(move || {
        for user in ["owner", "ann", "ben"] {
            sb.json(user, &["register", user]);
            sb.json(user, &["login", user]);
        }
        for contact in ["ann", "ben"] {
            sb.json("owner", &["contacts", "add", contact]);
            sb.json(contact, &["contacts", "add", "owner"]);
            sb.json(contact, &["watch", "--until-synced"]);
        }
        let created = sb.json(
            "owner",
            &["topics", "create", "Badminton", "--contacts", "ann,ben"],
        );
        let topic = created[0]["topic_id"].as_str().unwrap().to_owned();
        assert_eq!(created[1]["outcome"], "OUTCOME_ADDED");
        // A command that changed nothing says why and fails.
        let again = sb.run("owner", &["topics", "add", &topic, "ann"]);
        assert!(!again.status.success(), "nobody was added");
        let said: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(said["outcome"], "OUTCOME_ALREADY_IN_TOPIC");

        let sent = sb.json("owner", &["topics", "send", &topic, "Saturday", "10:00?"]);
        let broadcast = sent[0]["broadcast_id"].as_str().unwrap().to_owned();
        assert_eq!(sent[0]["recipients"].as_array().unwrap().len(), 2);

        // Ann sees it in her topic dialog and replies there.
        let events = sb.json("ann", &["watch", "--until-synced"]);
        let copy = events.iter().find(|e| e["event"] == "message").unwrap();
        assert_eq!(copy["message"]["topic"]["topic_name"], "Badminton");
        assert_eq!(copy["message"]["conversation_id"], format!("t:{topic}:ann"));
        sb.json("ann", &["topics", "reply", &topic, "count", "me", "in"]);
        sb.json("ben", &["read", &format!("t:{topic}:ben")]);

        let status = sb.json("owner", &["topics", "status", &topic, &broadcast]);
        let row = |user: &str| {
            status
                .iter()
                .find(|s| s["user_id"] == user)
                .unwrap()
                .clone()
        };
        assert_eq!(row("ann")["replied"], true);
        assert_eq!(row("ben")["read"], true);
        assert_eq!(row("ben")["replied"], false);

        let nudge = sb.json(
            "owner",
            &[
                "topics",
                "send",
                &topic,
                "still",
                "coming?",
                "--not-replied",
                &broadcast,
            ],
        );
        assert_eq!(nudge[0]["recipients"][0]["user_id"], "ben");
        let timeline = sb.json("owner", &["topics", "timeline", &topic]);
        let texts: Vec<&str> = timeline
            .iter()
            .map(|e| e["message"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["Saturday 10:00?", "count me in", "still coming?"]);

        sb.json("ben", &["topics", "mute", &topic]);
        sb.json("owner", &["topics", "remove", &topic, "ann"]);
        let twice = sb.run("owner", &["topics", "remove", &topic, "ann"]);
        assert!(!twice.status.success(), "nobody was removed");
        let refused = sb.run("ann", &["topics", "reply", &topic, "hello?"]);
        assert!(!refused.status.success());
        let listed = sb.json("owner", &["topics", "list"]);
        let states: Vec<&str> = listed[0]["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["STATE_REMOVED", "STATE_MUTED"]);
    })
    .await
    .unwrap();
}

/// On a terminal, `sb` asks for the password with the typing hidden (a
/// pseudo-terminal stands in for the user's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_asks_for_a_password_without_echoing_it() {
    let cluster = Cluster::start_with(Mode::Standalone, Options::default()).await;
    let sb = Sb {
        server: cluster.gateway_url(0),
        home: tempfile::tempdir().unwrap(),
    };
    tokio::task::spawn_blocking(move || {
        let pty = nix::pty::openpty(None, None).unwrap();
        let mut child = Command::new(CLI)
            .args([
                "--server",
                &sb.server,
                "--profile",
                "carol",
                "register",
                "carol",
            ])
            .env("SB_HOME", sb.home.path())
            .env_remove("SB_PASSWORD")
            .stdin(Stdio::from(pty.slave))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Typed once the prompt shows: the echo is off by then.
        let mut stderr = child.stderr.take().unwrap();
        let mut prompt = Vec::new();
        let mut byte = [0u8; 1];
        while !prompt.ends_with(b"password: ") {
            let read = stderr.read(&mut byte).unwrap();
            assert_eq!(read, 1, "no prompt: {:?}", String::from_utf8_lossy(&prompt));
            prompt.push(byte[0]);
        }
        let mut terminal = std::fs::File::from(pty.master);
        terminal.write_all(b"a long enough password\n").unwrap();
        assert!(child.wait().unwrap().success(), "registered");
        // What the terminal showed, up to sb's end (then reads fail: EIO).
        let mut shown = Vec::new();
        let _ = terminal.read_to_end(&mut shown);
        let shown = String::from_utf8_lossy(&shown);
        assert!(
            !shown.contains("enough"),
            "the password was echoed: {shown:?}"
        );
        // The password was read whole: it logs in (SB_PASSWORD is the same).
        sb.json("carol", &["login", "carol"]);
        assert_eq!(sb.json("carol", &["whoami"])[0]["user_id"], "carol");
    })
    .await
    .unwrap();
}

/// One `sb` command of a README example, with what it must print.
struct Step {
    args: Vec<String>,
    /// The `#   ` lines under it, in order.
    expected: Vec<String>,
    fails: bool,
}

/// The words of a README command line up to its comment (single quotes
/// group words, as the README writes them).
fn words(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut started) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            '#' if !quoted && !started => break,
            c if c.is_whitespace() && !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            c => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The `sb` commands of the README's `sh` examples (not the alias, not
/// what runs in the background).
fn readme_steps() -> Vec<Step> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let mut steps: Vec<Step> = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(expected) = line.strip_prefix("#   ") {
            steps
                .last_mut()
                .expect("an output line under a command")
                .expected
                .push(expected.to_owned());
        } else if line.starts_with("sb ") {
            let args = words(line);
            if args.last().is_some_and(|w| w == "&") {
                continue;
            }
            steps.push(Step {
                args: args[1..].to_vec(),
                expected: Vec::new(),
                fails: line.contains("# exits 1"),
            });
        }
    }
    steps
}

/// How the README writes an id of the server's making: `t4k2…`.
static PLACEHOLDER: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new("[a-z0-9-]*…").unwrap());

/// A README line as a pattern: spaces loose, each `x…` an id of the
/// server's making (the one seen before, once known).
fn pattern(
    expected: &str,
    known: &std::collections::HashMap<String, String>,
) -> (regex::Regex, Vec<String>) {
    let (mut pattern, mut names, mut at) = (String::from("^"), Vec::new(), 0);
    let text = expected.split_whitespace().collect::<Vec<_>>().join(" ");
    for found in PLACEHOLDER.find_iter(&text) {
        pattern.push_str(&regex::escape(&text[at..found.start()]));
        match known.get(found.as_str()) {
            Some(value) => pattern.push_str(&regex::escape(value)),
            None => {
                pattern.push_str("([a-z0-9-]+)");
                names.push(found.as_str().to_owned());
            }
        }
        at = found.end();
    }
    pattern.push_str(&regex::escape(&text[at..]));
    pattern.push('$');
    (regex::Regex::new(&pattern).unwrap(), names)
}

/// Whether the printed lines hold the expected ones in order; learns the ids.
fn printed(
    lines: &[String],
    expected: &[String],
    known: &mut std::collections::HashMap<String, String>,
) -> bool {
    let mut lines = lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "));
    'expected: for want in expected {
        let (pattern, names) = pattern(want, known);
        for line in lines.by_ref() {
            if let Some(found) = pattern.captures(&line) {
                for (name, value) in names.iter().zip(found.iter().skip(1).flatten()) {
                    known
                        .entry(name.clone())
                        .or_insert_with(|| value.as_str().to_owned());
                }
                continue 'expected;
            }
        }
        return false;
    }
    true
}

/// The README's `sb` examples, run as written against a server, print
/// what the README says they print.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_print_what_the_readme_shows() {
    let cluster = Cluster::start_with(Mode::Standalone, Options::default()).await;
    let home = tempfile::tempdir().unwrap();
    let steps = readme_steps();
    assert!(
        steps.len() > 20,
        "the README's examples: {} commands",
        steps.len()
    );
    let mut known = std::collections::HashMap::new();
    for step in &steps {
        let args: Vec<String> = step
            .args
            .iter()
            .map(|arg| {
                PLACEHOLDER
                    .replace_all(arg, |found: &regex::Captures<'_>| {
                        known.get(&found[0]).cloned().unwrap_or_else(|| {
                            panic!("{} is used before the README shows it", &found[0])
                        })
                    })
                    .into_owned()
            })
            .collect();
        // Reads may run again until what they show has settled (a
        // delivery is recorded a moment after it happens); nothing else is
        // run twice.
        let reads = [
            "history",
            "timeline",
            "status",
            "list",
            "receipts",
            "conversations",
        ];
        let read = args.iter().any(|a| reads.contains(&a.as_str()));
        let run = || async {
            let output = tokio::process::Command::new(CLI)
                .args(&args)
                .env("SB_SERVER", cluster.gateway_url(0))
                .env("SB_HOME", home.path())
                .env_remove("SB_PASSWORD")
                .env_remove("SB_PROFILE")
                .output()
                .await
                .unwrap();
            let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&output.stderr).lines())
                .map(str::to_owned)
                .collect();
            (output.status.success(), lines)
        };
        let what = format!("sb {}", args.join(" "));
        let (succeeded, lines) = if read {
            eventually(WAIT, &what, || async {
                let (succeeded, lines) = run().await;
                printed(&lines, &step.expected, &mut known.clone()).then_some((succeeded, lines))
            })
            .await
        } else {
            run().await
        };
        assert_eq!(succeeded, !step.fails, "{what}: {lines:#?}");
        assert!(
            printed(&lines, &step.expected, &mut known),
            "{what} printed {lines:#?}, the README shows {:#?}",
            step.expected
        );
    }
}
