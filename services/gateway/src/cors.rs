//! Calls from pages on other origins (CORS). The page the gateway serves
//! calls its own origin and needs none of this; an app that hosts its own
//! page elsewhere (its site, a CDN) calls the gateway over gRPC-Web from that
//! origin, and the browser lets it only if the gateway says so.
//!
//! - Only the configured origins are allowed (none by default; `*` for any).
//!   Tokens travel in the `authorization` header, never in cookies, so no
//!   credentials mode is needed and `*` cannot leak a session by itself.
//! - A preflight is answered here, before admission: it carries no token.
//! - The request headers a gRPC-Web client sends are allowed, and the
//!   response headers it reads (the status of a trailers-only answer) exposed.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(3600);

/// What a gRPC-Web client sends.
const REQUEST_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "traceparent",
    "tracestate",
];

/// What it reads from the headers (a trailers-only answer's status).
const RESPONSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The origins whose pages may call this gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Only the gateway's own page (no CORS answer at all).
    #[default]
    None,
    /// Any origin (`*`).
    Any,
    /// These, exactly (`https://app.example.com`, scheme and port included).
    List(Vec<HeaderValue>),
}

impl AllowedOrigins {
    /// From a comma-separated list of origins; empty for none, `*` for any.
    /// An origin is `scheme://host[:port]`, as browsers send it: no path, no
    /// trailing slash, no wildcard part.
    pub fn parse(list: &str) -> Result<Self, String> {
        let entries: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::None);
        }
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(Self::Any)
            } else {
                Err(
                    "allowed origins: `*` allows every origin; list origins or give `*` alone"
                        .into(),
                )
            };
        }
        entries
            .into_iter()
            .map(origin)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }

    /// The layer that answers preflights and marks allowed responses; `None`
    /// when no other origin is allowed.
    pub fn layer(&self) -> Option<CorsLayer> {
        let allow = match self {
            Self::None => return None,
            Self::Any => AllowOrigin::any(),
            Self::List(origins) => AllowOrigin::list(origins.iter().cloned()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::POST, Method::GET])
                .allow_headers(REQUEST_HEADERS.map(HeaderName::from_static))
                .expose_headers(RESPONSE_HEADERS.map(HeaderName::from_static))
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

fn origin(text: &str) -> Result<HeaderValue, String> {
    let bad = |why: &str| Err(format!("allowed origins: {text:?} {why}"));
    let Some((scheme, rest)) = text.split_once("://") else {
        return bad("is not an origin (scheme://host[:port], e.g. https://app.example.com)");
    };
    if scheme != "http" && scheme != "https" {
        return bad("has a scheme other than http or https");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '*', '@', ' ']) {
        return bad("must be scheme://host[:port] only: no path, trailing slash, wildcard or user");
    }
    if text.chars().any(|c| c.is_ascii_uppercase()) {
        return bad("has capitals; browsers send origins in lower case");
    }
    HeaderValue::from_str(text).or_else(|_| bad("is not a valid header value"))
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode, header};
    use tower::{Layer as _, ServiceExt as _};

    use super::*;

    #[test]
    fn origins_are_parsed_strictly() {
        assert_eq!(AllowedOrigins::parse("").unwrap(), AllowedOrigins::None);
        assert_eq!(AllowedOrigins::parse(" * ").unwrap(), AllowedOrigins::Any);
        assert_eq!(
            AllowedOrigins::parse("https://app.example.com, http://127.0.0.1:8080").unwrap(),
            AllowedOrigins::List(vec![
                HeaderValue::from_static("https://app.example.com"),
                HeaderValue::from_static("http://127.0.0.1:8080"),
            ])
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://*.example.com",
            "ftp://example.com",
            "https://App.example.com",
            "*, https://a.example",
        ] {
            let err = AllowedOrigins::parse(bad).unwrap_err();
            assert!(err.starts_with("allowed origins:"), "{bad}: {err}");
        }
    }

    async fn call(origins: &AllowedOrigins, request: Request<String>) -> Response<String> {
        let inner = tower::service_fn(|_: Request<String>| async {
            let mut response = Response::new(String::from("called"));
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("0"));
            Ok::<_, std::convert::Infallible>(response)
        });
        let layer = origins.layer().expect("a layer");
        layer.layer(inner).oneshot(request).await.unwrap()
    }

    fn preflight(from: &str, headers: &str) -> Request<String> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/switchboard.v1.ChatService/Send")
            .header(header::ORIGIN, from)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, headers)
            .body(String::new())
            .unwrap()
    }

    #[tokio::test]
    async fn an_allowed_origin_may_call_with_a_token_and_read_the_status() {
        let origins = AllowedOrigins::parse("https://app.example.com").unwrap();
        let answer = call(
            &origins,
            preflight(
                "https://app.example.com",
                "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout",
            ),
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.body(), "", "a preflight never reaches the service");
        let headers = answer.headers();
        assert_eq!(
            headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        for name in REQUEST_HEADERS {
            assert!(allowed.contains(name), "{name} in {allowed}");
        }

        let post = Request::builder()
            .method(Method::POST)
            .uri("/switchboard.v1.ChatService/Send")
            .header(header::ORIGIN, "https://app.example.com")
            .body(String::new())
            .unwrap();
        let answer = call(&origins, post).await;
        assert_eq!(answer.body(), "called");
        let exposed = answer.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .unwrap();
        assert!(exposed.contains("grpc-status") && exposed.contains("grpc-message"));
    }

    #[tokio::test]
    async fn another_origin_gets_no_permission() {
        let origins = AllowedOrigins::parse("https://app.example.com").unwrap();
        let answer = call(
            &origins,
            preflight("https://evil.example.com", "authorization,content-type"),
        )
        .await;
        assert!(
            !answer
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{:?}",
            answer.headers()
        );
        assert_eq!(AllowedOrigins::None.layer().map(|_| ()), None);
    }
}
