//! The web page, served on the same port as gRPC for every path that is not
//! a gRPC method. The files are `web/dist`, embedded at compile time, each
//! with its brotli and gzip forms made by the build script.
//!
//! - The form sent is the best the client accepts (brotli, gzip, or as is),
//!   with `Vary: Accept-Encoding` and a strong ETag per form; a request whose
//!   `If-None-Match` names it gets 304 and no body.
//! - Hashed assets (`/assets/…`) are cached for a year as immutable; the page
//!   itself is revalidated on every load (`no-cache`), so a new build is seen
//!   at once and an unchanged one costs a 304.
//! - Every answer carries a Content-Security-Policy that allows only the
//!   page's own scripts, styles and gateway, plus the usual hardening headers.
//! - A gRPC (or gRPC-Web) call that reaches this fallback names a method no
//!   service here has: it is answered UNIMPLEMENTED, as gRPC clients expect.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;

/// One file of the page, as the build script embedded it.
pub struct Asset {
    pub route: &'static str,
    pub kind: &'static str,
    /// Hex of the content's SHA-256 (its first 12 bytes).
    pub etag: &'static str,
    pub raw: &'static [u8],
    pub br: Option<&'static [u8]>,
    pub gzip: Option<&'static [u8]>,
}

mod assets {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

const PLACEHOLDER: &str = "<!doctype html><meta charset=utf-8><title>Switchboard</title>\
<p>Switchboard is running, but this gateway was built without the web client. \
Build it with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>, then rebuild the server.";

/// What the page may load and run: its own scripts and styles, its inline
/// SVG icon, and calls to the gateway that served it. Nothing inline, no
/// frames around it, no forms posted elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

fn find(path: &str) -> Option<&'static Asset> {
    assets::ASSETS.iter().find(|asset| asset.route == path)
}

/// How much the client wants `coding` (its q-value; 0 when it refused it or
/// did not name it or `*`).
fn accepts(headers: &HeaderMap, coding: &str) -> f32 {
    let mut star = 0.0;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if name.eq_ignore_ascii_case(coding) {
                return q;
            }
            if name == "*" {
                star = q;
            }
        }
    }
    star
}

/// The form of `asset` to send: its bytes, the Content-Encoding, the ETag.
fn choose(asset: &Asset, headers: &HeaderMap) -> (&'static [u8], Option<&'static str>, String) {
    let br = asset.br.map(|b| (b, accepts(headers, "br")));
    let gzip = asset.gzip.map(|b| (b, accepts(headers, "gzip")));
    match (br, gzip) {
        (Some((bytes, q)), other) if q > 0.0 && other.is_none_or(|(_, g)| q >= g) => {
            (bytes, Some("br"), format!("\"{}-br\"", asset.etag))
        }
        (_, Some((bytes, q))) if q > 0.0 => (bytes, Some("gzip"), format!("\"{}-gz\"", asset.etag)),
        _ => (asset.raw, None, format!("\"{}\"", asset.etag)),
    }
}

/// Whether `If-None-Match` names `etag` (weakly compared, as RFC 9110 asks).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(header::IF_NONE_MATCH).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == "*" || tag == etag)
        })
    })
}

fn respond(status: StatusCode, body: Body, kind: &'static str, cache: &'static str) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response {
    respond(
        status,
        Body::from(body),
        "text/plain; charset=utf-8",
        REVALIDATE,
    )
}

