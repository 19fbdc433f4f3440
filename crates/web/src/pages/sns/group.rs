//! `GET /a/{slug}/g/{group_id}`: a group's topics (pinned first, unread badges), its members
//! and, for owners, the tools to run it; a patient group starts with its register entry at a
//! glance. Someone invited (or waiting for approval, or who may
//! ask to join) sees only the group's name and what they can do about it; anyone else gets the
//! 404 page. `GET …/topics` is the topic list alone, for live updates.
//!
//! Owners find people to invite with `GET …?find=<name, kana, facility or profession>` (the
//! directory they may see: the people of their own associations and of the neighbouring ones)
//! and invite one with `POST …/invite`, or a facility's whole team with `…/invite-team`; an e-mail
//! address goes to `POST …/invite-email`, which answers the same whether or not it has an
//! account. A patient group whose register entry has no consent to sharing takes only people
//! of the registrant's facility (by name): the page says how to record the consent.
//!
//! Forms: `POST …/invite`, `…/invite-email`, `…/invite-team`, `…/requests/{user_id}`,
//! `…/members/{user_id}/remove`, `…/members/remove` (several, `user_id` repeated),
//! `…/members/{user_id}/role`, `…/members/{user_id}/until` (last day of access), `…/settings`,
//! `…/read` (mark all read) and `…/leave`.

use super::groups::{GroupErrors, GroupForm};
use super::patients::{group_header, PatientHeader};
use super::{
    after_action, flash, nav, page_error, parse_id, profession, receipt_label, scope_label,
    short_time, Flash, Place,
};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use chrono::Utc;
use http::{StatusCode, Uri};
use musubi_authz::GroupRole;
use musubi_config::time::jst;
use musubi_db::groups::{CandidateRow, FacilityCandidateRow, GroupMemberRow, GroupRow, TopicRow};
use musubi_domain::groups::GroupView;
use musubi_domain::patients::reason::CONSENT_REQUIRED;
use musubi_domain::types::GroupId;
use musubi_domain::types::PersonId;
use musubi_domain::types::{GroupKind, GroupMemberStatus, JoinPolicy, ReceiptMode};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

/// What every part of the group page says about the group.
pub(crate) struct GroupHead {
    pub slug: String,
    pub id: String,
    pub name: String,
    pub description: String,
    pub patient: bool,
    pub association: String,
    pub receipt: &'static str,
    pub owner: bool,
}

pub(crate) struct TopicCard {
    pub href: String,
    pub title: String,
    pub author: String,
    pub time: String,
    pub datetime: String,
    pub pinned: bool,
    pub closed: bool,
    pub unread: i32,
    /// Who may see it, when not everyone.
    pub scope: Option<String>,
    pub replies: i32,
}

/// The topic list, also served alone at `…/topics`.
pub(crate) struct TopicList {
    pub topics: Vec<TopicCard>,
    pub unread: i64,
}

pub(crate) struct MemberCard {
    pub id: String,
    pub name: String,
    pub profession: String,
    /// Their facility in the host association, or their own association.
    pub place: Option<String>,
    pub from_elsewhere: bool,
    pub owner: bool,
    pub is_self: bool,
    pub confirm_remove: String,
    pub confirm_role: String,
    /// 「12月20日まで」 when the membership ends by itself.
    pub until: Option<String>,
    /// The same day as `YYYY-MM-DD`, for the date field.
    pub until_value: String,
}

/// Someone an owner may invite, found by name.
pub(crate) struct CandidateCard {
    pub id: String,
    pub name: String,
    pub kana: String,
    pub profession: String,
    /// Their facility, or their association.
    pub place: String,
    /// Their association, when it is not the group's host (a neighbouring association).
    pub elsewhere: Option<String>,
    /// Already in the group (member, invited or asking to join): nothing to press.
    pub status: Option<&'static str>,
    /// 「〇〇さんを招待する」 for screen readers.
    pub invite_label: String,
}

