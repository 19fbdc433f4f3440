//! `GET /a/{slug}/console/settings` and `POST …/settings`: the association's policy (second
//! factor required, session timeouts, how long the audit log is kept, what notification mails
//! may name, how long a 至急 post waits), explained plainly, with what is wrong shown next to
//! the field it is about.

use super::{page_error, Console, ConsoleHead, Flash, FlashQuery};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::datetime;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Form;
use chrono::{DateTime, Utc};
use http::{StatusCode, Uri};
use musubi_domain::members::SettingsInput;
use musubi_domain::{ErrorCode, Services};
use serde::Deserialize;

/// Messages next to the fields they are about.
#[derive(Default)]
pub(crate) struct SettingsErrors {
    pub idle: Option<&'static str>,
    pub absolute: Option<&'static str>,
    pub retention: Option<&'static str>,
    pub urgent: Option<&'static str>,
}

/// The fields as shown: the saved values, or what was typed.
pub(crate) struct SettingsValues {
    pub require_second_factor: bool,
    pub idle: String,
    pub absolute: String,
    pub retention: String,
    /// `footprints`, `ack` or `off`.
    pub receipt_mode: String,
    pub mail_group_names: bool,
    pub cross_association_messages: bool,
    pub urgent: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
pub(crate) struct SettingsPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub csrf: &'a str,
    pub flash: Option<Flash>,
    pub values: SettingsValues,
    pub errors: SettingsErrors,
    /// When the settings last changed.
    pub updated: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct SettingsForm {
    /// A checkbox: present ("on") when ticked, absent when not.
    #[serde(default)]
    require_second_factor: String,
    #[serde(default)]
    idle_minutes: String,
    #[serde(default)]
    absolute_hours: String,
    #[serde(default)]
    retention_years: String,
    #[serde(default)]
    receipt_mode: String,
    /// A checkbox, as `require_second_factor`.
    #[serde(default)]
    mail_group_names: String,
    /// A checkbox, as `require_second_factor`.
    #[serde(default)]
    cross_association_messages: String,
    #[serde(default)]
    urgent_minutes: String,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    uri: Uri,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let saved = services
        .association_settings(&c.actor())
        .await
        .map_err(|e| page_error(&ctx, "reading the settings", e))?;
    let values = SettingsValues {
        require_second_factor: saved.require_second_factor,
        idle: saved.session_idle_minutes.to_string(),
        absolute: saved.session_absolute_hours.to_string(),
        retention: saved.audit_retention_years.to_string(),
        receipt_mode: saved.receipt_mode.code().to_owned(),
        mail_group_names: saved.mail_group_names,
        cross_association_messages: saved.cross_association_messages,
        urgent: saved.urgent_ack_minutes.to_string(),
    };
    let flash = FlashQuery::from_uri(&uri).message(Translator::new(ctx.lang), None);
    Ok(render(
        &ctx,
        &c,
        StatusCode::OK,
        values,
        SettingsErrors::default(),
        flash,
        saved.updated_at,
    ))
}

fn render(
    ctx: &Ctx,
    c: &Console,
    status: StatusCode,
    values: SettingsValues,
    errors: SettingsErrors,
    flash: Option<Flash>,
    updated_at: DateTime<Utc>,
) -> Response {
    let t = Translator::new(ctx.lang);
    let path = c.path("settings");
    let page = SettingsPage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("settings"),
        csrf: ctx.csrf.form_token(),
        flash,
        values,
        errors,
        updated: datetime::date_time(ctx.lang, updated_at),
    };
    ctx.respond(status, &page)
}

const IDLE_ERROR: &str = "console.settings.idle_error";
const ABSOLUTE_ERROR: &str = "console.settings.absolute_error";
const RETENTION_ERROR: &str = "console.settings.retention_error";
const URGENT_ERROR: &str = "console.settings.urgent_error";

/// A whole number as people type it: full-width digits and surrounding spaces are fine.
fn number(raw: &str) -> Option<i32> {
    let ascii: String = raw
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            c => c,
        })
        .collect();
    ascii.parse().ok()
}

