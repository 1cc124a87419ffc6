//! The support console at `/console`: one page and its script and style, compiled into the
//! binary (nothing is fetched at run time). The page holds no data and needs no key; it
//! asks the operator for one and calls the API with it (`read` to look, `admin` to unlink).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// Only this origin's script, style and API; no framing; no inline code (the page has none,
/// so an injected value could never run).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
    base-uri 'none'; form-action 'none'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Served from the binary: a new release must not be masked by a cached copy.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// Mounts the console's routes (GET only; anything else is a 405, as on every route).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let assets: [(&str, &str, &'static str); 3] = [
        ("/console", "text/html; charset=utf-8", PAGE),
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            SCRIPT,
        ),
        ("/console/console.css", "text/css; charset=utf-8", STYLE),
    ];
    for (path, content_type, body) in assets {
        cfg.service(
            web::resource(path)
                .route(web::get().to(move || async move { asset(content_type, body) }))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "GET" })
                })),
        );
    }
}
