//! Accepting client connections, and what each may hold.
//!
//! - Every accepted socket has Nagle's algorithm off (tonic's own TCP
//!   settings apply only to listeners it binds itself; a gateway serves a
//!   listener it was handed): a small event is written at once instead of
//!   waiting for the peer's delayed ACK of the previous one (~40 ms).
//! - Caps: connections per gateway and per source address. Past them a small
//!   reserve of connections is accepted that serves health checks only (so a
//!   probe still answers on a full gateway); past that a connection is closed
//!   as soon as it is accepted. The per-gateway cap never exceeds what the
//!   process's file-descriptor limit leaves room for.
//! - An accept that fails for lack of resources (out of file descriptors or
//!   memory) backs off, 10 ms doubling to 1 s, instead of spinning, and is
//!   logged once per episode with the limit.
//! - A connection with no authenticated call open, and none for the idle
//!   timeout, is closed (the sweeper looks every [`SWEEP_EVERY`]): a socket
//!   that sends nothing, or only answers PINGs, does not hold a slot for ever.
//!   Calls are counted by [`crate::admission`].
//! - With TLS configured, each admitted connection's handshake runs on a
//!   task of its own (see [`crate::tls`]); the connection is served once it
//!   completes, and closed if it fails or takes too long.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use futures::task::AtomicWaker;
use parking_lot::Mutex;
use switchboard_shared::metrics::metrics;
use switchboard_shared::shutdown::{CancellationToken, TaskTracker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How often idle connections are looked for.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Connections past the cap that are still accepted, for health checks only.
pub const HEALTH_RESERVE: usize = 8;
/// How long a reserve connection may stay (a health check takes a moment).
const RESERVE_IDLE: Duration = Duration::from_secs(2);
/// File descriptors kept free of client connections: the bus, the store,
/// listeners, logs, the runtime's own.
const FD_HEADROOM: u64 = 32;
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What one gateway accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionLimits {
    /// Client connections (TCP) this gateway holds at most; lowered to what the file-descriptor limit allows.
    #[arg(
        id = "max_client_connections",
        long = "max-client-connections",
        env = "SB_MAX_CLIENT_CONNECTIONS",
        default_value_t = 20_000
    )]
    pub max_connections: usize,
    /// Client connections from one source address (0: no cap, e.g. behind a proxy, where every client has the proxy's address).
    #[arg(
        id = "max_connections_per_address",
        long = "max-connections-per-address",
        env = "SB_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 2_048
    )]
    pub max_per_address: usize,
    /// A connection with no authenticated call for this long is closed, in milliseconds.
    #[arg(
        id = "idle_connection_timeout_ms",
        long = "idle-connection-timeout-ms",
        env = "SB_IDLE_CONNECTION_TIMEOUT_MS",
        default_value = "60000",
        value_parser = switchboard_shared::settings::millis
    )]
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        switchboard_shared::settings::defaults()
    }
}

/// One accepted connection, as its calls and the sweeper see it.
pub struct ConnState {
    id: u64,
    pub peer: SocketAddr,
    /// Past the cap: serves health checks only.
    pub reserve: bool,
    born: Instant,
    /// When an authenticated call last ended (ms since `born`).
    last_active_ms: AtomicU64,
    /// Authenticated calls open now (a subscription stays open for hours).
    authenticated_open: AtomicU32,
    closed: AtomicBool,
    /// The connection's reader, woken to notice it was closed.
    reader: AtomicWaker,
}

impl ConnState {
    fn new(id: u64, peer: SocketAddr, reserve: bool) -> Self {
        Self {
            id,
            peer,
            reserve,
            born: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            authenticated_open: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        }
    }

    fn elapsed_ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.born).as_millis()).unwrap_or(u64::MAX)
    }

    /// An authenticated call started on this connection; it counts as
    /// activity until the returned guard is dropped (its response ended).
    pub fn authenticated_call(self: &Arc<Self>) -> CallGuard {
        self.authenticated_open.fetch_add(1, Ordering::Relaxed);
        CallGuard {
            connection: self.clone(),
        }
    }

    /// Closes the connection: its next read fails and the server drops it.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.reader.wake();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Idle: no authenticated call open, and none ended within `timeout`.
    fn idle(&self, now: Instant, timeout: Duration) -> bool {
        let timeout = if self.reserve {
            timeout.min(RESERVE_IDLE)
        } else {
            timeout
        };
        self.authenticated_open.load(Ordering::Relaxed) == 0
            && self
                .elapsed_ms(now)
                .saturating_sub(self.last_active_ms.load(Ordering::Relaxed))
                > u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Holds a connection active while an authenticated call is open.
pub struct CallGuard {
    connection: Arc<ConnState>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let now = self.connection.elapsed_ms(Instant::now());
        self.connection
            .last_active_ms
            .fetch_max(now, Ordering::Relaxed);
        self.connection
            .authenticated_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a call sees of its connection (tonic puts it in the request's
/// extensions).
#[derive(Clone)]
pub struct ClientConnection(pub Arc<ConnState>);

#[derive(Default)]
struct Open {
    by_id: HashMap<u64, Arc<ConnState>>,
    by_address: HashMap<IpAddr, usize>,
    normal: usize,
    reserve: usize,
    next_id: u64,
}

struct Inner {
    limits: ConnectionLimits,
    /// `max_connections`, lowered to what file descriptors allow.
    cap: usize,
    open: Mutex<Open>,
}

/// The client connections of one gateway.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

/// How a newly accepted connection is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Normal,
    HealthOnly,
    Refuse,
}

/// The process's file-descriptor limit (soft), if it can be read.
fn fd_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _hard)| soft)
}