/// `asset` in the best form the client takes; 304 if it has it already.
fn file(
    method: &Method,
    asset: &'static Asset,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response {
    let (bytes, encoding, etag) = choose(asset, headers);
    let unchanged = not_modified(headers, &etag);
    let (status, body) = if unchanged {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else if method == Method::HEAD {
        (StatusCode::OK, Body::empty())
    } else {
        (StatusCode::OK, Body::from(bytes))
    };
    let mut response = respond(status, body, asset.kind, cache);
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(encoding) = encoding {
        out.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if method == Method::HEAD && !unchanged {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
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
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    }
    let path = uri.path();
    if let Some(asset) = find(path).filter(|_| path != "/index.html") {
        // Vite names assets by content hash: they never change.
        let cache = if path.starts_with("/assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return file(&method, asset, &headers, cache);
    }
    let looks_like_a_file = path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'));
    if looks_like_a_file {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    match find("/index.html") {
        Some(page) => file(&method, page, &headers, REVALIDATE),
        None => respond(
            StatusCode::OK,
            Body::from(PLACEHOLDER),
            "text/html; charset=utf-8",
            REVALIDATE,
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use axum::body::to_bytes;

    use super::*;

    async fn fetch(path: &str, pairs: &[(header::HeaderName, &str)]) -> Response {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        serve(Method::GET, path.parse().unwrap(), headers).await
    }

    async fn body(response: Response) -> Vec<u8> {
        to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    async fn get(path: &str) -> (StatusCode, String, String) {
        let response = fetch(path, &[]).await;
        let status = response.status();
        let kind = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = body(response).await;
        (status, kind, String::from_utf8_lossy(&body).into_owned())
    }

    /// The page's script bundle (web/dist is committed, so there is one).
    fn bundle() -> &'static Asset {
        assets::ASSETS
            .iter()
            .find(|a| a.route.starts_with("/assets/") && a.route.ends_with(".js"))
            .expect("web/dist has a script bundle")
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
        assert!(post.headers().contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[tokio::test]
    async fn the_bundle_goes_out_in_the_best_form_the_client_takes() {
        let asset = bundle();
        let chromium = fetch(
            asset.route,
            &[(header::ACCEPT_ENCODING, "gzip, deflate, br, zstd")],
        )
        .await;
        assert_eq!(chromium.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(chromium.headers()[header::VARY], "accept-encoding");
        assert_eq!(chromium.headers()[header::CACHE_CONTROL], IMMUTABLE);
        let packed = body(chromium).await;
        assert!(
            packed.len() * 3 < asset.raw.len(),
            "{} → {}",
            asset.raw.len(),
            packed.len()
        );
        let mut unpacked = Vec::new();
        brotli::Decompressor::new(&packed[..], 4096)
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, asset.raw);

        let old = fetch(
            asset.route,
            &[(header::ACCEPT_ENCODING, "gzip;q=1, br;q=0")],
        )
        .await;
        assert_eq!(old.headers()[header::CONTENT_ENCODING], "gzip");
        let packed = body(old).await;
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, asset.raw);

        let plain = fetch(asset.route, &[]).await;
        assert!(!plain.headers().contains_key(header::CONTENT_ENCODING));
        assert_eq!(body(plain).await, asset.raw);
        let refused = fetch(asset.route, &[(header::ACCEPT_ENCODING, "*;q=0")]).await;
        assert!(!refused.headers().contains_key(header::CONTENT_ENCODING));
    }

    #[tokio::test]
    async fn a_client_that_has_the_page_gets_not_modified() {
        let first = fetch("/", &[(header::ACCEPT_ENCODING, "br")]).await;
        assert_eq!(first.headers()[header::CACHE_CONTROL], REVALIDATE);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let etag = etag.as_str();
        let again = fetch(
            "/",
            &[
                (header::ACCEPT_ENCODING, "br"),
                (header::IF_NONE_MATCH, etag),
            ],
        )
        .await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], etag);
        assert!(body(again).await.is_empty());
        // Another form is another representation: its tag does not match.
        let gzip = fetch(
            "/",
            &[
                (header::ACCEPT_ENCODING, "gzip"),
                (header::IF_NONE_MATCH, etag),
            ],
        )
        .await;
        assert_eq!(gzip.status(), StatusCode::OK);
        let stale = fetch("/", &[(header::IF_NONE_MATCH, "\"0000\", W/\"1111\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_answer_carries_the_security_headers() {
        for path in ["/", bundle().route, "/assets/nope.js"] {
            let response = fetch(path, &[]).await;
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        }
    }

    #[tokio::test]
    async fn head_gives_the_length_without_the_body() {
        let asset = bundle();
        let response = serve(Method::HEAD, asset.route.parse().unwrap(), HeaderMap::new()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_LENGTH],
            asset.raw.len().to_string().as_str()
        );
        assert!(body(response).await.is_empty());
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
