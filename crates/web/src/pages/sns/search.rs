//! `GET /search`: free-word search over everything the person may read, in every association
//! hosting a group of theirs (see `musubi_domain::search`). The header of every signed-in page
//! sends its box here; this page adds the filters (kind, group, days, order).
//!
//! Query: `q`, `kind` (`topic|comment|file|patient`), `order` (`newest|relevance`), `from` and
//! `to` (`YYYY-MM-DD`, Japan days, both included), `group` (`{slug}:{uuid}`), `after` (the
//! cursor of the next page). An empty `q` shows the form and how to search; a query the
//! services refuse is said at the box (422), never the 500 page.
//!
//! Results open with `?from=search`: the topic page then leaves unread what was not shown to
//! the person (see [`super::topic::show`]).

use super::{nav, short_time};
use crate::assets::{self, AssetUrls};
use crate::ctx::Ctx;
use crate::i18n::Translator;
use crate::layout::{Nav, Section};
use crate::pages::console::query_string;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use http::{StatusCode, Uri};
use musubi_config::time::jst;
use musubi_domain::groups::MyGroup;
use musubi_domain::search::{
    reason, DocKind, Order, SearchHit, SearchInput, COUNT_CAP, MAX_QUERY_CHARS, MAX_WORDS,
};
use musubi_domain::sessions::Viewer;
use musubi_domain::types::{GroupId, GroupMemberStatus};
use musubi_domain::{AppError, ErrorCode, Services};
use serde::Deserialize;
use uuid::Uuid;

/// Results on one page.
const PAGE: usize = 20;

/// What the form sends (every field optional; anything unknown is ignored).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    after: String,
}

/// One result as the list shows it.
pub(crate) struct ResultCard {
    pub href: String,
    pub kind: &'static str,
    pub kind_label: String,
    pub group: String,
    /// The association, when it is not one of the person's own (a group hosted elsewhere).
    pub association: Option<String>,
    /// The line the card is named by: the topic's title, the file's or patient's name.
    pub title: Vec<(String, bool)>,
    /// Text around the first match (`true`: a word of the query).
    pub snippet: Vec<(String, bool)>,
    /// `コメント 3` for a comment.
    pub place: Option<String>,
    pub author: String,
    pub time: String,
    pub datetime: String,
}

/// A choice of a `<select>`: (value, label, chosen).
type Choice = (String, String, bool);

#[derive(Template)]
#[template(path = "sns/search.html")]
pub(crate) struct SearchPage<'a> {
    pub t: Translator,
    pub assets: &'static AssetUrls,
    pub nav: Nav<'a>,
    pub current_path: &'a str,
    pub q: String,
    pub kinds: Vec<Choice>,
    pub orders: Vec<Choice>,
    pub groups: Vec<Choice>,
    pub from: String,
    pub to: String,
    /// Filters other than the defaults are chosen: their disclosure opens.
    pub filtered: bool,
    /// The query's problem, said at the box.
    pub error: Option<String>,
    /// A date's problem, said at the dates.
    pub date_error: Option<String>,
    /// `None`: nothing searched (an empty box, or a refusal).
    pub results: Option<Vec<ResultCard>>,
    /// 「12件」, 「1000件以上」.
    pub count: String,
    pub next: Option<String>,
    pub next_label: String,
}

