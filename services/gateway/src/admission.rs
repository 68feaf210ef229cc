//! What each call may do on its connection, decided once as it arrives
//! (a tower layer around every service the gateway serves):
//!
//! - The bearer token is checked here, once per call; the outcome travels
//!   in the request's extensions ([`Authentication`]) for the handlers.
//! - An authenticated call keeps its connection active until its response
//!   ends (see [`crate::listener`]: a connection with none for the idle
//!   timeout is closed).
//! - A request body must arrive within the body timeout, except a
//!   `SendStream`'s, which is the stream of an authenticated client's sends.
//! - A connection accepted into the health reserve (past the connection
//!   caps) serves health checks only.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use switchboard_shared::metrics::metrics;
use switchboard_shared::token::{Claims, TokenKey};
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::error::GatewayError;
use crate::listener::{CallGuard, ClientConnection};

/// The one call whose request body is a long stream by design.
const SEND_STREAM: &str = "/switchboard.v1.ChatService/SendStream";
/// What a connection in the health reserve may call.
const HEALTH: &str = "/grpc.health.v1.Health/";

/// The outcome of checking a call's bearer token.
#[derive(Clone, Debug)]
pub struct Authentication(pub Result<Claims, GatewayError>);

/// The method called, as the RPC metrics label it: `Service/Method`
/// (`ChatService/Send`), from the request's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcMethod(pub String);

impl RpcMethod {
    fn from_path(path: &str) -> Self {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or((path, ""));
        let service = service.rsplit('.').next().unwrap_or(service);
        Self(format!("{service}/{method}"))
    }
}

#[derive(Clone)]
pub struct AdmissionLayer {
    key: TokenKey,
    body_timeout: Duration,
}

impl AdmissionLayer {
    pub fn new(key: TokenKey, body_timeout: Duration) -> Self {
        Self { key, body_timeout }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission {
            inner,
            key: self.key.clone(),
            body_timeout: self.body_timeout,
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    key: TokenKey,
    body_timeout: Duration,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> Service<Request<Body>> for Admission<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let connection = request.extensions().get::<ClientConnection>().cloned();
        let path = request.uri().path();
        if let Some(ClientConnection(connection)) = &connection
            && connection.reserve
            && !path.starts_with(HEALTH)
        {
            let refusal: Status = GatewayError::ResourceExhausted {
                message: "this gateway is full; connect to another or try again shortly".into(),
                retry_after: Some(Duration::from_secs(1)),
            }
            .into();
            // The connection goes soon after (the sweeper gives reserve
            // connections two seconds): it only had room for a probe.
            return Box::pin(std::future::ready(Ok(refusal.into_http())));
        }
        let authentication = crate::auth::authenticate(&self.key, request.headers());
        let guard = match (&authentication, &connection) {
            (Ok(_), Some(ClientConnection(connection))) => Some(connection.authenticated_call()),
            _ => None,
        };
        if path != SEND_STREAM {
            let timeout = self.body_timeout;
            request = request.map(|body| Body::new(Deadline::new(body, timeout)));
        }
        let method = RpcMethod::from_path(request.uri().path());
        let extensions = request.extensions_mut();
        extensions.insert(Authentication(authentication));
        extensions.insert(method);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(match guard {
                Some(guard) => response.map(|body| {
                    Body::new(Held {
                        body,
                        _guard: guard,
                    })
                }),
                None => response,
            })
        })
    }
}

/// A request body that must end within a deadline.
struct Deadline {
    body: Body,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Deadline {
    fn new(body: Body, timeout: Duration) -> Self {
        Self {
            body,
            timeout,
            sleep: None,
        }
    }
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            if frame.is_none() {
                self.sleep = None;
            }
            return Poll::Ready(frame);
        }
        // Armed at the first wait: a body that is all there costs no timer.
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                metrics().request_bodies_timed_out.inc();
                Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "the request did not arrive within {} ms",
                    timeout.as_millis()
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its connection active until it ends.
struct Held {
    body: Body,
    _guard: CallGuard,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_service_slash_method() {
        assert_eq!(
            RpcMethod::from_path("/switchboard.v1.ChatService/Send").0,
            "ChatService/Send"
        );
        assert_eq!(
            RpcMethod::from_path("/grpc.health.v1.Health/Check").0,
            "Health/Check"
        );
    }
}
