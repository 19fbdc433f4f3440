//! `GET /home`: the signed-in home page. First what is new, triaged for a phone: one entry per
//! group with something unread (those with 重要 unread first, then patient groups, then the
//! newest), each with its counts, its headline comment a tap away and its unread topics behind
//! one more tap; `?important=1` shows only what is marked 重要. Group invitations waiting for
//! an answer come first, then conversations of direct messages with something unread (each
//! leading to the conversation, not to a group); then the person's associations and account.
//!
//! `GET /home/unread` is the "what is new" part alone, for `static/live.js` to swap in when an
//! event says something changed.

use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::{Lang, Translator};
use crate::layout::{Nav, Section};
use crate::pages::sns::{self, short_time};
use askama::Template;
use axum::extract::{Query, State};
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
    /// Conversations of direct messages with something unread.
    pub messages: Vec<UnreadMessage>,
    pub invitations: Vec<InvitationCard>,
    /// For the "mark all as read" and invitation forms.
    pub csrf: String,
    /// `?important=1`: only groups and topics with something marked 重要.
    pub important_only: bool,
    /// Unread comments marked 重要, everywhere.
    pub important_total: i64,
}

pub(crate) struct UnreadGroup {
    pub slug: String,
    pub id: String,
    pub name: String,
    pub association: String,
    pub patient: bool,
    pub unread: i64,
    /// Unread comments marked 重要.
    pub important: i64,
    /// The newest important unread comment, else the newest unread one.
    pub headline: Option<UnreadItem>,
    pub topics: Vec<UnreadTopic>,
    /// Topics with something unread that are not listed.
    pub more_topics: i64,
    pub time: String,
    pub datetime: String,
}

/// A topic with something unread: opens at 「ここから未読」.
pub(crate) struct UnreadTopic {
    pub href: String,
    pub title: String,
    pub unread: i64,
    pub important: i64,
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

/// A conversation with unread messages: opens at 「ここから未読」.
pub(crate) struct UnreadMessage {
    pub href: String,
    /// The other people.
    pub names: String,
    pub association: String,
    pub unread: i64,
    pub excerpt: String,
    pub author: String,
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
    let unread = unread_section(&services, &ctx, &viewer, important_only(&uri)).await?;
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
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    let unread = unread_section(&services, &ctx, &viewer, important_only(&uri)).await?;
    let page = UnreadFragment {
        t: Translator::new(ctx.lang),
        unread,
    };
    Ok(ctx.respond(StatusCode::OK, &page))
}

#[derive(Debug, Default, serde::Deserialize)]
struct HomeQuery {
    important: Option<String>,
}

/// `?important=1`: only what is marked 重要.
fn important_only(uri: &Uri) -> bool {
    Query::<HomeQuery>::try_from_uri(uri)
        .map(|q| q.0.important.as_deref() == Some("1"))
        .unwrap_or(false)
}

async fn unread_section(
    services: &Services,
    ctx: &Ctx,
    viewer: &Viewer,
    important_only: bool,
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
        important_only,
    ))
}

pub(crate) fn build_section(
    lang: Lang,
    home: Home,
    invitations: Vec<InvitationCard>,
    csrf: String,
    important_only: bool,
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
    let important_total = home.groups.iter().map(|g| g.important).sum();
    let (conversations, groups): (Vec<_>, Vec<_>) =
        home.groups.into_iter().partition(|g| g.conversation);
    let messages = conversations
        .into_iter()
        .filter(|g| !important_only || g.important > 0)
        .filter_map(|g| {
            let topic = g
                .headline
                .as_ref()
                .map(|i| i.topic_id)
                .or_else(|| g.topics.first().map(|t| t.topic_id))?;
            let newest = g.newest_at.unwrap_or(now);
            Some(UnreadMessage {
                href: format!("/a/{}/t/{topic}#unread", g.association_slug),
                names: g.group_name,
                association: g.association_name,
                unread: g.unread,
                excerpt: g
                    .headline
                    .as_ref()
                    .map(|i| i.excerpt.clone())
                    .unwrap_or_default(),
                author: g.headline.map(|i| i.author_name).unwrap_or_default(),
                time: short_time(lang, newest, now),
                datetime: sns::machine_time(newest),
            })
        })
        .collect();
    let groups = groups
        .into_iter()
        .filter(|g| !important_only || g.important > 0)
        .map(|g| {
            let slug = g.association_slug;
            let headline = g.headline.map(|i| UnreadItem {
                href: format!("/a/{slug}/t/{}#c-{}", i.topic_id, i.seq),
                topic_title: i.topic_title.clone(),
                author: i.author_name.clone(),
                excerpt: i.excerpt.clone(),
                important: i.important,
                new_topic: i.seq == 1,
                time: short_time(lang, i.created_at, now),
                datetime: sns::machine_time(i.created_at),
            });
            let topics: Vec<UnreadTopic> = g
                .topics
                .iter()
                .filter(|t| !important_only || t.important > 0)
                .map(|t| UnreadTopic {
                    href: format!("/a/{slug}/t/{}#unread", t.topic_id),
                    title: t.title.clone(),
                    unread: t.unread,
                    important: t.important,
                })
                .collect();
            let newest = g.newest_at.unwrap_or(now);
            UnreadGroup {
                more_topics: if important_only {
                    0
                } else {
                    (g.unread_topics - topics.len() as i64).max(0)
                },
                slug,
                id: g.group_id.to_string(),
                name: g.group_name,
                association: g.association_name,
                patient: g.patient,
                unread: g.unread,
                important: g.important,
                headline,
                topics,
                time: short_time(lang, newest, now),
                datetime: sns::machine_time(newest),
            }
        })
        .collect();
    UnreadSection {
        total: home.counts.total,
        associations,
        groups,
        messages,
        invitations,
        csrf,
        important_only,
        important_total,
    }
}