pub(crate) async fn show(
    State(services): State<Services>,
    ctx: Ctx,
    uri: Uri,
) -> Result<Response, Response> {
    let viewer = ctx.require_viewer(&services).await?;
    // A malformed query string is an empty form, like a first visit.
    let q = Query::<SearchQuery>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let t = Translator::new(ctx.lang);
    let mine: Vec<MyGroup> = services
        .my_groups(&viewer)
        .await
        .map_err(|e| ctx.fail("listing my groups", e))?
        .into_iter()
        .filter(|g| g.group.my_status == Some(GroupMemberStatus::Active))
        .collect();
    let unread: i64 = mine.iter().map(|g| g.unread).sum();

    let kind = DocKind::from_code(&q.kind);
    let order = if q.order == "relevance" {
        Order::Relevance
    } else {
        Order::Newest
    };
    let group = chosen_group(&mine, &q.group);
    let (from, until, date_error) = match (day_start(&q.from), day_start(&q.to)) {
        (Ok(from), Ok(to)) => (from, to.map(|d| d + chrono::TimeDelta::days(1)), None),
        _ => (None, None, Some(t.get("search.error.date").to_owned())),
    };

    let mut page = SearchPage {
        t,
        assets: assets::urls(),
        nav: nav(&viewer, &ctx, unread, Section::Search),
        current_path: "/search",
        q: q.q.clone(),
        kinds: kind_choices(t, kind),
        orders: order_choices(t, order),
        groups: group_choices(t, &mine, group),
        from: q.from.clone(),
        to: q.to.clone(),
        filtered: kind.is_some()
            || order != Order::Newest
            || group.is_some()
            || !q.from.is_empty()
            || !q.to.is_empty(),
        error: None,
        date_error,
        results: None,
        count: String::new(),
        next: None,
        next_label: t.format("search.next", &PAGE.to_string()),
    };
    if q.q.trim().is_empty() {
        return Ok(ctx.respond(StatusCode::OK, &page));
    }
    if page.date_error.is_some() {
        return Ok(ctx.respond(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let input = SearchInput {
        text: &q.q,
        kinds: kind.map(|k| vec![k]),
        group: group.map(|g| (g.association_slug.as_str(), g.group.id)),
        author: None,
        from,
        until,
        order,
        after: (!q.after.is_empty()).then_some(q.after.as_str()),
        first: PAGE,
    };
    let found = match services.search(&viewer, &ctx.client, &input).await {
        Ok(found) => found,
        Err(e) => match refusal(t, &e) {
            Some(message) => {
                page.error = Some(message);
                return Ok(ctx.respond(StatusCode::UNPROCESSABLE_ENTITY, &page));
            }
            None => return Err(ctx.fail("searching", e)),
        },
    };
    let now = Utc::now();
    page.results = Some(
        found
            .hits
            .iter()
            .map(|h| card(t, &ctx, &viewer, h, now))
            .collect(),
    );
    page.count = if found.more_than_total {
        t.format("search.count_more", &found.total.max(COUNT_CAP).to_string())
    } else {
        t.format("search.count", &found.total.to_string())
    };
    page.next = found.next.map(|after| {
        let group_code = group
            .map(|g| format!("{}:{}", g.association_slug, g.group.id))
            .unwrap_or_default();
        format!(
            "/search?{}",
            query_string(&[
                ("q", &q.q),
                ("kind", kind.map(DocKind::code).unwrap_or_default()),
                ("order", order_code(order)),
                ("from", &q.from),
                ("to", &q.to),
                ("group", &group_code),
                ("after", &after),
            ])
        )
    });
    Ok(ctx.respond(StatusCode::OK, &page))
}

/// A refused query in the person's words, or `None` for the 500 page.
fn refusal(t: Translator, e: &AppError) -> Option<String> {
    if e.code != ErrorCode::InvalidInput {
        return None;
    }
    Some(match e.reasons.first().copied().unwrap_or_default() {
        reason::NO_WORDS => t.get("search.error.no_words").to_owned(),
        reason::TOO_LONG => t.format("search.error.too_long", &MAX_QUERY_CHARS.to_string()),
        reason::TOO_MANY_WORDS => t.format("search.error.too_many_words", &MAX_WORDS.to_string()),
        reason::BAD_CURSOR => t.get("search.error.bad_cursor").to_owned(),
        _ => t.get("search.error.invalid").to_owned(),
    })
}

/// The start (Japan time) of the day typed, `None` when empty; an error when not a date.
fn day_start(raw: &str) -> Result<Option<DateTime<Utc>>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let day = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%Y/%m/%d"))
        .map_err(|_| ())?;
    day.and_hms_opt(0, 0, 0)
        .and_then(|midnight| midnight.and_local_timezone(jst()).single())
        .map(|at| Some(at.with_timezone(&Utc)))
        .ok_or(())
}

/// The group of `{slug}:{uuid}`, if it is one of the person's (anything else: every group).
fn chosen_group<'g>(mine: &'g [MyGroup], code: &str) -> Option<&'g MyGroup> {
    let (slug, id) = code.split_once(':')?;
    let id = GroupId::from(Uuid::parse_str(id).ok()?);
    mine.iter()
        .find(|g| g.association_slug == slug && g.group.id == id)
}

fn order_code(order: Order) -> &'static str {
    match order {
        Order::Newest => "newest",
        Order::Relevance => "relevance",
    }
}

fn kind_label(t: Translator, kind: DocKind) -> String {
    t.get(&format!("search.kind.{}", kind.code())).to_owned()
}

