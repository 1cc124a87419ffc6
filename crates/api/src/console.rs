//! The support console at `/console`: one page and its script and style, compiled into the
//! binary (nothing is fetched at run time). The page holds no data and needs no key; it
//! asks the operator for one and calls the API with it (`read` to look, `admin` to unlink).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

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

/// Mounts the console's routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/console")
            .route(web::get().to(|| async { asset("text/html; charset=utf-8", PAGE) })),
    )
    .service(
        web::resource("/console/console.js")
            .route(web::get().to(|| async { asset("text/javascript; charset=utf-8", SCRIPT) })),
    )
    .service(
        web::resource("/console/console.css")
            .route(web::get().to(|| async { asset("text/css; charset=utf-8", STYLE) })),
    );
}
