//! The association console's services: members, facilities and settings. Every call is
//! authorized here; a person who may not act in the association is answered "not found" and
//! the attempt is written to that association's audit log.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::sessions::Viewer;
use crate::types::AssociationId;
use crate::types::PersonId;
use crate::Actor;
use crate::{AppError, AppResult, ErrorCode, Services, Tenant};
use musubi_authz::{Action, Domain, Object};
use musubi_db::accounts::{self as repo, FacilityRow, MemberRow};
use musubi_db::associations::{self as assoc_repo, SettingsRow};
use musubi_db::groups::messages as message_store;
use musubi_db::types::AccountStatus;

/// A role in the association.
pub use musubi_db::types::AssociationRole as MemberRole;

#[derive(Debug, Clone)]
pub struct SettingsInput {
    pub require_second_factor: bool,
    pub session_idle_minutes: i32,
    pub session_absolute_hours: i32,
    pub audit_retention_years: i32,
    /// The groups' default read-receipt mode; `None` keeps the current one.
    pub receipt_mode: Option<crate::groups::ReceiptMode>,
    /// Whether notification mails may name non-patient groups; `None` keeps it.
    pub mail_group_names: Option<bool>,
    /// Minutes a 至急 post waits for an acknowledgement (5–240); `None` keeps it.
    pub urgent_ack_minutes: Option<i32>,
    /// Whether members may exchange messages with other associations; `None` keeps it.
    pub cross_association_messages: Option<bool>,
}

impl SettingsInput {
    fn validate(&self) -> AppResult<()> {
        let check = |field: &'static str, v: i32, lo: i32, hi: i32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(AppError::invalid(
                    field,
                    format!("{field} must be between {lo} and {hi}"),
                ))
            }
        };
        check("sessionIdleMinutes", self.session_idle_minutes, 5, 1440)?;
        check("sessionAbsoluteHours", self.session_absolute_hours, 1, 720)?;
        check("auditRetentionYears", self.audit_retention_years, 1, 30)?;
        if let Some(m) = self.urgent_ack_minutes {
            check("urgentAckMinutes", m, 5, 240)?;
        }
        if i64::from(self.session_idle_minutes) > i64::from(self.session_absolute_hours) * 60 {
            return Err(AppError::invalid(
                "sessionIdleMinutes",
                "the idle timeout cannot be longer than the absolute timeout",
            ));
        }
        Ok(())
    }
}

/// Whether an administrator of `tenant` may act on a person's whole account (sign them out
/// everywhere, reset their second factor), given the person's active memberships oldest first
/// (`MemberRow::active_associations`). Yes when `tenant` is the person's home association (their
/// oldest active membership: the one that registered the account), or when the administrator
/// is also an administrator of every other association the person is active in. Otherwise
/// another association would be overruled for its own member.
pub fn answers_for_account(
    viewer: &Viewer,
    tenant: &Tenant,
    active_associations: &[AssociationId],
) -> bool {
    active_associations.first() == Some(&tenant.id)
        || active_associations
            .iter()
            .all(|a| *a == tenant.id || viewer.is_admin_of(*a))
}

impl Services {
    /// Checks the viewer may do `action` on `object` in `tenant`. If not: audit the attempt in
    /// that association's log and answer exactly like a missing object.
    pub async fn authorize_in(
        &self,
        actor: &Actor<'_>,
        object: Object,
        action: Action,
    ) -> AppResult<()> {
        let domain = Domain::Association(actor.tenant.id.uuid());
        if self
            .authorizer()
            .allows(&actor.viewer.principal, domain, object, action)
        {
            return Ok(());
        }
        let entry = AuditEntry::new(AuditAction::AccessDenied, actor.meta)
            .by(actor.viewer.user.id, actor.viewer.user.name.clone())
            .on(object.as_str(), action.as_str());
        self.record_refusal(actor.tenant, entry).await;
        Err(AppError::not_found())
    }

    pub async fn list_members(&self, actor: &Actor<'_>) -> AppResult<Vec<MemberRow>> {
        self.authorize_in(actor, Object::Members, Action::Read)
            .await?;
        Ok(repo::members_of(self.db().pool(), actor.tenant.id).await?)
    }

    pub async fn list_facilities(&self, actor: &Actor<'_>) -> AppResult<Vec<FacilityRow>> {
        self.authorize_in(actor, Object::Directory, Action::Read)
            .await?;
        Ok(repo::facilities_of(self.db().pool(), actor.tenant.id).await?)
    }

