//! The web page, served on the same port as gRPC for every path that is not
//! a gRPC method. The files are `web/dist`, embedded at compile time.
//! A gRPC (or gRPC-Web) call that reaches this fallback names a method no
//! service here has: it is answered UNIMPLEMENTED, as gRPC clients expect.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>Switchboard</title>\
<p>Switchboard is running, but this gateway was built without the web client. \
Build it with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, then rebuild the server.";

fn find(path: &str) -> Option<(&'static [u8], &'static str)> {
    assets::ASSETS
        .iter()
        .find(|(route, _, _)| *route == path)
        .map(|(_, bytes, kind)| (*bytes, *kind))
}

fn respond(
    status: StatusCode,
    body: &'static [u8],
    kind: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The content type of a gRPC or gRPC-Web request, if this is one.
fn grpc_content_type(headers: &HeaderMap) -> Option<&HeaderValue> {
    headers
        .get(header::CONTENT_TYPE)
        .filter(|kind| kind.as_bytes().starts_with(b"application/grpc"))
}

/// UNIMPLEMENTED for a method no service here has, in the caller's own
/// content type (so gRPC-Web clients read it too).
fn unimplemented(path: &str, kind: &HeaderValue) -> Response {
    let status = tonic::Status::unimplemented(format!(
        "no method {} here",
        switchboard_shared::ids::quote(path)
    ));
    let mut response = status.into_http::<Body>();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, kind.clone());
    response
}

/// Files by path; `/` and unknown paths without an extension get the page
/// itself (the client routes), unknown files a 404. gRPC calls of unknown
/// methods get UNIMPLEMENTED.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(kind) = grpc_content_type(&headers) {
        return unimplemented(uri.path(), kind);
    }
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            b"method not allowed",
            "text/plain; charset=utf-8",
            "no-store",
        );
    }
    let path = uri.path();
    if let Some((body, kind)) = find(path).filter(|_| path != "/index.html") {
        // Vite names assets by content hash: they never change.
        let cache = if path.starts_with("/assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return respond(StatusCode::OK, body, kind, cache);
    }
    let looks_like_a_file = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    if looks_like_a_file {
        return respond(
            StatusCode::NOT_FOUND,
            b"not found",
            "text/plain; charset=utf-8",
            "no-cache",
        );
    }
    match find("/index.html") {
        Some((body, kind)) => respond(StatusCode::OK, body, kind, "no-cache"),
        None => respond(
            StatusCode::OK,
            PLACEHOLDER.as_bytes(),
            "text/html; charset=utf-8",
            "no-cache",
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = serve(Method::GET, path.parse().unwrap(), HeaderMap::new()).await;
        let status = response.status();
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_page_is_served_for_the_root_and_client_routes() {
        for path in ["/", "/conversations/g:gabcd"] {
            let (status, kind, body) = get(path).await;
            assert_eq!(status, StatusCode::OK);
            assert!(kind.starts_with("text/html"));
            assert!(body.contains("Switchboard"), "{body}");
        }
    }

    #[tokio::test]
    async fn missing_files_are_not_found_and_writes_are_refused() {
        assert_eq!(get("/assets/nope.js").await.0, StatusCode::NOT_FOUND);
        let post = serve(Method::POST, "/".parse().unwrap(), HeaderMap::new()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn unknown_grpc_methods_are_unimplemented() {
        for kind in ["application/grpc", "application/grpc-web+proto"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            let response =
                serve(Method::POST, "/nope.v1.Nope/Call".parse().unwrap(), headers).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["grpc-status"], "12");
            assert_eq!(response.headers()[header::CONTENT_TYPE], kind);
        }
    }
}