fn kind_choices(t: Translator, chosen: Option<DocKind>) -> Vec<Choice> {
    let mut out = vec![(
        String::new(),
        t.get("search.kind_all").to_owned(),
        chosen.is_none(),
    )];
    out.extend(
        DocKind::ALL
            .into_iter()
            .map(|k| (k.code().to_owned(), kind_label(t, k), chosen == Some(k))),
    );
    out
}

fn order_choices(t: Translator, chosen: Order) -> Vec<Choice> {
    [Order::Newest, Order::Relevance]
        .into_iter()
        .map(|o| {
            let code = order_code(o);
            let label = t.get(&format!("search.order.{code}")).to_owned();
            (code.to_owned(), label, o == chosen)
        })
        .collect()
}

fn group_choices(t: Translator, mine: &[MyGroup], chosen: Option<&MyGroup>) -> Vec<Choice> {
    let mut out = vec![(
        String::new(),
        t.get("search.group_all").to_owned(),
        chosen.is_none(),
    )];
    out.extend(mine.iter().map(|g| {
        let is_chosen = chosen.is_some_and(|c| std::ptr::eq(c, g));
        (
            format!("{}:{}", g.association_slug, g.group.id),
            g.group.name.clone(),
            is_chosen,
        )
    }));
    out
}

fn pieces(snippet: &[musubi_domain::search::Piece]) -> Vec<(String, bool)> {
    snippet
        .iter()
        .map(|p| (p.text.clone(), p.matched))
        .collect()
}

/// Unmarked text as pieces.
fn plain(text: &str) -> Vec<(String, bool)> {
    vec![(text.to_owned(), false)]
}

fn card(
    t: Translator,
    ctx: &Ctx,
    viewer: &Viewer,
    h: &SearchHit,
    now: DateTime<Utc>,
) -> ResultCard {
    let hit = &h.hit;
    let slug = &h.association;
    let topic_href = |id: Uuid| format!("/a/{slug}/t/{id}?from=search");
    let first_line = hit.text.lines().next().unwrap_or_default();
    let topic_title = hit.topic_title.clone().unwrap_or_default();
    let snippet = pieces(&h.snippet);
    let (href, title, snippet, place) = match (h.kind, hit.topic_id) {
        (DocKind::Topic, _) => (
            topic_href(hit.topic_id.unwrap_or(hit.id)),
            snippet,
            Vec::new(),
            None,
        ),
        (DocKind::Comment, Some(topic)) => {
            let seq = hit.seq.unwrap_or(1);
            (
                format!("{}&start={seq}#c-{seq}", topic_href(topic)),
                plain(&topic_title),
                snippet,
                Some(if seq == 1 {
                    t.get("search.topic_body").to_owned()
                } else {
                    t.format("search.comment_n", &seq.to_string())
                }),
            )
        }
        // An attachment is read in its topic.
        (DocKind::File, Some(topic)) => (
            topic_href(topic),
            plain(first_line),
            snippet,
            Some(t.format("search.attached_in", &topic_title)),
        ),
        (DocKind::File, None) => (
            format!("/a/{slug}/files/{}", hit.id),
            plain(first_line),
            snippet,
            None,
        ),
        // A patient is found by name or reading, which is all the snippet holds.
        (DocKind::Patient, _) | (DocKind::Comment, None) => (
            format!("/a/{slug}/g/{}", hit.group_id),
            snippet,
            Vec::new(),
            None,
        ),
    };
    let own = viewer.memberships().iter().any(|m| &m.slug == slug);
    ResultCard {
        href,
        kind: h.kind.code(),
        kind_label: kind_label(t, h.kind),
        group: hit.group_name.clone(),
        association: (!own).then(|| h.association_name.clone()),
        title,
        snippet,
        place,
        author: hit.author_name.clone().unwrap_or_default(),
        time: short_time(ctx.lang, hit.at, now),
        datetime: super::machine_time(hit.at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_japan_days() {
        let start = day_start("2026-03-04").unwrap().unwrap();
        assert_eq!(start.to_rfc3339(), "2026-03-03T15:00:00+00:00");
        assert_eq!(day_start("2026/3/4").unwrap(), Some(start));
        assert_eq!(day_start("").unwrap(), None);
        assert!(day_start("4 March").is_err());
        assert!(day_start("2026-02-30").is_err());
    }
}