    /// The member `user_id` of `tenant`, or "not found" (also for people of other associations).
    async fn target_member(&self, tenant: &Tenant, user_id: PersonId) -> AppResult<MemberRow> {
        repo::member(self.db().pool(), tenant.id, user_id)
            .await?
            .ok_or_else(AppError::not_found)
    }

    /// Refuses an account-wide action on `target` unless `tenant` answers for the account
    /// ([`answers_for_account`]); the refusal is on record in `tenant`'s log.
    async fn check_account_wide(
        &self,
        viewer: &Viewer,
        tenant: &Tenant,
        target: &MemberRow,
        action: AuditAction,
        client: &RequestMeta,
    ) -> AppResult<()> {
        if answers_for_account(viewer, tenant, &target.active_associations) {
            return Ok(());
        }
        let entry = AuditEntry::new(AuditAction::AccessDenied, client)
            .by(viewer.user.id, viewer.user.name.clone())
            .on("user", target.user_id)
            .with_detail("action", action.as_str())
            .with_detail("reason", "account_wide");
        self.audit_record(tenant, &entry).await?;
        Err(AppError::new(
            ErrorCode::AccountWideActionForbidden,
            "this person also belongs to another association: only their home association \
             can do this to their whole account",
        ))
    }

    /// Writes `entry` to the logs of the person's other associations (the acting one has it
    /// in its own transaction): what one association did to the whole account concerns each
    /// of them. `detail.association` says who did it.
    async fn audit_other_associations(
        &self,
        tenant: &Tenant,
        user_id: PersonId,
        entry: AuditEntry,
    ) -> AppResult<()> {
        let others: Vec<_> = repo::memberships_of(self.db().pool(), user_id)
            .await?
            .into_iter()
            .filter(|m| m.association_id != tenant.id)
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        let entry = entry.with_detail("association", tenant.slug.clone());
        self.audit_person(&others, &entry).await
    }

    /// Ends the membership: nothing the association hosts (its groups, patient groups
    /// included) is open to the person any more, while their group memberships are kept for a
    /// reactivation. Ends every session of the person too, so that open pages and live
    /// updates stop at once; signing in again opens what their other associations host.
    pub async fn deactivate_member(&self, actor: &Actor<'_>, user_id: PersonId) -> AppResult<()> {
        self.authorize_in(actor, Object::Members, Action::Deactivate)
            .await?;
        let target = self.target_member(actor.tenant, user_id).await?;
        if user_id == actor.viewer.user.id {
            return Err(AppError {
                field: Some("userId"),
                ..AppError::new(
                    ErrorCode::CannotDeactivateSelf,
                    "you cannot deactivate yourself",
                )
            });
        }
        let mut c = self.change(actor).await?;
        if target.role == MemberRole::Admin
            && target.status == AccountStatus::Active
            && repo::count_admins(c.conn(), actor.tenant.id).await? <= 1
        {
            return Err(AppError::new(
                ErrorCode::LastAdmin,
                "an association needs at least one administrator",
            ));
        }
        repo::set_membership(
            c.conn(),
            actor.tenant.id,
            user_id,
            None,
            Some(AccountStatus::Deactivated),
        )
        .await?;
        let ended = repo::revoke_all_sessions(c.conn(), user_id).await?;
        let entry = c
            .entry(AuditAction::MemberDeactivate)
            .on("user", user_id)
            .with_detail("sessions_ended", i64::try_from(ended).unwrap_or(i64::MAX));
        c.audit(entry.clone());
        c.commit().await?;
        self.audit_other_associations(actor.tenant, user_id, entry)
            .await
    }

    /// What [`Self::remove_from_all_groups`] would do to a departing member: every group this
    /// association hosts that they belong to, and which of those they alone own (the acting
    /// administrator would take those over). Nothing is changed.
    pub async fn departure_preview(
        &self,
        actor: &Actor<'_>,
        user_id: PersonId,
    ) -> AppResult<Vec<musubi_db::groups::DepartureRow>> {
        self.authorize_in(actor, Object::Members, Action::Deactivate)
            .await?;
        self.target_member(actor.tenant, user_id).await?;
        let mut c = self.change(actor).await?;
        let rows = musubi_db::groups::memberships_in_host(c.conn(), actor.tenant, user_id).await?;
        c.commit().await?;
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }

