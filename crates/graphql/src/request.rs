//! What resolvers take from the request: the services, who is asking and the association the
//! gateway routed to, each refusal with its stable code. Shared so every resolver refuses the
//! same way.

use crate::{to_gql_error, RequestContext};
use async_graphql::{Context, ID};
use musubi_domain::sessions::Viewer;
use musubi_domain::{Actor, AppError, Services};
use uuid::Uuid;

/// The services, and the request's signed-in active member acting in the association it was
/// routed to.
pub(crate) type Routed<'a> = (&'a Services, Actor<'a>);

pub(crate) fn routed<'a>(ctx: &Context<'a>) -> async_graphql::Result<Routed<'a>> {
    let services = ctx.data::<Services>()?;
    let rc = ctx.data::<RequestContext>()?;
    let viewer = rc.viewer().gql(ctx)?;
    let tenant = rc.tenant().gql(ctx)?;
    Ok((services, Actor::new(viewer, tenant, &rc.client)))
}

/// The signed-in active member, whatever the routing.
pub(crate) fn viewer<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Viewer> {
    let rc = ctx.data::<RequestContext>()?;
    rc.viewer().gql(ctx)
}

/// The services and the signed-in active member.
pub(crate) fn signed_in<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Services, &'a Viewer)> {
    Ok((ctx.data::<Services>()?, viewer(ctx)?))
}

/// An id from the client; one that is not a UUID is simply not found.
pub(crate) fn uuid<T: From<Uuid>>(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<T> {
    Uuid::parse_str(id)
        .map(T::from)
        .map_err(|_| to_gql_error(ctx, AppError::not_found()))
}

/// The services and the request, signed in or not.
pub(crate) fn parts<'a>(
    ctx: &Context<'a>,
) -> async_graphql::Result<(&'a Services, &'a RequestContext)> {
    Ok((ctx.data::<Services>()?, ctx.data::<RequestContext>()?))
}

/// A service's error as GraphQL's, with its stable code (see [`to_gql_error`]).
pub(crate) trait OrGql<T> {
    fn gql(self, ctx: &Context<'_>) -> async_graphql::Result<T>;
}

impl<T> OrGql<T> for Result<T, AppError> {
    fn gql(self, ctx: &Context<'_>) -> async_graphql::Result<T> {
        self.map_err(|e| to_gql_error(ctx, e))
    }
}
