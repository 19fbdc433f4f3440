//! `GET /a/{slug}/t/{topic_id}`: a topic and its comments, in order, each with its author,
//! time, 「重要」 mark, text (line breaks kept, http(s) links clickable, nothing else as HTML)
//! and, depending on the group's read-receipt mode, its footprints (足跡: who read it, when)
//! or who confirmed it. Without a script, opening the page is reading all it shows: footprints
//! are recorded and the unread count cleared. The reply box sits at the bottom and stays in view above the keyboard.
//!
//! With the page's script (`static/topic.js`, announced by the `musubi_js` cookie), opening
//! records nothing: the script reports each unread comment once it has been on screen
//! (`POST …/seen`), and only then it gets the viewer's footprint and leaves the unread count.
//! `GET …/comments` is the comment list alone, for `static/live.js`; it records nothing either.
//! `GET …/c/{comment_id}/readers` lists everyone who read a comment (the page shows a few).
//!
//! Forms: `POST …/comments` (reply), `…/settings` (title, scope, pin, close: author or owner),
//! `…/c/{comment_id}/edit` (own), `…/delete` (own, or an owner) and `…/ack` (「確認しました」).
//!
//! 至急: the reply form's 「至急（確認を求める）」 asks members who see the topic (those ticked
//! in its list; nobody ticked: in a patient group, its attending doctor) to confirm the reply
//! (see `musubi_domain::urgent`). Each urgent comment shows who was asked, where the request
//! stands, its steps with their times and, while it waits, when the next step comes; whoever
//! may confirm it gets 「至急の確認をしました」 (`…/c/{comment_id}/urgent-ack`).
//!
//! Attachments: `static/app.js` uploads each chosen file as it is chosen (`…/files/stage`, see
//! `files.rs`) and the reply carries their ids in `attachments`. Each comment shows its photos
//! as thumbnails linking to their previews, and other files by name, type and size.

use super::files::size_label;
use super::text::linkify;
use super::{
    after_action, flash, full_time, initial, machine_time, nav, page_error, parse_id, profession,
    receipt_label, scope_label, short_time, Flash, Place, ScopeFields, ScopePicker,
};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::pages::{field_message, signin};
use askama::Template;
use axum::extract::rejection::{FormRejection, RawFormRejection};
use axum::extract::{Path, Query, RawForm, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use http::{StatusCode, Uri};
use musubi_authz::GroupRole;
use musubi_db::files::FileRow;
use musubi_db::groups::ReaderRow;
use musubi_domain::file_types::FileType;
use musubi_domain::files::{MAX_ATTACHMENTS, THUMB_SIDE};
use musubi_domain::groups::{ReceiptMode, Scope};
use musubi_domain::topics::{
    CommentView, Reading, TopicPatch, TopicView, Window, ATTACHMENTS_ONLY, MAX_COMMENT_CHARS,
    TOPIC_PAGE_COMMENTS,
};
use musubi_domain::types::GroupKind;
use musubi_domain::types::{CommentId, PersonId, TopicId};
use musubi_domain::urgent::{UrgentView, MAX_NAMED};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;

pub(crate) struct TopicHead {
    pub slug: String,
    pub id: String,
    pub title: String,
    pub group_id: String,
    pub group_name: String,
    pub patient: bool,
    pub author: String,
    /// Who may see it, when not everyone.
    pub scope: Option<String>,
    pub pinned: bool,
    pub closed: bool,
    pub can_manage: bool,
    pub receipt: &'static str,
    /// How many people can see the topic (the author included).
    pub audience: usize,
    /// A conversation of direct messages: shown as one, without the group's ways.
    pub conversation: Option<ConversationHead>,
}

/// What a conversation's page says and offers instead of a topic's.
pub(crate) struct ConversationHead {
    /// The other people, 「、」-joined.
    pub names: String,
    /// Several people: more may be added.
    pub can_add: bool,
    pub add_href: String,
    pub leave_action: String,
}

/// One earlier version of an edited comment.
pub(crate) struct VersionCard {
    pub label: String,
    pub body_html: String,
    pub important: bool,
}

/// A reader (footprint) or a confirmation.
pub(crate) struct ReaderCard {
    pub initial: String,
    pub name: String,
    pub time: String,
    pub full_time: String,
    pub datetime: String,
}

/// A file attached to a comment.
pub(crate) struct AttachmentCard {
    pub name: String,
    /// The file itself: shown by the browser for photos and PDF, saved otherwise.
    pub href: String,
    pub download: String,
    /// A photo with previews: its thumbnail (linking to `preview`), `width`×`height`.
    pub thumb: Option<String>,
    pub preview: String,
    pub width: u32,
    pub height: u32,
    /// 「120 KB」
    pub size: String,
    /// 「PDF」「JPG」
    pub type_label: String,
    pub icon: &'static str,
    /// A photo kept as it came that browsers cannot show (HEIC): to be downloaded.
    pub not_viewable: bool,
}

pub(crate) struct CommentCard {
    pub id: String,
    pub seq: i32,
    pub author: String,
    pub profession: String,
    pub time: String,
    pub full_time: String,
    pub datetime: String,
    pub important: bool,
    pub deleted: bool,
    pub edited: bool,
    /// Escaped text with links; shown with its line breaks.
    pub body_html: String,
    /// False for the placeholder text of a comment that is only attachments.
    pub body_shown: bool,
    pub files: Vec<AttachmentCard>,
    pub history: Vec<VersionCard>,
    /// The first few readers (all on the viewer's own comments).
    pub readers: Vec<ReaderCard>,
    pub reader_count: usize,
    /// Readers not in `readers`: listed on `…/c/{id}/readers`.
    pub more_readers: usize,
    /// Own comments: who in scope has not read (or confirmed) it yet.
    pub not_read_by: String,
    pub not_read_count: usize,
    pub mine: bool,
    pub can_delete: bool,
    pub can_ack: bool,
    pub acked_by_me: bool,
    /// The first comment that was unread when the page was opened.
    pub first_unread: bool,
    /// Not read by the viewer yet: `static/topic.js` reports it once it has been on screen.
    pub unseen: bool,
    /// The edit box: open with what was typed after a refused edit.
    pub edit_open: bool,
    pub edit_body: String,
    pub edit_important: bool,
    pub edit_error: Option<String>,
    pub confirm_delete: String,
    /// A 至急 request on the comment: who was asked, where it stands.
    pub urgent: Option<UrgentCard>,
}

/// One step of a 至急 request, with its time.
pub(crate) struct UrgentStep {
    /// 「依頼」「当番医へ連絡（大野 真）」
    pub label: String,
    pub time: String,
    pub full_time: String,
    pub datetime: String,
}

/// A 至急 request as its comment shows it.
pub(crate) struct UrgentCard {
    /// 「確認待ち」「確認済み（川村 健一、14:05）」
    pub stage: String,
    pub acknowledged: bool,
    /// 「川村 健一（主治医）・大野 真（当番医）」
    pub asked: String,
    /// While it waits: 「14:20 までに確認がなければ再通知します」.
    pub next: Option<String>,
    pub steps: Vec<UrgentStep>,
    /// 「至急の確認をしました」 for the viewer.
    pub may_acknowledge: bool,
}

/// Someone a 至急 reply may ask to confirm it.
pub(crate) struct AskPerson {
    pub id: String,
    pub name: String,
    pub profession: String,
    pub chosen: bool,
}

/// The reply form's 至急 part.
#[derive(Default)]
pub(crate) struct AskForm {
    /// 「至急（確認を求める）」 is ticked.
    pub urgent: bool,
    /// The list of people is open (something was chosen, or it was refused).
    pub open: bool,
    pub error: Option<String>,
    /// A patient group: nobody chosen means its attending doctor.
    pub patient: bool,
    /// The members who see the topic, but the viewer.
    pub people: Vec<AskPerson>,
}

/// The comment list, also served alone at `…/comments`.
pub(crate) struct CommentList {
    pub slug: String,
    pub topic_id: String,
    /// `footprints`, `ack` or `off`.
    pub mode: &'static str,
    pub comments: Vec<CommentCard>,
    /// Earlier comments not shown (a topic opens with its newest and what is unread).
    pub hidden: i32,
    /// Where the earlier ones are shown too (None: the list is as long as a page gets).
    pub earlier_href: Option<String>,
    /// What the live updates fetch: the list from the same first comment on.
    pub live_src: String,
    pub csrf: String,
    /// For the header's badge when the list is swapped in.
    pub unread_total: i64,
    pub max_body: usize,
    /// The most files one comment may have.
    pub max_files: usize,
    /// The reply form's 至急 part (the topic page's; empty in the list served alone).
    pub ask: AskForm,
}

/// The topic settings form (author or owner).
pub(crate) struct TopicSettings {
    pub title: String,
    pub pinned: bool,
    pub closed: bool,
    pub open: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "sns/topic.html")]
