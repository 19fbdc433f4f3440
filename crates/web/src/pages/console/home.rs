//! `GET /a/{slug}/console`: the console's first page: the association, a few counts an
//! administrator checks (who is in, who has no second factor, invitations waiting), the
//! policy in one line, and the ways on.

use super::{page_error, Console, ConsoleHead};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::Nav;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use musubi_domain::types::{AccountStatus, AssociationRole};
use musubi_domain::Services;

/// One number with what it counts: "利用中のメンバー 6人".
pub(crate) struct Count {
    pub label: &'static str,
    pub value: String,
    /// Worth a look (e.g. members without a second factor where it is required).
    pub attention: bool,
}

#[derive(Template)]
#[template(path = "console/home.html")]
pub(crate) struct ConsoleHomePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub console: ConsoleHead,
    pub counts: Vec<Count>,
    /// The policy in plain words.
    pub policy: Vec<String>,
    /// Notifications to members that did not (surely) arrive lately: (name, what, state, when).
    pub mail_failures: Vec<(String, String, String, String)>,
}

/// 「12件・35.2 MB（上限 50 GB の 0.1%）」; worth a look from nine tenths of the quota.
fn storage_count(t: Translator, usage: &musubi_domain::files::FileUsage) -> Count {
    let used = crate::pages::sns::files::size_label(usage.used_bytes);
    let files = usage.files.to_string();
    let fill = |key: &str, values: &[&str]| {
        values
            .iter()
            .fold(t.get(key).to_owned(), |s, v| s.replacen("{}", v, 1))
    };
    let value = if usage.quota_bytes == 0 {
        fill("console.home.storage_unlimited", &[&files, &used])
    } else {
        let quota_gb = (usage.quota_bytes / (1024 * 1024 * 1024)).to_string();
        let share = usage.used_bytes.max(0) as f64 * 100.0 / usage.quota_bytes as f64;
        fill(
            "console.home.storage",
            &[&files, &used, &quota_gb, &format!("{share:.1}")],
        )
    };
    Count {
        label: t.get("console.home.count_storage"),
        value,
        attention: usage.quota_bytes > 0
            && usage.used_bytes.max(0) as u64 >= usage.quota_bytes / 10 * 9,
    }
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    Path(slug): Path<String>,
) -> Result<Response, Response> {
    let c = Console::open(&services, &ctx, &slug).await?;
    let fail = |e| page_error(&ctx, "opening the console", e);
    // The first call authorizes (and audits a refusal); the others then pass.
    let members = services.list_members(&c.actor()).await.map_err(fail)?;
    let invitations = services.list_invitations(&c.actor()).await.map_err(fail)?;
    let settings = services
        .association_settings(&c.actor())
        .await
        .map_err(fail)?;
    let usage = services.file_usage(&c.actor()).await.map_err(fail)?;
    let mail = services
        .member_mail_status(&c.actor())
        .await
        .map_err(fail)?;

    let t = Translator::new(ctx.lang);
    let people = |n: usize| t.format("console.home.people", &n.to_string());
    let active: Vec<_> = members
        .iter()
        .filter(|m| m.status == AccountStatus::Active)
        .collect();
    let admins = active
        .iter()
        .filter(|m| m.role == AssociationRole::Admin)
        .count();
    let without_second_factor = active.iter().filter(|m| !m.second_factor_enabled).count();
    let counts = vec![
        Count {
            label: t.get("console.home.count_active"),
            value: people(active.len()),
            attention: false,
        },
        Count {
            label: t.get("console.home.count_admins"),
            value: people(admins),
            attention: false,
        },
        Count {
            label: t.get("console.home.count_deactivated"),
            value: people(members.len() - active.len()),
            attention: false,
        },
        Count {
            label: t.get("console.home.count_no_second_factor"),
            value: people(without_second_factor),
            attention: settings.require_second_factor && without_second_factor > 0,
        },
        Count {
            label: t.get("console.home.count_invitations"),
            value: t.format("console.home.items", &invitations.len().to_string()),
            attention: false,
        },
        storage_count(t, &usage),
        Count {
            label: t.get("console.home.count_mail"),
            value: t
                .get("console.home.mail")
                .replacen("{}", &mail.sent.to_string(), 1)
                .replacen("{}", &mail.not_delivered.to_string(), 1),
            attention: mail.not_delivered > 0,
        },
    ];
    let mail_failures = mail
        .failures
        .into_iter()
        .map(|(name, kind, state, at)| {
            let what = if kind == "urgent" {
                t.get("console.home.mail_kind_urgent")
            } else {
                t.get("console.home.mail_kind_digest")
            };
            let state = match state.as_str() {
                "failed" => t.get("notify.state.failed"),
                "interrupted" => t.get("notify.state.interrupted"),
                _ => t.get("notify.state.retrying"),
            };
            (
                name,
                what.to_owned(),
                state.to_owned(),
                crate::datetime::date_time(ctx.lang, at),
            )
        })
        .collect();
    let policy = vec![
        if settings.require_second_factor {
            t.get("console.home.policy_2fa_required").to_owned()
        } else {
            t.get("console.home.policy_2fa_optional").to_owned()
        },
        t.format(
            "console.home.policy_idle",
            &settings.session_idle_minutes.to_string(),
        ),
        t.format(
            "console.home.policy_absolute",
            &settings.session_absolute_hours.to_string(),
        ),
        t.format(
            "console.home.policy_retention",
            &settings.audit_retention_years.to_string(),
        ),
    ];
    let path = c.path("");
    let page = ConsoleHomePage {
        t,
        assets: assets::urls(),
        nav: Nav::signed_in(&c.viewer.user().name, ctx.csrf.form_token()),
        current_path: &path,
        console: c.head("home"),
        counts,
        policy,
        mail_failures,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}
