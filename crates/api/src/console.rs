//! The support console at `/console`: one page, its ES modules (`console/*.js`, one job
//! each, `main.js` first) and its style, compiled into the binary (nothing is fetched at run
//! time, and there is no build step). The page holds no data and needs no key; it
//! asks the operator for one and calls the API with it (`read` to look, `admin` to unlink).

use actix_web::http::{header, Method};
use actix_web::{web, HttpResponse};

use crate::routes::Endpoint;

const PAGE: &str = include_str!("console/index.html");
const STYLE: &str = include_str!("console/console.css");

/// The modules by file name, each compiled in from `console/<name>` and served at
/// `/console/<name>`.
macro_rules! modules {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("console/", $name)))),*]
    };
}

const MODULES: [(&str, &str); 13] = modules![
    "main.js",
    "api.js",
    "customer.js",
    "dom.js",
    "draw.js",
    "layout.js",
    "links.js",
    "model.js",
    "selection.js",
    "state.js",
    "unlink.js",
    "why.js",
    "words.js",
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
        cfg.service(Endpoint::at(&path).on(Method::GET, move || async move {
            asset(content_type, body)
        }));
    }
}