pub(crate) struct TopicPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub topic: TopicHead,
    pub list: CommentList,
    pub reply_body: String,
    pub reply_important: bool,
    pub reply_error: Option<String>,
    pub settings: TopicSettings,
    pub picker: ScopePicker,
    /// The viewer's id: their own footprints need no live refresh.
    pub me: String,
    /// Just sent from this device: the draft `static/app.js` kept under this key is done.
    pub draft_sent: Option<String>,
    /// 「返信を送信しました」 next to the reply box.
    pub replied: bool,
}

#[derive(Debug, Default, Deserialize)]
struct SentQuery {
    done: Option<String>,
    /// The group a new topic was posted from (its draft's key).
    sent: Option<String>,
}

/// Which draft the page's answer says was sent: a reply, or a new topic from its group.
fn sent_draft(uri: Option<&Uri>, me: &str, topic_id: TopicId) -> (Option<String>, bool) {
    let q = uri
        .and_then(|u| Query::<SentQuery>::try_from_uri(u).ok())
        .map(|q| q.0)
        .unwrap_or_default();
    match q.done.as_deref() {
        Some("replied") => (Some(format!("{me}:reply:{topic_id}")), true),
        Some("message_sent" | "message_continued") => (Some(format!("{me}:message:new")), false),
        Some("posted") => {
            let group = q.sent.and_then(|g| g.parse::<uuid::Uuid>().ok());
            (group.map(|g| format!("{me}:topic:{g}")), false)
        }
        _ => (None, false),
    }
}

#[derive(Template)]
#[template(path = "sns/comments_fragment.html")]
pub(crate) struct CommentsFragment {
    pub t: Translator,
    pub list: CommentList,
}

/// What a re-shown page keeps of a refused form.
#[derive(Default)]
struct Typed {
    reply: Option<ReplyTyped>,
    /// (comment, text, important, message)
    edit: Option<(CommentId, String, bool, String)>,
    /// (form, message)
    settings: Option<(SettingsForm, String)>,
    live_after: Option<i64>,
}

/// A refused reply: what was typed and chosen, and what was wrong.
#[derive(Default)]
struct ReplyTyped {
    body: String,
    important: bool,
    /// Said above the text box.
    error: Option<String>,
    urgent: bool,
    /// The people ticked, as sent.
    ask: Vec<String>,
    /// Said at 「至急」.
    ask_error: Option<String>,
}

fn topic_path(slug: &str, id: TopicId) -> String {
    format!("/a/{slug}/t/{id}")
}

fn reader_card(lang: Lang, r: &ReaderRow, now: DateTime<Utc>) -> ReaderCard {
    ReaderCard {
        initial: initial(&r.name),
        name: r.name.clone(),
        time: short_time(lang, r.at, now),
        full_time: full_time(lang, r.at),
        datetime: machine_time(r.at),
    }
}

fn reader_cards(lang: Lang, view: &CommentView, now: DateTime<Utc>) -> Vec<ReaderCard> {
    view.readers
        .iter()
        .map(|r| reader_card(lang, r, now))
        .collect()
}

/// What showing a comment depends on besides the comment.
pub(crate) struct ListFacts<'a> {
    pub lang: Lang,
    pub slug: &'a str,
    pub topic_id: TopicId,
    pub mode: ReceiptMode,
    /// The viewer is an owner of the group (may delete others' comments).
    pub owner: bool,
    pub first_unread_seq: Option<i32>,
    /// Comments the viewer has not read yet (only when the page's script reports reading).
    pub unseen: &'a [i32],
    pub csrf: &'a str,
    pub unread_total: i64,
    pub now: DateTime<Utc>,
}

/// The thumbnail's size in CSS pixels: the photo's proportions within [`THUMB_SIDE`] (a square
/// when they are not known), so that the page does not jump as thumbnails arrive.
fn thumb_size(width: Option<i32>, height: Option<i32>) -> (u32, u32) {
    let side = f64::from(THUMB_SIDE);
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => {
            let (w, h) = (f64::from(w), f64::from(h));
            let scale = (side / w.max(h)).min(1.0);
            let px = |v: f64| (v * scale).round().clamp(1.0, side) as u32;
            (px(w), px(h))
        }
        _ => (THUMB_SIDE, THUMB_SIDE),
    }
}

