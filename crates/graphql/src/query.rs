//! The schema's root types.

use crate::auth::{AuthMutation, AuthQuery};
use crate::calendar::{CalendarMutation, CalendarQuery};
use crate::console::{ConsoleMutation, ConsoleQuery};
use crate::files::{FileMutation, FileQuery};
use crate::invitations::{InvitationMutation, InvitationQuery};
use crate::live::Subscription;
use crate::messages::{MessageMutation, MessageQuery};
use crate::notifications::{NotificationMutation, NotificationQuery};
use crate::passkeys::{PasskeyMutation, PasskeyQuery};
use crate::patients::{PatientMutation, PatientQuery};
use crate::request::{parts, OrGql};
use crate::search::SearchQuery;
use crate::sns::{SnsMutation, SnsQuery};
use async_graphql::{Context, MergedObject, Object, Schema, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_config::Config;
use musubi_domain::associations::AssociationCard;
use musubi_domain::Services;

pub type MusubiSchema = Schema<Query, Mutation, Subscription>;

#[derive(MergedObject, Default)]
pub struct Query(
    PublicQuery,
    AuthQuery,
    ConsoleQuery,
    InvitationQuery,
    PasskeyQuery,
    SnsQuery,
    FileQuery,
    PatientQuery,
    SearchQuery,
    CalendarQuery,
    NotificationQuery,
    MessageQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AuthMutation,
    ConsoleMutation,
    InvitationMutation,
    PasskeyMutation,
    SnsMutation,
    FileMutation,
    PatientMutation,
    CalendarMutation,
    NotificationMutation,
    MessageMutation,
);

/// A medical association (医師会): one tenant of the deployment.
#[derive(SimpleObject)]
pub struct Association {
    pub id: ID,
    /// Short name used in URLs and in the `Musubi-Association` header.
    pub slug: String,
    pub name: String,
    /// The district the association serves.
    pub area: String,
    pub description: String,
    pub updated_at: DateTime<Utc>,
}

impl From<AssociationCard> for Association {
    fn from(c: AssociationCard) -> Self {
        Self {
            id: ID(c.id.to_string()),
            slug: c.slug,
            name: c.name,
            area: c.area,
            description: c.description,
            updated_at: c.updated_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct ServerInfo {
    pub version: String,
    /// The newest association schema version this server knows.
    pub tenant_schema_version: i32,
}

#[derive(Default)]
pub struct PublicQuery;

#[Object]
impl PublicQuery {
    /// Every association of this deployment.
    async fn associations(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Association>> {
        let services = ctx.data::<Services>()?;
        let cards = services.association_cards().await.gql(ctx)?;
        Ok(cards.into_iter().map(Association::from).collect())
    }

    /// The association this request is routed to (header `Musubi-Association`).
    async fn association(&self, ctx: &Context<'_>) -> async_graphql::Result<Association> {
        let (services, rc) = parts(ctx)?;
        let tenant = rc.tenant().gql(ctx)?;
        let card = services.association_card(tenant).await.gql(ctx)?;
        Ok(card.into())
    }

    async fn server(&self) -> ServerInfo {
        ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tenant_schema_version: musubi_db_version(),
        }
    }
}

fn musubi_db_version() -> i32 {
    musubi_db::TENANT_VERSION
}

/// The executable schema with this deployment's limits.
pub fn build_schema(config: &Config, services: Services) -> MusubiSchema {
    let mut b = Schema::build(Query::default(), Mutation::default(), Subscription)
        .data(services)
        .limit_depth(config.graphql.max_depth)
        .limit_complexity(config.graphql.max_complexity)
        .limit_recursive_depth(32)
        .limit_directives(20);
    if config.is_production() {
        b = b.disable_introspection().disable_suggestions();
    }
    b.finish()
}

/// The SDL, as checked in at `docs/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .finish()
        .sdl()
}
