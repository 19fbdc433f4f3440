//! `GET /groups`: the person's groups across associations (patient groups first) with unread
//! badges, invitations waiting, a way to create a group in each association, and the general
//! groups that accept requests to join. `GET /groups/list` is the list alone, for live updates.
//!
//! `GET|POST /a/{slug}/groups/new` creates a group; `POST /a/{slug}/g/{id}/join` asks to join
//! one; `POST /a/{slug}/g/{id}/invitation` answers an invitation.

use super::{after_action, flash, nav, page_error, parse_id, Flash, Place};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::pages::field_message;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use http::{StatusCode, Uri};
use musubi_domain::groups::{GroupInput, GroupKind, MyGroup, ReceiptMode};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupMemberStatus, GroupRole};
use musubi_domain::Actor;
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

/// A group in the list.
pub(crate) struct GroupCard {
    pub href: String,
    pub name: String,
    pub association: String,
    pub patient: bool,
    pub unread: i64,
    /// `active`, `invited` or `requested`.
    pub status: String,
    pub owner: bool,
}

/// A general group one may ask to join.
pub(crate) struct OpenGroupCard {
    pub slug: String,
    pub id: String,
    pub name: String,
    pub association: String,
    pub description: String,
    /// Already a member, invited, or waiting for approval.
    pub status: Option<String>,
}

pub(crate) struct AssociationLink {
    pub slug: String,
    pub name: String,
}

/// The list part, also served alone at `/groups/list`.
pub(crate) struct GroupList {
    pub groups: Vec<GroupCard>,
    pub total: i64,
}

#[derive(Template)]
#[template(path = "sns/groups.html")]
pub(crate) struct GroupsPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub flash: Option<Flash>,
    pub list: GroupList,
    pub associations: Vec<AssociationLink>,
    pub open: Vec<OpenGroupCard>,
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "sns/groups_fragment.html")]
pub(crate) struct GroupsFragment {
    pub t: Translator,
    pub list: GroupList,
}

fn cards(groups: Vec<MyGroup>) -> Vec<GroupCard> {
    groups
        .into_iter()
        .map(|g| GroupCard {
            href: format!("/a/{}/g/{}", g.association_slug, g.group.id),
            patient: g.group.kind == GroupKind::Patient,
            owner: g.group.my_role == Some(GroupRole::Owner),
            status: g
                .group
                .my_status
                .map_or("", GroupMemberStatus::code)
                .to_owned(),
            name: g.group.name,
            association: g.association_name,
            unread: g.unread,
        })
        .collect()
}