fn attachment_card(slug: &str, f: &FileRow) -> AttachmentCard {
    let href = format!("/a/{slug}/files/{}", f.id);
    let found = FileType::from_content_type(&f.content_type);
    let image = f.content_type.starts_with("image/");
    let (width, height) = thumb_size(f.width, f.height);
    AttachmentCard {
        name: f.name.clone(),
        download: format!("{href}?download=1"),
        thumb: f.has_preview.then(|| format!("{href}/thumb")),
        preview: format!("{href}/preview"),
        width,
        height,
        size: size_label(f.size_bytes),
        type_label: found.map_or_else(
            || {
                f.content_type
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            },
            |k| k.extension().to_uppercase(),
        ),
        icon: if image { "🖼️" } else { "📄" },
        not_viewable: image && !f.has_preview && !found.is_some_and(FileType::is_viewable_image),
        href,
    }
}

/// The words for a 至急 request: its stage, who was asked, the next step and the timeline.
fn urgent_card(t: Translator, f: &ListFacts<'_>, u: &UrgentView) -> UrgentCard {
    let (lang, now) = (f.lang, f.now);
    let at = |when: DateTime<Utc>| short_time(lang, when, now);
    let no_one_on_call = u.steps.iter().any(|(s, ..)| s == "no_one_on_call")
        && !u.steps.iter().any(|(s, ..)| s == "escalated");
    let stage = match u.stage.as_str() {
        "acknowledged" => {
            let who = u.acknowledged_by.clone().unwrap_or_default();
            let when = u.acknowledged_at.map(at).unwrap_or_default();
            let both = [who, when]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(t.get("sns.urgent.separator"));
            t.format("sns.urgent.stage.acknowledged", &both)
        }
        "escalated" if no_one_on_call => t.get("sns.urgent.stage.no_one_on_call").to_owned(),
        "escalated" => t.get("sns.urgent.stage.escalated").to_owned(),
        "reminded" => t.get("sns.urgent.stage.reminded").to_owned(),
        _ => t.get("sns.urgent.stage.asked").to_owned(),
    };
    let next = match u.stage.as_str() {
        "asked" => Some(t.format("sns.urgent.next_remind", &at(u.remind_at))),
        "reminded" => Some(t.format("sns.urgent.next_escalate", &at(u.escalate_at))),
        _ => None,
    };
    let asked: Vec<String> = u
        .asked
        .iter()
        .map(|(_, name, reason)| match reason.as_str() {
            "attending" => t.format("sns.urgent.attending", name),
            "on_call" => t.format("sns.urgent.on_call", name),
            _ => name.clone(),
        })
        .collect();
    let steps = u
        .steps
        .iter()
        .map(|(step, who, when)| {
            let who = who.as_deref().unwrap_or_default();
            let label = match step.as_str() {
                "asked" => t.get("sns.urgent.step.asked").to_owned(),
                "reminded" => t.get("sns.urgent.step.reminded").to_owned(),
                "escalated" => t.format("sns.urgent.step.escalated", who),
                "no_one_on_call" => t.get("sns.urgent.step.no_one_on_call").to_owned(),
                "acknowledged" => t.format("sns.urgent.step.acknowledged", who),
                other => other.to_owned(),
            };
            UrgentStep {
                label,
                time: at(*when),
                full_time: full_time(lang, *when),
                datetime: machine_time(*when),
            }
        })
        .collect();
    UrgentCard {
        stage,
        acknowledged: u.stage == "acknowledged",
        asked: asked.join(t.get("sns.list_separator")),
        next,
        steps,
        may_acknowledge: u.may_acknowledge,
    }
}

fn comment_card(
    t: Translator,
    f: &ListFacts<'_>,
    c: &CommentView,
    edit: Option<&(CommentId, String, bool, String)>,
    urgent: &[UrgentView],
) -> CommentCard {
    let (lang, now, owner) = (f.lang, f.now, f.owner);
    let row = &c.row;
    let deleted = c.is_deleted();
    let history = c
        .history
        .iter()
        .map(|v| VersionCard {
            label: t.format("sns.comment.version", &full_time(lang, v.written_at)),
            body_html: linkify(&v.body),
            important: v.important,
        })
        .collect();
    let not_read: Vec<&str> = c.not_read_by.iter().map(|(_, n)| n.as_str()).collect();
    let edit = edit.filter(|(id, ..)| *id == row.id);
    CommentCard {
        id: row.id.to_string(),
        seq: row.seq,
        author: row.author_name.clone(),
        profession: profession(t, row.author_profession, None),
        time: short_time(lang, row.created_at, now),
        full_time: full_time(lang, row.created_at),
        datetime: machine_time(row.created_at),
        important: row.important && !deleted,
        deleted,
        edited: row.version > 1 && !deleted,
        body_html: linkify(&row.body),
        body_shown: c.files.is_empty() || row.body != ATTACHMENTS_ONLY,
        files: c
            .files
            .iter()
            .map(|file| attachment_card(f.slug, file))
            .collect(),
        history,
        readers: reader_cards(lang, c, now),
        reader_count: c.reader_count.max(c.readers.len()),
        more_readers: c.reader_count.saturating_sub(c.readers.len()),
        not_read_count: not_read.len(),
        not_read_by: not_read.join(t.get("sns.list_separator")),
        mine: c.mine,
        can_delete: !deleted && row.seq > 1 && (c.mine || owner),
        can_ack: f.mode == ReceiptMode::Acknowledgement
            && !c.mine
            && !deleted
            && !c.acknowledged_by_me,
        acked_by_me: c.acknowledged_by_me,
        first_unread: f.first_unread_seq == Some(row.seq) && row.seq > 1,
        unseen: f.unseen.binary_search(&row.seq).is_ok(),
        edit_open: edit.is_some(),
        edit_body: edit.map_or_else(|| row.body.clone(), |(_, b, _, _)| b.clone()),
        edit_important: edit.map_or(row.important, |(_, _, i, _)| *i),
        edit_error: edit.map(|(.., e)| e.clone()),
        confirm_delete: t.get("sns.comment.confirm_delete").to_owned(),
        urgent: urgent
            .iter()
            .find(|u| u.comment_id == row.id)
            .filter(|_| !deleted)
            .map(|u| urgent_card(t, f, u)),
    }
}

fn comment_list(
    ctx: &Ctx,
    view: &TopicView,
    edit: Option<&(CommentId, String, bool, String)>,
    unread_total: i64,
    urgent: &[UrgentView],
) -> CommentList {
    let facts = ListFacts {
        lang: ctx.lang,
        slug: &view.tenant.slug,
        topic_id: view.topic.id,
        mode: view.receipt_mode,
        owner: view.my_role == GroupRole::Owner,
        first_unread_seq: view.first_unread_seq,
        unseen: &view.unseen_seqs,
        csrf: ctx.csrf.form_token(),
        unread_total,
        now: Utc::now(),
    };
    build_list_with(&facts, &view.comments, edit, urgent)
}

