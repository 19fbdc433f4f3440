//! `GET /home`: the signed-in home page. First what is new: unread comments across every
//! association, grouped by group (patient groups first), newest first, each a tap away, and
//! group invitations waiting for an answer; then the person's associations and account.
//!
//! `GET /home/unread` is the "what is new" part alone, for `static/live.js` to swap in when an
//! event says something changed.

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::pages::sns::{self, short_time};
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use http::{StatusCode, Uri};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{AssociationRole, GroupKind, GroupMemberStatus};
use musubi_domain::unread::Home;
use musubi_domain::Services;

/// One association the person belongs to, as the home page shows it.
pub(crate) struct MembershipCard {
    pub name: String,
    /// For the link to the association's console (administrators only).
    pub slug: String,
    pub admin: bool,
    pub facility: Option<String>,
}

/// The "what is new" part of the page.
pub(crate) struct UnreadSection {
    pub total: i64,
    /// (association name, count), when the person belongs to more than one.
    pub associations: Vec<(String, i64)>,
    pub groups: Vec<UnreadGroup>,
    pub invitations: Vec<InvitationCard>,
    /// For the "mark all as read" and invitation forms.
    pub csrf: String,
}

pub(crate) struct UnreadGroup {
    pub slug: String,
    pub id: String,
    pub name: String,
    pub association: String,
    pub patient: bool,
    pub unread: i64,
    pub items: Vec<UnreadItem>,
    /// Unread comments not listed (beyond what the page shows).
    pub more: i64,
}

pub(crate) struct UnreadItem {
    /// Straight to the comment: `/a/{slug}/t/{topic}#c-{seq}`.
    pub href: String,
    pub topic_title: String,
    pub author: String,
    pub excerpt: String,
    pub important: bool,
    /// The topic itself (its first post) rather than a reply.
    pub new_topic: bool,
    pub time: String,
    pub datetime: String,
}

pub(crate) struct InvitationCard {
    pub slug: String,
    pub id: String,
    pub name: String,
    pub association: String,
    pub patient: bool,
}

#[derive(Template)]
#[template(path = "home.html")]
pub(crate) struct HomePage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub name: &'a str,
    pub flash: Option<sns::Flash>,
    pub unread: UnreadSection,
    pub memberships: Vec<MembershipCard>,
    pub second_factor: bool,
}

/// `GET /home/unread`: the same section, alone.
#[derive(Template)]
#[template(path = "sns/home_unread_fragment.html")]
pub(crate) struct UnreadFragment {
    pub t: Translator,
    pub unread: UnreadSection,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let after = sns::live_cursor(&services).await;
    let unread = unread_section(&services, &ctx, &viewer).await?;
    let memberships = viewer
        .memberships()
        .iter()
        .map(|m| MembershipCard {
            name: m.association_name.clone(),
            slug: m.slug.clone(),
            admin: m.role == AssociationRole::Admin,
            facility: m.facility_name.clone(),
        })
        .collect();
    let t = Translator::new(ctx.lang);
    let page = HomePage {
        t,
        assets: assets::urls(),
        nav: sns::nav(&viewer, &ctx, unread.total, Section::Home).live_after(after),
        current_path: "/home",
        name: &viewer.user().name,
        flash: sns::flash(t, &uri),
        unread,
        memberships,
        second_factor: viewer.user().totp_enabled_at.is_some(),
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

pub(crate) async fn fragment(
    State(services): State<Services>,
    ctx: Ctx,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let unread = unread_section(&services, &ctx, &viewer).await?;
    let page = UnreadFragment {
        t: Translator::new(ctx.lang),
        unread,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

async fn unread_section(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
) -> Result<UnreadSection, Response> {
    let home = services
        .home(viewer)
        .await
        .map_err(|e| ctx.fail("reading the home page", e))?;
    // The invitations themselves only when there are some (the home page counts them).
    let invitations = if home.invitations > 0 {
        services
            .my_groups(viewer)
            .await
            .map_err(|e| ctx.fail("listing group invitations", e))?
            .into_iter()
            .filter(|g| g.group.my_status == Some(GroupMemberStatus::Invited))
            .map(|g| InvitationCard {
                slug: g.association_slug,
                id: g.group.id.to_string(),
                patient: g.group.kind == GroupKind::Patient,
                name: g.group.name,
                association: g.association_name,
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(build_section(
        ctx.lang,
        home,
        invitations,
        ctx.csrf.form_token().to_owned(),
    ))
}

pub(crate) fn build_section(
    lang: Lang,
    home: Home,
    invitations: Vec<InvitationCard>,
    csrf: String,
) -> UnreadSection {
    let now = Utc::now();
    let associations = if home.counts.associations.len() > 1 {
        home.counts
            .associations
            .iter()
            .map(|(_, name, n)| (name.clone(), *n))
            .collect()
    } else {
        Vec::new()
    };
    let groups = home
        .groups
        .into_iter()
        .map(|g| {
            let items: Vec<UnreadItem> = g
                .items
                .iter()
                .map(|i| UnreadItem {
                    href: format!("/a/{}/t/{}#c-{}", g.association_slug, i.topic_id, i.seq),
                    topic_title: i.topic_title.clone(),
                    author: i.author_name.clone(),
                    excerpt: i.excerpt.clone(),
                    important: i.important,
                    new_topic: i.seq == 1,
                    time: short_time(lang, i.created_at, now),
                    datetime: sns::machine_time(i.created_at),
                })
                .collect();
            UnreadGroup {
                more: (g.unread - items.len() as i64).max(0),
                slug: g.association_slug,
                id: g.group_id.to_string(),
                name: g.group_name,
                association: g.association_name,
                patient: g.patient,
                unread: g.unread,
                items,
            }
        })
        .collect();
    UnreadSection {
        total: home.counts.total,
        associations,
        groups,
        invitations,
        csrf,
    }
}
