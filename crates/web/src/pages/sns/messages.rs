//! Direct messages. `GET /messages`: the person's conversations in every association, newest
//! first, with the other people's names, the newest message and its author, and what is unread
//! (`GET /messages/list` is that list alone, for `static/live.js`). A conversation itself is
//! the page of its one topic (`topic.rs`), which shows it as a conversation.
//!
//! `GET|POST /a/{slug}/messages/new` starts one, hosted by the association of the path: find
//! people of the directory (`q`), tick one or more, write the first message. The form is one
//! POST form: 「探す」 sends it back with what was typed and ticked (so a second search loses
//! nothing), 「送信する」 sends the message. A refused message is shown again with its text.
//! A conversation of several takes more people at `…/messages/{group_id}/add`;
//! `POST …/messages/{group_id}/leave` leaves one.

use super::{
    after_action, flash, machine_time, nav, page_error, parse_id, profession, short_time, Flash,
    Place,
};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::pages::field_message;
use askama::Template;
use axum::extract::rejection::RawFormRejection;
use axum::extract::{Path, Query, RawForm, State};
use axum::response::Response;
use chrono::Utc;
use http::{StatusCode, Uri};
use musubi_db::groups::CandidateRow;
use musubi_domain::messages::{Conversation, MAX_PARTICIPANTS};
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::MAX_COMMENT_CHARS;
use musubi_domain::types::{GroupId, PersonId};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

/// The list of conversations.
pub(crate) const PATH: &str = "/messages";

/// Most people one search lists.
const FIND_LIMIT: i64 = 30;

/// A conversation in the list.
pub(crate) struct ConversationCard {
    pub href: String,
    /// The other people, 「、」-joined.
    pub names: String,
    pub association: String,
    pub excerpt: String,
    pub author: Option<String>,
    pub time: String,
    pub datetime: String,
    pub unread: i64,
}

/// The list, also served alone at `/messages/list`.
pub(crate) struct ConversationList {
    pub conversations: Vec<ConversationCard>,
    /// For the header's badge when the list is swapped in.
    pub unread_total: i64,
}

#[derive(Template)]
#[template(path = "sns/messages.html")]
pub(crate) struct MessagesPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub flash: Option<Flash>,
    pub list: ConversationList,
    /// 「新しいメッセージ」, hosted by the person's first association.
    pub new_href: Option<String>,
}

#[derive(Template)]
#[template(path = "sns/messages_fragment.html")]
pub(crate) struct MessagesFragment {
    pub t: Translator,
    pub list: ConversationList,
}

/// The other people of a conversation in words (someone alone in it is told so).
pub(crate) fn names_of(t: Translator, others: &[String]) -> String {
    if others.is_empty() {
        t.get("messages.nobody_left").to_owned()
    } else {
        others.join("、")
    }
}

/// Where a conversation is read and answered: its topic.
pub(crate) fn conversation_path(slug: &str, topic_id: impl std::fmt::Display) -> String {
    format!("/a/{slug}/t/{topic_id}")
}

fn card(
    t: Translator,
    lang: Lang,
    c: Conversation,
    now: chrono::DateTime<Utc>,
) -> ConversationCard {
    ConversationCard {
        href: conversation_path(&c.association_slug, c.topic_id),
        names: names_of(t, &c.others),
        association: c.association_name,
        excerpt: c.excerpt,
        author: c.last_author_name,
        time: short_time(lang, c.last_at, now),
        datetime: machine_time(c.last_at),
        unread: c.unread,
    }
}

async fn conversation_list(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
) -> Result<ConversationList, Response> {
    let t = Translator::new(ctx.lang);
    let now = Utc::now();
    let conversations = services
        .conversations(viewer)
        .await
        .map_err(|e| ctx.fail("listing conversations", e))?;
    let total = super::unread_total(services, viewer).await;
    Ok(ConversationList {
        conversations: conversations
            .into_iter()
            .map(|c| card(t, ctx.lang, c, now))
            .collect(),
        unread_total: total,
    })
}