/// The comment list from its comments, without 至急 requests (for the render tests).
#[cfg(test)]
pub(crate) fn build_list(
    f: &ListFacts<'_>,
    comments: &[CommentView],
    edit: Option<&(CommentId, String, bool, String)>,
) -> CommentList {
    build_list_with(f, comments, edit, &[])
}

/// The comment list from its comments and the topic's 至急 requests (no database: the render
/// tests use it too).
pub(crate) fn build_list_with(
    f: &ListFacts<'_>,
    comments: &[CommentView],
    edit: Option<&(CommentId, String, bool, String)>,
    urgent: &[UrgentView],
) -> CommentList {
    let t = Translator::new(f.lang);
    let first_shown = comments.first().map_or(1, |c| c.row.seq);
    let hidden = (first_shown - 1).max(0);
    let base = format!("/a/{}/t/{}", f.slug, f.topic_id);
    let full = i64::try_from(comments.len()).unwrap_or(i64::MAX) >= TOPIC_PAGE_COMMENTS;
    CommentList {
        slug: f.slug.to_owned(),
        topic_id: f.topic_id.to_string(),
        mode: f.mode.code(),
        hidden,
        earlier_href: (hidden > 0 && !full).then(|| format!("{base}?start=1#c-{first_shown}")),
        live_src: format!("{base}/comments?start={first_shown}"),
        comments: comments
            .iter()
            .map(|c| comment_card(t, f, c, edit, urgent))
            .collect(),
        csrf: f.csrf.to_owned(),
        unread_total: f.unread_total,
        max_body: MAX_COMMENT_CHARS,
        max_files: MAX_ATTACHMENTS,
        ask: AskForm::default(),
    }
}

/// The topic's 至急 requests, for its comments.
async fn urgent_of(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    topic_id: TopicId,
) -> Result<Vec<UrgentView>, Response> {
    services
        .urgent_on_topic(&p.actor(), topic_id)
        .await
        .map_err(|e| page_error(ctx, "listing a topic's urgent requests", e))
}

/// The reply form's 至急 part: everyone who sees the topic but the viewer, as they were ticked.
fn ask_form(t: Translator, view: &TopicView, me: PersonId, typed: Option<&ReplyTyped>) -> AskForm {
    let chosen = |id: &str| typed.is_some_and(|r| r.ask.iter().any(|a| a == id));
    let people: Vec<AskPerson> = view
        .audience
        .iter()
        .filter(|m| m.user_id != me)
        .map(|m| {
            let id = m.user_id.to_string();
            AskPerson {
                chosen: chosen(&id),
                name: m.name.clone(),
                profession: profession(t, m.profession, m.doctor_kind),
                id,
            }
        })
        .collect();
    AskForm {
        urgent: typed.is_some_and(|r| r.urgent),
        open: typed.is_some_and(|r| r.ask_error.is_some()) || people.iter().any(|p| p.chosen),
        error: typed.and_then(|r| r.ask_error.clone()),
        patient: view.group_kind == GroupKind::Patient,
        people,
    }
}

/// Opens the topic for a page. With the page's script, only what it reports as having been
/// on screen becomes read (`POST …/seen`); without, everything the page shows.
async fn open(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    topic_id: TopicId,
    window: Window,
) -> Result<TopicView, Response> {
    let reading = if ctx.scripted {
        Reading::OnScreen
    } else {
        Reading::Page
    };
    services
        .read_topic(&p.actor(), topic_id, reading, window)
        .await
        .map_err(|e| page_error(ctx, "opening a topic", e))
}

/// The comments a topic page asks for: `?start=N` (the earlier ones, or the first comment the
/// page showed, for its live updates), else the newest and what is unread.
fn window_of(uri: Option<&Uri>) -> Window {
    uri.and_then(Uri::query)
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("start="))
        .and_then(|n| n.parse::<i32>().ok())
        .filter(|n| *n >= 1)
        .map_or(Window::Recent, Window::From)
}

/// `GET /a/{slug}/t/{topic}/c/{comment}`: the address of one comment (in mails and pushes,
/// ids only) opens its topic at that comment, marking nothing else read.
pub(crate) async fn open_comment(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, _topic, comment)): Path<(String, String, String)>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let (topic, seq) = services
        .comment_place(&p.actor(), parse_id(&comment))
        .await
        .map_err(|e| page_error(&ctx, "opening a comment", e))?;
    Ok(ctx.redirect(&format!(
        "/a/{slug}/t/{topic}?from=link&start={seq}#c-{seq}"
    )))
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let after = super::live_cursor(&services).await;
    // A search result (or a link to one comment, from a mail or a push) opens one comment:
    // only what the script reports as on screen becomes read (without the script, nothing),
    // not everything the page shows.
    let from_search = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "from=search" || pair == "from=link")
    });
    let view = if from_search {
        // The comment may be anywhere in the topic: from it on (`start`), else all.
        let window = match window_of(Some(&uri)) {
            Window::Recent => Window::All,
            asked => asked,
        };
        services
            .read_topic(&p.actor(), parse_id(&id), Reading::OnScreen, window)
            .await
            .map_err(|e| page_error(&ctx, "opening a topic", e))?
    } else {
        open(&services, &ctx, &p, parse_id(&id), window_of(Some(&uri))).await?
    };
    let typed = Typed {
        live_after: after,
        ..Typed::default()
    };
    render(&services, &ctx, &p, StatusCode::OK, view, typed, Some(&uri)).await
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    status: StatusCode,
    view: TopicView,
    typed: Typed,
    uri: Option<&Uri>,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    // Counted after opening: what was just read is no longer unread.
    let total = super::unread_total(services, &p.viewer).await;
    let urgent = urgent_of(services, ctx, p, view.topic.id).await?;
    let mut list = comment_list(ctx, &view, typed.edit.as_ref(), total, &urgent);
    list.ask = ask_form(t, &view, p.viewer.user().id, typed.reply.as_ref());
    let topic = &view.topic;
    let members: Vec<(Scope, &str)> = view
        .audience
        .iter()
        .map(|m| (m.scope_bit, m.name.as_str()))
        .collect();
    let (settings, picker) = match typed.settings {
        Some((form, error)) => {
            let picker = ScopePicker::new(form.scope_fields().scope(), &members, t);
            (
                TopicSettings {
                    title: form.title,
                    pinned: form.pinned.is_some(),
                    closed: form.closed.is_some(),
                    open: true,
                    error: Some(error),
                },
                picker,
            )
        }
        None => (
            TopicSettings {
                title: topic.title.clone(),
                pinned: topic.pinned,
                closed: topic.closed,
                open: false,
                error: None,
            },
            ScopePicker::new(Some(topic.scope), &members, t),
        ),
    };
    // The audience is who is in scope now, not the whole group: naming people per box would
    // say "nobody" for the classes left out, so the settings form names no one.
    let picker = if topic.scope.is_everyone() {
        picker
    } else {
        picker.without_names()
    };
    let (reply_body, reply_important, reply_error) = match typed.reply {
        Some(r) => (r.body, r.important, r.error),
        None => (String::new(), false, None),
    };
    let path = topic_path(p.slug(), topic.id);
    let me = p.viewer.user().id.to_string();
    let (draft_sent, replied) = sent_draft(uri, &me, topic.id);
    let conversation = if view.group_kind == GroupKind::Direct {
        Some(conversation_head(ctx, p, &view))
    } else {
        None
    };
    let section = if conversation.is_some() {
        Section::Messages
    } else {
        Section::Groups
    };
    let page = TopicPage {
        draft_sent,
        replied,
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, ctx, total, section).live_after(typed.live_after),
        me,
        current_path: &path,
        csrf: ctx.csrf.form_token(),
        flash: uri.and_then(|u| flash(t, u)),
        topic: TopicHead {
            slug: p.slug().to_owned(),
            id: topic.id.to_string(),
            title: topic.title.clone(),
            group_id: topic.group_id.to_string(),
            group_name: view.group_name.clone(),
            patient: view.group_kind == GroupKind::Patient,
            author: topic.author_name.clone(),
            scope: scope_label(t, topic.scope),
            pinned: topic.pinned,
            closed: topic.closed,
            can_manage: view.can_manage,
            receipt: receipt_label(t, view.receipt_mode),
            audience: view.audience.len(),
            conversation,
        },
        list,
        reply_body,
        reply_important,
        reply_error,
        settings,
        picker,
    };
    Ok(ctx.respond(status, &page))
}

