//! What resolvers take from the request: the services, who is asking and the association the
//! gateway routed to, each refusal with its stable code. Shared so every resolver refuses the
//! same way.

use crate::{to_gql_error, RequestContext};
use async_graphql::{Context, ID};
use musubi_domain::sessions::Viewer;
use musubi_domain::{AppError, Services, Tenant};
use uuid::Uuid;

/// The services, the request, its signed-in active member and the association it was routed to.
pub(crate) type Routed<'a> = (&'a Services, &'a RequestContext, &'a Viewer, &'a Tenant);

pub(crate) fn routed<'a>(ctx: &Context<'a>) -> async_graphql::Result<Routed<'a>> {
    let services = ctx.data::<Services>()?;
    let rc = ctx.data::<RequestContext>()?;
    let viewer = rc.viewer().map_err(|e| to_gql_error(ctx, e))?;
    let tenant = rc.tenant().map_err(|e| to_gql_error(ctx, e))?;
    Ok((services, rc, viewer, tenant))
}

/// The signed-in active member, whatever the routing.
pub(crate) fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    let rc = ctx.data::<RequestContext>()?;
    rc.viewer().map_err(|e| to_gql_error(ctx, e))
}

/// The services and the signed-in active member.
pub(crate) fn signed_in<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Services, &'a Viewer)> {
    Ok((ctx.data::<Services>()?, viewer(ctx)?))
}

/// An id from the client; one that is not a UUID is simply not found.
pub(crate) fn uuid(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| to_gql_error(ctx, AppError::not_found()))
}
