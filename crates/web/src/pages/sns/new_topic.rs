//! `GET|POST /a/{slug}/g/{group_id}/new`: a new topic — title, body, 「重要」, and who may see
//! it: everyone in the group, or any combination of co-medical staff, collaborating doctors
//! and hospital doctors (each choice says who in this group it lets in). Photos and files may
//! come with it as with a reply (`attachments`, uploaded by `static/app.js`); then the body may
//! be left empty.

use super::topic::attachment_ids;
use super::{nav, page_error, parse_id, Place, ScopeFields, ScopePicker};
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
use http::StatusCode;
use musubi_domain::groups::{GroupView, Scope};
use musubi_domain::topics::{NewTopic, MAX_COMMENT_CHARS, MAX_TITLE_CHARS};
use musubi_domain::types::GroupId;
use musubi_domain::types::{GroupKind, GroupMemberStatus};
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TopicForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub important: Option<String>,
    #[serde(default)]
    pub scope: String,
    pub co_medical: Option<String>,
    pub collaborating: Option<String>,
    pub hospital: Option<String>,
    /// Uploaded files to attach to the body: their ids, comma-separated.
    pub attachments: Option<String>,
}

impl TopicForm {
    pub(crate) fn scope_fields(&self) -> ScopeFields {
        ScopeFields {
            scope: self.scope.clone(),
            co_medical: self.co_medical.clone(),
            collaborating: self.collaborating.clone(),
            hospital: self.hospital.clone(),
        }
    }
}

#[derive(Default)]
pub(crate) struct TopicErrors {
    pub title: Option<String>,
    pub body: Option<String>,
    /// Shown by the scope picker.
    pub scope: Option<String>,
    /// Shown at the attachments (they have to be chosen again).
    pub attachments: Option<String>,
    pub alert: Option<String>,
}

#[derive(Template)]
#[template(path = "sns/new_topic.html")]
pub(crate) struct NewTopicPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub slug: &'a str,
    pub group_id: String,
    pub group_name: String,
    pub patient: bool,
    pub title: String,
    pub body: String,
    pub important: bool,
    pub picker: ScopePicker,
    pub errors: TopicErrors,
    pub max_title: usize,
    pub max_body: usize,
    /// The key `static/app.js` keeps what is typed under, on this device.
    pub draft: String,
}

/// The members of a group as (scope bit, name), for the scope picker.
pub(crate) fn members_by_class(view: &GroupView) -> Vec<(Scope, &str)> {
    view.members
        .iter()
        .filter(|m| m.status == GroupMemberStatus::Active)
        .map(|m| (m.scope_bit, m.name.as_str()))
        .collect()
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = TopicForm {
        scope: "everyone".into(),
        ..TopicForm::default()
    };
    render(
        &services,
        &ctx,
        &p,
        parse_id(&id),
        StatusCode::OK,
        form,
        TopicErrors::default(),
    )
    .await
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
    status: StatusCode,
    form: TopicForm,
    mut errors: TopicErrors,
) -> Result<Response, Response> {
    let view = services
        .group_view(&p.actor(), group_id)
        .await
        .map_err(|e| page_error(ctx, "opening a group", e))?;
    let t = Translator::new(ctx.lang);
    // "Only some" without any box shows that choice again, nothing ticked.
    let mut picker = ScopePicker::new(form.scope_fields().scope(), &members_by_class(&view), t);
    picker.error = errors.scope.take();
    let total = super::unread_total(services, &p.viewer).await;
    let path = format!("/a/{}/g/{group_id}/new", p.slug());
    let page = NewTopicPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Groups),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        slug: p.slug(),
        group_id: group_id.to_string(),
        draft: format!("{}:topic:{group_id}", p.viewer.user().id),
        group_name: view.group.name.clone(),
        patient: view.group.kind == GroupKind::Patient,
        title: form.title,
        body: form.body,
        important: form.important.is_some(),
        picker,
        errors,
        max_title: MAX_TITLE_CHARS,
        max_body: MAX_COMMENT_CHARS,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn create(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<TopicForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let group_id = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let chosen = form.scope_fields().scope();
    let mut errors = TopicErrors::default();
    if chosen.is_none() {
        errors.scope = Some(t.get("sns.scope.error_none").to_owned());
    }
    if form.title.trim().is_empty() {
        errors.title = Some(t.get("sns.topic_form.error_title").to_owned());
    }
    let files = attachment_ids(form.attachments.as_deref());
    if form.body.trim().is_empty() && files.is_empty() {
        errors.body = Some(t.get("sns.topic_form.error_body").to_owned());
    }
    // A page sent back cannot keep what was uploaded for it: say so next to the buttons.
    if !files.is_empty() {
        errors.attachments = Some(t.get("sns.attach.choose_again").to_owned());
    }
    let Some(scope) = chosen.filter(|_| errors.title.is_none() && errors.body.is_none()) else {
        return render(
            &services,
            &ctx,
            &p,
            group_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            form,
            errors,
        )
        .await;
    };
    let result = services
        .create_topic_with(
            &p.actor(),
            &NewTopic {
                group_id,
                title: &form.title,
                body: &form.body,
                scope,
                important: form.important.is_some(),
            },
            &files,
        )
        .await;
    let e = match result {
        Ok(topic_id) => {
            return Ok(ctx.redirect(&format!(
                "/a/{}/t/{topic_id}?done=posted&sent={group_id}",
                p.slug()
            )))
        }
        Err(e) => e,
    };
    if e.code != ErrorCode::InvalidInput {
        return Err(page_error(&ctx, "posting a topic", e));
    }
    match e.field {
        Some("title") => errors.title = Some(field_message(t, &e, "sns.topic_form.error_title")),
        Some("body") => errors.body = Some(field_message(t, &e, "sns.topic_form.error_body")),
        Some("scope") => errors.scope = Some(t.get("sns.scope.error_none").to_owned()),
        Some("attachments") => {
            errors.attachments = Some(t.get("sns.attach.error_refused").to_owned())
        }
        _ => errors.alert = Some(t.get("sns.error.invalid").to_owned()),
    }
    render(
        &services,
        &ctx,
        &p,
        group_id,
        StatusCode::UNPROCESSABLE_ENTITY,
        form,
        errors,
    )
    .await
}