async fn group_list(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
) -> Result<GroupList, Response> {
    let groups = services
        .my_groups(viewer)
        .await
        .map_err(|e| ctx.fail("listing my groups", e))?;
    let total = groups.iter().map(|g| g.unread).sum();
    Ok(GroupList {
        groups: cards(groups),
        total,
    })
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let after = super::live_cursor(&services).await;
    let list = group_list(&services, &ctx, &viewer).await?;
    let mut open = Vec::new();
    for m in viewer.memberships() {
        let Ok(tenant) = services.resolve_tenant(&m.slug).await else {
            continue; // an association being upgraded: its groups come back afterwards
        };
        let rows = services
            .open_groups(&Actor::new(&viewer, &tenant, &ctx.client))
            .await
            .map_err(|e| ctx.fail("listing open groups", e))?;
        open.extend(rows.into_iter().map(|g| OpenGroupCard {
            slug: m.slug.clone(),
            id: g.id.to_string(),
            name: g.name,
            association: m.association_name.clone(),
            description: g.description,
            status: g.my_status.map(|s| s.code().to_owned()),
        }));
    }
    let associations = viewer
        .memberships()
        .iter()
        .map(|m| AssociationLink {
            slug: m.slug.clone(),
            name: m.association_name.clone(),
        })
        .collect();
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(&services, &viewer).await;
    let page = GroupsPage {
        t,
        assets: assets::urls(),
        nav: nav(&viewer, &ctx, total, Section::Groups).live_after(after),
        current_path: "/groups",
        flash: flash(t, &uri),
        list,
        associations,
        open,
        csrf: ctx.csrf.form_token(),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

pub(crate) async fn fragment(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let list = group_list(&services, &ctx, &viewer).await?;
    let page = GroupsFragment {
        t: Translator::new(ctx.lang),
        list,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// What the new-group form shows: what was typed, or the defaults.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct GroupForm {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub accepts_requests: Option<String>,
    /// `default`, `footprints`, `ack` or `off`.
    #[serde(default)]
    pub receipt_mode: String,
}

impl GroupForm {
    pub(crate) fn receipt(&self) -> Result<Option<ReceiptMode>, ()> {
        match self.receipt_mode.as_str() {
            "" | "default" => Ok(None),
            code => ReceiptMode::from_code(code).map(Some).ok_or(()),
        }
    }

    pub(crate) fn input(&self) -> Result<GroupInput, ()> {
        Ok(GroupInput {
            name: self.name.clone(),
            description: self.description.clone(),
            accepts_requests: self.accepts_requests.is_some()
                && GroupKind::from_code(&self.kind) != Some(GroupKind::Patient),
            receipt_mode: self.receipt()?,
        })
    }
}

/// Messages next to the fields they are about.
#[derive(Default)]
pub(crate) struct GroupErrors {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub receipt_mode: Option<String>,
    pub alert: Option<String>,
}

impl GroupErrors {
    /// A refusal from the services, next to its field.
    pub(crate) fn from_error(t: Translator, e: &AppError) -> Option<Self> {
        if e.code != ErrorCode::InvalidInput {
            return None;
        }
        let mut errors = Self::default();
        match e.field {
            Some("name") => {
                errors.name = Some(field_message(t, e, "sns.group_form.error_name"));
            }
            Some("description") => {
                errors.description = Some(field_message(t, e, "sns.group_form.error_description"));
            }
            _ => errors.alert = Some(t.get("sns.error.invalid").to_owned()),
        }
        Some(errors)
    }
}

#[derive(Template)]
#[template(path = "sns/new_group.html")]
pub(crate) struct NewGroupPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub slug: &'a str,
    pub association: &'a str,
    pub form: GroupForm,
    pub errors: GroupErrors,
    /// The association's default read-receipt mode, in words (for the "default" choice).
    pub receipt_default: &'static str,
    /// The kind is chosen on this form (not when changing a group).
    pub choose_kind: bool,
}

pub(crate) async fn show_new(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    if !p.viewer.is_member_of(p.tenant.id) {
        return Err(crate::pages::place::not_found_page(&ctx));
    }
    let form = GroupForm {
        kind: "patient".into(),
        receipt_mode: "default".into(),
        ..GroupForm::default()
    };
    render_new(
        &services,
        &ctx,
        &p,
        StatusCode::OK,
        form,
        GroupErrors::default(),
    )
    .await
}

async fn render_new(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    form: GroupForm,
    errors: GroupErrors,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(services, &p.viewer).await;
    let path = format!("/a/{}/groups/new", p.slug());
    let page = NewGroupPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Groups),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        slug: p.slug(),
        association: &p.tenant.name,
        form,
        errors,
        receipt_default: t.get("sns.receipt.association_default"),
        choose_kind: true,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn create(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: Result<Form<GroupForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let kind = GroupKind::from_code(&form.kind);
    let input = form.input();
    let (Some(kind), Ok(input)) = (kind, input) else {
        let mut errors = GroupErrors::default();
        if kind.is_none() {
            errors.kind = Some(t.get("sns.group_form.error_kind").to_owned());
        }
        if form.receipt().is_err() {
            errors.receipt_mode = Some(t.get("sns.group_form.error_receipt").to_owned());
        }
        return render_new(
            &services,
            &ctx,
            &p,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            errors,
        )
        .await;
    };
    match services.create_group(&p.actor(), kind, &input).await {
        Ok(id) => Ok(ctx.redirect(&format!("/a/{}/g/{id}?done=group_created", p.slug()))),
        Err(e) => match GroupErrors::from_error(t, &e) {
            Some(errors) => {
                render_new(
                    &services,
                    &ctx,
                    &p,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    form,
                    errors,
                )
                .await
            }
            None => Err(page_error(&ctx, "creating a group", e)),
        },
    }
}

pub(crate) async fn request_to_join(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let result = services.request_to_join(&p.actor(), parse_id(&id)).await;
    Ok(after_action(
        &ctx,
        "/groups",
        result,
        "requested",
        "asking to join",
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct AnswerForm {
    #[serde(default)]
    answer: String,
    #[serde(default)]
    back: String,
}

pub(crate) async fn answer_invitation(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<AnswerForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let accept = match form.answer.as_str() {
        "accept" => true,
        "decline" => false,
        _ => return Ok(ctx.redirect("/home?error=invalid")),
    };
    let group_id = parse_id(&id);
    let result = services
        .answer_group_invitation(&p.actor(), group_id, accept)
        .await;
    // Accepted: straight into the group. Declined: back where the answer was given.
    let to = if accept && result.is_ok() {
        format!("/a/{}/g/{group_id}", p.slug())
    } else if form.back == "home" {
        "/home".to_owned()
    } else {
        "/groups".to_owned()
    };
    let done = if accept { "joined" } else { "declined" };
    Ok(after_action(
        &ctx,
        &to,
        result,
        done,
        "answering an invitation",
    ))
}
