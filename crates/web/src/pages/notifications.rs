//! E-mail notification settings (see `musubi_domain::notifications`).
//!
//! - `GET /settings/notifications`: where the mails go, how often (すぐに（数分まとめて）/
//!   1時間ごと / 毎日決まった時刻 / 送らない, with the time for 毎日), the person's groups each
//!   with 「メールで知らせない」, and 「送ったお知らせ」: what was sent, when, and how it went.
//! - `POST /settings/notifications`: the mode and the daily time. A time or a mode that cannot
//!   be read is said at its field (422), with what was chosen and typed kept.
//! - `POST /settings/notifications/mute`: one group, muted or not (`group_id`, `muted`).
//!   A group the person is not an active member of is the normal 404 page, as everywhere.
//!
//! The settings are the person's own, not an association's: the changes are recorded in the
//! audit log of their first association ([`Place::open_home`]). Every form works without
//! JavaScript and answers with 303 and a fixed `?done=` code.

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::pages::flash::{lookup, Flash};
use crate::pages::place::{page_error, Place};
use crate::pages::sns::{nav, parse_id, unread_total};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use chrono::{NaiveTime, Timelike};
use http::{StatusCode, Uri};
use musubi_domain::groups::GroupKind;
use musubi_domain::notifications::{
    default_daily_at, EmailMode, NotificationSettings, SentNotification,
};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupId, GroupMemberStatus};
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

/// The page's own address (also what the header's menu link compares with).
pub(crate) const PATH: &str = "/settings/notifications";

/// The mode the form shows: the saved one, or the one chosen in a refused form.
pub(crate) struct ModeChoice {
    pub code: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub checked: bool,
}

/// One of the person's groups, with whether mail speaks of it.
pub(crate) struct GroupMute {
    pub id: String,
    pub name: String,
    pub association: String,
    pub patient: bool,
    pub muted: bool,
}

/// One line of 「送ったお知らせ」: no subject, no body, only what and when.
pub(crate) struct SentLine {
    pub when: String,
    pub channel: &'static str,
    pub state: &'static str,
    /// `sent`, `sending`, `retrying`, `failed` or `interrupted`: the words' colour.
    pub state_code: &'static str,
    pub unread: String,
}

/// The settings form as typed, and what is wrong with it.
#[derive(Debug, Default)]
pub(crate) struct Typed {
    mode: String,
    daily_at: String,
    mode_error: Option<String>,
    time_error: Option<String>,
}

#[derive(Template)]
#[template(path = "notifications.html")]
pub(crate) struct NotificationsPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub email: String,
    pub modes: Vec<ModeChoice>,
    pub daily_at: String,
    pub mode_error: Option<String>,
    pub time_error: Option<String>,
    /// The refused form's messages, for the summary at its top.
    pub has_errors: bool,
    pub last_sent: Option<String>,
    pub groups: Vec<GroupMute>,
    pub sent: Vec<SentLine>,
    /// 「この端末に通知」 (web push).
    pub push: crate::pages::push::PushSection,
}

#[derive(Debug, Default, Deserialize)]
struct FlashQuery {
    done: Option<String>,
}

/// The messages the page's forms leave: (code, catalog key).
const DONE: &[(&str, &str)] = &[
    ("saved", "notify.done.saved"),
    ("muted", "notify.done.muted"),
    ("unmuted", "notify.done.unmuted"),
    ("push_added", "push.done.added"),
    ("push_removed", "push.done.removed"),
];

fn page_flash(t: Translator, uri: &Uri) -> Option<Flash> {
    let q = Query::<FlashQuery>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    lookup(DONE, q.done.as_deref()).map(|key| Flash {
        text: t.get(key).to_owned(),
        success: true,
    })
}

