//! The operator console (SPEC UI-1) at `/console/`: static files from `ui/console/`,
//! embedded in the binary at build time (or read from `console.assets_dir` while
//! developing the console). The console is a client of the public API like any other;
//! this module only serves its files, with a strict Content-Security-Policy (its own
//! scripts, styles and images only; API calls to this origin only; no framing) and
//! revalidated caching (an ETag per file).

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));
}

/// The console's policy: nothing from anywhere else, nothing inline.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file, ready to serve.
struct Asset {
    bytes: &'static [u8],
    etag: HeaderValue,
}

fn etag(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn embedded_assets() -> &'static HashMap<&'static str, Asset> {
    static ASSETS: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        embedded::ASSETS
            .iter()
            .map(|(path, bytes)| {
                (
                    *path,
                    Asset {
                        bytes,
                        etag: etag(bytes),
                    },
                )
            })
            .collect()
    })
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves one file of the console; paths without an extension are the single-page
/// app's routes and get `index.html`.
async fn serve(state: &AppState, path: &str, request: &HeaderMap) -> Response {
    let path = if path.is_empty() || !path.rsplit('/').next().unwrap_or("").contains('.') {
        "index.html"
    } else {
        path
    };
    if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
        return ApiError::not_found("console file").into_response();
    }
    let from_disk;
    let dir = &state.config.console.assets_dir;
    let (bytes, tag): (&[u8], HeaderValue) = match dir.as_os_str().is_empty() {
        false => match std::fs::read(dir.join(path)) {
            Ok(b) => {
                let tag = etag(&b);
                from_disk = b;
                (&from_disk, tag)
            }
            Err(_) => return ApiError::not_found("console file").into_response(),
        },
        true => match embedded_assets().get(path) {
            Some(a) => (a.bytes, a.etag.clone()),
            None => return ApiError::not_found("console file").into_response(),
        },
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Always revalidated: a new binary's console is seen at once, an unchanged file
    // costs a 304.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::ETAG, tag.clone());
    if request.get(header::IF_NONE_MATCH) == Some(&tag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (StatusCode::OK, headers, bytes.to_vec()).into_response()
}

async fn get_index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve(&state, "", &headers).await
}

async fn get_file(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &path, &headers).await
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/ui", get(|| async { Redirect::permanent("/console/") }))
        .route("/ui/", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(get_index))
        .route("/console/{*path}", get(get_file))
}