/// A facility whose whole team may be invited in one step.
pub(crate) struct TeamCard {
    pub id: String,
    pub name: String,
    /// Its association, when it is not the group's host.
    pub elsewhere: Option<String>,
    /// 「3人」
    pub people: String,
    pub confirm: String,
    pub invite_label: String,
}

/// The directory search on the owner's tools.
#[derive(Default)]
pub(crate) struct Finder {
    /// What was searched; `None` before any search.
    pub query: Option<String>,
    pub candidates: Vec<CandidateCard>,
    pub teams: Vec<TeamCard>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "sns/group.html")]
pub(crate) struct GroupPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub group: GroupHead,
    /// A patient group's register entry at a glance.
    pub patient: Option<PatientHeader>,
    pub list: TopicList,
    pub members: Vec<MemberCard>,
    pub invited: Vec<MemberCard>,
    pub requests: Vec<MemberCard>,
    pub finder: Finder,
    pub invite_email: String,
    pub invite_error: Option<String>,
    /// The settings form (owners): what was typed, or the group as it is.
    pub form: GroupForm,
    pub errors: GroupErrors,
    pub settings_open: bool,
    pub receipt_default: &'static str,
    pub general: bool,
    pub choose_kind: bool,
    /// 「本日の当番医」: today's doctors on duty, when the group has a published rotation.
    pub on_call: Vec<super::duty::OnCallCard>,
}

#[derive(Template)]
#[template(path = "sns/topics_fragment.html")]
pub(crate) struct TopicsFragment {
    pub t: Translator,
    pub list: TopicList,
}

/// For someone who is not a member (yet).
#[derive(Template)]
#[template(path = "sns/group_join.html")]
pub(crate) struct JoinPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub slug: &'a str,
    pub id: String,
    pub name: String,
    pub description: String,
    pub patient: bool,
    pub association: &'a str,
    /// `invited`, `requested`, or empty (may ask to join).
    pub status: String,
}

fn group_path(slug: &str, id: GroupId) -> String {
    format!("/a/{slug}/g/{id}")
}

fn topic_list(lang: Lang, slug: &str, view: &GroupView) -> TopicList {
    let t = Translator::new(lang);
    let now = Utc::now();
    TopicList {
        unread: view.unread(),
        topics: view
            .topics
            .iter()
            .map(|r| topic_card(t, lang, slug, r, now))
            .collect(),
    }
}

fn topic_card(
    t: Translator,
    lang: Lang,
    slug: &str,
    r: &TopicRow,
    now: chrono::DateTime<Utc>,
) -> TopicCard {
    TopicCard {
        // Where reading stopped; without a script the browser scrolls there itself.
        href: if r.unread > 0 {
            format!("/a/{slug}/t/{}#unread", r.id)
        } else {
            format!("/a/{slug}/t/{}", r.id)
        },
        title: r.title.clone(),
        author: r.author_name.clone(),
        time: short_time(lang, r.last_comment_at, now),
        datetime: super::machine_time(r.last_comment_at),
        pinned: r.pinned,
        closed: r.closed,
        unread: r.unread,
        scope: scope_label(t, r.scope),
        replies: (r.last_seq - 1).max(0),
    }
}

