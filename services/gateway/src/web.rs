//! The web page, served on the same port as gRPC for every path that is not
//! a gRPC method. The files are `web/dist`, embedded at compile time.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
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

/// Files by path; `/` and unknown paths without an extension get the page
/// itself (the client routes), unknown files a 404.
pub async fn serve(method: Method, uri: Uri) -> Response {
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
        let response = serve(Method::GET, path.parse().unwrap()).await;
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
        let post = serve(Method::POST, "/".parse().unwrap()).await;
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
