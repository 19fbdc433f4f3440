//! Free-word search through the API (`search`): topics, comments, files and patients the
//! viewer may read, in every association hosting a group of theirs (no routing needed), or in
//! one group. The services decide what is readable in the query itself, so hits and totals
//! never include what the viewer may not see (see `musubi_domain::search`).
//!
//! The query text goes to the audit log of each association searched and nowhere else: the
//! gateway logs neither documents nor variables, and refusals carry only a stable reason.

use crate::request::{signed_in, OrGql};
use crate::RequestContext;
use async_graphql::{Context, Enum, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use musubi_domain::search::{self as search, SearchInput};
use musubi_domain::types::GroupId;
use musubi_domain::AppError;
use uuid::Uuid;

/// Results per page unless `first` says otherwise.
const DEFAULT_FIRST: i32 = 20;

/// What a hit is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::search::DocKind")]
pub enum SearchKind {
    /// A topic's title (its text is its comment number 1).
    Topic,
    Comment,
    /// A file's name or text: shared with a group, or attached to a comment.
    File,
    /// A patient's name or reading.
    Patient,
}

/// How hits are ordered.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "musubi_domain::search::Order")]
pub enum SearchOrder {
    /// Newest first.
    Newest,
    /// Patients, then topic titles, then files, then comments; more occurrences of the words
    /// first; then newest.
    Relevance,
}

/// A piece of a snippet; `matched` pieces are words of the query.
#[derive(SimpleObject)]
pub struct SnippetPiece {
    pub text: String,
    pub matched: bool,
}

/// One hit.
#[derive(SimpleObject)]
pub struct SearchHit {
    pub kind: SearchKind,
    /// What was found: a topic, comment, file or patient id.
    pub id: ID,
    /// The slug of the association hosting the group (route follow-up requests there).
    pub association: String,
    pub association_name: String,
    pub group_id: ID,
    pub group_name: String,
    /// The topic of a topic, a comment or an attached file.
    pub topic_id: Option<ID>,
    pub topic_title: Option<String>,
    /// For a comment: its id (the same as `id`).
    pub comment_id: Option<ID>,
    /// For a comment: its number in the topic (1 is the topic's text).
    pub seq: Option<i32>,
    /// Who wrote or shared it (none for a patient).
    pub author: Option<String>,
    pub at: DateTime<Utc>,
    /// Text around the first match, about 120 characters, matches marked.
    pub snippet: Vec<SnippetPiece>,
}

#[derive(SimpleObject)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// How many match in all; counting stops at 1000 in each association searched.
    pub total: i32,
    /// `total` stopped counting: there are more ("1000 or more").
    pub more_than_total: bool,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// The services name the query `q`; here it is the argument `query` (or `after`, for a
/// cursor that is not a `next`).
fn named_as_argument(mut e: AppError) -> AppError {
    if e.field == Some("q") {
        let cursor = e.reasons.contains(&search::reason::BAD_CURSOR);
        e.field = Some(if cursor { "after" } else { "query" });
    }
    e
}

fn hit_out(h: search::SearchHit) -> SearchHit {
    let id = ID(h.hit.id.to_string());
    let is_comment = h.kind == search::DocKind::Comment;
    SearchHit {
        kind: h.kind.into(),
        comment_id: is_comment.then(|| id.clone()),
        id,
        association: h.association,
        association_name: h.association_name,
        group_id: ID(Uuid::from(h.hit.group_id).to_string()),
        group_name: h.hit.group_name,
        topic_id: h.hit.topic_id.map(|t| ID(t.to_string())),
        topic_title: h.hit.topic_title,
        seq: h.hit.seq,
        author: h.hit.author_name,
        at: h.hit.at,
        snippet: h
            .snippet
            .into_iter()
            .map(|p| SnippetPiece {
                text: p.text,
                matched: p.matched,
            })
            .collect(),
    }
}

#[derive(Default)]
pub struct SearchQuery;

#[Object]
impl SearchQuery {
    /// Searches what I may read (no routing needed). `query`: words separated by spaces, all
    /// of which must be found; `"…"` or `「…」` for a phrase; `-word` excludes; width, kana and
    /// case are ignored; one-character words work. At most 200 characters and 10 words.
    ///
    /// Narrow with `kind`, `groupId` (with `association`, its host's slug, or the
    /// `Musubi-Association` header), `from` (inclusive) and `to` (exclusive). `first` (1–50,
    /// default 20) hits per page; pass the previous page's `next` as `after`.
    ///
    /// A refused query is `INVALID_INPUT` on `query` with a reason: `SEARCH_NO_WORDS`,
    /// `SEARCH_TOO_LONG` or `SEARCH_TOO_MANY_WORDS`; on `after`, `SEARCH_BAD_CURSOR` for a
    /// cursor that is not a `next`. Each search is recorded (with its text) in the audit log
    /// of every association searched.
    #[allow(clippy::too_many_arguments)]
    async fn search(
        &self,
        ctx: &Context<'_>,
        query: String,
        kind: Option<SearchKind>,
        group_id: Option<ID>,
        association: Option<String>,
        order: Option<SearchOrder>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        after: Option<String>,
        first: Option<i32>,
    ) -> async_graphql::Result<SearchResults> {
        let (services, viewer) = signed_in(ctx)?;
        let rc = ctx.data::<RequestContext>()?;
        let group = match group_id {
            Some(id) => {
                let slug = association
                    .or_else(|| rc.tenant.as_ref().map(|t| t.slug.clone()))
                    .ok_or_else(|| {
                        AppError::invalid("association", "groupId needs its association's slug")
                    })
                    .gql(ctx)?;
                // A group id that is no UUID is a group nobody is in: nothing is found.
                let id = GroupId::from(Uuid::parse_str(&id).unwrap_or(Uuid::nil()));
                Some((slug, id))
            }
            None if association.is_some() => {
                return Err(AppError::invalid(
                    "association",
                    "association narrows the search only together with groupId",
                ))
                .gql(ctx);
            }
            None => None,
        };
        let input = SearchInput {
            text: &query,
            kinds: kind.map(|k| vec![k.into()]),
            group: group.as_ref().map(|(slug, id)| (slug.as_str(), *id)),
            author: None,
            from,
            until: to,
            order: order.map(Into::into).unwrap_or_default(),
            after: after.as_deref(),
            first: usize::try_from(first.unwrap_or(DEFAULT_FIRST).max(1)).unwrap_or(1),
        };
        let found = services
            .search(viewer, &rc.client, &input)
            .await
            .map_err(named_as_argument)
            .gql(ctx)?;
        Ok(SearchResults {
            hits: found.hits.into_iter().map(hit_out).collect(),
            total: i32::try_from(found.total).unwrap_or(i32::MAX),
            more_than_total: found.more_than_total,
            next: found.next,
        })
    }
}