/// A conversation's people and what may be done with it.
fn conversation_head(ctx: &Ctx, p: &Place, view: &TopicView) -> ConversationHead {
    let t = Translator::new(ctx.lang);
    let me = p.viewer.user().id;
    let others: Vec<String> = view
        .audience
        .iter()
        .filter(|m| m.user_id != me)
        .map(|m| m.name.clone())
        .collect();
    let group_id = view.topic.group_id;
    ConversationHead {
        names: super::messages::names_of(t, &others),
        can_add: !view.pair,
        add_href: format!("/a/{}/messages/{group_id}/add", p.slug()),
        leave_action: format!("/a/{}/messages/{group_id}/leave", p.slug()),
    }
}

pub(crate) async fn comments_fragment(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    // Only static/live.js asks for this, and static/topic.js reports what comes on screen.
    let view = services
        .read_topic(
            &p.actor(),
            parse_id(&id),
            Reading::OnScreen,
            window_of(Some(&uri)),
        )
        .await
        .map_err(|e| page_error(&ctx, "opening a topic", e))?;
    let total = super::unread_total(&services, &p.viewer).await;
    let urgent = urgent_of(&services, &ctx, &p, view.topic.id).await?;
    let page = CommentsFragment {
        t: Translator::new(ctx.lang),
        list: comment_list(&ctx, &view, None, total, &urgent),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// Everyone who read (or confirmed) one comment: what a topic page shows only the first few of.
pub(crate) struct ReadersPage {
    pub heading: String,
    pub topic_title: String,
    pub about: String,
    pub back: String,
    pub readers: Vec<ReaderCard>,
}

#[derive(Template)]
#[template(path = "sns/readers.html")]
pub(crate) struct ReadersTemplate<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub page: ReadersPage,
}

/// The list alone, for `static/topic.js` when a comment's readers are opened.
#[derive(Template)]
#[template(path = "sns/readers_fragment.html")]
pub(crate) struct ReadersFragment {
    pub t: Translator,
    pub page: ReadersPage,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadersQuery {
    part: Option<String>,
}

/// `GET …/c/{comment_id}/readers`: the whole list (`?part=list`: the list alone).
pub(crate) async fn readers(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, comment)): CommentPath,
    Query(q): Query<ReadersQuery>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let topic_id = parse_id(&id);
    let view = services
        .comment_readers(&p.actor(), topic_id, parse_id(&comment))
        .await
        .map_err(|e| page_error(&ctx, "listing a comment's readers", e))?;
    let t = Translator::new(ctx.lang);
    let now = Utc::now();
    let count = view.readers.len().to_string();
    let heading = match view.receipt_mode {
        ReceiptMode::Acknowledgement => t.format("sns.readers.heading_ack", &count),
        _ => t.format("sns.readers.heading_read", &count),
    };
    let c = &view.comment;
    let page = ReadersPage {
        heading,
        topic_title: view.topic.title.clone(),
        about: t.format("sns.readers.about", &c.author_name).replacen(
            "{}",
            &short_time(ctx.lang, c.created_at, now),
            1,
        ),
        back: format!("{}#c-{}", topic_path(p.slug(), topic_id), c.seq),
        readers: view
            .readers
            .iter()
            .map(|r| reader_card(ctx.lang, r, now))
            .collect(),
    };
    if q.part.as_deref() == Some("list") {
        return Ok(ctx.respond(StatusCode::OK, &ReadersFragment { t, page }));
    }
    let total = super::unread_total(&services, &p.viewer).await;
    let path = format!("{}/c/{}/readers", topic_path(p.slug(), topic_id), c.id);
    let tpl = ReadersTemplate {
        t,
        assets: assets::urls(),
        nav: nav(&p.viewer, &ctx, total, Section::Groups),
        current_path: &path,
        page,
    };
    Ok(ctx.respond(StatusCode::OK, &tpl))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SeenForm {
    /// Comment numbers, comma-separated.
    #[serde(default)]
    seqs: String,
}

/// `POST …/seen` from `static/topic.js`: these comments have been on screen. 204; 400 for a
/// malformed list; otherwise the page any topic route answers with (the script stops).
pub(crate) async fn seen(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<SeenForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let seqs: Result<Vec<i32>, _> = form
        .seqs
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<i32>())
        .collect();
    let Ok(seqs) = seqs else {
        return Ok(StatusCode::BAD_REQUEST.into_response());
    };
    match services.mark_seen(&p.actor(), parse_id(&id), &seqs).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.code == ErrorCode::InvalidInput => Ok(StatusCode::BAD_REQUEST.into_response()),
        // Exactly what any other route of a topic one may not see answers.
        Err(e) => Err(page_error(&ctx, "recording what was seen", e)),
    }
}

