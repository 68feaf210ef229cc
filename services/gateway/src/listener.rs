//! Accepting client connections.
//!
//! tonic's own TCP settings (`Server::tcp_nodelay`) apply only to listeners
//! tonic binds itself; a gateway serves a listener it was handed, so every
//! setting an accepted socket needs is made here.

use std::io;

use futures::{Stream, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;

/// The client connections accepted on `listener`, each ready to serve:
/// Nagle's algorithm off, so a small event is written at once instead of
/// waiting for the peer's delayed ACK of the previous one (~40 ms).
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<TcpStream>> {
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(err) = stream.set_nodelay(true) {
            tracing::warn!(%err, "cannot turn Nagle's algorithm off on a client connection");
        }
        Ok(stream)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut accepted = Box::pin(incoming(listener));
        let client = TcpStream::connect(addr).await.unwrap();
        let server_side = accepted.next().await.unwrap().unwrap();
        assert!(
            server_side.nodelay().unwrap(),
            "TCP_NODELAY on the accepted socket"
        );
        assert_eq!(
            server_side.peer_addr().unwrap(),
            client.local_addr().unwrap()
        );
    }
}