fn member_card(lang: Lang, m: &GroupMemberRow, me: PersonId) -> MemberCard {
    let t = Translator::new(lang);
    let who = t.format("layout.user_name", &m.name);
    let owner = m.role == GroupRole::Owner;
    // `until` is the first moment without access; people think of the last day with it.
    let last_moment = m.until.map(|u| u - chrono::Duration::seconds(1));
    MemberCard {
        until: last_moment.map(|d| t.format("sns.members.until", &crate::datetime::date(lang, d))),
        until_value: last_moment
            .map(|d| d.with_timezone(&jst()).format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        id: m.user_id.to_string(),
        name: m.name.clone(),
        profession: profession(t, m.profession, m.doctor_kind),
        place: m
            .facility_name
            .clone()
            .or_else(|| m.home_association.clone()),
        from_elsewhere: m.facility_name.is_none() && m.home_association.is_some(),
        owner,
        is_self: m.user_id == me,
        confirm_remove: t.format("sns.members.confirm_remove", &who),
        confirm_role: t.format(
            if owner {
                "sns.members.confirm_make_member"
            } else {
                "sns.members.confirm_make_owner"
            },
            &who,
        ),
    }
}

fn settings_form(g: &GroupRow) -> GroupForm {
    GroupForm {
        kind: g.kind.code().to_owned(),
        name: g.name.clone(),
        description: g.description.clone(),
        accepts_requests: (g.join_policy == JoinPolicy::Request).then(|| "1".to_owned()),
        receipt_mode: g
            .receipt_override
            .map_or("default", ReceiptMode::code)
            .to_owned(),
    }
}

fn candidate_card(t: Translator, c: &CandidateRow, host: &str) -> CandidateCard {
    CandidateCard {
        elsewhere: (c.association_name != host).then(|| c.association_name.clone()),
        id: c.user_id.to_string(),
        name: c.name.clone(),
        kana: c.name_kana.clone(),
        profession: profession(t, c.profession, c.doctor_kind),
        place: c
            .facility_name
            .clone()
            .unwrap_or_else(|| c.association_name.clone()),
        status: c.group_status.map(|s| match s {
            GroupMemberStatus::Active => t.get("sns.owner.candidate_member"),
            GroupMemberStatus::Invited => t.get("sns.owner.candidate_invited"),
            GroupMemberStatus::Requested => t.get("sns.owner.candidate_requested"),
        }),
        invite_label: t.format(
            "sns.owner.invite_person",
            &t.format("layout.user_name", &c.name),
        ),
    }
}

fn team_card(t: Translator, f: &FacilityCandidateRow, host: &str) -> TeamCard {
    let people = t.format("sns.owner.team_people", &f.people.to_string());
    TeamCard {
        id: f.id.to_string(),
        confirm: t
            .format("sns.owner.team_confirm", &f.name)
            .replacen("{}", &people, 1),
        invite_label: t.format("sns.owner.team_invite_label", &f.name),
        name: f.name.clone(),
        elsewhere: (f.association_name != host).then(|| f.association_name.clone()),
        people,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FindQuery {
    find: Option<String>,
}

/// What a re-shown page keeps of the forms that were sent.
#[derive(Default)]
struct Typed {
    /// The directory search, when there was one.
    find: Option<String>,
    find_error: Option<String>,
    invite_email: String,
    invite_error: Option<String>,
    settings: Option<(GroupForm, GroupErrors)>,
    live_after: Option<i64>,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let after = super::live_cursor(&services).await;
    let view = match services.group_view(&p.actor(), group_id).await {
        Ok(v) => v,
        Err(e) if e.code == ErrorCode::NotFound => {
            return join_page(&services, &ctx, &p, group_id, &uri).await
        }
        Err(e) => return Err(ctx.fail("opening a group", e)),
    };
    if view.group.kind == GroupKind::Direct {
        // A conversation is its one topic: links to its group (search, old mails) land there.
        return match view.topics.first() {
            Some(topic) => Ok(ctx.redirect(&format!("/a/{}/t/{}", p.slug(), topic.id))),
            None => Err(crate::pages::place::not_found_page(&ctx)),
        };
    }
    let typed = Typed {
        live_after: after,
        find: Query::<FindQuery>::try_from_uri(&uri)
            .ok()
            .and_then(|q| q.0.find),
        ..Typed::default()
    };
    render(&services, &ctx, &p, StatusCode::OK, view, typed, &uri).await
}

/// Invited, waiting, or free to ask: the group's name and the way in. Anyone else: 404.
async fn join_page(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    uri: &Uri,
) -> Result<Response, Response> {
    let g = services
        .group_invitation(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "reading an invitation", e))?;
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(services, &p.viewer).await;
    let path = group_path(p.slug(), group_id);
    let page = JoinPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Groups),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        flash: flash(t, uri),
        slug: p.slug(),
        id: g.id.to_string(),
        patient: g.kind == GroupKind::Patient,
        name: g.name,
        description: g.description,
        association: &p.tenant.name,
        status: g.my_status.map_or("", GroupMemberStatus::code).to_owned(),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    view: GroupView,
    typed: Typed,
    uri: &Uri,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let me = p.viewer.user().id;
    let owner = view.my_role == Some(GroupRole::Owner);
    let cards = |wanted: GroupMemberStatus| -> Vec<MemberCard> {
        view.members
            .iter()
            .filter(|m| m.status == wanted)
            .map(|m| member_card(ctx.lang, m, me))
            .collect()
    };
    let (members, invited, requests) = (
        cards(GroupMemberStatus::Active),
        cards(GroupMemberStatus::Invited),
        cards(GroupMemberStatus::Requested),
    );
    let settings_open = typed.settings.is_some();
    let (form, errors) = typed
        .settings
        .unwrap_or_else(|| (settings_form(&view.group), GroupErrors::default()));
    let finder = match typed.find {
        Some(q) if owner => {
            let host = p.tenant.name.as_str();
            let found = match services
                .group_invite_candidates(&p.actor(), view.group.id, &q, FIND_LIMIT)
                .await
            {
                // A team is searched by its facility's name: only when something was typed.
                Ok(people) if !q.trim().is_empty() => services
                    .group_facility_candidates(&p.actor(), view.group.id, &q, TEAM_LIMIT)
                    .await
                    .map(|teams| (people, teams)),
                Ok(people) => Ok((people, Vec::new())),
                Err(e) => Err(e),
            };
            match found {
                Ok((rows, teams)) => Finder {
                    query: Some(q),
                    candidates: rows.iter().map(|c| candidate_card(t, c, host)).collect(),
                    teams: teams.iter().map(|f| team_card(t, f, host)).collect(),
                    error: typed.find_error,
                },
                Err(e) if e.code == ErrorCode::InvalidInput => Finder {
                    query: Some(q),
                    error: Some(t.get("sns.owner.invite_find_too_long").to_owned()),
                    ..Finder::default()
                },
                Err(e) => return Err(page_error(ctx, "finding people to invite", e)),
            }
        }
        _ => Finder {
            error: typed.find_error,
            ..Finder::default()
        },
    };
    let patient = if view.group.kind == GroupKind::Patient {
        group_header(services, p, ctx.lang, view.group.id).await
    } else {
        None
    };
    let on_call = if view.group.kind == GroupKind::General && view.my_role.is_some() {
        super::duty::on_call_today(services, p, &view, t).await
    } else {
        Vec::new()
    };
    let total = super::unread_total(services, &p.viewer).await;
    let path = group_path(p.slug(), view.group.id);
    let page = GroupPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Groups).live_after(typed.live_after),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        flash: flash(t, uri),
        list: topic_list(ctx.lang, p.slug(), &view),
        group: GroupHead {
            slug: p.slug().to_owned(),
            id: view.group.id.to_string(),
            name: view.group.name.clone(),
            description: view.group.description.clone(),
            patient: view.group.kind == GroupKind::Patient,
            association: p.tenant.name.clone(),
            receipt: receipt_label(t, view.group.receipt_mode),
            owner,
        },
        patient,
        general: view.group.kind == GroupKind::General,
        members,
        invited,
        requests,
        finder,
        invite_email: typed.invite_email,
        invite_error: typed.invite_error,
        form,
        errors,
        settings_open,
        receipt_default: t.get("sns.receipt.association_default"),
        choose_kind: false,
        on_call,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn topics_fragment(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let view = services
        .group_view(&p.actor(), parse_id(&id))
        .await
        .map_err(|e| page_error(&ctx, "listing topics", e))?;
    let page = TopicsFragment {
        t: Translator::new(ctx.lang),
        list: topic_list(ctx.lang, p.slug(), &view),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// Most people one directory search lists.
const FIND_LIMIT: i64 = 30;
/// Most facilities one directory search lists.
const TEAM_LIMIT: i64 = 5;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    user_id: String,
}

/// Invites someone picked from the directory search.
pub(crate) async fn invite(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<InviteForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let user_id = parse_id(&form.map(|f| f.0.user_id).unwrap_or_default());
    let e = match services
        .invite_to_group(&p.actor(), group_id, user_id)
        .await
    {
        Ok(()) => {
            return Ok(ctx.redirect(&format!("{}?done=invited", group_path(p.slug(), group_id))))
        }
        Err(e) => e,
    };
    let t = Translator::new(ctx.lang);
    let find_error = if e.code == ErrorCode::AlreadyMember {
        t.get("sns.members.error_already")
    } else if needs_consent(&e) {
        t.get("sns.members.error_consent")
    } else {
        return Err(page_error(&ctx, "inviting to a group", e));
    };
    let typed = Typed {
        find_error: Some(find_error.to_owned()),
        ..Typed::default()
    };
    reshow(&services, &ctx, &p, group_id, typed).await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InviteEmailForm {
    #[serde(default)]
    email: String,
}

/// Invites an e-mail address: the same message whether or not it has an account.
pub(crate) async fn invite_email(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<InviteEmailForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let email = form.map(|f| f.0.email).unwrap_or_default();
    let e = match services
        .invite_to_group_by_email(&p.actor(), group_id, &email)
        .await
    {
        Ok(()) => {
            return Ok(ctx.redirect(&format!(
                "{}?done=invited_email",
                group_path(p.slug(), group_id)
            )))
        }
        Err(e) => e,
    };
    if e.code != ErrorCode::InvalidInput {
        return Err(page_error(&ctx, "inviting to a group by e-mail", e));
    }
    let t = Translator::new(ctx.lang);
    let message = if needs_consent(&e) {
        t.get("sns.members.error_consent")
    } else {
        t.get("sns.members.error_email")
    };
    let typed = Typed {
        invite_email: email.trim().to_owned(),
        invite_error: Some(message.to_owned()),
        ..Typed::default()
    };
    reshow(&services, &ctx, &p, group_id, typed).await
}

/// Shown once, right after an owner made an invitation for someone without an account: its
/// link exists only now.
#[derive(Template)]
#[template(path = "sns/group_invited.html")]
pub(crate) struct GroupInvitedPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub group_name: String,
    pub group_href: String,
    pub link: String,
    /// A standalone SVG made by the services from the link (no script, no style).
    pub qr_svg: String,
    pub expires: String,
}

/// `POST …/invite-new`: a link and its QR code for someone who has no account yet.
pub(crate) async fn invite_new(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let made = match services
        .invite_new_person_to_group(&p.actor(), group_id)
        .await
    {
        Ok(made) => made,
        Err(e) if needs_consent(&e) => return consent_refused(&services, &ctx, &p, group_id).await,
        Err(e) => return Err(page_error(&ctx, "inviting someone new to a group", e)),
    };
    let (Some(link), Some(qr_svg)) = (made.created.link, made.created.qr_svg) else {
        return Err(page_error(
            &ctx,
            "inviting someone new to a group",
            AppError::new(
                ErrorCode::Internal,
                "an in-person invitation came without its link",
            ),
        ));
    };
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(&services, &p.viewer).await;
    let group_href = group_path(p.slug(), group_id);
    let page = GroupInvitedPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, &ctx, total, Section::Groups),
        current_path: &group_href,
        group_name: made.group_name,
        group_href: group_href.clone(),
        link,
        qr_svg,
        expires: crate::datetime::date_time(ctx.lang, made.created.invitation.expires_at),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TeamForm {
    #[serde(default)]
    facility_id: String,
}

/// Invites a facility's whole team, found by the directory search.
pub(crate) async fn invite_team(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<TeamForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let facility = form
        .ok()
        .and_then(|f| uuid::Uuid::parse_str(f.0.facility_id.trim()).ok())
        .unwrap_or_default();
    let e = match services
        .invite_facility(&p.actor(), group_id, facility)
        .await
    {
        Ok(_) => {
            return Ok(ctx.redirect(&format!(
                "{}?done=invited_team",
                group_path(p.slug(), group_id)
            )))
        }
        Err(e) => e,
    };
    if !needs_consent(&e) {
        return Err(page_error(&ctx, "inviting a team to a group", e));
    }
    consent_refused(&services, &ctx, &p, group_id).await
}

/// The group page again, saying at the directory that the patient's consent is needed first.
async fn consent_refused(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
) -> Result<Response, Response> {
    let typed = Typed {
        find_error: Some(
            Translator::new(ctx.lang)
                .get("sns.members.error_consent")
                .to_owned(),
        ),
        ..Typed::default()
    };
    reshow(services, ctx, p, group_id, typed).await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UntilForm {
    /// The last day of access (`YYYY-MM-DD`); empty to keep the membership open.
    #[serde(default)]
    until: String,
}

/// Sets or clears the last day of someone's membership. Access ends when that day ends in
/// Japan.
pub(crate) async fn set_until(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, user)): Path<(String, String, String)>,
    form: Result<Form<UntilForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let back = format!("{}#members-title", group_path(p.slug(), group_id));
    let raw = form.map(|f| f.0.until).unwrap_or_default();
    let until = if raw.trim().is_empty() {
        None
    } else {
        match end_of_day(raw.trim()) {
            Some(u) => Some(u),
            None => {
                return Ok(ctx.redirect(&format!(
                    "{}?error=until#members-title",
                    group_path(p.slug(), group_id)
                )))
            }
        }
    };
    let result = services
        .set_group_member_until(&p.actor(), group_id, parse_id(&user), until)
        .await;
    let result = match result {
        // A day already past: say so rather than "check what you typed".
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("until") => {
            return Ok(ctx.redirect(&format!(
                "{}?error=until#members-title",
                group_path(p.slug(), group_id)
            )))
        }
        other => other,
    };
    let done = if until.is_some() {
        "until_set"
    } else {
        "until_cleared"
    };
    Ok(after_action(
        &ctx,
        &back,
        result,
        done,
        "setting a membership end",
    ))
}

/// The moment after the day `YYYY-MM-DD` ends in Japan.
fn end_of_day(day: &str) -> Option<chrono::DateTime<Utc>> {
    let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    let next = date.succ_opt()?.and_hms_opt(0, 0, 0)?;
    next.and_local_timezone(jst())
        .single()
        .map(|d| d.with_timezone(&Utc))
}

/// Removes the people ticked on the owner's list at once (`user_id` repeated): all or
/// nothing.
pub(crate) async fn remove_many(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let back = format!("{}#members-title", group_path(p.slug(), group_id));
    let ids: Vec<PersonId> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "user_id")
        .take(musubi_domain::groups::MAX_BULK_REMOVE + 1)
        .map(|(_, v)| parse_id(&v))
        .collect();
    if ids.is_empty() {
        return Ok(ctx.redirect(&format!(
            "{}?error=none_chosen#members-title",
            group_path(p.slug(), group_id)
        )));
    }
    let result = services
        .remove_group_members(&p.actor(), group_id, &ids)
        .await
        .map(|_| ());
    Ok(after_action(
        &ctx,
        &back,
        result,
        "removed_many",
        "removing members",
    ))
}