/// The topic page again with what was typed, after a refused form.
async fn reshow(
    services: &Services,
    ctx: &Ctx,
    p: &Place,
    topic_id: TopicId,
    typed: Typed,
) -> Result<Response, Response> {
    let view = open(services, ctx, p, topic_id, Window::Recent).await?;
    render(
        services,
        ctx,
        p,
        StatusCode::UNPROCESSABLE_ENTITY,
        view,
        typed,
        None,
    )
    .await
}

/// The message for a refused comment.
fn comment_error(t: Translator, e: &AppError) -> Option<String> {
    match e.code {
        ErrorCode::InvalidInput if e.field == Some("attachments") => {
            Some(t.get("sns.attach.error_refused").to_owned())
        }
        ErrorCode::InvalidInput => Some(field_message(t, e, "sns.comment.error_body")),
        ErrorCode::TopicClosed => Some(t.get("sns.error.closed").to_owned()),
        ErrorCode::GroupArchived => Some(t.get("sns.error.archived").to_owned()),
        ErrorCode::CrossAssociationMessagesDisabled => {
            Some(t.get("messages.error.cross_reply").to_owned())
        }
        _ => None,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct CommentForm {
    #[serde(default)]
    body: String,
    important: Option<String>,
    /// The comment's number, to come back to it.
    #[serde(default)]
    seq: String,
}

/// The ids in an `attachments` field. Anything that is not an id stands for a file nobody has:
/// the services then refuse the comment rather than post it without a file that was meant.
pub(crate) fn attachment_ids(field: Option<&str>) -> Vec<uuid::Uuid> {
    field
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(uuid::Uuid::nil()))
        .collect()
}

impl CommentForm {
    /// `#c-{seq}` when the form said which comment it was about.
    fn anchor(&self) -> String {
        match self.seq.parse::<u32>() {
            Ok(n) => format!("#c-{n}"),
            Err(_) => String::new(),
        }
    }
}

/// The reply form: its text, 重要, the staged attachments and 至急 with the people it asks
/// (`ask`, one field per person ticked: read by hand, as a `Form` cannot).
#[derive(Debug, Default)]
pub(crate) struct ReplyForm {
    body: String,
    important: bool,
    attachments: Option<String>,
    urgent: bool,
    /// As sent; at most one more than may be asked (the services then refuse the reply).
    ask: Vec<String>,
}

impl ReplyForm {
    fn parse(bytes: &[u8]) -> Self {
        let mut form = Self::default();
        for (k, v) in form_urlencoded::parse(bytes) {
            match k.as_ref() {
                "body" => form.body = v.into_owned(),
                "important" => form.important = true,
                "attachments" => form.attachments = Some(v.into_owned()),
                "urgent" => form.urgent = true,
                "ask" if form.ask.len() <= MAX_NAMED => form.ask.push(v.into_owned()),
                _ => {}
            }
        }
        form
    }

    /// The people to ask. Anything that is not an id stands for someone nobody is: the
    /// services then refuse the reply rather than ask fewer people than were meant.
    fn named(&self) -> Vec<PersonId> {
        self.ask.iter().map(|a| parse_id(a.trim())).collect()
    }
}

/// The message for a refused 至急 (`ask`), from what was sent: nobody could be asked, someone
/// chosen may not be, or too many were.
fn ask_error(t: Translator, form: &ReplyForm, me: PersonId) -> String {
    let named = form.named();
    let key = if named.len() > MAX_NAMED {
        "sns.urgent.error_too_many"
    } else if named.iter().all(|p| *p == me) {
        "sns.urgent.error_nobody"
    } else {
        "sns.urgent.error_not_member"
    };
    t.format(key, &MAX_NAMED.to_string())
}

pub(crate) async fn reply(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<RawForm, RawFormRejection>,
) -> Result<Response, Response> {
    let form = form.map(|f| ReplyForm::parse(&f.0)).unwrap_or_default();
    // A visit report sent after the session ended: say so, keep the text in sight.
    let passkeys = services.passkeys_available();
    let topic_id = parse_id(&id);
    let back = topic_path(&slug, topic_id);
    let p = Place::open_or(&services, &ctx, &slug, |ctx| {
        signin::expired(ctx, passkeys, &form.body, &back)
    })
    .await?;
    let t = Translator::new(ctx.lang);
    let files = attachment_ids(form.attachments.as_deref());
    let me = p.viewer.user().id;
    let typed = |error: Option<String>, ask_error: Option<String>| Typed {
        reply: Some(ReplyTyped {
            body: form.body.clone(),
            important: form.important,
            error,
            urgent: form.urgent,
            ask: form.ask.clone(),
            ask_error,
        }),
        ..Typed::default()
    };
    let result = if form.urgent {
        if !files.is_empty() {
            // A 至急 reply carries no files (the services take none with it).
            let message = format!(
                "{} {}",
                t.get("sns.urgent.error_files"),
                t.get("sns.attach.choose_again")
            );
            return reshow(&services, &ctx, &p, topic_id, typed(None, Some(message))).await;
        }
        services
            .post_urgent_comment(&p.actor(), topic_id, &form.body, &form.named())
            .await
    } else {
        services
            .post_comment_with(&p.actor(), topic_id, &form.body, form.important, &files)
            .await
    };
    match result {
        Ok(_) => Ok(ctx.redirect(&format!(
            "{}?done=replied#latest",
            topic_path(p.slug(), topic_id)
        ))),
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("ask") => {
            let message = ask_error(t, &form, me);
            reshow(&services, &ctx, &p, topic_id, typed(None, Some(message))).await
        }
        Err(e) => match comment_error(t, &e) {
            Some(mut message) => {
                // The page sent back cannot keep what was uploaded for the reply.
                if !files.is_empty() && e.field != Some("attachments") {
                    message = format!("{message} {}", t.get("sns.attach.choose_again"));
                }
                reshow(&services, &ctx, &p, topic_id, typed(Some(message), None)).await
            }
            None => Err(page_error(&ctx, "replying", e)),
        },
    }
}

type CommentPath = Path<(String, String, String)>;

pub(crate) async fn edit(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, comment)): CommentPath,
    form: Result<Form<CommentForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let (topic_id, comment_id) = (parse_id(&id), parse_id(&comment));
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let result = services
        .edit_comment(&p.actor(), comment_id, &form.body, form.important.is_some())
        .await;
    let back = format!("{}{}", topic_path(p.slug(), topic_id), form.anchor());
    match result {
        Err(e) if e.code == ErrorCode::InvalidInput && e.field == Some("body") => {
            let message = field_message(t, &e, "sns.comment.error_body");
            let typed = Typed {
                edit: Some((comment_id, form.body, form.important.is_some(), message)),
                ..Typed::default()
            };
            reshow(&services, &ctx, &p, topic_id, typed).await
        }
        result => Ok(after_action(
            &ctx,
            &back,
            result,
            "edited",
            "editing a comment",
        )),
    }
}