    /// Takes a departing member out of every group this association hosts, in one change:
    /// memberships, invitations and requests alike, their unread counters with them. A group
    /// they alone own gets the acting administrator as owner, so that none is left without one.
    /// One `group.member_remove` record per group (`detail.reason` = `departure`,
    /// `detail.handed_to` where an administrator took over). Their account and their other
    /// associations' groups stay; deactivating is a separate step. Returns how many groups.
    pub async fn remove_from_all_groups(
        &self,
        actor: &Actor<'_>,
        user_id: PersonId,
    ) -> AppResult<usize> {
        use musubi_db::groups as groups_repo;
        use musubi_db::types::{GroupMemberStatus, GroupRole};
        self.authorize_in(actor, Object::Members, Action::Deactivate)
            .await?;
        self.target_member(actor.tenant, user_id).await?;
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let rows = groups_repo::memberships_in_host(c.conn(), actor.tenant, user_id).await?;
        for (hosted, row) in &rows {
            let handed = row.only_owner && user_id != me;
            if handed {
                groups_repo::upsert_member(
                    c.conn(),
                    hosted,
                    me,
                    GroupRole::Owner,
                    GroupMemberStatus::Active,
                    None,
                )
                .await?;
                groups_repo::set_member_role(c.conn(), hosted, me, GroupRole::Owner).await?;
            }
            groups_repo::remove_member(c.conn(), hosted, user_id).await?;
            c.about_group(&row.name);
            let mut entry = c
                .entry(AuditAction::GroupMemberRemove)
                .on("group", row.group_id)
                .with_detail("user_id", user_id.to_string())
                .with_detail("reason", "departure");
            if handed {
                entry = entry.with_detail("handed_to", me.to_string());
            }
            c.audit(entry);
            c.event(hosted, crate::change::EventSpec::membership(user_id))
                .await?;
            if handed {
                c.event(hosted, crate::change::EventSpec::membership(me))
                    .await?;
            }
        }
        c.commit().await?;
        Ok(rows.len())
    }

    pub async fn reactivate_member(&self, actor: &Actor<'_>, user_id: PersonId) -> AppResult<()> {
        self.authorize_in(actor, Object::Members, Action::Deactivate)
            .await?;
        let target = self.target_member(actor.tenant, user_id).await?;
        let mut c = self.change(actor).await?;
        repo::set_membership(
            c.conn(),
            actor.tenant.id,
            user_id,
            None,
            Some(AccountStatus::Active),
        )
        .await?;
        // Sessions opened while deactivated here never met this association's rules (second
        // factor, timeouts): the next sign-in does.
        let ended = if target.status == AccountStatus::Active {
            0
        } else {
            repo::revoke_all_sessions(c.conn(), user_id).await?
        };
        let entry = c
            .entry(AuditAction::MemberReactivate)
            .on("user", user_id)
            .with_detail("sessions_ended", i64::try_from(ended).unwrap_or(i64::MAX));
        c.audit(entry.clone());
        c.commit().await?;
        if ended > 0 {
            self.audit_other_associations(actor.tenant, user_id, entry)
                .await?;
        }
        Ok(())
    }

    pub async fn change_member_role(
        &self,
        actor: &Actor<'_>,
        user_id: PersonId,
        role: MemberRole,
    ) -> AppResult<()> {
        self.authorize_in(actor, Object::Members, Action::ChangeRole)
            .await?;
        let target = self.target_member(actor.tenant, user_id).await?;
        let mut c = self.change(actor).await?;
        if target.role == MemberRole::Admin
            && role == MemberRole::Member
            && repo::count_admins(c.conn(), actor.tenant.id).await? <= 1
        {
            return Err(AppError::new(
                ErrorCode::LastAdmin,
                "an association needs at least one administrator",
            ));
        }
        repo::set_membership(c.conn(), actor.tenant.id, user_id, Some(role), None).await?;
        let entry = c
            .entry(AuditAction::MemberChangeRole)
            .on("user", user_id)
            .with_detail("role", role.code());
        c.audit(entry);
        c.commit().await
    }

