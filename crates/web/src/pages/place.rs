//! An association from the path: what the SNS pages and the console open first, and the one
//! way they answer a failed service call.

use crate::ctx::Ctx;
use crate::pages::not_found;
use axum::response::Response;
use musubi_domain::audit::RequestMeta;
use musubi_domain::sessions::Viewer;
use musubi_domain::{Actor, AppError, ErrorCode, Services, Tenant};

/// The signed-in person and the association of the path. What they may do there is for the
/// services to say, call by call.
pub(crate) struct Place {
    pub viewer: Viewer,
    pub tenant: Tenant,
    meta: RequestMeta,
}

impl Place {
    /// Signed in (or sent to sign in and brought back), and an association that exists (or the
    /// normal 404 page).
    pub(crate) async fn open(services: &Services, ctx: &Ctx, slug: &str) -> Result<Self, Response> {
        Self::open_or(services, ctx, slug, Ctx::to_sign_in).await
    }

    /// [`Place::open`], answering someone whose session has ended with `signed_out`.
    pub(crate) async fn open_or(
        services: &Services,
        ctx: &Ctx,
        slug: &str,
        signed_out: impl FnOnce(&Ctx) -> Response,
    ) -> Result<Self, Response> {
        let viewer = ctx.require_viewer_or(services, signed_out).await?;
        match services.resolve_tenant(slug).await {
            Ok(tenant) => Ok(Self {
                viewer,
                tenant,
                meta: ctx.client.clone(),
            }),
            Err(e) if e.code == ErrorCode::AssociationNotFound => Err(not_found_page(ctx)),
            Err(e) => Err(ctx.fail("finding the association", e)),
        }
    }

    /// The person's first association (their oldest active membership), for what is their
    /// own rather than an association's (absences, calendar feeds): the services record it in
    /// that association's audit log.
    pub(crate) async fn open_home(services: &Services, ctx: &Ctx) -> Result<Self, Response> {
        let viewer = ctx.require_viewer(services).await?;
        let Some(slug) = viewer.memberships().first().map(|m| m.slug.clone()) else {
            return Err(crate::pages::no_membership::page(ctx, &viewer));
        };
        match services.resolve_tenant(&slug).await {
            Ok(tenant) => Ok(Self {
                viewer,
                tenant,
                meta: ctx.client.clone(),
            }),
            Err(e) => Err(ctx.fail("finding the home association", e)),
        }
    }

    /// This person, in this association, from this request: what the services take.
    pub(crate) fn actor(&self) -> Actor<'_> {
        Actor::new(&self.viewer, &self.tenant, &self.meta)
    }

    pub(crate) fn slug(&self) -> &str {
        &self.tenant.slug
    }
}

/// A failed service call on a page: `NOT_FOUND` is the normal 404 page, anything else the 500
/// page with its code.
pub(crate) fn page_error(ctx: &Ctx, doing: &'static str, e: AppError) -> Response {
    if e.code == ErrorCode::NotFound {
        not_found_page(ctx)
    } else {
        ctx.fail(doing, e)
    }
}

/// Exactly the page an unknown address gets (the fallback's 404, same path shown).
pub(crate) fn not_found_page(ctx: &Ctx) -> Response {
    let path = ctx.path.split('?').next().unwrap_or("/");
    not_found::page(ctx.lang, path)
}