pub(crate) async fn delete(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, comment)): CommentPath,
    form: Result<Form<CommentForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let result = services
        .delete_comment(&p.actor(), parse_id(&comment))
        .await;
    let back = format!("{}{}", topic_path(p.slug(), parse_id(&id)), form.anchor());
    Ok(after_action(
        &ctx,
        &back,
        result,
        "deleted",
        "deleting a comment",
    ))
}

pub(crate) async fn acknowledge(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, comment)): CommentPath,
    form: Result<Form<CommentForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let result = services
        .acknowledge_comment(&p.actor(), parse_id(&comment))
        .await;
    let back = format!("{}{}", topic_path(p.slug(), parse_id(&id)), form.anchor());
    Ok(after_action(
        &ctx,
        &back,
        result,
        "acknowledged",
        "confirming a comment",
    ))
}

/// 「至急の確認をしました」: back to the comment.
pub(crate) async fn acknowledge_urgent(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id, comment)): CommentPath,
    form: Result<Form<CommentForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let result = services
        .acknowledge_urgent(&p.actor(), parse_id(&comment))
        .await;
    let back = format!("{}{}", topic_path(p.slug(), parse_id(&id)), form.anchor());
    Ok(after_action(
        &ctx,
        &back,
        result,
        "acknowledged",
        "confirming an urgent comment",
    ))
}

#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct SettingsForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    scope: String,
    co_medical: Option<String>,
    collaborating: Option<String>,
    hospital: Option<String>,
    pinned: Option<String>,
    closed: Option<String>,
}

impl SettingsForm {
    fn scope_fields(&self) -> ScopeFields {
        ScopeFields {
            scope: self.scope.clone(),
            co_medical: self.co_medical.clone(),
            collaborating: self.collaborating.clone(),
            hospital: self.hospital.clone(),
        }
    }
}

