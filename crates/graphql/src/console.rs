//! The association console through the API: members, facilities, settings. The request's
//! association comes from the `Musubi-Association` header; the services authorize.

use crate::request::{routed, uuid, OrGql};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::members::{answers_for_account, MemberRole as DomainRole, SettingsInput};

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::types::AssociationRole")]
pub enum MemberRole {
    Member,
    Admin,
}

#[derive(SimpleObject)]
pub struct Member {
    pub user_id: ID,
    pub name: String,
    pub name_kana: String,
    pub email: String,
    pub profession: String,
    pub doctor_kind: Option<String>,
    pub role: MemberRole,
    /// `active` or `deactivated`.
    pub status: String,
    pub facility_name: Option<String>,
    pub second_factor_enabled: bool,
    pub joined_at: DateTime<Utc>,
    /// Whether this association may act on the person's whole account (`signOutMember`,
    /// `resetMemberSecondFactor`): it is their home association (their oldest active
    /// membership), or I am an administrator of every association they are active in.
    /// Otherwise those answer `ACCOUNT_WIDE_ACTION_FORBIDDEN`.
    pub account_wide_actions: bool,
    /// The association that answers for the person's account (their oldest active membership).
    pub home_association_name: Option<String>,
}

#[derive(SimpleObject)]
pub struct Facility {
    pub id: ID,
    pub name: String,
    /// `clinic`, `hospital`, `visiting_nurse_station`, `care_management_office`, `pharmacy`,
    /// `care_facility` or `other`.
    pub kind: String,
}

#[derive(SimpleObject)]
pub struct AssociationSettings {
    pub require_second_factor: bool,
    pub session_idle_minutes: i32,
    pub session_absolute_hours: i32,
    pub audit_retention_years: i32,
    /// The read-receipt mode of groups that do not choose their own.
    pub receipt_mode: crate::sns::ReceiptMode,
    /// Whether notification mails may name the association's groups (never patient groups).
    pub mail_group_names: bool,
    /// Minutes a 至急 post waits for an acknowledgement before its people are asked again
    /// (twice that, and the doctor on duty is asked).
    pub urgent_ack_minutes: i32,
    /// Whether members may exchange direct messages with people of other associations.
    pub cross_association_messages: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct AssociationSettingsInput {
    pub require_second_factor: bool,
    pub session_idle_minutes: i32,
    pub session_absolute_hours: i32,
    pub audit_retention_years: i32,
    /// The groups' default read-receipt mode; omitted keeps the current one.
    pub receipt_mode: Option<crate::sns::ReceiptMode>,
    /// Omitted keeps the current one.
    pub mail_group_names: Option<bool>,
    /// 5–240; omitted keeps the current one.
    pub urgent_ack_minutes: Option<i32>,
    /// Whether members may exchange direct messages with people of other associations;
    /// omitted keeps the current one.
    pub cross_association_messages: Option<bool>,
}

impl From<musubi_db::associations::SettingsRow> for AssociationSettings {
    fn from(s: musubi_db::associations::SettingsRow) -> Self {
        Self {
            require_second_factor: s.require_second_factor,
            session_idle_minutes: s.session_idle_minutes,
            session_absolute_hours: s.session_absolute_hours,
            audit_retention_years: s.audit_retention_years,
            receipt_mode: s.receipt_mode.into(),
            mail_group_names: s.mail_group_names,
            urgent_ack_minutes: s.urgent_ack_minutes,
            cross_association_messages: s.cross_association_messages,
            updated_at: s.updated_at,
        }
    }
}

#[derive(InputObject, Default)]
pub struct AuditFilterInput {
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub actor_id: Option<ID>,
    /// Whole dotted segments: `auth` matches `auth.sign_in` and `auth.sign_out`.
    pub action: Option<String>,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// Records about one group: the group itself, or anything in it.
    pub group_id: Option<ID>,
}

/// One record of the association's audit log.
#[derive(SimpleObject)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<ID>,
    pub actor_label: String,
    pub action: String,
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    pub ip: String,
    pub user_agent: String,
    pub detail: async_graphql::Json<serde_json::Value>,
}

#[derive(SimpleObject)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `before` to get the next (older) page; null on the last page.
    pub next_before: Option<i64>,
}

#[derive(Default)]
pub struct ConsoleQuery;

#[Object]
impl ConsoleQuery {
    /// What `removeFromAllGroups` would do to a departing member (administrators): every
    /// group this association hosts they belong to, and which they alone own. Changes nothing.
    async fn departure_preview(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<Vec<DepartureGroup>> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        let rows = services.departure_preview(&actor, id).await.gql(ctx)?;
        Ok(rows
            .into_iter()
            .map(|r| DepartureGroup {
                group_id: ID(r.group_id.to_string()),
                name: r.name,
                kind: r.kind.into(),
                role: r.role.into(),
                status: r.status.into(),
                only_owner: r.only_owner,
            })
            .collect())
    }

