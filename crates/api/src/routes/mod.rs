//! The HTTP routes, one module per resource: each handler reads the request, calls the
//! domain's use case (`identity_domain::IdentityService`) through [`call`] and writes the
//! answer. The wire types several of them share are in `crate::wire`, the mapping of errors
//! in `crate::error`, the access check in `crate::auth`; how they are mounted, in
//! `crate::startup`, each as an [`Endpoint`].

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Resource, Responder};
use identity_domain::{ContactId, IdentityService, ServiceError};

use crate::error::ApiError;
use crate::run_blocking;

pub(crate) mod admin;
pub(crate) mod contacts;
pub(crate) mod health;
pub(crate) mod identify;
pub(crate) mod links;
pub(crate) mod metrics;
pub(crate) mod unlink;

/// Runs one use case of the service on the blocking pool (`run_blocking` keeps the
/// request's span and deadline); its error answers as `ApiError` maps it.
async fn call<T, F>(service: web::Data<IdentityService>, use_case: F) -> Result<T, ApiError>
where
    F: FnOnce(&IdentityService) -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    Ok(run_blocking(move || use_case(&service)).await??)
}

/// Runs a use case about contact `id` (see [`call`]); 404 when it finds no live contact
/// with this id.
async fn about_contact<T, F>(
    service: web::Data<IdentityService>,
    id: ContactId,
    use_case: F,
) -> Result<T, ApiError>
where
    F: FnOnce(&IdentityService, ContactId) -> Result<Option<T>, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    call(service, move |service| use_case(service, id))
        .await?
        .ok_or(ApiError::ContactNotFound(id.get()))
}

/// A path and the handler of each method it answers. Any other method is answered 405, with
/// an `Allow` header that lists the methods in the order they were given.
pub struct Endpoint {
    resource: Resource,
    allow: Vec<Method>,
}

impl Endpoint {
    pub fn at(path: &str) -> Self {
        Self {
            resource: web::resource(path),
            allow: Vec::new(),
        }
    }

    /// Answers `method` with `handler`.
    pub fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allow.push(method);
        self
    }
}

impl HttpServiceFactory for Endpoint {
    fn register(self, config: &mut AppService) {
        let allow = self
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let refuse = move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        };
        self.resource
            .default_service(web::to(refuse))
            .register(config);
    }
}