pub(crate) async fn settings(
    State(services): State<Services>,
    ctx: Ctx,
    Path((slug, id)): Path<(String, String)>,
    form: Result<Form<SettingsForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open(&services, &ctx, &slug).await?;
    let topic_id = parse_id(&id);
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let Some(scope) = form.scope_fields().scope() else {
        let typed = Typed {
            settings: Some((form, t.get("sns.scope.error_none").to_owned())),
            ..Typed::default()
        };
        return reshow(&services, &ctx, &p, topic_id, typed).await;
    };
    let patch = TopicPatch {
        title: Some(form.title.clone()),
        scope: Some(scope),
        pinned: Some(form.pinned.is_some()),
        closed: Some(form.closed.is_some()),
    };
    match services.update_topic(&p.actor(), topic_id, &patch).await {
        Ok(()) => Ok(ctx.redirect(&format!(
            "{}?done=topic_saved",
            topic_path(p.slug(), topic_id)
        ))),
        Err(e) if e.code == ErrorCode::InvalidInput => {
            let key = if e.field == Some("title") {
                "sns.topic_form.error_title"
            } else {
                "sns.error.invalid"
            };
            let typed = Typed {
                settings: Some((form, field_message(t, &e, key))),
                ..Typed::default()
            };
            reshow(&services, &ctx, &p, topic_id, typed).await
        }
        // Saving a scope that leaves the viewer out is allowed (authors keep seeing their
        // topics; an owner may not): then the topic is gone for them, like any other.
        Err(e) => Err(page_error(&ctx, "changing a topic", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{
        attachment_ids, build_list, build_list_with, thumb_size, CommentsFragment, ListFacts,
    };
    use crate::i18n::{Lang, Translator};
    use askama::Template;
    use chrono::{DateTime, TimeZone, Utc};
    use musubi_db::files::FileRow;
    use musubi_db::groups::CommentRow;
    use musubi_domain::groups::ReceiptMode;
    use musubi_domain::topics::{CommentView, ATTACHMENTS_ONLY};
    use musubi_domain::urgent::UrgentView;
    use uuid::Uuid;

    fn file(name: &str, content_type: &str, size: i64, preview: Option<(i32, i32)>) -> FileRow {
        FileRow {
            id: Uuid::now_v7(),
            group_id: Uuid::nil().into(),
            topic_id: None,
            comment_id: None,
            kind: "other".into(),
            name: name.into(),
            content_type: content_type.into(),
            size_bytes: size,
            object_key: "a/x/y".into(),
            uploaded_by: Uuid::nil().into(),
            uploader_name: None,
            uploaded_at: Utc::now(),
            pending: false,
            width: preview.map(|(w, _)| w),
            height: preview.map(|(_, h)| h),
            has_preview: preview.is_some(),
        }
    }

    fn with_files(body: &str, files: Vec<FileRow>) -> CommentView {
        CommentView {
            files,
            row: CommentRow {
                id: Uuid::now_v7().into(),
                topic_id: Uuid::nil().into(),
                seq: 2,
                author_id: Uuid::now_v7().into(),
                author_name: "青木 さくら".into(),
                author_profession: musubi_domain::types::Profession::Nurse,
                body: body.into(),
                important: false,
                created_at: Utc::now(),
                edited_at: None,
                version: 1,
                deleted_at: None,
            },
            readers: vec![],
            reader_count: 0,
            not_read_by: vec![],
            history: vec![],
            mine: false,
            acknowledged_by_me: false,
        }
    }

    fn render(comments: &[CommentView]) -> String {
        let facts = ListFacts {
            lang: Lang::Ja,
            slug: "minatogawa",
            topic_id: Uuid::nil().into(),
            mode: ReceiptMode::Off,
            owner: false,
            first_unread_seq: None,
            unseen: &[],
            csrf: "TOKEN",
            unread_total: 0,
            now: Utc::now(),
        };
        CommentsFragment {
            t: Translator::new(Lang::Ja),
            list: build_list(&facts, comments, None),
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn a_comment_shows_photos_as_thumbnails_and_other_files_by_name_type_and_size() {
        let photo = file(
            "<b>褥瘡</b>.jpg",
            "image/jpeg",
            2_400_000,
            Some((4032, 3024)),
        );
        let pdf = file("指示書.pdf", "application/pdf", 120 * 1024, None);
        let heic = file("背中.heic", "image/heic", 900 * 1024, None);
        let (p, d, h) = (photo.id, pdf.id, heic.id);
        let html = render(&[with_files(ATTACHMENTS_ONLY, vec![photo, pdf, heic])]);
        assert!(
            html.contains("aria-label=\"添付ファイル（3件）\""),
            "{html}"
        );
        assert!(html.contains(&format!(
            "<a class=\"attachment__photo\" href=\"/a/minatogawa/files/{p}/preview\"><img class=\"attachment__thumb\" src=\"/a/minatogawa/files/{p}/thumb\" alt=\"&#60;b&#62;褥瘡&#60;/b&#62;.jpg\" width=\"320\" height=\"240\" loading=\"lazy\""
        )), "{html}");
        assert!(html.contains(&format!("href=\"/a/minatogawa/files/{d}\">指示書.pdf</a>")));
        assert!(html.contains("PDF・120 KB"));
        assert!(html
            .contains("この写真はブラウザで表示できない形式です。ダウンロードしてご覧ください。"));
        assert!(html.contains(&format!(
            "href=\"/a/minatogawa/files/{h}?download=1\">背中.heicをダウンロード</a>"
        )));
        assert!(!html.contains("<b>"), "names are escaped");
        // A comment that is only attachments shows no placeholder text.
        assert!(!html.contains(&format!(">{ATTACHMENTS_ONLY}<")), "{html}");
    }

    #[test]
    fn attachments_are_read_leniently_and_a_bad_id_is_kept_as_one_nobody_has() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(attachment_ids(None), Vec::<Uuid>::new());
        assert_eq!(attachment_ids(Some(" , ")), Vec::<Uuid>::new());
        assert_eq!(attachment_ids(Some(&format!("{a}, {b},"))), vec![a, b]);
        assert_eq!(
            attachment_ids(Some(&format!("{a},../etc/passwd"))),
            vec![a, Uuid::nil()]
        );
    }

    fn urgent(c: &CommentView, stage: &str, at: DateTime<Utc>) -> UrgentView {
        let minutes = |m: i64| at + chrono::Duration::minutes(m);
        let mut steps = vec![("asked".to_owned(), Some("青木 さくら".to_owned()), at)];
        match stage {
            "reminded" => steps.push(("reminded".into(), None, minutes(15))),
            "escalated" => {
                steps.push(("reminded".into(), None, minutes(15)));
                steps.push(("no_one_on_call".into(), None, minutes(30)));
            }
            "acknowledged" => {
                steps.push(("acknowledged".into(), Some("川村 健一".into()), minutes(5)))
            }
            _ => {}
        }
        UrgentView {
            comment_id: c.row.id,
            stage: stage.into(),
            created_at: at,
            remind_at: minutes(15),
            escalate_at: minutes(30),
            acknowledged_by: (stage == "acknowledged").then(|| "川村 健一".into()),
            acknowledged_at: (stage == "acknowledged").then(|| minutes(5)),
            asked: vec![
                (
                    Uuid::now_v7().into(),
                    "川村 健一".into(),
                    "attending".into(),
                ),
                (
                    Uuid::now_v7().into(),
                    "<b>大野</b>".into(),
                    "on_call".into(),
                ),
            ],
            steps,
            may_acknowledge: stage != "acknowledged",
        }
    }

    fn render_urgent(c: &CommentView, u: UrgentView, now: DateTime<Utc>) -> String {
        let facts = ListFacts {
            lang: Lang::Ja,
            slug: "minatogawa",
            topic_id: Uuid::nil().into(),
            mode: ReceiptMode::Off,
            owner: false,
            first_unread_seq: None,
            unseen: &[],
            csrf: "TOKEN",
            unread_total: 0,
            now,
        };
        CommentsFragment {
            t: Translator::new(Lang::Ja),
            list: build_list_with(&facts, std::slice::from_ref(c), None, &[u]),
        }
        .render()
        .expect("renders")
    }

    #[test]
    fn an_urgent_comment_says_who_was_asked_where_it_stands_and_what_comes_next() {
        // 14:05 in Japan.
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 5, 0).single().unwrap();
        let now = at + chrono::Duration::minutes(1);
        let c = with_files("至急です", vec![]);

        let html = render_urgent(&c, urgent(&c, "asked", at), now);
        assert!(
            html.contains("<span class=\"mark mark--urgent\">至急</span>"),
            "{html}"
        );
        assert!(
            html.contains(
                "確認を求めた人：川村 健一（主治医）・&#60;b&#62;大野&#60;/b&#62;（当番医）"
            ),
            "{html}"
        );
        assert!(html.contains("<span class=\"urgent__stage\">確認待ち</span>"));
        assert!(html.contains("14:20 までに確認がなければ再通知します"));
        assert!(html.contains("datetime=\"2026-03-04T14:05:00+09:00\" title=\"2026年3月4日 14:05\">14:05</time> <span class=\"urgent__label\">依頼</span>"), "{html}");
        assert!(html.contains(&format!(
            "action=\"/a/minatogawa/t/{}/c/{}/urgent-ack\"",
            Uuid::nil(),
            c.row.id
        )));
        assert!(html.contains(">至急の確認をしました</button>"));

        let html = render_urgent(&c, urgent(&c, "reminded", at), now);
        assert!(html.contains(">再通知済み<"));
        assert!(html.contains("14:35 までに確認がなければ当番医へ連絡します"));
        assert!(html.contains(">再通知</span>"));

        let html = render_urgent(&c, urgent(&c, "escalated", at), now);
        assert!(html.contains("<span class=\"urgent__stage\">当番医が見つかりません</span>"));
        assert!(!html.contains("までに確認がなければ"));

        let html = render_urgent(&c, urgent(&c, "acknowledged", at), now);
        assert!(html.contains(">確認済み（川村 健一、14:10）<"), "{html}");
        assert!(html.contains(">確認（川村 健一）</span>"));
        assert!(!html.contains("までに確認がなければ"));
        assert!(!html.contains("urgent-ack"));

        // A deleted comment keeps nothing of it.
        let mut gone = c.clone();
        gone.row.deleted_at = Some(now);
        let html = render_urgent(&gone, urgent(&c, "asked", at), now);
        assert!(!html.contains("至急"));
    }

    #[test]
    fn a_thumbnail_keeps_the_photos_proportions_within_its_box() {
        assert_eq!(thumb_size(Some(4032), Some(3024)), (320, 240));
        assert_eq!(thumb_size(Some(1080), Some(1920)), (180, 320));
        assert_eq!(thumb_size(Some(100), Some(50)), (100, 50));
        assert_eq!(thumb_size(None, Some(50)), (320, 320));
        assert_eq!(thumb_size(Some(0), Some(0)), (320, 320));
    }
}