/// `GET /messages`.
pub(crate) async fn list(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let after = super::live_cursor(&services).await;
    let list = conversation_list(&services, &ctx, &viewer).await?;
    let t = Translator::new(ctx.lang);
    let page = MessagesPage {
        t,
        assets: assets::urls(),
        nav: nav(&viewer, &ctx, list.unread_total, Section::Messages).live_after(after),
        current_path: PATH,
        flash: flash(t, &uri),
        new_href: viewer
            .memberships()
            .first()
            .map(|m| format!("/a/{}/messages/new", m.slug)),
        list,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// `GET /messages/list`: the list alone.
pub(crate) async fn fragment(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let list = conversation_list(&services, &ctx, &viewer).await?;
    let page = MessagesFragment {
        t: Translator::new(ctx.lang),
        list,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// Someone to write to, found or ticked.
pub(crate) struct PersonCard {
    pub id: String,
    pub name: String,
    /// 「看護師｜みなと川訪問看護ステーション」 (and the association, when it is another).
    pub about: String,
}

/// Finding and ticking people: the new conversation's and the add page's.
#[derive(Default)]
pub(crate) struct Picker {
    /// What was searched; `None` before any search.
    pub query: Option<String>,
    /// Ticked before, kept across searches.
    pub chosen: Vec<PersonCard>,
    /// The search's results, but those already ticked.
    pub found: Vec<PersonCard>,
    pub query_error: Option<String>,
    pub error: Option<String>,
    /// The catalog section its words come from: `messages` unless another page says.
    pub words: Option<&'static str>,
}

impl Picker {
    /// One of the picker's words (`find_label`, `find_hint`, `people_legend`, `people_hint`),
    /// from the page's own section.
    pub(crate) fn word(&self, t: &Translator, which: &str) -> String {
        let key = format!("{}.{which}", self.words.unwrap_or("messages"));
        t.get(&key).to_owned()
    }
}

fn about(t: Translator, c: &CandidateRow, host: &str) -> String {
    let mut s = profession(t, c.profession, c.doctor_kind);
    if let Some(f) = &c.facility_name {
        s.push('｜');
        s.push_str(f);
    }
    if c.association_name != host || c.facility_name.is_none() {
        s.push('｜');
        s.push_str(&c.association_name);
    }
    s
}

/// The fields of a picker form (and the message, on the new conversation's).
///
/// `who` carries what the page showed of each ticked person (`{id} {words}`), so that they
/// stay listed after another search without looking everyone up again; only `to` is acted on
/// (the services check each id against the directory), `who` is only shown back, escaped.
#[derive(Debug, Default)]
pub(crate) struct PickerForm {
    pub q: String,
    to: Vec<String>,
    who: Vec<String>,
    body: String,
    /// 「探す」 was pressed: show the page again, send nothing.
    pub find: bool,
}

impl PickerForm {
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        // One more than may be chosen: then the services refuse it.
        Self::parse_up_to(bytes, MAX_PARTICIPANTS)
    }

    /// At most `cap` people are read (a page's own limit, plus one for the refusal).
    pub(crate) fn parse_up_to(bytes: &[u8], cap: usize) -> Self {
        let mut form = Self::default();
        for (k, v) in form_urlencoded::parse(bytes) {
            match k.as_ref() {
                "q" => form.q = v.into_owned(),
                "to" if form.to.len() < cap => form.to.push(v.into_owned()),
                "who" if form.who.len() < cap => form.who.push(v.into_owned()),
                "body" => form.body = v.into_owned(),
                "find" => form.find = true,
                _ => {}
            }
        }
        form
    }

    pub(crate) fn people(&self) -> Vec<PersonId> {
        self.to.iter().map(|id| parse_id(id.trim())).collect()
    }

    /// The ticked people as the page showed them.
    pub(crate) fn chosen(&self) -> Vec<PersonCard> {
        let mut out: Vec<PersonCard> = Vec::new();
        for id in &self.to {
            if out.iter().any(|p| &p.id == id) {
                continue;
            }
            let shown = self
                .who
                .iter()
                .filter_map(|w| w.split_once(' '))
                .find(|(wid, _)| wid == id)
                .map(|(_, words)| words);
            let (name, about) = shown
                .and_then(|w| w.split_once('｜'))
                .map_or((shown.unwrap_or_default(), ""), |(n, a)| (n, a));
            out.push(PersonCard {
                id: id.clone(),
                name: name.to_owned(),
                about: about.to_owned(),
            });
        }
        out
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FindQuery {
    q: Option<String>,
}

/// The picker: those ticked, and a search's results (searched only when asked).
pub(crate) async fn picker(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    query: Option<String>,
    chosen: Vec<PersonCard>,
) -> Result<Picker, Response> {
    let t = Translator::new(ctx.lang);
    let Some(q) = query else {
        return Ok(Picker {
            chosen,
            ..Picker::default()
        });
    };
    match services
        .message_candidates(&p.actor(), &q, FIND_LIMIT)
        .await
    {
        Ok(rows) => Ok(Picker {
            query: Some(q),
            found: rows
                .iter()
                .filter(|c| !chosen.iter().any(|p| p.id == c.user_id.to_string()))
                .map(|c| PersonCard {
                    id: c.user_id.to_string(),
                    name: c.name.clone(),
                    about: about(t, c, &p.tenant.name),
                })
                .collect(),
            chosen,
            ..Picker::default()
        }),
        Err(e) if e.code == ErrorCode::InvalidInput => Ok(Picker {
            query: Some(q),
            query_error: Some(t.get("sns.owner.invite_find_too_long").to_owned()),
            chosen,
            ..Picker::default()
        }),
        Err(e) => Err(page_error(ctx, "finding people to write to", e)),
    }
}

/// What went wrong with a new message, said at its field.
#[derive(Default)]
pub(crate) struct NewErrors {
    pub body: Option<String>,
    /// Above the form: the associations' policy refused it.
    pub alert: Option<String>,
}

#[derive(Template)]
#[template(path = "sns/message_new.html")]
pub(crate) struct NewMessagePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub action: String,
    pub association: &'a str,
    pub picker: Picker,
    pub body: String,
    pub errors: NewErrors,
    pub max_body: usize,
    /// The key `static/app.js` keeps what is typed under, on this device.
    pub draft: String,
}

/// The draft of a new message, forgotten once it is sent (see `topic.rs`).
pub(crate) fn new_draft_key(me: PersonId) -> String {
    format!("{me}:message:new")
}

fn new_path(slug: &str) -> String {
    format!("/a/{slug}/messages/new")
}

/// `GET /a/{slug}/messages/new[?q=…]`.
pub(crate) async fn show_new(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    Query(q): Query<FindQuery>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let picker = picker(&services, &ctx, &p, q.q, Vec::new()).await?;
    render_new(
        &services,
        &ctx,
        &p,
        StatusCode::OK,
        picker,
        String::new(),
        NewErrors::default(),
    )
    .await
}

async fn render_new(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    picker: Picker,
    body: String,
    errors: NewErrors,
) -> Result<Response, Response> {
    let total = super::unread_total(services, &p.viewer).await;
    let path = new_path(p.slug());
    let page = NewMessagePage {
        t: Translator::new(ctx.lang),
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Messages),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        action: path.clone(),
        association: &p.tenant.name,
        picker,
        body,
        errors,
        max_body: MAX_COMMENT_CHARS,
        draft: new_draft_key(p.viewer.user().id),
    };
    Ok(ctx.respond(status, &page))
}

/// The words for a refused choice of people.
fn people_error(t: Translator, e: &AppError, chosen: usize) -> Option<String> {
    match e.code {
        ErrorCode::InvalidInput if e.field == Some("people") => Some(if chosen == 0 {
            t.get("messages.error.people").to_owned()
        } else if chosen + 1 > MAX_PARTICIPANTS {
            t.format(
                "messages.error.too_many",
                &(MAX_PARTICIPANTS - 1).to_string(),
            )
        } else {
            t.get("messages.error.pair").to_owned()
        }),
        // Someone outside the directory (or gone from it meanwhile).
        ErrorCode::NotFound => Some(t.get("messages.error.not_found").to_owned()),
        ErrorCode::AlreadyMember => Some(t.get("messages.error.already").to_owned()),
        _ => None,
    }
}

/// `POST /a/{slug}/messages/new`: 「探す」 or 「送信する」.
pub(crate) async fn send(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| PickerForm::parse(&f.0)).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let query = (form.find || !form.q.trim().is_empty()).then(|| form.q.clone());
    if form.find {
        let picker = picker(&services, &ctx, &p, query, form.chosen()).await?;
        return render_new(
            &services,
            &ctx,
            &p,
            StatusCode::OK,
            picker,
            form.body,
            NewErrors::default(),
        )
        .await;
    }
    let people = form.people();
    let e = match services
        .start_conversation(&p.actor(), &people, &form.body, &[])
        .await
    {
        Ok(place) => {
            let done = if place.existing {
                "message_continued"
            } else {
                "message_sent"
            };
            return Ok(ctx.redirect(&format!(
                "{}?done={done}#latest",
                conversation_path(&place.association_slug, place.topic_id)
            )));
        }
        Err(e) => e,
    };
    let mut errors = NewErrors::default();
    let mut people_message = None;
    match e.code {
        ErrorCode::InvalidInput if e.field == Some("body") => {
            errors.body = Some(field_message(t, &e, "messages.error.body"));
        }
        ErrorCode::CrossAssociationMessagesDisabled => {
            errors.alert = Some(t.get("messages.error.cross").to_owned());
        }
        _ => match people_error(t, &e, people.len()) {
            Some(m) => people_message = Some(m),
            None => return Err(page_error(&ctx, "starting a conversation", e)),
        },
    }
    let mut picker = picker(&services, &ctx, &p, query, form.chosen()).await?;
    picker.error = people_message;
    render_new(
        &services,
        &ctx,
        &p,
        StatusCode::UNPROCESSABLE_ENTITY,
        picker,
        form.body,
        errors,
    )
    .await
}

#[derive(Template)]
#[template(path = "sns/message_add.html")]
pub(crate) struct AddPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub action: String,
    /// Back to the conversation.
    pub back: String,
    pub names: String,
    /// A one-to-one conversation stays one: the page says so and offers a new one instead.
    pub pair: bool,
    pub new_href: String,
    pub picker: Picker,
    pub alert: Option<String>,
}

/// The viewer's conversation `group_id` in this association, or the 404 page.
async fn conversation_of(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    group_id: GroupId,
) -> Result<Conversation, Response> {
    services
        .conversations(&p.viewer)
        .await
        .map_err(|e| ctx.fail("listing conversations", e))?
        .into_iter()
        .find(|c| c.group_id == group_id && c.association_slug == p.slug())
        .ok_or_else(|| crate::pages::place::not_found_page(ctx))
}

fn add_path(slug: &str, group_id: GroupId) -> String {
    format!("/a/{slug}/messages/{group_id}/add")
}

async fn render_add(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    c: Conversation,
    picker: Picker,
    alert: Option<String>,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let total = super::unread_total(services, &p.viewer).await;
    let path = add_path(p.slug(), c.group_id);
    let page = AddPage {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, Section::Messages),
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        action: path.clone(),
        back: conversation_path(p.slug(), c.topic_id),
        names: names_of(t, &c.others),
        pair: c.pair,
        new_href: new_path(p.slug()),
        picker,
        alert,
    };
    Ok(ctx.respond(status, &page))
}