pub(crate) async fn submit(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
    form: Result<Form<SettingsForm>, FormRejection>,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let form = form.map(|f| f.0).unwrap_or_default();
    let values = SettingsValues {
        require_second_factor: !form.require_second_factor.is_empty(),
        idle: form.idle_minutes.trim().to_owned(),
        absolute: form.absolute_hours.trim().to_owned(),
        retention: form.retention_years.trim().to_owned(),
        receipt_mode: form.receipt_mode.trim().to_owned(),
        mail_group_names: !form.mail_group_names.is_empty(),
        cross_association_messages: !form.cross_association_messages.is_empty(),
        urgent: form.urgent_minutes.trim().to_owned(),
    };
    let (idle, absolute, retention, urgent) = (
        number(&values.idle),
        number(&values.absolute),
        number(&values.retention),
        // Left empty (or a form from before the field existed): kept as it is.
        if values.urgent.is_empty() {
            Some(None)
        } else {
            number(&values.urgent).map(Some)
        },
    );
    let mut errors = SettingsErrors {
        idle: idle.is_none().then_some(IDLE_ERROR),
        absolute: absolute.is_none().then_some(ABSOLUTE_ERROR),
        retention: retention.is_none().then_some(RETENTION_ERROR),
        urgent: urgent.is_none().then_some(URGENT_ERROR),
    };
    let t = Translator::new(ctx.lang);
    let translate = |mut e: SettingsErrors| {
        e.idle = e.idle.map(|k| t.get(k));
        e.absolute = e.absolute.map(|k| t.get(k));
        e.retention = e.retention.map(|k| t.get(k));
        e.urgent = e.urgent.map(|k| t.get(k));
        e
    };

    let (Some(idle), Some(absolute), Some(retention), Some(urgent)) =
        (idle, absolute, retention, urgent)
    else {
        // Not numbers: the services never see it, but they still decide who may see the page.
        let saved = services
            .association_settings(&c.actor())
            .await
            .map_err(|e| page_error(&ctx, "reading the settings", e))?;
        return Ok(render(
            &ctx,
            &c,
            StatusCode::UNPROCESSABLE_ENTITY,
            values,
            translate(errors),
            None,
            saved.updated_at,
        ));
    };
    let input = SettingsInput {
        require_second_factor: values.require_second_factor,
        session_idle_minutes: idle,
        session_absolute_hours: absolute,
        audit_retention_years: retention,
        // An unknown value (a tampered form) keeps the saved mode.
        receipt_mode: musubi_domain::groups::ReceiptMode::from_code(&values.receipt_mode),
        mail_group_names: Some(values.mail_group_names),
        urgent_ack_minutes: urgent,
        cross_association_messages: Some(values.cross_association_messages),
    };
    match services
        .update_association_settings(&c.actor(), &input)
        .await
    {
        Ok(_) => Ok(ctx.redirect(&format!("{}?done=settings_saved", c.path("settings")))),
        Err(e) if e.code == ErrorCode::InvalidInput => {
            match e.field {
                Some("sessionAbsoluteHours") => errors.absolute = Some(ABSOLUTE_ERROR),
                Some("auditRetentionYears") => errors.retention = Some(RETENTION_ERROR),
                Some("urgentAckMinutes") => errors.urgent = Some(URGENT_ERROR),
                // The idle timeout, or one longer than the absolute timeout.
                _ => errors.idle = Some(IDLE_ERROR),
            }
            let saved = services
                .association_settings(&c.actor())
                .await
                .map_err(|e| page_error(&ctx, "reading the settings", e))?;
            Ok(render(
                &ctx,
                &c,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                translate(errors),
                None,
                saved.updated_at,
            ))
        }
        Err(e) => Err(page_error(&ctx, "saving the settings", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_may_be_typed_in_full_width() {
        assert_eq!(number(" 60 "), Some(60));
        assert_eq!(number("１２"), Some(12));
        assert_eq!(number("60分"), None);
        assert_eq!(number(""), None);
    }
}
