//! `GET /a/{slug}/console/members`: the association's members, each with what an
//! administrator may do to them, and the forms behind those buttons:
//! `POST …/members/{user_id}/make-admin`, `…/make-member`, `…/deactivate`, `…/reactivate`,
//! `…/sign-out` and `…/reset-second-factor`; and `GET|POST …/members/{user_id}/departure`,
//! which lists the groups of this association a departing member is in and takes them out of
//! all of them at once.

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
use musubi_db::groups::DepartureRow;
use musubi_domain::members::{answers_for_account, MemberRole};
use musubi_domain::types::PersonId;
use musubi_domain::types::{
    AccountStatus, AssociationRole, DoctorKind, GroupKind, GroupMemberStatus, GroupRole, Profession,
};
use musubi_domain::Services;
use serde::Deserialize;

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
    let flash = departure_flash(t, &uri).or_else(|| query.message(t, named));
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

// --- Departure: out of every group of the association -----------------------------------------

/// One group a departing member is in.
pub(crate) struct DepartureGroup {
    pub name: String,
    pub kind: &'static str,
    pub patient: bool,
    pub role: &'static str,
    pub status: &'static str,
    /// They alone own it: the administrator will (「管理者が引き継ぎます」).
    pub handed_over: bool,
}

#[derive(Template)]
#[template(path = "console/departure.html")]
pub(crate) struct DeparturePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub csrf: &'a str,
    /// 「青木 さくら さん」
    pub who: String,
    pub groups: Vec<DepartureGroup>,
    pub action: String,
}

impl DeparturePage<'_> {
    pub(crate) fn count(&self) -> String {
        self.groups.len().to_string()
    }

    pub(crate) fn any_handed_over(&self) -> bool {
        self.groups.iter().any(|g| g.handed_over)
    }
}

fn departure_group(t: Translator, r: &DepartureRow, by_someone_else: bool) -> DepartureGroup {
    DepartureGroup {
        name: r.name.clone(),
        kind: match r.kind {
            GroupKind::Patient => t.get("sns.kind.patient_group"),
            GroupKind::General => t.get("sns.kind.general_group"),
            GroupKind::Direct => t.get("sns.kind.conversation"),
        },
        patient: r.kind == GroupKind::Patient,
        role: match r.role {
            GroupRole::Owner => t.get("console.departure.role.owner"),
            GroupRole::Member => t.get("console.departure.role.member"),
            GroupRole::Participant => t.get("console.departure.role.participant"),
        },
        status: match r.status {
            GroupMemberStatus::Active => t.get("console.departure.status.active"),
            GroupMemberStatus::Invited => t.get("console.departure.status.invited"),
            GroupMemberStatus::Requested => t.get("console.departure.status.requested"),
        },
        // The services hand a group over only to someone else than the person leaving.
        handed_over: r.only_owner && by_someone_else,
    }
}

pub(crate) async fn show_departure(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let user_id: PersonId = crate::pages::sns::parse_id(&id);
    let actor = c.actor();
    let rows = services
        .departure_preview(&actor, user_id)
        .await
        .map_err(|e| page_error(&ctx, "previewing a departure", e))?;
    let name = services
        .list_members(&actor)
        .await
        .map_err(|e| page_error(&ctx, "listing members", e))?
        .into_iter()
        .find(|m| m.user_id == user_id)
        .map(|m| m.name)
        .unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let by_someone_else = user_id != c.viewer.user().id;
    let path = c.path(&format!("members/{user_id}/departure"));
    let page = DeparturePage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("members"),
        csrf: ctx.csrf.form_token(),
        who: t.format("layout.user_name", &name),
        groups: rows
            .iter()
            .map(|r| departure_group(t, r, by_someone_else))
            .collect(),
        action: path.clone(),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

pub(crate) async fn depart(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): MemberPath,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let user_id: PersonId = crate::pages::sns::parse_id(&id);
    match services.remove_from_all_groups(&c.actor(), user_id).await {
        // A count, not a `done=` of the table: the message says how many groups.
        Ok(n) => Ok(ctx.redirect(&format!(
            "{}?departed={n}&member={user_id}",
            c.path("members")
        ))),
        Err(e) => Ok(c.after_action(&ctx, "members", Err(e), "", Some(user_id.uuid()))),
    }
}

#[derive(Debug, Default, Deserialize)]
struct DepartedQuery {
    departed: Option<String>,
}