/// `GET /a/{slug}/messages/{group_id}/add[?q=…]`.
pub(crate) async fn show_add(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    Query(q): Query<FindQuery>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let c = conversation_of(&services, &ctx, &p, parse_id(&id)).await?;
    let query = q.q.filter(|_| !c.pair);
    let picker = picker(&services, &ctx, &p, query, Vec::new()).await?;
    render_add(&services, &ctx, &p, StatusCode::OK, c, picker, None).await
}

/// `POST /a/{slug}/messages/{group_id}/add`: 「探す」 or 「追加する」.
pub(crate) async fn add(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| PickerForm::parse(&f.0)).unwrap_or_default();
    let c = conversation_of(&services, &ctx, &p, parse_id(&id)).await?;
    let t = Translator::new(ctx.lang);
    let query = (form.find || !form.q.trim().is_empty()).then(|| form.q.clone());
    if form.find {
        let picker = picker(&services, &ctx, &p, query, form.chosen()).await?;
        return render_add(&services, &ctx, &p, StatusCode::OK, c, picker, None).await;
    }
    let people = form.people();
    let e = match services
        .add_to_conversation(&p.actor(), c.group_id, &people)
        .await
    {
        Ok(_) => {
            return Ok(ctx.redirect(&format!(
                "{}?done=people_added",
                conversation_path(p.slug(), c.topic_id)
            )))
        }
        Err(e) => e,
    };
    let (alert, people_message) = if e.code == ErrorCode::CrossAssociationMessagesDisabled {
        (Some(t.get("messages.error.cross").to_owned()), None)
    } else {
        match people_error(t, &e, people.len()) {
            Some(m) => (None, Some(m)),
            None => return Err(page_error(&ctx, "adding people to a conversation", e)),
        }
    };
    let mut picker = picker(&services, &ctx, &p, query, form.chosen()).await?;
    picker.error = people_message;
    render_add(
        &services,
        &ctx,
        &p,
        StatusCode::UNPROCESSABLE_ENTITY,
        c,
        picker,
        alert,
    )
    .await
}

/// `POST /a/{slug}/messages/{group_id}/leave`: back to the list.
pub(crate) async fn leave(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let result = services.leave_conversation(&p.actor(), parse_id(&id)).await;
    Ok(after_action(
        &ctx,
        PATH,
        result,
        "conversation_left",
        "leaving a conversation",
    ))
}

#[cfg(test)]
mod tests {
    use super::PickerForm;

    #[test]
    fn ticked_people_keep_what_the_page_showed_of_them() {
        let form = PickerForm::parse(
            "to=a&who=a+%E9%9D%92%E6%9C%A8%EF%BD%9C%E7%9C%8B%E8%AD%B7%E5%B8%AB&to=b&to=a&body=x"
                .as_bytes(),
        );
        let chosen = form.chosen();
        assert_eq!(chosen.len(), 2);
        assert_eq!(
            (chosen[0].name.as_str(), chosen[0].about.as_str()),
            ("青木", "看護師")
        );
        // Nothing was shown for b: listed by its tick alone.
        assert_eq!(chosen[1].id, "b");
        assert_eq!(chosen[1].name, "");
        assert_eq!(form.body, "x");
        assert!(!form.find);
    }
}
