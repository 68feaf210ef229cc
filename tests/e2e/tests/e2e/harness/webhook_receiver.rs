//! An app backend's webhook endpoint as the tests run it: plain HTTP/1.1 on
//! a free port, checking each request as Standard Webhooks tells a receiver
//! to, with its own code (not the router's): the HMAC-SHA256 of
//! `id.timestamp.body` under the secret, a timestamp within five minutes of
//! its clock, and an id it already took answered but not taken twice. It can
//! be told to fail, to hold requests unanswered, or to expect another secret.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use parking_lot::Mutex;
use sha2::Sha256;
use switchboard_shared::clock::now_ms;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use switchboard_testkit::eventually;

use super::WAIT;
use super::raw::read_http_request;

/// How far a timestamp may be from the receiver's clock.
const TOLERANCE_SECS: i64 = 300;

/// One request as it came, and what the receiver answered.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub status: u16,
    /// The request's bytes, to replay.
    pub raw: Vec<u8>,
}

/// A webhook the receiver took (once per id).
#[derive(Debug, Clone)]
pub struct Taken {
    pub id: String,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    key: Vec<u8>,
    /// Statuses to answer verified requests with before answering 200.
    failures: Vec<u16>,
    attempts: Vec<Attempt>,
    taken: Vec<Taken>,
}

pub struct Receiver {
    pub url: String,
    port: u16,
    state: Arc<Mutex<State>>,
    held: watch::Sender<bool>,
}

/// The secret in its `whsec_` form, and its key bytes.
pub fn secret(key: &[u8]) -> String {
    format!("whsec_{}", BASE64.encode(key))
}

fn signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

impl Receiver {
    /// Listening on a free loopback port, expecting `key`.
    pub async fn start(key: &[u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            key: key.to_vec(),
            ..State::default()
        }));
        let (held, holding) = watch::channel(false);
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, serving.clone(), holding.clone()));
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/hooks/switchboard"),
            port,
            state,
            held,
        }
    }

    /// Verified requests are answered `status` this many times first.
    pub fn fail_next(&self, times: usize, status: u16) {
        self.state.lock().failures = vec![status; times];
    }

    /// Requests wait unanswered (and untaken) until [`Self::release`].
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// From now on the receiver expects this key.
    pub fn expect_key(&self, key: &[u8]) {
        self.state.lock().key = key.to_vec();
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.lock().attempts.clone()
    }

    pub fn attempts_of(&self, id: &str) -> Vec<u16> {
        self.attempts()
            .into_iter()
            .filter(|a| a.id == id)
            .map(|a| a.status)
            .collect()
    }

    pub fn taken(&self) -> Vec<Taken> {
        self.state.lock().taken.clone()
    }

    /// Waits until a webhook whose text is `text` is taken; answers it.
    pub async fn until_taken(&self, text: &str) -> Taken {
        eventually(WAIT, &format!("a webhook for {text:?}"), || async {
            self.taken()
                .into_iter()
                .find(|t| t.body["data"]["text"] == text)
        })
        .await
    }

    /// Sends `raw` (a request's bytes) to the receiver; the status answered.
    pub async fn replay(&self, raw: &[u8]) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let line = String::from_utf8_lossy(&answer);
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap()
    }
}

async fn serve(
    mut stream: TcpStream,
    state: Arc<Mutex<State>>,
    mut holding: watch::Receiver<bool>,
) {
    let Some((raw, headers, body)) = read_http_request(&mut stream).await else {
        return;
    };
    let _ = holding.wait_for(|held| !held).await;
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let status = {
        let mut state = state.lock();
        let expected = signature(&state.key, &id, &timestamp, &body);
        let fresh = timestamp
            .parse::<i64>()
            .is_ok_and(|t| (now_ms() / 1000 - t).abs() <= TOLERANCE_SECS);
        let status = if id.is_empty() || !fresh {
            400
        } else if !signatures.split(' ').any(|s| s == expected) {
            401
        } else if !state.failures.is_empty() {
            state.failures.remove(0)
        } else {
            if !state.taken.iter().any(|t| t.id == id) {
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                state.taken.push(Taken {
                    id: id.clone(),
                    body,
                });
            }
            200
        };
        state.attempts.push(Attempt { id, status, raw });
        status
    };
    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A request's bytes with one header's value replaced.
pub fn with_header(raw: &[u8], name: &str, value: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<String> = head
        .lines()
        .map(|line| match line.split_once(':') {
            Some((n, _)) if n.trim().eq_ignore_ascii_case(name) => format!("{n}: {value}"),
            _ => line.to_owned(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
}