fn mode_words(t: Translator, mode: EmailMode) -> (&'static str, &'static str) {
    match mode {
        EmailMode::Immediate => (
            t.get("notify.mode.immediate"),
            t.get("notify.mode.immediate_hint"),
        ),
        EmailMode::Hourly => (
            t.get("notify.mode.hourly"),
            t.get("notify.mode.hourly_hint"),
        ),
        EmailMode::Daily => (t.get("notify.mode.daily"), t.get("notify.mode.daily_hint")),
        EmailMode::Off => (t.get("notify.mode.off"), t.get("notify.mode.off_hint")),
    }
}

fn channel_words(t: Translator, channel: &str) -> &'static str {
    match channel {
        "push" => t.get("notify.channel.push"),
        _ => t.get("notify.channel.email"),
    }
}

/// The state in words (never colour alone), and the code for its colour.
fn state_words(t: Translator, state: &str) -> (&'static str, &'static str) {
    match state {
        "sent" => (t.get("notify.state.sent"), "sent"),
        "sending" => (t.get("notify.state.sending"), "sending"),
        "retrying" => (t.get("notify.state.retrying"), "retrying"),
        "failed" => (t.get("notify.state.failed"), "failed"),
        _ => (t.get("notify.state.interrupted"), "interrupted"),
    }
}

fn sent_line(t: Translator, ctx: &Ctx, n: &SentNotification) -> SentLine {
    let (state, state_code) = state_words(t, &n.state);
    SentLine {
        when: datetime::date_time(ctx.lang, n.sent_at.unwrap_or(n.created_at)),
        channel: channel_words(t, &n.channel),
        state,
        state_code,
        unread: t.format("notify.sent.unread", &n.unread.to_string()),
    }
}

/// `07:30` for the form's time field.
fn time_value(at: NaiveTime) -> String {
    at.format("%H:%M").to_string()
}

/// A time typed in the form: `7:30`, `07:30`, `07:30:00` (what browsers send), in full-width
/// digits too (`７：３０`). Seconds are dropped; the mail goes at the minute.
fn parse_time(raw: &str) -> Option<NaiveTime> {
    let normal: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            '：' => ':',
            _ => c,
        })
        .collect();
    NaiveTime::parse_from_str(&normal, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(&normal, "%H:%M:%S"))
        .ok()
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
}

async fn render(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
    typed: Option<Typed>,
    flash: Option<Flash>,
    status: StatusCode,
) -> Result<Response, Response> {
    let t = Translator::new(ctx.lang);
    let settings: NotificationSettings = services
        .notification_settings(viewer)
        .await
        .map_err(|e| ctx.fail("reading notification settings", e))?;
    let groups = services
        .my_groups(viewer)
        .await
        .map_err(|e| ctx.fail("listing my groups", e))?;
    let sent = services
        .notifications_sent(viewer)
        .await
        .map_err(|e| ctx.fail("listing notifications sent", e))?;
    let unread = unread_total(services, viewer).await;
    let push = crate::pages::push::section(services, ctx, viewer).await?;

    let typed = typed.unwrap_or_else(|| Typed {
        mode: settings.email_mode.code().to_owned(),
        daily_at: time_value(settings.daily_at),
        ..Typed::default()
    });
    let modes = EmailMode::ALL
        .into_iter()
        .map(|m| {
            let (label, hint) = mode_words(t, m);
            ModeChoice {
                code: m.code(),
                label,
                hint,
                checked: typed.mode == m.code(),
            }
        })
        .collect();
    let groups = groups
        .into_iter()
        .filter(|g| g.group.my_status == Some(GroupMemberStatus::Active))
        .map(|g| GroupMute {
            id: g.group.id.to_string(),
            muted: settings.muted.contains(&g.group.id),
            patient: g.group.kind == GroupKind::Patient,
            name: g.group.name,
            association: g.association_name,
        })
        .collect();
    let page = NotificationsPage {
        t,
        assets: assets::urls(),
        nav: nav(viewer, ctx, unread, Section::Other),
        current_path: PATH,
        csrf: ctx.csrf.form_token(),
        flash,
        email: settings.email.clone(),
        modes,
        daily_at: typed.daily_at,
        has_errors: typed.mode_error.is_some() || typed.time_error.is_some(),
        mode_error: typed.mode_error,
        time_error: typed.time_error,
        last_sent: settings
            .last_sent_at
            .map(|at| datetime::date_time(ctx.lang, at)),
        groups,
        sent: sent.iter().map(|n| sent_line(t, ctx, n)).collect(),
        push,
    };
    Ok(ctx.respond(status, &page))
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let flash = page_flash(Translator::new(ctx.lang), &uri);
    render(&services, &ctx, &viewer, None, flash, StatusCode::OK).await
}