/// The most groups a message will claim; a crafted link cannot make it say more.
const MAX_DEPARTED_SHOWN: usize = 100_000;

/// 「N件のグループから外しました」 after a departure.
fn departure_flash(t: Translator, uri: &Uri) -> Option<Flash> {
    let n = axum::extract::Query::<DepartedQuery>::try_from_uri(uri)
        .ok()?
        .0
        .departed?
        .parse::<usize>()
        .ok()
        .filter(|n| *n <= MAX_DEPARTED_SHOWN)?;
    Some(Flash {
        text: if n == 0 {
            t.get("console.departure.done_none").to_owned()
        } else {
            t.format("console.departure.done", &n.to_string())
        },
        success: true,
    })
}

#[cfg(test)]
mod departure_tests {
    use super::*;
    use crate::i18n::Lang;
    use musubi_domain::types::GroupId;

    fn row(name: &str, kind: GroupKind, role: GroupRole, only_owner: bool) -> DepartureRow {
        DepartureRow {
            group_id: GroupId::from(uuid::Uuid::nil()),
            name: name.into(),
            kind,
            role,
            status: GroupMemberStatus::Active,
            only_owner,
        }
    }

    fn page(rows: &[DepartureRow], by_someone_else: bool) -> String {
        let t = Translator::new(Lang::Ja);
        DeparturePage {
            t,
            assets: assets::urls(),
            nav: Nav::hidden(),
            current_path: "/a/minatogawa/console/members/x/departure",
            console: ConsoleHead {
                slug: "minatogawa".into(),
                association: "みなと川医師会".into(),
                section: "members",
            },
            csrf: "TOKEN",
            who: t.format("layout.user_name", "<b>森田</b>"),
            groups: rows
                .iter()
                .map(|r| departure_group(t, r, by_someone_else))
                .collect(),
            action: "/a/minatogawa/console/members/x/departure".into(),
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn the_preview_marks_only_the_groups_the_administrator_takes_over() {
        let rows = [
            row("鈴木さん", GroupKind::Patient, GroupRole::Owner, true),
            row(
                "多職種連携の会",
                GroupKind::General,
                GroupRole::Member,
                false,
            ),
        ];
        let body = page(&rows, true);
        crate::pages::render_tests::assert_csp_clean(&body);
        assert!(body.contains("&#60;b&#62;森田"), "the name is escaped");
        assert!(!body.contains("<b>"));
        assert_eq!(body.matches("data-handover").count(), 1);
        let cards: Vec<&str> = body.split("console-departure\"").skip(1).collect();
        assert_eq!(cards.len(), 2);
        assert!(cards[0].contains("鈴木さん") && cards[0].contains("管理者が引き継ぎます"));
        assert!(cards[1].contains("多職種連携の会") && !cards[1].contains("data-handover"));
        assert!(body.contains("name=\"csrf\" value=\"TOKEN\""));
        assert!(body.contains("2件のグループから外す"));
        // Leaving themselves: nobody takes over (the services hand over to someone else only).
        assert_eq!(page(&rows, false).matches("data-handover").count(), 0);
    }

    #[test]
    fn an_empty_preview_says_there_is_nothing_to_do_and_has_no_button() {
        let body = page(&[], true);
        assert!(body.contains("外すグループはありません。"));
        assert!(!body.contains("method=\"post\" action=\"/a/minatogawa/console/members/x"));
        assert!(!body.contains("button--danger"));
    }

    #[test]
    fn the_message_after_a_departure_says_how_many_groups() {
        let flash = |lang, query: &str| {
            let uri: Uri = format!("/a/x/console/members?{query}")
                .parse()
                .expect("uri");
            departure_flash(Translator::new(lang), &uri).map(|f| f.text)
        };
        assert_eq!(
            flash(Lang::Ja, "departed=3&member=x").as_deref(),
            Some("3件のグループから外しました。")
        );
        assert_eq!(
            flash(Lang::En, "departed=3").as_deref(),
            Some("Removed from 3 groups.")
        );
        assert_eq!(
            flash(Lang::Ja, "departed=0").as_deref(),
            Some("外すグループはありませんでした。")
        );
        for crafted in [
            "departed=many",
            "departed=-1",
            "departed=99999999999",
            "done=x",
        ] {
            assert_eq!(flash(Lang::Ja, crafted), None, "{crafted}");
        }
    }
}