    /// Members of the routed association (administrators only).
    async fn members(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Member>> {
        let (services, actor) = routed(ctx)?;
        let rows = services.list_members(&actor).await.gql(ctx)?;
        Ok(rows
            .into_iter()
            .map(|m| Member {
                account_wide_actions: answers_for_account(
                    actor.viewer(),
                    actor.tenant(),
                    &m.active_associations,
                ),
                home_association_name: m.home_association,
                user_id: ID(m.user_id.to_string()),
                name: m.name,
                name_kana: m.name_kana,
                email: m.email,
                profession: m.profession.code().to_owned(),
                doctor_kind: m.doctor_kind.map(|k| k.code().to_owned()),
                role: m.role.into(),
                status: m.status.code().to_owned(),
                facility_name: m.facility_name,
                second_factor_enabled: m.second_factor_enabled,
                joined_at: m.joined_at,
            })
            .collect())
    }

    /// Facilities (事業所) of the routed association (its members).
    async fn facilities(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Facility>> {
        let (services, actor) = routed(ctx)?;
        let rows = services.list_facilities(&actor).await.gql(ctx)?;
        Ok(rows
            .into_iter()
            .map(|f| Facility {
                id: ID(f.id.to_string()),
                name: f.name,
                kind: f.kind.code().to_owned(),
            })
            .collect())
    }

    /// The routed association's audit log, newest first (administrators only).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilterInput>,
        before: Option<i64>,
        #[graphql(validator(minimum = 1, maximum = 200))] limit: Option<u32>,
    ) -> async_graphql::Result<AuditPage> {
        let (services, actor) = routed(ctx)?;
        let f = filter.unwrap_or_default();
        let actor_id = match f.actor_id {
            Some(id) => Some(uuid(ctx, &id)?),
            None => None,
        };
        let filter = musubi_db::audit::AuditFilter {
            from: f.from,
            until: f.until,
            actor_id,
            action_prefix: f.action,
            object_type: f.object_type,
            object_id: f.object_id,
            group_id: match f.group_id {
                Some(id) => Some(uuid::<musubi_domain::types::GroupId>(ctx, &id)?.to_string()),
                None => None,
            },
        };
        let page = services
            .audit_list(&actor, &filter, before, limit)
            .await
            .gql(ctx)?;
        Ok(AuditPage {
            next_before: page.next_before,
            records: page
                .records
                .into_iter()
                .map(|r| AuditRecord {
                    seq: r.seq,
                    at: r.at,
                    actor_id: r.actor_id.map(|a| ID(a.to_string())),
                    actor_label: r.actor_label,
                    action: r.action,
                    object_type: r.object_type,
                    object_id: r.object_id,
                    ip: r.ip,
                    user_agent: r.user_agent,
                    detail: async_graphql::Json(r.detail),
                })
                .collect(),
        })
    }

    /// Policy of the routed association (administrators only).
    async fn association_settings(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<AssociationSettings> {
        let (services, actor) = routed(ctx)?;
        Ok(services.association_settings(&actor).await.gql(ctx)?.into())
    }
}

#[derive(Default)]
pub struct ConsoleMutation;

/// A group a departing member belongs to (`departurePreview`).
#[derive(SimpleObject)]
pub struct DepartureGroup {
    pub group_id: ID,
    pub name: String,
    pub kind: crate::sns::GroupKind,
    pub role: crate::sns::GroupRole,
    pub status: crate::sns::MembershipStatus,
    /// They alone own it: the administrator who removes them takes it over.
    pub only_owner: bool,
}

#[Object]
impl ConsoleMutation {
    /// Takes a departing member out of every group this association hosts in one step (see
    /// `departurePreview` first): memberships, invitations and requests alike. Groups they
    /// alone own get me as owner. Their account and other associations' groups stay. Returns
    /// how many groups.
    async fn remove_from_all_groups(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        let n = services.remove_from_all_groups(&actor, id).await.gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Ends a person's membership: no group this association hosts (patient groups included)
    /// is open to them any more, and their sessions end at once (signing in again opens what
    /// their other associations host). Their group memberships are kept for a reactivation.
    async fn deactivate_member(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        services.deactivate_member(&actor, id).await.gql(ctx)?;
        Ok(true)
    }

    /// Gives a deactivated person back their membership and their groups here as they were.
    /// Their sessions end: the next sign-in meets this association's rules (second factor,
    /// timeouts).
    async fn reactivate_member(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        services.reactivate_member(&actor, id).await.gql(ctx)?;
        Ok(true)
    }

    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: MemberRole,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        let role = DomainRole::from(role);
        services
            .change_member_role(&actor, id, role)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    /// Signs a member out on every device; returns how many sessions ended. Acts on the whole
    /// account: `ACCOUNT_WIDE_ACTION_FORBIDDEN` unless `Member.accountWideActions`. Recorded
    /// in the audit log of each association the person belongs to.
    async fn sign_out_member(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<i32> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        let n = services.sign_out_member(&actor, id).await.gql(ctx)?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Removes a member's second factor (e.g. a lost phone) and signs them out. Acts on the
    /// whole account: `ACCOUNT_WIDE_ACTION_FORBIDDEN` unless `Member.accountWideActions`.
    /// Recorded in the audit log of each association the person belongs to.
    async fn reset_member_second_factor(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<bool> {
        let (services, actor) = routed(ctx)?;
        let id = uuid(ctx, &user_id)?;
        services
            .reset_member_second_factor(&actor, id)
            .await
            .gql(ctx)?;
        Ok(true)
    }

    async fn update_association_settings(
        &self,
        ctx: &Context<'_>,
        input: AssociationSettingsInput,
    ) -> async_graphql::Result<AssociationSettings> {
        let (services, actor) = routed(ctx)?;
        let input = SettingsInput {
            require_second_factor: input.require_second_factor,
            session_idle_minutes: input.session_idle_minutes,
            session_absolute_hours: input.session_absolute_hours,
            audit_retention_years: input.audit_retention_years,
            receipt_mode: input.receipt_mode.map(Into::into),
            mail_group_names: input.mail_group_names,
            urgent_ack_minutes: input.urgent_ack_minutes,
            cross_association_messages: input.cross_association_messages,
        };
        Ok(services
            .update_association_settings(&actor, &input)
            .await
            .gql(ctx)?
            .into())
    }
}