/// Whether an invitation was refused because the patient's consent to sharing is not on
/// record (the patient group's register entry has none, and the person may work elsewhere).
fn needs_consent(e: &AppError) -> bool {
    e.code == ErrorCode::InvalidInput
        && (e.reasons.contains(&CONSENT_REQUIRED)
            || e.fields.iter().any(|i| i.reason == CONSENT_REQUIRED))
}

/// The group page again with what was typed, after a refused form.
async fn reshow(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    typed: Typed,
) -> Result<Response, Response> {
    let view = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "opening a group", e))?;
    render(
        services,
        ctx,
        p,
        StatusCode::UNPROCESSABLE_ENTITY,
        view,
        typed,
        &Uri::from_static("/"),
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    answer: String,
}

pub(crate) async fn answer_request(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, user)): Path<(String, String, String)>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let back = group_path(p.slug(), group_id);
    let approve = match form.map(|f| f.0.answer).unwrap_or_default().as_str() {
        "approve" => true,
        "refuse" => false,
        _ => return Ok(ctx.redirect(&format!("{back}?error=invalid"))),
    };
    let result = services
        .answer_join_request(&p.actor(), group_id, parse_id(&user), approve)
        .await;
    let done = if approve { "approved" } else { "refused" };
    Ok(after_action(
        &ctx,
        &back,
        result,
        done,
        "answering a request",
    ))
}

