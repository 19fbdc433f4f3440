//! `GET /a/{slug}/console/members`: the association's members, each with what an
//! administrator may do to them, and the forms behind those buttons:
//! `POST …/members/{user_id}/make-admin`, `…/make-member`, `…/deactivate`, `…/reactivate`,
//! `…/sign-out` and `…/reset-second-factor`.

use super::{page_error, Console, ConsoleHead, Flash, FlashQuery};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::{Lang, Translator};
use crate::layout::Nav;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use http::{StatusCode, Uri};
use musubi_domain::members::{answers_for_account, MemberRole};
use musubi_domain::types::PersonId;
use musubi_domain::types::{AccountStatus, AssociationRole, DoctorKind, Profession};
use musubi_domain::Services;

/// One member, as the list shows them.
pub(crate) struct MemberCard {
    pub id: String,
    pub name: String,
    pub kana: String,
    pub email: String,
    pub profession: String,
    pub facility: Option<String>,
    pub admin: bool,
    pub active: bool,
    pub second_factor: bool,
    /// The administrator looking at the list: no buttons (they would lock themselves out).
    pub is_self: bool,
    /// Signing out everywhere and resetting the second factor act on the whole account: when
    /// another association answers for it, why those buttons are missing.
    pub account_wide_note: Option<String>,
    pub joined: String,
    /// What each button will do to this person, asked before it is done.
    pub confirm: Confirmations,
}

pub(crate) struct Confirmations {
    pub role: String,
    pub deactivate: String,
    pub reactivate: String,
    pub sign_out: String,
    pub reset: String,
}

#[derive(Template)]
#[template(path = "console/members.html")]
pub(crate) struct MembersPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub members: Vec<MemberCard>,
    pub active_count: usize,
    pub inactive_count: usize,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let rows = services
        .list_members(&c.actor())
        .await
        .map_err(|e| page_error(&ctx, "listing members", e))?;
    let t = Translator::new(ctx.lang);
    let query = FlashQuery::from_uri(&uri);
    let named = query
        .member()
        .and_then(|id| rows.iter().find(|m| m.user_id.uuid() == id))
        .map(|m| m.name.as_str());
    let flash = query.message(t, named);
    let members: Vec<MemberCard> = rows
        .iter()
        .map(|m| {
            let facts = MemberFacts {
                user_id: m.user_id,
                name: &m.name,
                kana: &m.name_kana,
                email: &m.email,
                profession: m.profession,
                doctor_kind: m.doctor_kind,
                facility: m.facility_name.as_deref(),
                role: m.role,
                status: m.status,
                second_factor: m.second_factor_enabled,
                joined_at: m.joined_at,
                account_wide: answers_for_account(&c.viewer, &c.tenant, &m.active_associations),
                home_association: m.home_association.as_deref(),
            };
            card(t, ctx.lang, facts, c.viewer.user().id)
        })
        .collect();
    let active_count = members.iter().filter(|m| m.active).count();
    let path = c.path("members");
    let page = MembersPage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("members"),
        csrf: ctx.csrf.form_token(),
        flash,
        inactive_count: members.len() - active_count,
        active_count,
        members,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// What the list needs of one member (the services' row, field by field).
struct MemberFacts<'r> {
    user_id: PersonId,
    name: &'r str,
    kana: &'r str,
    email: &'r str,
    profession: Profession,
    doctor_kind: Option<DoctorKind>,
    facility: Option<&'r str>,
    role: AssociationRole,
    status: AccountStatus,
    second_factor: bool,
    joined_at: chrono::DateTime<chrono::Utc>,
    /// This association may act on the whole account ([`answers_for_account`]).
    account_wide: bool,
    home_association: Option<&'r str>,
}

fn card(t: Translator, lang: Lang, m: MemberFacts<'_>, viewer: PersonId) -> MemberCard {
    let who = t.format("layout.user_name", m.name);
    let admin = m.role == AssociationRole::Admin;
    let role_key = if admin {
        "console.members.confirm_make_member"
    } else {
        "console.members.confirm_make_admin"
    };
    MemberCard {
        id: m.user_id.to_string(),
        name: m.name.to_owned(),
        kana: m.kana.to_owned(),
        email: m.email.to_owned(),
        profession: super::profession_label(t, m.profession, m.doctor_kind),
        facility: m.facility.map(str::to_owned),
        admin,
        active: m.status == AccountStatus::Active,
        second_factor: m.second_factor,
        is_self: m.user_id == viewer,
        account_wide_note: (!m.account_wide).then(|| {
            t.format(
                "console.members.account_wide_note",
                m.home_association.unwrap_or_default(),
            )
        }),
        joined: datetime::date(lang, m.joined_at),
        confirm: Confirmations {
            role: t.format(role_key, &who),
            deactivate: t.format("console.members.confirm_deactivate", &who),
            reactivate: t.format("console.members.confirm_reactivate", &who),
            sign_out: t.format("console.members.confirm_sign_out", &who),
            reset: t.format("console.members.confirm_reset", &who),
        },
    }
}

#[derive(Debug, Clone, Copy)]
enum MemberAction {
    MakeAdmin,
    MakeMember,
    Deactivate,
    Reactivate,
    SignOut,
    ResetSecondFactor,
}

impl MemberAction {
    /// The `?done=` code of the message that says it worked.
    fn done(self) -> &'static str {
        match self {
            MemberAction::MakeAdmin => "made_admin",
            MemberAction::MakeMember => "made_member",
            MemberAction::Deactivate => "deactivated",
            MemberAction::Reactivate => "reactivated",
            MemberAction::SignOut => "signed_out",
            MemberAction::ResetSecondFactor => "second_factor_reset",
        }
    }
}

async fn act(
    services: Services,
    ctx: Ctx,
    slug: String,
    id: String,
    action: MemberAction,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    // A malformed id is a member nobody has: the services authorize first, then answer
    // "not found" like for any other unknown member.
    let user_id: PersonId = crate::pages::sns::parse_id(&id);
    let actor = c.actor();
    let result = match action {
        MemberAction::MakeAdmin => {
            services
                .change_member_role(&actor, user_id, MemberRole::Admin)
                .await
        }
        MemberAction::MakeMember => {
            services
                .change_member_role(&actor, user_id, MemberRole::Member)
                .await
        }
        MemberAction::Deactivate => services.deactivate_member(&actor, user_id).await,
        MemberAction::Reactivate => services.reactivate_member(&actor, user_id).await,
        MemberAction::SignOut => services
            .sign_out_member(&actor, user_id)
            .await
            .map(|_ended| ()),
        MemberAction::ResetSecondFactor => {
            services.reset_member_second_factor(&actor, user_id).await
        }
    };
    Ok(c.after_action(&ctx, "members", result, action.done(), Some(user_id.uuid())))
}

type MemberPath = Path<(String, String)>;

pub(crate) async fn make_admin(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::MakeAdmin).await
}

pub(crate) async fn make_member(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::MakeMember).await
}

pub(crate) async fn deactivate(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::Deactivate).await
}

pub(crate) async fn reactivate(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::Reactivate).await
}

pub(crate) async fn sign_out(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::SignOut).await
}

pub(crate) async fn reset_second_factor(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    act(services, ctx, slug, id, MemberAction::ResetSecondFactor).await
}