/// The settings form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SettingsForm {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    daily_at: String,
}

pub(crate) async fn save(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<SettingsForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let mut typed = Typed {
        mode: form.mode.trim().to_owned(),
        daily_at: form.daily_at.trim().to_owned(),
        ..Typed::default()
    };
    let mode = EmailMode::from_code(&typed.mode);
    if mode.is_none() {
        typed.mode_error = Some(t.get("notify.error.mode").to_owned());
    }
    // The time matters for 毎日; with another mode an empty or unreadable one keeps the saved
    // time (the field is then not what the person meant to change).
    let daily_at = match parse_time(&typed.daily_at) {
        Some(at) => Some(at),
        None if mode == Some(EmailMode::Daily) => {
            typed.time_error = Some(
                t.get(if typed.daily_at.is_empty() {
                    "notify.error.time_missing"
                } else {
                    "notify.error.time"
                })
                .to_owned(),
            );
            None
        }
        None => Some(
            services
                .notification_settings(&p.viewer)
                .await
                .map(|s| s.daily_at)
                .unwrap_or_else(|_| default_daily_at()),
        ),
    };
    let (Some(mode), Some(daily_at)) = (mode, daily_at) else {
        return render(
            &services,
            &ctx,
            &p.viewer,
            Some(typed),
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    match services
        .update_notification_settings(&p.actor(), mode, daily_at)
        .await
    {
        Ok(()) => Ok(ctx.redirect(&format!("{PATH}?done=saved"))),
        Err(e) if e.code == ErrorCode::InvalidInput => {
            typed.time_error = Some(t.get("notify.error.time").to_owned());
            render(
                &services,
                &ctx,
                &p.viewer,
                Some(typed),
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => Err(page_error(&ctx, "saving notification settings", e)),
    }
}

/// One group's 「メールで知らせない」.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MuteForm {
    #[serde(default)]
    group_id: String,
    /// `1` (or `on`, `true`): no mail about the group; anything else: mail again.
    #[serde(default)]
    muted: String,
}

pub(crate) async fn mute(
    State(services): State<Services>,
    ctx: Ctx,
    form: Result<Form<MuteForm>, FormRejection>,
) -> Result<Response, Response> {
    let p = Place::open_home(&services, &ctx).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let group_id: GroupId = parse_id(form.group_id.trim());
    let muted = matches!(form.muted.trim(), "1" | "on" | "true");
    match services
        .set_group_mail_muted(&p.actor(), group_id, muted)
        .await
    {
        Ok(()) => {
            let done = if muted { "muted" } else { "unmuted" };
            Ok(ctx.redirect(&format!("{PATH}?done={done}#group-{group_id}")))
        }
        Err(e) => Err(page_error(&ctx, "muting a group's mail", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_people_type_them() {
        let at = |h, m| NaiveTime::from_hms_opt(h, m, 0);
        assert_eq!(parse_time("07:30"), at(7, 30));
        assert_eq!(parse_time(" 7:30 "), at(7, 30));
        assert_eq!(parse_time("07:30:59"), at(7, 30));
        assert_eq!(parse_time("０７：３０"), at(7, 30));
        assert_eq!(parse_time("23:59"), at(23, 59));
        for bad in ["", "25:00", "7時半", "07:60", "0730", "-1:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_known_done_codes_say_something() {
        assert_eq!(lookup(DONE, Some("saved")), Some("notify.done.saved"));
        assert_eq!(lookup(DONE, Some("<script>")), None);
    }
}