pub(crate) async fn remove_member(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, user)): Path<(String, String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let result = services
        .remove_group_member(&p.actor(), group_id, parse_id(&user))
        .await;
    let back = format!("{}#members-title", group_path(p.slug(), group_id));
    Ok(after_action(
        &ctx,
        &back,
        result,
        "removed",
        "removing a member",
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    role: String,
}

pub(crate) async fn set_role(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, user)): Path<(String, String, String)>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let back = format!("{}#members-title", group_path(p.slug(), group_id));
    let Some(role) = GroupRole::from_code(&form.map(|f| f.0.role).unwrap_or_default()) else {
        return Ok(ctx.redirect(&format!("{}?error=invalid", group_path(p.slug(), group_id))));
    };
    let result = services
        .set_group_role(&p.actor(), group_id, parse_id(&user), role)
        .await;
    Ok(after_action(
        &ctx,
        &back,
        result,
        "role_changed",
        "changing a group role",
    ))
}

pub(crate) async fn settings(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let input = match form.input() {
        Ok(i) => i,
        Err(()) => {
            let errors = GroupErrors {
                receipt_mode: Some(t.get("sns.group_form.error_receipt").to_owned()),
                ..GroupErrors::default()
            };
            let typed = Typed {
                settings: Some((form, errors)),
                ..Typed::default()
            };
            return reshow(&services, &ctx, &p, group_id, typed).await;
        }
    };
    match services
        .update_group(&p.actor(), group_id, &(&input).into())
        .await
    {
        Ok(()) => Ok(ctx.redirect(&format!(
            "{}?done=settings_saved",
            group_path(p.slug(), group_id)
        ))),
        Err(e) => match GroupErrors::from_error(t, &e) {
            Some(errors) => {
                let typed = Typed {
                    settings: Some((form, errors)),
                    ..Typed::default()
                };
                reshow(&services, &ctx, &p, group_id, typed).await
            }
            None => Err(page_error(&ctx, "changing a group", e)),
        },
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BackForm {
    #[serde(default)]
    back: String,
}

pub(crate) async fn mark_read(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<BackForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let result = services
        .mark_group_read(&p.actor(), group_id)
        .await
        .map(|_| ());
    let back = match form.map(|f| f.0.back).unwrap_or_default().as_str() {
        "home" => "/home".to_owned(),
        _ => group_path(p.slug(), group_id),
    };
    Ok(after_action(
        &ctx,
        &back,
        result,
        "marked_read",
        "marking a group read",
    ))
}

pub(crate) async fn leave(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let me = p.viewer.user().id;
    match services.remove_group_member(&p.actor(), group_id, me).await {
        Ok(()) => Ok(ctx.redirect("/groups?done=left")),
        Err(e) => Ok(after_action(
            &ctx,
            &group_path(p.slug(), group_id),
            Err(e),
            "left",
            "leaving a group",
        )),
    }
}