/// The connection cap that fits in `fd_limit` file descriptors, leaving
/// room for the process's own and the health reserve.
fn cap_for(max_connections: usize, fd_limit: Option<u64>) -> usize {
    let Some(limit) = fd_limit else {
        return max_connections;
    };
    let room = limit.saturating_sub(FD_HEADROOM + HEALTH_RESERVE as u64);
    max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Self {
        let limit = fd_limit();
        let cap = cap_for(limits.max_connections, limit);
        if cap < limits.max_connections {
            tracing::warn!(
                fd_limit = limit,
                configured = limits.max_connections,
                cap,
                "the file-descriptor limit caps client connections below the configured maximum; raise `ulimit -n` to hold more"
            );
        }
        Self {
            inner: Arc::new(Inner {
                limits,
                cap,
                open: Mutex::new(Open::default()),
            }),
        }
    }

    /// The effective cap on client connections.
    pub fn cap(&self) -> usize {
        self.inner.cap
    }

    /// Client connections held now (reserve included).
    pub fn len(&self) -> usize {
        self.inner.open.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn admit(&self, peer: SocketAddr) -> Option<Arc<ConnState>> {
        let mut open = self.inner.open.lock();
        let from_address = open.by_address.get(&peer.ip()).copied().unwrap_or(0);
        let per_address = self.inner.limits.max_per_address;
        let decision =
            if open.normal < self.inner.cap && (per_address == 0 || from_address < per_address) {
                Admit::Normal
            } else if open.reserve < HEALTH_RESERVE {
                Admit::HealthOnly
            } else {
                Admit::Refuse
            };
        if decision == Admit::Refuse {
            return None;
        }
        let reserve = decision == Admit::HealthOnly;
        open.next_id += 1;
        let state = Arc::new(ConnState::new(open.next_id, peer, reserve));
        if reserve {
            open.reserve += 1;
        } else {
            open.normal += 1;
        }
        *open.by_address.entry(peer.ip()).or_insert(0) += 1;
        open.by_id.insert(state.id, state.clone());
        metrics().client_connections.set(open.by_id.len() as i64);
        Some(state)
    }

    fn release(&self, state: &ConnState) {
        let mut open = self.inner.open.lock();
        if open.by_id.remove(&state.id).is_none() {
            return;
        }
        metrics().client_connections.set(open.by_id.len() as i64);
        if state.reserve {
            open.reserve -= 1;
        } else {
            open.normal -= 1;
        }
        if let Some(count) = open.by_address.get_mut(&state.peer.ip()) {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&state.peer.ip());
            }
        }
    }

    /// Closes every connection idle past the timeout; returns how many.
    fn sweep_once(&self, now: Instant) -> usize {
        let idle: Vec<Arc<ConnState>> = self
            .inner
            .open
            .lock()
            .by_id
            .values()
            .filter(|c| !c.is_closed() && c.idle(now, self.inner.limits.idle_timeout))
            .cloned()
            .collect();
        for connection in &idle {
            connection.close();
        }
        idle.len()
    }

    /// Closes idle connections until `stop`.
    pub async fn sweep(self, stop: CancellationToken) {
        let every = SWEEP_EVERY.min(self.inner.limits.idle_timeout / 2);
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let closed = self.sweep_once(Instant::now());
            if closed > 0 {
                metrics().idle_connections_closed.inc_by(closed as u64);
                tracing::debug!(closed, "idle client connections closed");
            }
        }
    }
}