    /// Signs a member out on every device: an account-wide action, for their home
    /// association ([`answers_for_account`]); recorded in each of their associations.
    pub async fn sign_out_member(&self, actor: &Actor<'_>, user_id: PersonId) -> AppResult<u64> {
        self.authorize_in(actor, Object::Members, Action::SignOut)
            .await?;
        let target = self.target_member(actor.tenant, user_id).await?;
        self.check_account_wide(
            actor.viewer,
            actor.tenant,
            &target,
            AuditAction::MemberSignOut,
            actor.meta,
        )
        .await?;
        let mut c = self.change(actor).await?;
        let ended = repo::revoke_all_sessions(c.conn(), user_id).await?;
        let entry = c
            .entry(AuditAction::MemberSignOut)
            .on("user", user_id)
            .with_detail("sessions_ended", i64::try_from(ended).unwrap_or(i64::MAX));
        c.audit(entry.clone());
        c.commit().await?;
        self.audit_other_associations(actor.tenant, user_id, entry)
            .await?;
        Ok(ended)
    }

    /// For a member who lost their phone: removes the second factor and its recovery codes and
    /// ends their sessions; they enrol again at the next sign-in if an association requires it.
    /// An account-wide action, for their home association ([`answers_for_account`]); recorded
    /// in each of their associations.
    pub async fn reset_member_second_factor(
        &self,
        actor: &Actor<'_>,
        user_id: PersonId,
    ) -> AppResult<()> {
        self.authorize_in(actor, Object::Members, Action::ResetSecondFactor)
            .await?;
        let target = self.target_member(actor.tenant, user_id).await?;
        self.check_account_wide(
            actor.viewer,
            actor.tenant,
            &target,
            AuditAction::MemberResetSecondFactor,
            actor.meta,
        )
        .await?;
        let mut c = self.change(actor).await?;
        repo::clear_second_factor(c.conn(), user_id).await?;
        repo::revoke_all_sessions(c.conn(), user_id).await?;
        let entry = c
            .entry(AuditAction::MemberResetSecondFactor)
            .on("user", user_id);
        c.audit(entry.clone());
        c.commit().await?;
        self.audit_other_associations(actor.tenant, user_id, entry)
            .await
    }

    pub async fn association_settings(&self, actor: &Actor<'_>) -> AppResult<SettingsRow> {
        self.authorize_in(actor, Object::Settings, Action::Read)
            .await?;
        let mut c = self.change(actor).await?;
        let mut s = assoc_repo::read_settings(c.conn()).await?;
        s.cross_association_messages =
            message_store::cross_association_allowed(c.conn(), actor.tenant.id).await?;
        c.commit().await?;
        Ok(s)
    }

    pub async fn update_association_settings(
        &self,
        actor: &Actor<'_>,
        input: &SettingsInput,
    ) -> AppResult<SettingsRow> {
        self.authorize_in(actor, Object::Settings, Action::Update)
            .await?;
        input.validate()?;
        let mut c = self.change(actor).await?;
        assoc_repo::write_settings(
            c.conn(),
            input.require_second_factor,
            input.session_idle_minutes,
            input.session_absolute_hours,
            input.audit_retention_years,
            input.receipt_mode,
            input.mail_group_names,
            input.urgent_ack_minutes,
        )
        .await?;
        let entry = c
            .entry(AuditAction::SettingsUpdate)
            .on("association", actor.tenant.id)
            .with_detail("require_second_factor", input.require_second_factor)
            .with_detail(
                "session_idle_minutes",
                i64::from(input.session_idle_minutes),
            )
            .with_detail(
                "session_absolute_hours",
                i64::from(input.session_absolute_hours),
            )
            .with_detail(
                "audit_retention_years",
                i64::from(input.audit_retention_years),
            )
            .with_detail(
                "receipt_mode",
                input
                    .receipt_mode
                    .map_or("unchanged", crate::groups::ReceiptMode::code),
            );
        let entry = match input.mail_group_names {
            Some(v) => entry.with_detail("mail_group_names", v),
            None => entry,
        };
        let entry = match input.urgent_ack_minutes {
            Some(m) => entry.with_detail("urgent_ack_minutes", i64::from(m)),
            None => entry,
        };
        let entry = match input.cross_association_messages {
            Some(v) => {
                message_store::set_cross_association_allowed(c.conn(), actor.tenant.id, v).await?;
                entry.with_detail("cross_association_messages", v)
            }
            None => entry,
        };
        c.audit(entry);
        let mut s = assoc_repo::read_settings(c.conn()).await?;
        s.cross_association_messages =
            message_store::cross_association_allowed(c.conn(), actor.tenant.id).await?;
        c.commit().await?;
        Ok(s)
    }
}
