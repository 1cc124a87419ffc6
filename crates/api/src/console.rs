//! The support console at `/console`: one page, its ES modules (`console/*.js`, one job
//! each, `main.js` first) and its style, compiled into the binary (nothing is fetched at run
//! time, and there is no build step). The page holds no data and needs no key; it
//! asks the operator for one and calls the API with it (`read` to look, `admin` to unlink).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::error::ApiError;

const PAGE: &str = include_str!("console/index.html");
const STYLE: &str = include_str!("console/console.css");

/// The modules, by name: each is served at `/console/<name>`.
const MODULES: [(&str, &str); 13] = [
    ("main.js", include_str!("console/main.js")),
    ("api.js", include_str!("console/api.js")),
    ("customer.js", include_str!("console/customer.js")),
    ("dom.js", include_str!("console/dom.js")),
    ("draw.js", include_str!("console/draw.js")),
    ("layout.js", include_str!("console/layout.js")),
    ("links.js", include_str!("console/links.js")),
    ("model.js", include_str!("console/model.js")),
    ("selection.js", include_str!("console/selection.js")),
    ("state.js", include_str!("console/state.js")),
    ("unlink.js", include_str!("console/unlink.js")),
    ("why.js", include_str!("console/why.js")),
    ("words.js", include_str!("console/words.js")),
];

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
    let page = [
        ("/console".to_owned(), "text/html; charset=utf-8", PAGE),
        (
            "/console/console.css".to_owned(),
            "text/css; charset=utf-8",
            STYLE,
        ),
    ];
    let modules = MODULES.map(|(name, body)| {
        (
            format!("/console/{name}"),
            "text/javascript; charset=utf-8",
            body,
        )
    });
    let assets = page.into_iter().chain(modules);
    for (path, content_type, body) in assets {
        cfg.service(
            web::resource(path.as_str())
                .route(web::get().to(move || async move { asset(content_type, body) }))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "GET" })
                })),
        );
    }
}