/// A client connection as the server reads and writes it.
pub struct ClientIo {
    stream: TcpStream,
    state: Arc<ConnState>,
    connections: Weak<Inner>,
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        if let Some(inner) = self.connections.upgrade() {
            Connections { inner }.release(&self.state);
        }
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection was idle or over its limits",
    )
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.state.reader.register(cx.waker());
        if self.state.is_closed() {
            return Poll::Ready(Err(closed_error()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for ClientIo {
    type ConnectInfo = ClientConnection;

    fn connect_info(&self) -> ClientConnection {
        ClientConnection(self.state.clone())
    }
}

/// Whether an accept error means the process ran out of something (file
/// descriptors, buffers, memory) and should wait before trying again.
fn out_of_resources(err: &io::Error) -> bool {
    use nix::errno::Errno;
    err.raw_os_error().is_some_and(|code| {
        matches!(
            Errno::from_raw(code),
            Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
        )
    })
}

/// The accept loop's state between connections.
struct Acceptor {
    listener: TcpListener,
    connections: Connections,
    backoff: Duration,
    /// An episode of refusals (cap reached) or resource errors is logged
    /// once, when it starts, and once when it ends.
    refusing: bool,
    starved: bool,
}

impl Acceptor {
    async fn next(&mut self) -> ClientIo {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) if out_of_resources(&err) => {
                    if !self.starved {
                        self.starved = true;
                        tracing::warn!(
                            %err,
                            fd_limit = fd_limit(),
                            connections = self.connections.len(),
                            "cannot accept client connections: out of resources; backing off until some are freed"
                        );
                    }
                    metrics().accept_errors.inc();
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                // The peer gave up before we took it (ECONNABORTED and such).
                Err(err) => {
                    tracing::debug!(%err, "accept failed");
                    continue;
                }
            };
            if self.starved {
                self.starved = false;
                tracing::info!("accepting client connections again");
            }
            self.backoff = FIRST_BACKOFF;
            let Some(state) = self.connections.admit(peer) else {
                // Closed at once: the slot and the descriptor are free again.
                metrics().connections_refused.inc();
                if !self.refusing {
                    self.refusing = true;
                    tracing::warn!(
                        cap = self.connections.cap(),
                        per_address = self.connections.inner.limits.max_per_address,
                        %peer,
                        "client connection cap reached; refusing new connections until some close"
                    );
                }
                drop(stream);
                continue;
            };
            if self.refusing && !state.reserve {
                self.refusing = false;
                tracing::info!("client connections below the cap again");
            }
            if let Err(err) = stream.set_nodelay(true) {
                tracing::warn!(%err, "cannot turn Nagle's algorithm off on a client connection");
            }
            return ClientIo {
                stream,
                state,
                connections: Arc::downgrade(&self.connections.inner),
            };
        }
    }
}

/// A served client connection: the socket itself, or TLS over it.
pub struct ClientStream(
    tokio_util::either::Either<ClientIo, tokio_rustls::server::TlsStream<ClientIo>>,
);

impl ClientStream {
    fn io(&self) -> &ClientIo {
        match &self.0 {
            tokio_util::either::Either::Left(io) => io,
            tokio_util::either::Either::Right(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for ClientStream {
    type ConnectInfo = ClientConnection;

    fn connect_info(&self) -> ClientConnection {
        ClientConnection(self.io().state.clone())
    }
}

/// The client connections accepted on `listener`, each within the caps and
/// ready to serve: over TLS if `tls` is given (handshakes on tasks of
/// `tracker`, so a slow one holds up no other). With TLS the accept loop
/// ends when the server drops this stream, not on the shutdown token: a
/// stream that ended first would make tonic skip its shutdown signal, and
/// with it the drain of the client streams.
pub fn incoming(
    listener: TcpListener,
    connections: Connections,
    tls: Option<tokio_rustls::TlsAcceptor>,
    tracker: TaskTracker,
) -> Pin<Box<dyn Stream<Item = io::Result<ClientStream>> + Send>> {
    let mut acceptor = Acceptor {
        listener,
        connections,
        backoff: FIRST_BACKOFF,
        refusing: false,
        starved: false,
    };
    let Some(tls) = tls else {
        return Box::pin(futures::stream::unfold(
            acceptor,
            |mut acceptor| async move {
                let io = acceptor.next().await;
                Some((
                    Ok(ClientStream(tokio_util::either::Either::Left(io))),
                    acceptor,
                ))
            },
        ));
    };
    let (ready, served) = tokio::sync::mpsc::channel(64);
    let handshakes = tracker.clone();
    tracker.spawn(async move {
        loop {
            let io = tokio::select! {
                io = acceptor.next() => io,
                // The server stopped taking connections.
                () = ready.closed() => return,
            };
            let (tls, ready) = (tls.clone(), ready.clone());
            handshakes.spawn(async move {
                let peer = io.state.peer;
                let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, tls.accept(io));
                let outcome = tokio::select! {
                    outcome = handshake => outcome,
                    () = ready.closed() => return,
                };
                match outcome {
                    Ok(Ok(stream)) => {
                        let stream = ClientStream(tokio_util::either::Either::Right(stream));
                        let _ = ready.send(Ok(stream)).await;
                    }
                    Ok(Err(err)) => crate::tls::handshake_failed(&err, peer),
                    Err(_) => crate::tls::handshake_failed(&"it took too long", peer),
                }
            });
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(served))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    use tokio::sync::mpsc;

    use super::*;

    /// A listener whose accepted connections arrive on a channel, accepted
    /// as fast as they come (as the server would).
    async fn listen(
        limits: ConnectionLimits,
    ) -> (SocketAddr, Connections, mpsc::UnboundedReceiver<ClientIo>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Connections::new(limits);
        let mut accepted = incoming(listener, connections.clone(), None, TaskTracker::new());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(ClientStream(tokio_util::either::Either::Left(io)))) =
                accepted.next().await
            {
                if tx.send(io).is_err() {
                    return;
                }
            }
        });
        (addr, connections, rx)
    }

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let (addr, _, mut accepted) = listen(ConnectionLimits::default()).await;
        let client = TcpStream::connect(addr).await.unwrap();
        let server_side = accepted.recv().await.unwrap();
        assert!(
            server_side.stream.nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
        assert_eq!(server_side.state.peer, client.local_addr().unwrap());
    }

    /// Reads until the peer closes (or resets) the connection.
    async fn closed_by_server(stream: &mut TcpStream) -> bool {
        let mut byte = [0u8; 1];
        matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
    }

    #[tokio::test]
    async fn past_the_cap_a_reserve_serves_health_then_connections_are_closed() {
        let limits = ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        };
        let (addr, connections, mut accepted) = listen(limits).await;
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..2 + HEALTH_RESERVE {
            clients.push(TcpStream::connect(addr).await.unwrap());
            held.push(accepted.recv().await.unwrap());
        }
        assert_eq!(
            held.iter().filter(|c| c.state.reserve).count(),
            HEALTH_RESERVE
        );
        // One more: accepted and closed at once.
        let mut refused = TcpStream::connect(addr).await.unwrap();
        assert!(closed_by_server(&mut refused).await);
        assert_eq!(connections.len(), 2 + HEALTH_RESERVE);
        // A reserve slot frees up: the next connection takes it.
        drop(held.pop());
        let _probe = TcpStream::connect(addr).await.unwrap();
        assert!(accepted.recv().await.unwrap().state.reserve);
    }

    #[tokio::test]
    async fn one_address_holds_at_most_its_share() {
        let limits = ConnectionLimits {
            max_connections: 100,
            max_per_address: 3,
            ..ConnectionLimits::default()
        };
        let (addr, _, mut accepted) = listen(limits).await;
        let mut clients = Vec::new();
        let mut held = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            held.push(accepted.recv().await.unwrap());
        }
        let kinds: Vec<bool> = held.iter().map(|c| c.state.reserve).collect();
        assert_eq!(
            kinds,
            [false, false, false, true],
            "the fourth only for health"
        );
    }

    #[tokio::test]
    async fn idle_connections_are_closed_and_active_ones_kept() {
        let limits = ConnectionLimits {
            idle_timeout: Duration::from_millis(100),
            ..ConnectionLimits::default()
        };
        let (addr, connections, mut accepted) = listen(limits).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let idle = accepted.recv().await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let busy = accepted.recv().await.unwrap();
        let call = busy.state.authenticated_call();
        let later = Instant::now() + Duration::from_millis(150);
        assert_eq!(connections.sweep_once(later), 1);
        assert!(idle.state.is_closed());
        assert!(
            !busy.state.is_closed(),
            "an open authenticated call keeps it"
        );
        // The closed one's reads fail, so the server drops it.
        let mut idle = idle;
        let mut buf = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut idle, &mut buf).await;
        assert!(read.is_err());
        drop(idle);
        assert!(closed_by_server(&mut a).await);
        drop(call);
        // Its clock starts again when the call ends.
        assert_eq!(connections.sweep_once(Instant::now()), 0);
    }

    #[test]
    fn the_cap_leaves_room_for_the_process_and_the_reserve() {
        assert_eq!(cap_for(20_000, None), 20_000);
        assert_eq!(cap_for(20_000, Some(1_048_576)), 20_000);
        assert_eq!(cap_for(20_000, Some(64)), 64 - 32 - HEALTH_RESERVE);
        assert_eq!(cap_for(20_000, Some(10)), 0);
    }
}
