//! The load driver: sign-in, one phase per operation against Musubi (and the floor), then
//! open subscriptions and a mixed phase of simulated people; writes the report.
//!
//! It shares the machine with Musubi and PostgreSQL, so it stays light: one HTTP client,
//! request bodies built with a single `format!`, responses checked through typed serde
//! structures that skip what they do not need.
//!
//! Every operation uses each person's bearer token: GraphQL, and for files the API's routes
//! (`/api/a/{slug}/…`), whose uploads carry the file itself as the body.

use crate::manifest::{Manifest, Person};
use crate::queue;
use crate::report::{Budget, Dataset, Machine, Mixed, Operation, Report, Server, Subscriptions};
use crate::rng::Rng;
use crate::samples::{JPEG, PDF};
use crate::statements;
use crate::stats::Recorder;
use crate::ws;
use crate::Scale;
use anyhow::Context as _;
use chrono::Datelike as _;
use http::HeaderValue;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Uploads may take longer: a photo is decoded twice over (its previews), and in the small
/// scale's debug build that alone takes seconds.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);
const READY_WAIT: Duration = Duration::from_secs(60);
/// Subscriptions being connected at the same time.
const CONNECT_AT_ONCE: usize = 50;
/// An action starting later than this after it was due counts as late.
const LATE: Duration = Duration::from_secs(1);
const ASSOCIATION_HEADER: &str = "musubi-association";
/// An upload's name (percent-encoded UTF-8); its body is the file.
const FILE_NAME_HEADER: &str = "x-file-name";

// ---------------------------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    SignIn,
    Floor,
    Home,
    UnreadCounts,
    Group,
    TopicView,
    PostComment,
    /// The patient register's list: a search, a filter, an order, a first or later page.
    Patients,
    /// A reply with a photo: the photo (about 1 MB) uploaded for it, then `postComment` with
    /// its id.
    UploadPhoto,
    /// A 1 MB PDF shared with a group.
    UploadPdf,
    /// The same with a 20 MB PDF: memory must not follow the file's size.
    UploadLarge,
    /// An attachment's original (a photo or a PDF).
    DownloadAttachment,
    /// A photo attachment's thumbnail, as a topic shows it.
    AttachmentThumb,
    /// Free-word search: one-, two- and longer words, some with a filter.
    Search,
    /// Free-word search for a two-character word alone (血圧, 褥瘡, …): the budget's case.
    SearchTwoChars,
    /// The personal calendar: this month's grid (six weeks) of every group.
    Calendar,
    /// A direct message (`sendDirectMessage`) to one colleague at home in the same
    /// association: the pair's conversation is started, or the message added to it.
    SendMessage,
    /// My conversations across associations (`conversations`).
    ListConversations,
    /// Opening a conversation the person knows of (one they wrote in, or from their list):
    /// the topic view's query on its topic, routed to its host.
    ReadConversation,
}

/// Whom a single-operation phase acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The regular people of the manifest (every other phase acts as them too).
    People,
    /// The members of the crowded groups.
    Crowded,
    /// The heavy readers.
    Heavy,
    /// The regular people in the most groups.
    Searchers,
    /// The first association's administrators, who read its whole register.
    Registrars,
}

/// A single-operation phase: its name in the report, its operation and whom it acts as.
#[derive(Debug, Clone, Copy)]
struct Phase {
    name: &'static str,
    op: Op,
    who: Who,
    /// Clients, when not the run's `--concurrency`.
    clients: Option<usize>,
    /// Stop after this many requests, even before the phase's time is up.
    max_requests: Option<u64>,
}

impl Phase {
    const fn of(op: Op) -> Self {
        Self {
            name: op.name(),
            op,
            who: Who::People,
            clients: None,
            max_requests: None,
        }
    }
}

/// Clients of the upload phases. The same for both PDF sizes, so that their memory compares:
/// were uploads held in memory whole, four 20 MB uploads at once would show as 76 MB more
/// than four 1 MB ones. (The server decodes two photos at a time; more would only queue.)
const UPLOAD_CLIENTS: usize = 4;
/// Uploads per run at most: each stays in the store (regenerating the dataset clears it).
const PDF_UPLOADS: u64 = 500;
const LARGE_UPLOADS: u64 = 50;
/// How much more the server may hold while 20 MB files arrive than while 1 MB ones do.
const UPLOAD_RSS_MARGIN_MB: f64 = 64.0;
/// Bytes of the PDFs' filler: 1 MB and 20 MB files.
const PDF_BYTES: usize = 1024 * 1024;
const LARGE_BYTES: usize = 20 * 1024 * 1024;

/// The single-operation phases, in order (the floor first: the others are read against it).
const SINGLE: [Phase; 18] = [
    Phase::of(Op::Floor),
    Phase::of(Op::Home),
    Phase::of(Op::UnreadCounts),
    Phase::of(Op::Group),
    Phase::of(Op::TopicView),
    Phase::of(Op::PostComment),
    // Direct messages: writing first, so that the people know of conversations to open.
    Phase::of(Op::SendMessage),
    Phase::of(Op::ListConversations),
    Phase::of(Op::ReadConversation),
    Phase::of(Op::Patients),
    // The whole register of the first association (100,000 entries at large), as its
    // administrators read it.
    Phase {
        name: "patients_register",
        who: Who::Registrars,
        ..Phase::of(Op::Patients)
    },
    Phase::of(Op::Calendar),
    // The topic view, in groups of 40 who have all read everything: each of its 51 comments
    // has 39 readers.
    Phase {
        name: "topic_crowded",
        who: Who::Crowded,
        ..Phase::of(Op::TopicView)
    },
    // The home page of people with thousands of comments unread in hundreds of topics.
    Phase {
        name: "home_heavy",
        who: Who::Heavy,
        ..Phase::of(Op::Home)
    },
    // Reading the dataset's attachments.
    Phase::of(Op::DownloadAttachment),
    Phase::of(Op::AttachmentThumb),
    // Search reads all a person may see: those in the most groups.
    Phase {
        who: Who::Searchers,
        ..Phase::of(Op::Search)
    },
    Phase {
        who: Who::Searchers,
        ..Phase::of(Op::SearchTwoChars)
    },
];

/// The upload phases, after the mixed phase (memory a process took stays with it for a while:
/// the photos' decoding must not count as the subscriptions'). Documents of 1 and 20 MB the
/// same way, so that their memory compares, then photos, whose decoding takes memory of its
/// own.
const UPLOADS: [Phase; 3] = [
    Phase {
        clients: Some(UPLOAD_CLIENTS),
        max_requests: Some(PDF_UPLOADS),
        ..Phase::of(Op::UploadPdf)
    },
    Phase {
        clients: Some(UPLOAD_CLIENTS),
        max_requests: Some(LARGE_UPLOADS),
        ..Phase::of(Op::UploadLarge)
    },
    Phase {
        clients: Some(UPLOAD_CLIENTS),
        ..Phase::of(Op::UploadPhoto)
    },
];

/// What the patient list is searched for: the first kana of common surnames.
const PATIENT_SEARCHES: &[&str] = &[
    "さ", "た", "やま", "いと", "すず", "かわ", "なか", "こば", "わた", "き",
];

/// Words searched for, as people in home care would: the one- and two-character words that
/// matter (some frequent in the dataset, some rare, some absent), longer words, two words (AND),
/// a phrase, an exclusion, English mixed in.
const SEARCH_ONE: &[&str] = &["痰", "熱", "傷", "咳", "腫"];
const SEARCH_TWO: &[&str] = &[
    "血圧", "褥瘡", "発熱", "体重", "嚥下", "不眠", "湿布", "酸素", "採血", "転倒", "浮腫", "残薬",
];
const SEARCH_LONG: &[&str] = &[
    "訪問看護",
    "利尿剤",
    "ショートステイ",
    "担当者会議",
    "血圧 低下",
    "\\\"一包化\\\"",
    "SpO2",
    "ケアマネジャー -福祉用具",
    "とろみ 嚥下",
];

/// The mixed phase's operations and their weights (percent).
const MIXED: [(Op, u64); 14] = [
    (Op::Home, 24),
    (Op::UnreadCounts, 9),
    (Op::Group, 14),
    (Op::Calendar, 3),
    (Op::Search, 2),
    (Op::Patients, 5),
    (Op::TopicView, 23),
    (Op::PostComment, 9),
    (Op::UploadPhoto, 1),
    (Op::DownloadAttachment, 1),
    (Op::AttachmentThumb, 3),
    // Direct messages: a few percent of what people do.
    (Op::SendMessage, 2),
    (Op::ListConversations, 2),
    (Op::ReadConversation, 2),
];

impl Op {
    pub const fn name(self) -> &'static str {
        match self {
            Op::SignIn => "sign_in",
            Op::Floor => "floor",
            Op::Home => "home",
            Op::UnreadCounts => "unread_counts",
            Op::Group => "group",
            Op::TopicView => "topic_view",
            Op::PostComment => "post_comment",
            Op::Patients => "patients",
            Op::UploadPhoto => "upload_photo",
            Op::UploadPdf => "upload_pdf",
            Op::UploadLarge => "upload_large",
            Op::DownloadAttachment => "download_attachment",
            Op::AttachmentThumb => "attachment_thumb",
            Op::Search => "search",
            Op::SearchTwoChars => "search_two_chars",
            Op::Calendar => "calendar",
            Op::SendMessage => "send_message",
            Op::ListConversations => "conversations",
            Op::ReadConversation => "read_conversation",
        }
    }

    fn query(self) -> &'static str {
        match self {
            Op::SignIn => {
                "mutation($e:String!,$p:String!){ signIn(email:$e,password:$p){ token next } }"
            }
            // The reply that posts an uploaded photo.
            Op::UploadPhoto => {
                "mutation($t:ID!,$b:String!,$a:[ID!]){ postComment(topicId:$t, body:$b, \
                 attachmentIds:$a) }"
            }
            Op::Floor
            | Op::UploadPdf
            | Op::UploadLarge
            | Op::DownloadAttachment
            | Op::AttachmentThumb => "",
            Op::Home => {
                "{ home { counts { total } invitations groups { groupId kind unread \
                 items { commentId excerpt createdAt } } } }"
            }
            Op::UnreadCounts => {
                "{ unreadCounts { total associations { associationSlug count } \
                 groups { groupId count } } }"
            }
            Op::Group => {
                "query($id:ID!){ group(id:$id){ group { id name } myRole unread \
                 topics { id title unread lastSeq } members { userId name profession role } } }"
            }
            Op::TopicView | Op::ReadConversation => {
                "query($id:ID!){ topic(id:$id){ topic { id title lastSeq unread } receiptMode \
                 firstUnreadSeq earlierComments comments { id seq body authorName createdAt \
                 readers { userId name at } readerCount notReadBy { userId name } \
                 history { version body writtenAt } \
                 attachments { id name contentType sizeBytes thumbnailUrl } } } }"
            }
            Op::PostComment => "mutation($t:ID!,$b:String!){ postComment(topicId:$t, body:$b) }",
            Op::SendMessage => {
                "mutation($p:[ID!]!,$b:String!){ sendDirectMessage(people:$p, body:$b){ \
                 conversationId topicId commentId associationSlug existing } }"
            }
            Op::ListConversations => {
                "{ conversations { id topicId associationSlug pair others unread lastAt \
                 excerpt } }"
            }
            Op::Patients => {
                "query($f:PatientFilterInput,$o:PatientOrder,$a:String){ \
                 patients(filter:$f, order:$o, after:$a){ items { id name nameKana age sex \
                 status careLevel town physicianName unread } next } }"
            }
            Op::Calendar => {
                "query($f:NaiveDate!,$t:NaiveDate!){ calendar(from:$f, to:$t){ holidays { date name } \
                 events { id groupName category title firstDay lastDay startsAt endsAt } \
                 absences { name firstDay lastDay part } duties { day kind name groupName } } }"
            }
            Op::Search | Op::SearchTwoChars => {
                "query($q:String!,$k:SearchKind,$g:ID,$s:String,$o:SearchOrder,$f:DateTime){ \
                 search(query:$q, kind:$k, groupId:$g, association:$s, order:$o, from:$f){ \
                 hits { kind id association groupName topicTitle seq author at \
                 snippet { text matched } } total moreThanTotal next } }"
            }
        }
    }

    /// Which people can do this operation.
    fn needs(self) -> Needs {
        match self {
            Op::Group | Op::Patients | Op::UploadPdf | Op::UploadLarge => Needs::Group,
            Op::TopicView | Op::PostComment | Op::UploadPhoto => Needs::Topic,
            Op::DownloadAttachment => Needs::Attachment,
            Op::AttachmentThumb => Needs::Thumbnail,
            Op::SendMessage => Needs::Contact,
            Op::ReadConversation => Needs::Conversation,
            Op::SignIn
            | Op::Floor
            | Op::Home
            | Op::UnreadCounts
            | Op::Search
            | Op::SearchTwoChars
            | Op::Calendar
            | Op::ListConversations => Needs::Nothing,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    Group,
    Topic,
    Attachment,
    Thumbnail,
    /// Someone to write a direct message to.
    Contact,
    /// A conversation the driver has seen the person in (known only as the run goes).
    Conversation,
}

// ---------------------------------------------------------------------------------------------
// Response validation

#[derive(Deserialize)]
struct Envelope<D> {
    data: Option<D>,
    errors: Option<IgnoredAny>,
}

trait Shape: DeserializeOwned {
    fn check(&self) -> Result<(), &'static str>;
}

#[derive(Deserialize)]
struct FloorData {
    #[allow(dead_code)]
    user: IdOnly,
}
#[derive(Deserialize)]
struct IdOnly {
    #[allow(dead_code)]
    id: String,
}
impl Shape for FloorData {
    fn check(&self) -> Result<(), &'static str> {
        Ok(())
    }
}

#[derive(Deserialize)]
struct HomeData {
    home: HomeShape,
}
#[derive(Deserialize)]
struct HomeShape {
    #[allow(dead_code)]
    groups: Vec<IgnoredAny>,
    counts: Total,
}
#[derive(Deserialize)]
struct Total {
    total: i64,
}
impl Shape for HomeData {
    fn check(&self) -> Result<(), &'static str> {
        if self.home.counts.total < 0 {
            return Err("negative unread total");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct UnreadData {
    #[serde(rename = "unreadCounts")]
    unread_counts: Total,
}
impl Shape for UnreadData {
    fn check(&self) -> Result<(), &'static str> {
        if self.unread_counts.total < 0 {
            return Err("negative unread total");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct GroupData {
    group: GroupShape,
}
#[derive(Deserialize)]
struct GroupShape {
    #[allow(dead_code)]
    topics: Vec<IgnoredAny>,
    members: Vec<IgnoredAny>,
}
impl Shape for GroupData {
    fn check(&self) -> Result<(), &'static str> {
        if self.group.members.is_empty() {
            return Err("data.group.members is empty");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct TopicData {
    topic: TopicShape,
}
#[derive(Deserialize)]
struct TopicShape {
    comments: Vec<IgnoredAny>,
}
impl Shape for TopicData {
    fn check(&self) -> Result<(), &'static str> {
        if self.topic.comments.is_empty() {
            return Err("data.topic.comments is empty");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct PatientsData {
    patients: PatientsShape,
}
#[derive(Deserialize)]
struct PatientsShape {
    items: Vec<IgnoredAny>,
    next: Option<String>,
}
impl Shape for PatientsData {
    fn check(&self) -> Result<(), &'static str> {
        if self.patients.next.is_some() && self.patients.items.is_empty() {
            return Err("data.patients has a next page after an empty one");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct CalendarData {
    calendar: CalendarShape,
}
#[derive(Deserialize)]
struct CalendarShape {
    holidays: Vec<IgnoredAny>,
    #[allow(dead_code)]
    events: Vec<IgnoredAny>,
}
impl Shape for CalendarData {
    fn check(&self) -> Result<(), &'static str> {
        // Six weeks hold a public holiday in most of the year; none in June alone.
        if self.calendar.holidays.len() > 12 {
            return Err("data.calendar has too many holidays");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct SearchData {
    search: SearchShape,
}
#[derive(Deserialize)]
struct SearchShape {
    hits: Vec<IgnoredAny>,
    total: i64,
    next: Option<String>,
}
impl Shape for SearchData {
    fn check(&self) -> Result<(), &'static str> {
        let s = &self.search;
        if s.total < s.hits.len() as i64 {
            return Err("data.search.total is less than the hits shown");
        }
        if s.next.is_some() && s.hits.is_empty() {
            return Err("data.search has a next page after an empty one");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct PostData {
    #[serde(rename = "postComment")]
    post_comment: String,
}
impl Shape for PostData {
    fn check(&self) -> Result<(), &'static str> {
        if self.post_comment.is_empty() {
            return Err("data.postComment is empty");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct MessageData {
    #[serde(rename = "sendDirectMessage")]
    sent: MessageSent,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSent {
    conversation_id: String,
    topic_id: String,
    comment_id: String,
    association_slug: String,
    #[allow(dead_code)]
    existing: bool,
}
impl Shape for MessageData {
    fn check(&self) -> Result<(), &'static str> {
        let m = &self.sent;
        if m.conversation_id.is_empty() || m.topic_id.is_empty() || m.comment_id.is_empty() {
            return Err("data.sendDirectMessage has an empty id");
        }
        if m.association_slug.is_empty() {
            return Err("data.sendDirectMessage.associationSlug is empty");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ConversationsData {
    conversations: Vec<ConversationShape>,
}
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConversationShape {
    id: String,
    topic_id: String,
    association_slug: String,
    #[allow(dead_code)]
    pair: bool,
    #[allow(dead_code)]
    others: Vec<IgnoredAny>,
    unread: i64,
}
impl Shape for ConversationsData {
    fn check(&self) -> Result<(), &'static str> {
        for c in &self.conversations {
            if c.id.is_empty() || c.topic_id.is_empty() || c.association_slug.is_empty() {
                return Err("data.conversations has a conversation without its ids");
            }
            if c.unread < 0 {
                return Err("data.conversations has a negative unread count");
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct SignInData {
    #[serde(rename = "signIn")]
    sign_in: SignInShape,
}
#[derive(Deserialize)]
struct SignInShape {
    token: String,
    next: String,
}
impl Shape for SignInData {
    fn check(&self) -> Result<(), &'static str> {
        if self.sign_in.next != "DONE" {
            return Err("signIn.next is not DONE");
        }
        if self.sign_in.token.is_empty() {
            return Err("signIn.token is empty");
        }
        Ok(())
    }
}

/// Whether an answer counts as a success: HTTP 200, JSON, no `errors`, the expected shape.
pub fn validate(op: Op, status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        return Err(format!("HTTP {status}: {}", snippet(body)));
    }
    match op {
        Op::SignIn => check::<SignInData>(body),
        Op::Floor => check::<FloorData>(body),
        Op::Home => check::<HomeData>(body),
        Op::UnreadCounts => check::<UnreadData>(body),
        Op::Group => check::<GroupData>(body),
        Op::TopicView => check::<TopicData>(body),
        Op::PostComment => check::<PostData>(body),
        Op::Patients => check::<PatientsData>(body),
        Op::Search | Op::SearchTwoChars => check::<SearchData>(body),
        Op::Calendar => check::<CalendarData>(body),
        Op::SendMessage => check::<MessageData>(body),
        Op::ListConversations => check::<ConversationsData>(body),
        Op::ReadConversation => check::<TopicData>(body),
        Op::UploadPhoto
        | Op::UploadPdf
        | Op::UploadLarge
        | Op::DownloadAttachment
        | Op::AttachmentThumb => Err(format!("{} is not a GraphQL operation", op.name())),
    }
}

fn check<D: Shape>(body: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<Envelope<D>>(body) {
        Ok(Envelope {
            errors: None,
            data: Some(d),
        }) => d.check().map_err(str::to_owned),
        Ok(Envelope {
            errors: None,
            data: None,
        }) => Err("no data".to_owned()),
        Ok(Envelope {
            errors: Some(_), ..
        }) => Err(graphql_errors(body)),
        Err(e) => match serde_json::from_slice::<serde_json::Value>(body) {
            Err(_) => Err(format!("invalid JSON: {e}: {}", snippet(body))),
            Ok(v) if v.get("errors").is_some() => Err(graphql_errors(body)),
            Ok(_) => Err(format!("unexpected shape: {e}: {}", snippet(body))),
        },
    }
}

/// `CODE: message` of the first GraphQL error.
fn graphql_errors(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let first = &v["errors"][0];
    match (
        first["extensions"]["code"].as_str(),
        first["message"].as_str(),
    ) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (None, Some(m)) => m.to_owned(),
        _ => format!("errors: {}", snippet(body)),
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s: String = s.chars().take(200).collect();
    s
}

// ---------------------------------------------------------------------------------------------
// The people the driver acts as

struct Place {
    association: HeaderValue,
    /// The same, for web addresses.
    slug: String,
    id: Uuid,
    /// The group: the topic's, or the group itself.
    group: Uuid,
}

/// An attachment the person may read.
struct Attachment {
    slug: String,
    id: Uuid,
    size: u64,
}

/// A conversation of direct messages the person takes part in, as the driver saw it.
#[derive(Clone)]
struct KnownConversation {
    /// Its host (the `Musubi-Association` header).
    association: HeaderValue,
    topic: Uuid,
}

/// Conversations remembered per person, the most recent first.
const KNOWN_CONVERSATIONS: usize = 10;

struct Actor {
    auth: HeaderValue,
    floor_url: String,
    groups: Vec<Place>,
    topics: Vec<Place>,
    /// Indices into `topics` of those with 30–80 comments: the budget is for a topic of
    /// about fifty.
    view_topics: Vec<usize>,
    attachments: Vec<Attachment>,
    /// Indices into `attachments` of the photos (they have thumbnails).
    photos: Vec<usize>,
    /// The association they are at home in: direct messages are sent from there.
    home: Option<HeaderValue>,
    /// People they write direct messages to (at home in the same association).
    contacts: Vec<Uuid>,
    /// Conversations they wrote in or saw in their list during the run.
    conversations: Mutex<Vec<KnownConversation>>,
}

impl Actor {
    fn new(p: &Person, floor: &str) -> anyhow::Result<Self> {
        let auth = HeaderValue::from_str(&format!("Bearer {}", p.token))
            .with_context(|| format!("person {}: token is not a header value", p.id))?;
        let place = |a: &str, id: Uuid, group: Uuid| -> anyhow::Result<Place> {
            Ok(Place {
                association: HeaderValue::from_str(a)
                    .with_context(|| format!("association slug {a:?}"))?,
                slug: a.to_owned(),
                id,
                group,
            })
        };
        let groups = p
            .groups
            .iter()
            .map(|g| place(&g.association, g.id, g.id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let topics = p
            .topics
            .iter()
            .map(|t| place(&t.association, t.id, t.group_id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let view_topics = p
            .topics
            .iter()
            .enumerate()
            .filter(|(_, t)| (30..=80).contains(&t.comments))
            .map(|(i, _)| i)
            .collect();
        let attachments = p
            .attachments
            .iter()
            .map(|a| Attachment {
                slug: a.association.clone(),
                id: a.id,
                size: a.size,
            })
            .collect();
        let photos = p
            .attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| a.thumbnail)
            .map(|(i, _)| i)
            .collect();
        let home = if p.home.is_empty() {
            None
        } else {
            Some(
                HeaderValue::from_str(&p.home)
                    .with_context(|| format!("association slug {:?}", p.home))?,
            )
        };
        Ok(Self {
            auth,
            floor_url: format!("{floor}/floor/{}", p.id),
            groups,
            topics,
            view_topics,
            attachments,
            photos,
            home,
            contacts: p.contacts.clone(),
            conversations: Mutex::new(Vec::new()),
        })
    }

    fn can(&self, needs: Needs) -> bool {
        match needs {
            Needs::Nothing => true,
            Needs::Group => !self.groups.is_empty(),
            Needs::Topic => !self.topics.is_empty(),
            Needs::Attachment => !self.attachments.is_empty(),
            Needs::Thumbnail => !self.photos.is_empty(),
            Needs::Contact => self.home.is_some() && !self.contacts.is_empty(),
            Needs::Conversation => self.conversations.lock().is_ok_and(|c| !c.is_empty()),
        }
    }

    /// A conversation the person knows of, at random.
    fn known_conversation(&self, rng: &mut Rng) -> Option<KnownConversation> {
        let known = self.conversations.lock().ok()?;
        rng.pick(&known).cloned()
    }

    /// Remembers a conversation the person wrote in, as the most recent.
    fn remember(&self, c: KnownConversation) {
        if let Ok(mut known) = self.conversations.lock() {
            known.retain(|k| k.topic != c.topic);
            known.insert(0, c);
            known.truncate(KNOWN_CONVERSATIONS);
        }
    }

    /// Remembers the person's list of conversations (the most recent first) instead.
    fn remember_list(&self, list: Vec<KnownConversation>) {
        if let Ok(mut known) = self.conversations.lock() {
            *known = list;
            known.truncate(KNOWN_CONVERSATIONS);
        }
    }
}

/// People the driver acts as, and which of them can do what.
struct Cast {
    actors: Vec<Actor>,
    all: Vec<usize>,
    with_groups: Vec<usize>,
    with_topics: Vec<usize>,
    with_attachments: Vec<usize>,
    with_photos: Vec<usize>,
    with_contacts: Vec<usize>,
}

impl Cast {
    fn new(people: &[Person], floor: &str) -> anyhow::Result<Self> {
        let actors = people
            .iter()
            .map(|p| Actor::new(p, floor))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let idx = |needs: Needs| -> Vec<usize> {
            (0..actors.len())
                .filter(|&i| actors[i].can(needs))
                .collect()
        };
        Ok(Self {
            all: (0..actors.len()).collect(),
            with_groups: idx(Needs::Group),
            with_topics: idx(Needs::Topic),
            with_attachments: idx(Needs::Attachment),
            with_photos: idx(Needs::Thumbnail),
            with_contacts: idx(Needs::Contact),
            actors,
        })
    }

    /// Who can do what `needs`; for a conversation, who knows of one now.
    fn eligible(&self, needs: Needs) -> std::borrow::Cow<'_, [usize]> {
        use std::borrow::Cow;
        match needs {
            Needs::Nothing => Cow::Borrowed(&self.all),
            Needs::Group => Cow::Borrowed(&self.with_groups),
            Needs::Topic => Cow::Borrowed(&self.with_topics),
            Needs::Attachment => Cow::Borrowed(&self.with_attachments),
            Needs::Thumbnail => Cow::Borrowed(&self.with_photos),
            Needs::Contact => Cow::Borrowed(&self.with_contacts),
            Needs::Conversation => Cow::Owned(
                (0..self.actors.len())
                    .filter(|&i| self.actors[i].can(needs))
                    .collect(),
            ),
        }
    }
}

/// What the uploads send, built once: the files themselves, the same for everyone.
struct Uploads {
    /// A phone's photo, attached to a reply.
    photo: bytes::Bytes,
    /// Scanned letters of 1 and 20 MB, shared with a group.
    pdf: bytes::Bytes,
    large: bytes::Bytes,
    /// The letters' name, for `X-File-Name` (percent-encoded UTF-8).
    pdf_name: HeaderValue,
}

impl Uploads {
    /// The photo and the PDFs are built here (a second or two in a debug build).
    fn build(seed: u64) -> anyhow::Result<Self> {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let pdf = |filler: usize| {
            bytes::Bytes::from(crate::samples::pdf("Scanned referral letter", filler, seed))
        };
        let name = utf8_percent_encode("診療情報提供書_スキャン.pdf", NON_ALPHANUMERIC).to_string();
        Ok(Self {
            photo: crate::samples::upload_photo()?.into(),
            pdf: pdf(PDF_BYTES),
            large: pdf(LARGE_BYTES),
            pdf_name: HeaderValue::from_str(&name)?,
        })
    }
}

struct Ctx {
    client: reqwest::Client,
    graphql_url: String,
    /// The server's base URL, for the file routes.
    target: String,
    uploads: Arc<Uploads>,
    /// The regular people: every phase but `topic_crowded` and `home_heavy` acts as them.
    /// Each cast is shared by the contexts of both servers.
    people: Arc<Cast>,
    /// The crowded groups' members: the `topic_crowded` phase only.
    crowded: Arc<Cast>,
    /// The heavy readers: the `home_heavy` phase only.
    heavy: Arc<Cast>,
    /// The people in the most groups: the search phases only.
    searchers: Arc<Cast>,
    /// The first association's administrators: the `patients_register` phase only.
    registrars: Arc<Cast>,
    /// Each operation's query as a JSON string (escaped once).
    queries: [String; 19],
}

/// Every operation, in [`op_index`] order.
const OPS: [Op; 19] = [
    Op::SignIn,
    Op::Floor,
    Op::Home,
    Op::UnreadCounts,
    Op::Group,
    Op::TopicView,
    Op::PostComment,
    Op::Patients,
    Op::UploadPhoto,
    Op::UploadPdf,
    Op::UploadLarge,
    Op::DownloadAttachment,
    Op::AttachmentThumb,
    Op::Search,
    Op::SearchTwoChars,
    Op::Calendar,
    Op::SendMessage,
    Op::ListConversations,
    Op::ReadConversation,
];

fn op_index(op: Op) -> usize {
    match op {
        Op::SignIn => 0,
        Op::Floor => 1,
        Op::Home => 2,
        Op::UnreadCounts => 3,
        Op::Group => 4,
        Op::TopicView => 5,
        Op::PostComment => 6,
        Op::Patients => 7,
        Op::UploadPhoto => 8,
        Op::UploadPdf => 9,
        Op::UploadLarge => 10,
        Op::DownloadAttachment => 11,
        Op::AttachmentThumb => 12,
        Op::Search => 13,
        Op::SearchTwoChars => 14,
        Op::Calendar => 15,
        Op::SendMessage => 16,
        Op::ListConversations => 17,
        Op::ReadConversation => 18,
    }
}

impl Ctx {
    /// A context for the server at `target`: the people, and what they upload, are shared
    /// by both servers' contexts.
    fn new(
        client: &reqwest::Client,
        target: &str,
        casts: [Arc<Cast>; 5],
        uploads: Arc<Uploads>,
    ) -> anyhow::Result<Self> {
        let [people, crowded, heavy, searchers, registrars] = casts;
        Ok(Self {
            client: client.clone(),
            graphql_url: format!("{target}/graphql"),
            target: target.to_owned(),
            uploads,
            people,
            crowded,
            heavy,
            searchers,
            registrars,
            queries: OPS.map(|op| serde_json::Value::String(op.query().to_owned()).to_string()),
        })
    }

    fn cast(&self, who: Who) -> &Cast {
        match who {
            Who::People => &self.people,
            Who::Crowded => &self.crowded,
            Who::Heavy => &self.heavy,
            Who::Searchers => &self.searchers,
            Who::Registrars => &self.registrars,
        }
    }

    fn query_json(&self, op: Op) -> &str {
        &self.queries[op_index(op)]
    }

    /// One request of `op` as `actor`; `Err` describes a failure.
    async fn perform(&self, op: Op, actor: &Actor, rng: &mut Rng) -> Result<(), String> {
        let req = match op {
            Op::Floor => self.client.get(&actor.floor_url),
            Op::SignIn => return Err("sign_in is not a per-person operation".to_owned()),
            Op::Home | Op::UnreadCounts => {
                let body = format!(r#"{{"query":{}}}"#, self.query_json(op));
                self.graphql(actor, None, body)
            }
            Op::Group => {
                let g = rng.pick(&actor.groups).ok_or("the person has no group")?;
                let body = format!(
                    r#"{{"query":{},"variables":{{"id":"{}"}}}}"#,
                    self.query_json(op),
                    g.id
                );
                self.graphql(actor, Some(&g.association), body)
            }
            Op::TopicView => {
                let t = match rng.pick(&actor.view_topics) {
                    Some(&i) => actor.topics.get(i),
                    None => rng.pick(&actor.topics),
                }
                .ok_or("the person has no topic")?;
                let body = format!(
                    r#"{{"query":{},"variables":{{"id":"{}"}}}}"#,
                    self.query_json(op),
                    t.id
                );
                self.graphql(actor, Some(&t.association), body)
            }
            Op::Patients => {
                let g = rng.pick(&actor.groups).ok_or("the person has no group")?;
                // What people do with the list: browse it, look someone up by the first kana
                // of a name, narrow it to those at home by age, or read a later page.
                let (filter, order, after) = match rng.below(4) {
                    0 => ("{}".to_owned(), "KANA", "null".to_owned()),
                    1 => {
                        let q = rng.pick(PATIENT_SEARCHES).copied().unwrap_or("さ");
                        (format!(r#"{{"text":"{q}"}}"#), "KANA", "null".to_owned())
                    }
                    2 => (
                        r#"{"statuses":["HOME"],"ageMin":75}"#.to_owned(),
                        "AGE",
                        "null".to_owned(),
                    ),
                    _ => {
                        let k = rng.pick(PATIENT_SEARCHES).copied().unwrap_or("さ");
                        let cursor = format!("00000000-0000-0000-0000-000000000000.{k}");
                        ("{}".to_owned(), "KANA", format!(r#""{cursor}""#))
                    }
                };
                let body = format!(
                    r#"{{"query":{},"variables":{{"f":{filter},"o":"{order}","a":{after}}}}}"#,
                    self.query_json(op),
                );
                self.graphql(actor, Some(&g.association), body)
            }
            Op::Search | Op::SearchTwoChars => {
                let body = self.search_body(op, actor, rng);
                self.graphql(actor, None, body)
            }
            Op::Calendar => {
                // The month grid: from the Monday on or before the 1st, six weeks.
                let today = (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive();
                let first = today.with_day(1).unwrap_or(today);
                let from =
                    first - chrono::Days::new(u64::from(first.weekday().num_days_from_monday()));
                let to = from + chrono::Days::new(41);
                let body = format!(
                    r#"{{"query":{},"variables":{{"f":"{from}","t":"{to}"}}}}"#,
                    self.query_json(op)
                );
                self.graphql(actor, None, body)
            }
            Op::PostComment => {
                let t = rng.pick(&actor.topics).ok_or("the person has no topic")?;
                let text = crate::text::comment_body(rng);
                let body = format!(
                    r#"{{"query":{},"variables":{{"t":"{}","b":{}}}}}"#,
                    self.query_json(op),
                    t.id,
                    serde_json::Value::String(text)
                );
                self.graphql(actor, Some(&t.association), body)
            }
            Op::SendMessage => return self.send_message(actor, rng).await,
            Op::ListConversations => return self.list_conversations(actor).await,
            Op::ReadConversation => {
                let c = actor
                    .known_conversation(rng)
                    .ok_or("the person knows of no conversation")?;
                let body = format!(
                    r#"{{"query":{},"variables":{{"id":"{}"}}}}"#,
                    self.query_json(op),
                    c.topic
                );
                self.graphql(actor, Some(&c.association), body)
            }
            Op::UploadPhoto => return self.upload_photo(actor, rng).await,
            Op::UploadPdf | Op::UploadLarge => {
                let g = rng.pick(&actor.groups).ok_or("the person has no group")?;
                let url = format!(
                    "{}/api/a/{}/groups/{}/files?kind=referral",
                    self.target, g.slug, g.group
                );
                let file = if op == Op::UploadPdf {
                    &self.uploads.pdf
                } else {
                    &self.uploads.large
                };
                let req = self.upload(actor, &url, file, self.uploads.pdf_name.clone(), PDF);
                return uploaded(req).await.map(drop);
            }
            Op::DownloadAttachment => {
                let a = rng
                    .pick(&actor.attachments)
                    .ok_or("the person has no attachment")?;
                let url = format!("{}/api/a/{}/files/{}", self.target, a.slug, a.id);
                return download(self.file_get(actor, &url), Some(a.size)).await;
            }
            Op::AttachmentThumb => {
                let a = rng
                    .pick(&actor.photos)
                    .and_then(|&i| actor.attachments.get(i))
                    .ok_or("the person has no photo")?;
                let url = format!("{}/api/a/{}/files/{}/thumb", self.target, a.slug, a.id);
                return download(self.file_get(actor, &url), None).await;
            }
        };
        send(req, op).await
    }

    /// A direct message to one of the person's contacts, sent from their home association;
    /// the conversation it went to is remembered (to be opened later).
    async fn send_message(&self, actor: &Actor, rng: &mut Rng) -> Result<(), String> {
        let home = actor
            .home
            .as_ref()
            .ok_or("the person has no home association")?;
        let to = rng
            .pick(&actor.contacts)
            .ok_or("the person has nobody to write to")?;
        let body = format!(
            r#"{{"query":{},"variables":{{"p":["{to}"],"b":{}}}}}"#,
            self.query_json(Op::SendMessage),
            serde_json::Value::String(crate::text::comment_body(rng))
        );
        let answer = answered(self.graphql(actor, Some(home), body), Op::SendMessage).await?;
        let sent = parsed::<MessageData>(&answer)?.sent;
        actor.remember(known(&sent.association_slug, &sent.topic_id)?);
        Ok(())
    }

    /// The person's conversations; once they have written one, the list may not be empty.
    async fn list_conversations(&self, actor: &Actor) -> Result<(), String> {
        let wrote = actor.can(Needs::Conversation);
        let body = format!(r#"{{"query":{}}}"#, self.query_json(Op::ListConversations));
        let answer = answered(self.graphql(actor, None, body), Op::ListConversations).await?;
        let list = parsed::<ConversationsData>(&answer)?.conversations;
        if wrote && list.is_empty() {
            return Err(
                "data.conversations is empty though the person takes part in one".to_owned(),
            );
        }
        let list = list
            .iter()
            .take(KNOWN_CONVERSATIONS)
            .map(|c| known(&c.association_slug, &c.topic_id))
            .collect::<Result<Vec<_>, _>>()?;
        actor.remember_list(list);
        Ok(())
    }

    /// A photo uploaded for a reply while it is written (`…/attachments`), then the reply
    /// that posts it (`postComment` with `attachmentIds`).
    async fn upload_photo(&self, actor: &Actor, rng: &mut Rng) -> Result<(), String> {
        let t = rng.pick(&actor.topics).ok_or("the person has no topic")?;
        let url = format!(
            "{}/api/a/{}/groups/{}/attachments",
            self.target, t.slug, t.group
        );
        let name = HeaderValue::from_static("IMG_0412.jpg");
        let req = self.upload(actor, &url, &self.uploads.photo, name, JPEG);
        let file = uploaded(req).await?;
        if !file.has_preview {
            return Err(format!("the photo {} was kept without previews", file.id));
        }
        let body = format!(
            r#"{{"query":{},"variables":{{"t":"{}","b":{},"a":["{}"]}}}}"#,
            self.query_json(Op::UploadPhoto),
            t.id,
            serde_json::Value::String(crate::text::comment_body(rng)),
            file.id
        );
        send(
            self.graphql(actor, Some(&t.association), body),
            Op::PostComment,
        )
        .await
    }

    /// A file to the API, as the body.
    fn upload(
        &self,
        actor: &Actor,
        url: &str,
        file: &bytes::Bytes,
        name: HeaderValue,
        content_type: &'static str,
    ) -> reqwest::RequestBuilder {
        self.client
            .post(url)
            .timeout(UPLOAD_TIMEOUT)
            .header(http::header::AUTHORIZATION, actor.auth.clone())
            .header(FILE_NAME_HEADER, name)
            .header(http::header::CONTENT_TYPE, content_type)
            .body(file.clone())
    }

    fn file_get(&self, actor: &Actor, url: &str) -> reqwest::RequestBuilder {
        self.client
            .get(url)
            .header(http::header::AUTHORIZATION, actor.auth.clone())
    }

    /// A search: in the two-character phase a two-character word alone; otherwise a third of
    /// one-character words, a third two-character, the rest longer words or two-character
    /// words with a filter (comments of the last 30 days; one group, by relevance).
    fn search_body(&self, op: Op, actor: &Actor, rng: &mut Rng) -> String {
        let pick =
            |rng: &mut Rng, words: &[&'static str]| rng.pick(words).copied().unwrap_or("血圧");
        let mut vars = String::new();
        let words = if op == Op::SearchTwoChars {
            pick(rng, SEARCH_TWO)
        } else {
            match rng.below(10) {
                0..=2 => pick(rng, SEARCH_ONE),
                3..=5 => pick(rng, SEARCH_TWO),
                6 | 7 => pick(rng, SEARCH_LONG),
                8 => {
                    let from = chrono::Utc::now() - chrono::Duration::days(30);
                    let _ = write!(
                        vars,
                        r#","k":"COMMENT","f":"{}""#,
                        from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    );
                    pick(rng, SEARCH_TWO)
                }
                _ => {
                    if let Some(g) = rng.pick(&actor.groups) {
                        let _ = write!(vars, r#","g":"{}","s":"{}","o":"RELEVANCE""#, g.id, g.slug);
                    }
                    pick(rng, SEARCH_TWO)
                }
            }
        };
        format!(
            r#"{{"query":{},"variables":{{"q":"{words}"{vars}}}}}"#,
            self.query_json(op)
        )
    }

    fn graphql(
        &self,
        actor: &Actor,
        association: Option<&HeaderValue>,
        body: String,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .post(&self.graphql_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, actor.auth.clone());
        if let Some(a) = association {
            req = req.header(ASSOCIATION_HEADER, a.clone());
        }
        req.body(body)
    }
}

async fn send(req: reqwest::RequestBuilder, op: Op) -> Result<(), String> {
    answered(req, op).await.map(drop)
}

/// The answer's body, once [`validate`] passed it.
async fn answered(req: reqwest::RequestBuilder, op: Op) -> Result<bytes::Bytes, String> {
    let resp = req.send().await.map_err(describe)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(describe)?;
    validate(op, status, &body)?;
    Ok(body)
}

/// The data of an answer [`validate`] passed.
fn parsed<D: Shape>(body: &[u8]) -> Result<D, String> {
    serde_json::from_slice::<Envelope<D>>(body)
        .ok()
        .and_then(|e| e.data)
        .ok_or_else(|| format!("no data: {}", snippet(body)))
}

/// A conversation from an answer's `associationSlug` and `topicId`.
fn known(slug: &str, topic: &str) -> Result<KnownConversation, String> {
    Ok(KnownConversation {
        association: HeaderValue::from_str(slug)
            .map_err(|_| format!("associationSlug {slug:?} is not a header value"))?,
        topic: topic
            .parse()
            .map_err(|_| format!("topicId {topic:?} is not a UUID"))?,
    })
}

/// An upload's answer: `201` with `{"file": File}`.
async fn uploaded(req: reqwest::RequestBuilder) -> Result<UploadedFile, String> {
    #[derive(Deserialize)]
    struct Answer {
        file: UploadedFile,
    }
    let resp = req.send().await.map_err(describe)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(describe)?;
    if status != 201 {
        return Err(match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.get("errors").is_some() => {
                format!("HTTP {status}: {}", graphql_errors(&body))
            }
            _ => format!("HTTP {status}: {}", snippet(&body)),
        });
    }
    let answer: Answer = serde_json::from_slice(&body)
        .map_err(|e| format!("unexpected answer to an upload: {e}: {}", snippet(&body)))?;
    if answer.file.size_bytes <= 0 {
        return Err(format!("an empty file: {}", snippet(&body)));
    }
    Ok(answer.file)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadedFile {
    id: String,
    size_bytes: i64,
    has_preview: bool,
}

/// A file read to its end: `200`, a JPEG or PDF as it starts, and `size` bytes when known.
async fn download(req: reqwest::RequestBuilder, size: Option<u64>) -> Result<(), String> {
    let mut resp = req.send().await.map_err(describe)?;
    let status = resp.status().as_u16();
    if status != 200 {
        let body = resp.bytes().await.map_err(describe)?;
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    let mut read = 0u64;
    let mut head = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(describe)? {
        if head.len() < 4 {
            head.extend(chunk.iter().take(4 - head.len()));
        }
        read += chunk.len() as u64;
    }
    if !(head.starts_with(&[0xFF, 0xD8]) || head.starts_with(b"%PDF")) {
        return Err(format!("not a JPEG or PDF: {}", snippet(&head)));
    }
    match size {
        Some(n) if n != read => Err(format!("{read} bytes instead of {n}")),
        _ => Ok(()),
    }
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return format!(
            "timeout after {} s ({} s for uploads)",
            REQUEST_TIMEOUT.as_secs(),
            UPLOAD_TIMEOUT.as_secs()
        );
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        let _ = write!(s, ": {inner}");
        source = inner.source();
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The run

/// The mixed phase's default length at every scale: the notification schedule runs once a
/// minute (enqueued within 2 s of it), so a phase of this length always sees a run.
const MIXED_SECONDS: u64 = 65;

struct Plan {
    phase: Duration,
    mixed_people: usize,
    mixed: Duration,
    subscriptions: usize,
    overload: Duration,
    warmup: Duration,
    mixed_warmup: Duration,
}

fn plan(scale: Option<Scale>, args: &crate::RunArgs) -> Plan {
    // The mixed phase lasts a little over the notification schedule's minute, so that a run
    // of it (and its digests) falls within the phase whenever it starts.
    // The mixed phase's warm-up is longer than a single phase's: the people's rhythm settles
    // over their longest interval (10 s), and 5,000 of them reach every association on every
    // connection, each planning its statements afresh at first.
    let (phase, people, mixed, subs, warmup, mixed_warmup) = match scale {
        Some(Scale::Medium) => (20, 5000, MIXED_SECONDS, 2000, 5, 15),
        Some(Scale::Large) => (30, 5000, MIXED_SECONDS, 2000, 5, 15),
        Some(Scale::Small) | None => (5, 200, MIXED_SECONDS, 100, 1, 2),
    };
    Plan {
        phase: Duration::from_secs(args.phase_seconds.unwrap_or(phase)),
        mixed_people: args.mixed_people.unwrap_or(people),
        mixed: Duration::from_secs(args.mixed_seconds.unwrap_or(mixed)),
        subscriptions: args.subscriptions.unwrap_or(subs),
        overload: Duration::from_secs(args.overload_seconds.unwrap_or(phase.max(10))),
        warmup: Duration::from_secs(args.warmup_seconds.unwrap_or(warmup)),
        mixed_warmup: Duration::from_secs(args.mixed_warmup_seconds.unwrap_or(mixed_warmup)),
    }
}

fn parse_scale(s: &str) -> Option<Scale> {
    match s {
        "small" => Some(Scale::Small),
        "medium" => Some(Scale::Medium),
        "large" => Some(Scale::Large),
        _ => None,
    }
}

pub async fn run(args: crate::RunArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(&args.manifest)
        .with_context(|| format!("cannot read the manifest {}", args.manifest.display()))?;
    anyhow::ensure!(!manifest.people.is_empty(), "the manifest has no people");
    let scale = parse_scale(&manifest.scale);
    let plan = plan(scale, &args);
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let target = args.target.trim_end_matches('/').to_owned();
    let floor = args.floor.trim_end_matches('/').to_owned();

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(4096)
        .pool_idle_timeout(Duration::from_secs(120))
        .tcp_nodelay(true)
        .build()
        .context("cannot build the HTTP client")?;

    // 0. Both servers up.
    wait_ready(&client, &format!("{target}/readyz")).await?;
    wait_ready(&client, &format!("{floor}/healthz")).await?;

    let seed = manifest.seed;
    let uploads = tokio::task::spawn_blocking(move || Uploads::build(seed))
        .await
        .context("building the files to upload panicked")??;
    let uploads = Arc::new(uploads);
    let casts = [
        Arc::new(Cast::new(&manifest.people, &floor)?),
        Arc::new(Cast::new(&manifest.crowded, &floor)?),
        Arc::new(Cast::new(&manifest.heavy, &floor)?),
        // Manifests before search had no searchers: the regular people stand in.
        Arc::new(Cast::new(
            if manifest.searchers.is_empty() {
                &manifest.people
            } else {
                &manifest.searchers
            },
            &floor,
        )?),
        Arc::new(Cast::new(&manifest.registrars, &floor)?),
    ];
    let ctx = Arc::new(Ctx::new(
        &client,
        &target,
        casts.clone(),
        Arc::clone(&uploads),
    )?);
    let root = Rng::new(manifest.seed ^ 0x6D75_7375_6269_6472);
    let mut operations = Vec::new();
    let mut failures = Vec::new();

    // 1. Sign-in through the API (sequential: the rate limits are real).
    if !manifest.sign_in.is_empty() {
        eprintln!("sign-in: {} people", manifest.sign_in.len());
        let (mut rec, secs) = sign_in(&ctx, &manifest).await;
        operations.push(operation(Op::SignIn.name(), "single", &mut rec, secs, None));
    }

    // 2. One operation at a time, closed loop.
    let run_mixed = wanted("mixed");
    // Without the mixed phase, `--statements` profiles each single phase on its own.
    let phase_statements = args.statements.as_ref().filter(|_| !run_mixed);
    let postmaster = postmaster_pid(&args.database_url).await;
    let mut singles = Singles {
        ctx: &ctx,
        args: &args,
        postmaster,
        length: plan.phase,
        warmup: plan.warmup,
        profile: phase_statements.is_some(),
        floor_rps: None,
        memory: crate::report::Uploads {
            clients: UPLOAD_CLIENTS,
            photo_bytes: uploads.photo.len() as u64,
            pdf_bytes: uploads.pdf.len() as u64,
            large_bytes: uploads.large.len() as u64,
            ..Default::default()
        },
        uploaded: false,
    };
    for (i, phase) in SINGLE.into_iter().enumerate() {
        if wanted(phase.name) {
            let o = singles.run(phase, root.fork(100 + i as u64)).await;
            if o.requests == 0 {
                failures.push(format!("phase {} recorded no requests", phase.name));
            }
            if let Some(path) = phase_statements {
                let path = path.with_file_name(format!("statements-{}.txt", phase.name));
                match statements::write(&args.database_url, &path, phase.name, o.requests).await {
                    Ok(()) => eprintln!("statements: written to {}", path.display()),
                    Err(e) => eprintln!("statements: cannot read pg_stat_statements: {e:#}"),
                }
            }
            operations.push(o);
        }
    }
    let singles_end = operations.len();

    // 3. Subscriptions, kept open through the mixed phase.
    let (mixed_people, mixed_subscriptions) = if run_mixed {
        (plan.mixed_people, plan.subscriptions)
    } else {
        (0, 0)
    };
    let (stop_memory, memory) = sample_memory(args.server_pid, Duration::from_secs(1));
    let counters = Arc::new(ws::Counters::default());
    let (stop_subs_tx, stop_subs) = watch::channel(false);
    let (subs, opened, failed, open_samples) = open_subscriptions(
        &manifest,
        &ws::endpoint(&target),
        mixed_subscriptions,
        &counters,
        stop_subs,
    )
    .await;

    // 4. Mixed phase.
    if run_mixed {
        eprintln!(
            "mixed: {mixed_people} people for {} s (after {} s unmeasured) with {opened} \
             subscriptions open",
            plan.mixed.as_secs(),
            plan.mixed_warmup.as_secs()
        );
    }
    let warmup = if run_mixed {
        plan.mixed_warmup
    } else {
        Duration::ZERO
    };
    let run = start_mixed(&ctx, mixed_people, warmup, plan.mixed, root.fork(200));
    run.warmed_up().await;
    let cpu_before = (
        args.server_pid.and_then(cpu_ticks),
        postmaster.and_then(tree_cpu_ticks),
        cpu_ticks(std::process::id()),
        machine_ticks(),
    );
    if args.statements.is_some() {
        if let Err(e) = statements::reset(&args.database_url).await {
            eprintln!("statements: cannot reset pg_stat_statements: {e:#}");
        }
    }
    // The notification jobs the phase causes: watched from its start, counted at its end,
    // read back when the report is written.
    let queue_watch = if run_mixed {
        match queue::Watch::start(&args.database_url).await {
            Ok(w) => Some(w),
            Err(e) => {
                eprintln!("notification queue: cannot watch it: {e:#}");
                None
            }
        }
    } else {
        None
    };
    let (mut mixed, mut mixed_recs) = run.finish().await;
    let queue_at_end = match &queue_watch {
        Some(w) => match w.end().await {
            Ok(at_end) => Some(at_end),
            Err(e) => {
                eprintln!("notification queue: cannot count it at the phase's end: {e:#}");
                None
            }
        },
        None => None,
    };
    if let Some(path) = args.statements.as_ref().filter(|_| run_mixed) {
        match statements::write(&args.database_url, path, "mixed phase", mixed.actions).await {
            Ok(()) => eprintln!("statements: written to {}", path.display()),
            Err(e) => eprintln!("statements: cannot read pg_stat_statements: {e:#}"),
        }
    }
    let per_action =
        |before: Option<u64>, after: Option<u64>| cpu_ms_per(before, after, mixed.actions);
    mixed.musubi_cpu_ms_per_action = per_action(cpu_before.0, args.server_pid.and_then(cpu_ticks));
    mixed.postgres_cpu_ms_per_action =
        per_action(cpu_before.1, postmaster.and_then(tree_cpu_ticks));
    mixed.driver_cpu_ms_per_action = per_action(cpu_before.2, cpu_ticks(std::process::id()));
    mixed.machine_busy_percent =
        cpu_before
            .3
            .zip(machine_ticks())
            .and_then(|((busy0, all0), (busy1, all1))| {
                let all = all1.checked_sub(all0).filter(|&a| a > 0)?;
                Some(busy1.saturating_sub(busy0) as f64 * 100.0 / all as f64)
            });
    let _ = stop_subs_tx.send(true);
    for s in subs {
        let _ = tokio::time::timeout(Duration::from_secs(15), s).await;
    }
    let _ = stop_memory.send(true);
    let max_rss_kb = memory.await.ok().flatten();
    let mixed_secs = mixed.seconds;
    for (op, rec) in mixed_recs.iter_mut() {
        let name = format!("mixed:{}", op.name());
        operations.push(operation(&name, "mixed", rec, mixed_secs, None));
    }
    if run_mixed && mixed.actions == 0 {
        failures.push("the mixed phase recorded no actions".to_owned());
    }

    let mut sub_samples = open_samples;
    for s in counters.samples() {
        if sub_samples.len() < crate::stats::MAX_ERROR_SAMPLES {
            sub_samples.push(s);
        }
    }
    let subscriptions = Subscriptions {
        requested: mixed_subscriptions,
        opened,
        failed,
        events_received: counters.events.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
        error_samples: sub_samples,
    };

    // 5. Uploads, on the same server; reported with the single phases.
    let mut at = singles_end;
    for (i, phase) in UPLOADS.into_iter().enumerate() {
        if wanted(phase.name) {
            let o = singles.run(phase, root.fork(150 + i as u64)).await;
            if o.requests == 0 {
                failures.push(format!("phase {} recorded no requests", phase.name));
            }
            operations.insert(at, o);
            at += 1;
        }
    }
    let upload_memory = singles.uploaded.then_some(singles.memory);
    if let Some(growth) = upload_memory.as_ref().and_then(|u| u.growth_mb()) {
        // Judged where the budgets are, like the fairness phase.
        if matches!(scale, Some(Scale::Medium | Scale::Large)) && growth > UPLOAD_RSS_MARGIN_MB {
            failures.push(format!(
                "uploads: the server held {growth:.1} MB more while 20 MB files arrived than \
                 while 1 MB ones did (at most {UPLOAD_RSS_MARGIN_MB} MB)"
            ));
        }
    }
    let peak_kb = args
        .server_pid
        .and_then(|pid| proc_status_kb(pid, "VmHWM:"));

    // 6. Overload: twice the mixed phase's rate, offered to a server that sheds load (and
    // keeps fair use at its defaults, for the fairness phase after it).
    let shedding = match &args.overload_target {
        Some(url) => {
            let url = url.trim_end_matches('/');
            wait_ready(&client, &format!("{url}/readyz")).await?;
            Some(Arc::new(Ctx::new(
                &client,
                url,
                casts.clone(),
                Arc::clone(&uploads),
            )?))
        }
        None => None,
    };
    let overload = match &shedding {
        Some(shedding) if wanted("overload") => {
            let rate = args
                .overload_rate
                .filter(|r| r.is_finite() && *r > 0.0)
                .unwrap_or((mixed.actions_per_second * 2.0).max(20.0));
            eprintln!("overload: {rate:.0}/s for {} s", plan.overload.as_secs());
            let o = overload_phase(
                shedding,
                rate,
                plan.overload,
                args.overload_pid,
                root.fork(300),
            )
            .await;
            if o.accepted == 0 {
                failures.push("the overload phase accepted nothing".to_owned());
            }
            if o.errors > 0 {
                failures.push(format!("overload: {} errors besides shedding", o.errors));
            }
            Some(o)
        }
        _ => None,
    };

    // 7. Fairness: one person floods an association on the server with fair use at its
    // defaults, while colleagues use it as usual.
    let fairness = match &shedding {
        Some(fair) if wanted("fairness") => {
            // After the overload, let the server settle.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let f = fairness_phase(fair, plan.overload, root.fork(400)).await;
            if let Some(f) = &f {
                eprintln!(
                    "fairness: {} colleagues in {}, p95 {:.1} ms alone, {:.1} ms flooded",
                    f.normal_clients, f.association, f.quiet_p95_ms, f.flooded_p95_ms
                );
                // Judged where the budgets are: the small scale's debug build is too slow for
                // the flooder to run out of its allowance, or for shedding to stay out of it.
                let judged = matches!(scale, Some(Scale::Medium | Scale::Large));
                if judged && f.quiet_errors + f.flooded_errors > 0 {
                    failures.push(format!(
                        "fairness: {} errors for the flooder's colleagues",
                        f.quiet_errors + f.flooded_errors
                    ));
                }
                if judged && f.flood_rate_limited == 0 {
                    failures.push("fairness: the flooder was never refused".to_owned());
                }
            }
            f
        }
        _ => None,
    };

    // 8. Report.
    let notification_queue = match (queue_watch, &queue_at_end) {
        (Some(w), Some(at_end)) => match w.finish(at_end).await {
            Ok(q) => Some(q),
            Err(e) => {
                eprintln!("notification queue: cannot read its jobs: {e:#}");
                None
            }
        },
        _ => None,
    };
    let metrics = client
        .get(format!("{target}/metrics"))
        .send()
        .await
        .ok()
        .map(|r| r.text());
    let metrics = match metrics {
        Some(text) => text.await.unwrap_or_default(),
        None => String::new(),
    };
    let server = Server {
        pid: args.server_pid,
        peak_rss_mb: peak_kb.map(kb_to_mb),
        max_rss_during_subscriptions_mb: max_rss_kb.map(kb_to_mb),
        tenant_rekeys: metric_value(&metrics, "musubi_db_tenant_rekeys_total"),
        tenant_connections: metric_value(&metrics, "musubi_db_tenant_connections"),
    };
    let dataset = Dataset {
        counts: manifest.counts.clone(),
        generation_seconds: manifest.generation_seconds,
        database_size_mb: database_size(&args.database_url).await,
    };
    // A partial run (`--only`) is a look, not a verdict.
    let applies = matches!(scale, Some(Scale::Medium | Scale::Large)) && args.only.is_empty();
    let mut budgets = budgets(
        &operations,
        &mixed,
        &subscriptions,
        &server,
        upload_memory.as_ref(),
        applies,
    );
    budgets.extend(load_budgets(&operations, overload.as_ref(), applies));
    if let Some(q) = &notification_queue {
        // A failed job is a bug (mail goes to the log, which cannot refuse it): judged at every
        // scale, like a failed request.
        budgets.push(Budget {
            name: "notification jobs of the mixed phase failed".to_owned(),
            limit: 0.0,
            actual: Some(q.failed as f64),
            unit: "jobs".to_owned(),
            met: q.failed == 0,
            applies: true,
        });
        if q.failed > 0 {
            failures.push(format!(
                "notification queue: {} jobs of the mixed phase failed (see `musubi jobs`)",
                q.failed
            ));
        }
    }
    if wanted("rotation_draft") {
        let slowest = rotation_draft_ms();
        eprintln!("rotation_draft: slowest of {DRAFT_RUNS} drafts {slowest:.2} ms");
        budgets.push(Budget {
            name: "rotation draft, 31 days and 5 doctors (slowest run)".to_owned(),
            limit: 1000.0,
            actual: Some(slowest),
            unit: "ms".to_owned(),
            met: slowest <= 1000.0,
            applies,
        });
    }
    let report = Report {
        scale: manifest.scale.clone(),
        seed: manifest.seed,
        label: args.label.clone(),
        generated_at: chrono::Utc::now().to_rfc3339(),
        machine: machine(),
        dataset,
        server,
        operations,
        subscriptions,
        mixed,
        uploads: upload_memory,
        overload,
        fairness,
        notification_queue,
        budgets,
    };
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    print!("{}", report.table());
    println!("report: {}", args.out.display());

    for o in &report.operations {
        if o.errors > 0 {
            failures.push(format!("{}: {} errors", o.name, o.errors));
        }
    }
    let s = &report.subscriptions;
    if s.failed > 0 {
        failures.push(format!("{} subscriptions failed to open", s.failed));
    }
    if s.errors > 0 {
        failures.push(format!("{} subscription errors", s.errors));
    }
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// The single-operation phases' shared state: the floor's throughput (the others are read
/// against it) and the server's memory during uploads.
struct Singles<'a> {
    ctx: &'a Arc<Ctx>,
    args: &'a crate::RunArgs,
    /// PostgreSQL's process, for the CPU each request costs it.
    postmaster: Option<u32>,
    length: Duration,
    /// Unmeasured time before each phase (see `RunArgs::warmup_seconds`).
    warmup: Duration,
    /// Whether `pg_stat_statements` starts afresh for the phase (after its warm-up).
    profile: bool,
    floor_rps: Option<f64>,
    memory: crate::report::Uploads,
    /// Whether an upload phase ran.
    uploaded: bool,
}

impl Singles<'_> {
    async fn run(&mut self, phase: Phase, rng: Rng) -> Operation {
        let clients = phase.clients.unwrap_or(self.args.concurrency).max(1);
        let uploading = matches!(phase.op, Op::UploadPhoto | Op::UploadPdf | Op::UploadLarge);
        let warmup = if uploading {
            Duration::ZERO
        } else {
            self.warmup
        };
        eprintln!(
            "phase {}: {clients} clients for {} s (after {} s unmeasured)",
            phase.name,
            self.length.as_secs(),
            warmup.as_secs()
        );
        // While files arrive, the server's memory is sampled ten times a second.
        let pid = self.args.server_pid;
        if uploading && !self.uploaded {
            self.uploaded = true;
            self.memory.rss_before_mb = pid
                .and_then(|pid| proc_status_kb(pid, "VmRSS:"))
                .map(kb_to_mb);
        }
        // Unmeasured first, except uploads: their memory is measured from the first file.
        if !warmup.is_zero() {
            let _ = single_phase(self.ctx, phase, clients, warmup, rng.fork(1)).await;
        }
        if self.profile {
            if let Err(e) = statements::reset(&self.args.database_url).await {
                eprintln!("statements: cannot reset pg_stat_statements: {e:#}");
            }
        }
        let (stop_memory, memory) =
            sample_memory(pid.filter(|_| uploading), Duration::from_millis(100));
        // The floor is another server: Musubi's CPU would say nothing about it.
        let musubi = pid.filter(|_| phase.op != Op::Floor);
        let cpu_before = (
            musubi.and_then(cpu_ticks),
            self.postmaster.and_then(tree_cpu_ticks),
        );
        let (mut rec, secs) = single_phase(self.ctx, phase, clients, self.length, rng).await;
        let cpu_after = (
            musubi.and_then(cpu_ticks),
            self.postmaster.and_then(tree_cpu_ticks),
        );
        let _ = stop_memory.send(true);
        let max_rss = memory.await.ok().flatten().map(kb_to_mb);
        match phase.op {
            Op::UploadPhoto => self.memory.photo_max_rss_mb = max_rss,
            Op::UploadPdf => self.memory.pdf_max_rss_mb = max_rss,
            Op::UploadLarge => self.memory.large_max_rss_mb = max_rss,
            _ => {}
        }
        let mut o = operation(phase.name, "single", &mut rec, secs, None);
        o.musubi_cpu_ms_per_request = cpu_ms_per(cpu_before.0, cpu_after.0, o.requests);
        o.postgres_cpu_ms_per_request = cpu_ms_per(cpu_before.1, cpu_after.1, o.requests);
        if phase.op == Op::Floor {
            self.floor_rps = Some(o.throughput_rps).filter(|r| *r > 0.0);
        } else {
            o.ratio_to_floor = self.floor_rps.map(|f| o.throughput_rps / f);
        }
        o
    }
}

fn operation(
    name: &str,
    phase: &str,
    rec: &mut Recorder,
    seconds: f64,
    ratio_to_floor: Option<f64>,
) -> Operation {
    let s = rec.summary();
    Operation {
        name: name.to_owned(),
        phase: phase.to_owned(),
        requests: s.ok + s.errors,
        errors: s.errors,
        throughput_rps: if seconds > 0.0 {
            s.ok as f64 / seconds
        } else {
            0.0
        },
        p50_ms: s.p50_ms,
        p95_ms: s.p95_ms,
        p99_ms: s.p99_ms,
        max_ms: s.max_ms,
        ratio_to_floor,
        musubi_cpu_ms_per_request: None,
        postgres_cpu_ms_per_request: None,
        error_samples: rec.samples().to_vec(),
    }
}

/// CPU milliseconds between two readings of clock ticks, per request.
fn cpu_ms_per(before: Option<u64>, after: Option<u64>, requests: u64) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    (requests > 0).then(|| used as f64 * 1000.0 / clock_ticks() / requests as f64)
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("HTTP {}", r.status()),
            Err(e) => last = describe(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("{url} not ready within {} s ({last})", READY_WAIT.as_secs())
}

async fn sign_in(ctx: &Ctx, manifest: &Manifest) -> (Recorder, f64) {
    let mut rec = Recorder::default();
    let started = Instant::now();
    let query = ctx.query_json(Op::SignIn);
    let password = serde_json::Value::String(manifest.password.clone()).to_string();
    for email in &manifest.sign_in {
        let body = format!(
            r#"{{"query":{query},"variables":{{"e":{},"p":{password}}}}}"#,
            serde_json::Value::String(email.clone())
        );
        let req = ctx
            .client
            .post(&ctx.graphql_url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        let t = Instant::now();
        match send(req, Op::SignIn).await {
            Ok(()) => rec.ok(t.elapsed()),
            Err(e) => rec.err(|| format!("{email}: {e}")),
        }
    }
    (rec, started.elapsed().as_secs_f64())
}

async fn single_phase(
    ctx: &Arc<Ctx>,
    phase: Phase,
    concurrency: usize,
    length: Duration,
    rng: Rng,
) -> (Recorder, f64) {
    let started = Instant::now();
    let deadline = started + length;
    let mut workers = Vec::with_capacity(concurrency);
    let sent = Arc::new(AtomicU64::new(0));
    let max_requests = phase.max_requests.unwrap_or(u64::MAX);
    for w in 0..concurrency {
        let ctx = Arc::clone(ctx);
        let sent = Arc::clone(&sent);
        let mut rng = rng.fork(w as u64);
        workers.push(tokio::spawn(async move {
            let mut rec = Recorder::with_capacity(4096);
            let (op, cast) = (phase.op, ctx.cast(phase.who));
            let eligible = cast.eligible(op.needs());
            if eligible.is_empty() {
                rec.err(|| format!("no person in the manifest can do {}", phase.name));
                return rec;
            }
            while Instant::now() < deadline && sent.fetch_add(1, Ordering::Relaxed) < max_requests {
                let Some(&i) = rng.pick(&eligible) else { break };
                let actor = &cast.actors[i];
                let t = Instant::now();
                match ctx.perform(op, actor, &mut rng).await {
                    Ok(()) => rec.ok(t.elapsed()),
                    Err(e) => {
                        rec.err(|| e);
                        // A failing server answers fast: do not spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            rec
        }));
    }
    let mut all = Recorder::default();
    for w in workers {
        match w.await {
            Ok(rec) => all.merge(rec),
            Err(e) => all.err(|| format!("worker panicked: {e}")),
        }
    }
    (all, started.elapsed().as_secs_f64())
}

type SubTasks = Vec<tokio::task::JoinHandle<()>>;

/// Opens `n` subscriptions as distinct people (wrapping around when there are fewer people),
/// at most [`CONNECT_AT_ONCE`] connecting at a time. Returns the running subscriptions, how
/// many opened and failed, and a few failure messages.
async fn open_subscriptions(
    manifest: &Manifest,
    url: &str,
    n: usize,
    counters: &Arc<ws::Counters>,
    stop: watch::Receiver<bool>,
) -> (SubTasks, usize, usize, Vec<String>) {
    use futures_util::StreamExt;
    if n == 0 {
        return (Vec::new(), 0, 0, Vec::new());
    }
    if n > manifest.people.len() {
        eprintln!(
            "subscriptions: {n} requested but the manifest has {} people; some people subscribe twice",
            manifest.people.len()
        );
    }
    eprintln!("subscriptions: opening {n}");
    let started = Instant::now();
    let people = &manifest.people;
    let results: Vec<Result<ws::Subscription, String>> = futures_util::stream::iter(0..n)
        .map(|i| {
            let token = &people[i % people.len()].token;
            ws::Subscription::open(url, token)
        })
        .buffer_unordered(CONNECT_AT_ONCE)
        .collect()
        .await;
    let mut tasks = Vec::with_capacity(n);
    let mut failed = 0;
    let mut samples: Vec<String> = Vec::new();
    for r in results {
        match r {
            Ok(sub) => tasks.push(tokio::spawn(sub.run(stop.clone(), Arc::clone(counters)))),
            Err(e) => {
                failed += 1;
                if samples.len() < crate::stats::MAX_ERROR_SAMPLES && !samples.contains(&e) {
                    samples.push(e);
                }
            }
        }
    }
    let opened = tasks.len();
    eprintln!(
        "subscriptions: {opened} opened, {failed} failed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (tasks, opened, failed, samples)
}

struct MixedShared {
    recs: Vec<(Op, Mutex<Recorder>)>,
    late: AtomicU64,
    /// Per second of the phase, by the actions that started in it.
    seconds: Mutex<Vec<crate::report::SecondOfMixed>>,
}

impl MixedShared {
    fn record(&self, op: Op, result: Result<Duration, String>) {
        if let Some((_, m)) = self.recs.iter().find(|(o, _)| *o == op) {
            if let Ok(mut r) = m.lock() {
                match result {
                    Ok(d) => r.ok(d),
                    Err(e) => r.err(|| e),
                }
            }
        }
    }

    fn record_second(&self, since_start: Duration, took: Duration) {
        let at = since_start.as_secs();
        let Ok(mut seconds) = self.seconds.lock() else {
            return;
        };
        let Ok(i) = usize::try_from(at) else { return };
        if seconds.len() <= i {
            seconds.resize_with(i + 1, Default::default);
        }
        let s = &mut seconds[i];
        s.at = at;
        s.actions += 1;
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        if ms > crate::report::SLOW_ACTION_MS {
            s.slow += 1;
        }
        s.max_ms = s.max_ms.max(ms);
    }
}

/// Simulated people, one task each, acting every 5–10 s (after the previous action answered)
/// until the phase ends. Each one's first action falls anywhere in its first interval, so the
/// actions arrive at their steady rate from the start rather than all together. Actions that
/// start during `warmup` are not recorded: the phase is measured once the people's rhythm and
/// the server's prepared plans have settled, as they have on a server in service.
fn start_mixed(
    ctx: &Arc<Ctx>,
    people: usize,
    warmup: Duration,
    length: Duration,
    rng: Rng,
) -> MixedRun {
    let shared = Arc::new(MixedShared {
        recs: MIXED
            .iter()
            .map(|(op, _)| (*op, Mutex::new(Recorder::default())))
            .collect(),
        late: AtomicU64::new(0),
        seconds: Mutex::new(Vec::new()),
    });
    let measured_from = Instant::now() + warmup;
    let deadline = measured_from + length;
    let mut tasks = Vec::with_capacity(people);
    for p in 0..people {
        let ctx = Arc::clone(ctx);
        let shared = Arc::clone(&shared);
        let mut rng = rng.fork(p as u64);
        tasks.push(tokio::spawn(async move {
            let actor = &ctx.people.actors[p % ctx.people.actors.len()];
            let first = next_interval(&mut rng);
            let mut due = Instant::now() + Duration::from_millis(rng.below(first));
            while due < deadline {
                tokio::time::sleep_until(due).await;
                let measured = due >= measured_from;
                if measured && Instant::now().saturating_duration_since(due) > LATE {
                    shared.late.fetch_add(1, Ordering::Relaxed);
                }
                let op = choose_mixed(&mut rng, actor);
                let t = Instant::now();
                let r = ctx.perform(op, actor, &mut rng).await;
                let took = t.elapsed();
                if measured {
                    shared.record_second(t.saturating_duration_since(measured_from), took);
                    shared.record(op, r.map(|()| took));
                }
                due = Instant::now() + Duration::from_millis(next_interval(&mut rng));
            }
        }));
    }
    MixedRun {
        people,
        length,
        measured_from,
        shared,
        tasks,
    }
}

/// Milliseconds from one action of a person to their next.
fn next_interval(rng: &mut Rng) -> u64 {
    rng.range(5_000, 10_001)
}

/// A mixed phase under way.
struct MixedRun {
    people: usize,
    length: Duration,
    measured_from: Instant,
    shared: Arc<MixedShared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MixedRun {
    /// Waits until the warm-up is over (what the phase measures starts then).
    async fn warmed_up(&self) {
        tokio::time::sleep_until(self.measured_from).await;
    }

    async fn finish(self) -> (Mixed, Vec<(Op, Recorder)>) {
        let Self {
            people,
            length,
            measured_from,
            shared,
            tasks,
        } = self;
        for t in tasks {
            let _ = t.await;
        }
        // Tasks stop once their next action would fall after the deadline, which can be before
        // it: the rate is over the phase as planned.
        let seconds = measured_from.elapsed().max(length).as_secs_f64();
        let late = shared.late.load(Ordering::Relaxed);
        let (slow_seconds, worst_seconds) = shared
            .seconds
            .lock()
            .map(|s| crate::report::slow_seconds(&s))
            .unwrap_or_default();
        let recs: Vec<(Op, Recorder)> = shared
            .recs
            .iter()
            .map(|(op, m)| {
                let r = m.lock().map(|mut r| std::mem::take(&mut *r));
                (*op, r.unwrap_or_default())
            })
            .collect();
        let actions = recs.iter().map(|(_, r)| r.requests()).sum();
        let errors = recs.iter().map(|(_, r)| r.errors()).sum();
        let mixed = Mixed {
            people,
            seconds,
            actions,
            errors,
            actions_per_second: if seconds > 0.0 {
                actions as f64 / seconds
            } else {
                0.0
            },
            late_actions: late,
            musubi_cpu_ms_per_action: None,
            postgres_cpu_ms_per_action: None,
            driver_cpu_ms_per_action: None,
            machine_busy_percent: None,
            slow_seconds,
            worst_seconds,
        };
        (mixed, recs)
    }
}

/// Offers `rate` requests a second for `length` whatever the answers (open loop): mixed
/// actions of random people. Then measures how soon five requests in a row are served again.
async fn overload_phase(
    ctx: &Arc<Ctx>,
    rate: f64,
    length: Duration,
    pid: Option<u32>,
    mut rng: Rng,
) -> crate::report::Overload {
    #[derive(Default)]
    struct Tally {
        accepted: Recorder,
        by_op: Vec<(Op, Recorder)>,
        shed: Recorder,
        errors: Recorder,
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop_memory, memory) = sample_memory(pid, Duration::from_secs(1));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    let mut due = started;
    // A person does one thing at a time (as in the mixed phase): the fair-use limits serve one
    // request of a session at once, and one waiting behind a photo upload (tens of seconds in
    // the debug build) would be refused with `RATE_LIMITED`, which is no overload.
    let busy: Arc<Vec<std::sync::atomic::AtomicBool>> = Arc::new(
        (0..ctx.people.actors.len())
            .map(|_| std::sync::atomic::AtomicBool::new(false))
            .collect(),
    );
    while due < deadline {
        tokio::time::sleep_until(due).await;
        let ctx = Arc::clone(ctx);
        let tally = Arc::clone(&tally);
        let mut task_rng = rng.fork(tasks.len() as u64);
        due += interval;
        let n = ctx.people.actors.len();
        let start = rng.below(n as u64) as usize;
        // The first person from a random one who is not busy (everyone busy: no offer).
        let Some(person) = (0..n).map(|i| (start + i) % n).find(|&p| {
            busy[p]
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        }) else {
            continue;
        };
        let busy = Arc::clone(&busy);
        tasks.push(tokio::spawn(async move {
            let actor = &ctx.people.actors[person];
            let op = choose_mixed(&mut task_rng, actor);
            let t = Instant::now();
            let r = ctx.perform(op, actor, &mut task_rng).await;
            let took = t.elapsed();
            busy[person].store(false, Ordering::Release);
            if let Ok(mut tally) = tally.lock() {
                match r {
                    Ok(()) => {
                        tally.accepted.ok(took);
                        match tally.by_op.iter_mut().find(|(o, _)| *o == op) {
                            Some((_, rec)) => rec.ok(took),
                            None => {
                                let mut rec = Recorder::default();
                                rec.ok(took);
                                tally.by_op.push((op, rec));
                            }
                        }
                    }
                    Err(e) if e.starts_with("HTTP 503") => tally.shed.ok(took),
                    Err(e) => tally.errors.err(|| format!("{}: {e}", op.name())),
                }
            }
        }));
    }
    let ended = Instant::now();
    // Recovery: the overload is over; how soon is everyone served again?
    let mut recovery = None;
    let mut in_a_row = 0;
    while ended.elapsed() < Duration::from_secs(30) {
        let person = rng.below(ctx.people.actors.len() as u64) as usize;
        if busy[person].load(Ordering::Acquire) {
            // Still doing something of the overload: someone else.
            tokio::task::yield_now().await;
            continue;
        }
        let actor = &ctx.people.actors[person];
        if ctx.perform(Op::UnreadCounts, actor, &mut rng).await.is_ok() {
            in_a_row += 1;
            if in_a_row == 5 {
                recovery = Some(ended.elapsed().as_secs_f64());
                break;
            }
        } else {
            in_a_row = 0;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = stop_memory.send(true);
    let max_rss_kb = memory.await.ok().flatten();
    let mut tally = tally
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let accepted = tally.accepted.summary();
    let shed = tally.shed.summary();
    let errors = tally.errors.summary();
    crate::report::Overload {
        offered_per_second: rate,
        seconds: length.as_secs_f64(),
        accepted: accepted.ok,
        accepted_p95_ms: accepted.p95_ms,
        shed: shed.ok,
        shed_p95_ms: shed.p95_ms,
        errors: errors.errors,
        error_samples: tally.errors.samples().to_vec(),
        max_rss_mb: max_rss_kb.map(kb_to_mb),
        recovery_seconds: recovery,
        accepted_by_operation: tally
            .by_op
            .iter_mut()
            .map(|(op, rec)| {
                let s = rec.summary();
                crate::report::OverloadOperation {
                    name: op.name().to_owned(),
                    accepted: s.ok,
                    p95_ms: s.p95_ms,
                }
            })
            .collect(),
    }
}

/// Colleagues in one association (the one most people in the dataset can read topics of), each
/// in a closed loop of topic views with 100–300 ms between, for `length` alone and
/// then for `length` while one of them floods the same association with topic views from one
/// session, `FLOOD_AT_ONCE` at a time, without pause.
async fn fairness_phase(
    ctx: &Arc<Ctx>,
    length: Duration,
    rng: Rng,
) -> Option<crate::report::Fairness> {
    const COLLEAGUES: usize = 24;
    const FLOOD_AT_ONCE: usize = 32;
    const THINK_MS: u64 = 200;
    let mut by_association: std::collections::BTreeMap<&[u8], Vec<usize>> = Default::default();
    for (i, a) in ctx.people.actors.iter().enumerate() {
        if let Some(t) = a.topics.first() {
            by_association
                .entry(t.association.as_bytes())
                .or_default()
                .push(i);
        }
    }
    let (association, people) = by_association.into_iter().max_by_key(|(_, v)| v.len())?;
    let association = HeaderValue::from_bytes(association).ok()?;
    let (&flooder, colleagues) = people.split_first()?;
    let colleagues: Vec<usize> = colleagues.iter().copied().take(COLLEAGUES).collect();
    if colleagues.is_empty() {
        return None;
    }
    // Topics of that association only.
    let topics_in = |i: usize| -> Vec<Uuid> {
        ctx.people.actors[i]
            .topics
            .iter()
            .filter(|t| t.association == association)
            .map(|t| t.id)
            .collect()
    };

    async fn view(
        ctx: &Ctx,
        actor: &Actor,
        association: &HeaderValue,
        topic: Uuid,
    ) -> Result<(), String> {
        let body = format!(
            r#"{{"query":{},"variables":{{"id":"{topic}"}}}}"#,
            ctx.query_json(Op::TopicView)
        );
        send(ctx.graphql(actor, Some(association), body), Op::TopicView).await
    }

    let colleagues_round = |rng: Rng| {
        let ctx = Arc::clone(ctx);
        let association = association.clone();
        let colleagues = colleagues.clone();
        let topics: Vec<Vec<Uuid>> = colleagues.iter().map(|&i| topics_in(i)).collect();
        async move {
            let deadline = Instant::now() + length;
            let tasks: Vec<_> = colleagues
                .iter()
                .zip(topics)
                .enumerate()
                .map(|(n, (&i, topics))| {
                    let ctx = Arc::clone(&ctx);
                    let association = association.clone();
                    let mut rng = rng.fork(n as u64);
                    tokio::spawn(async move {
                        let mut rec = Recorder::default();
                        // Spread out, as people are: not all in step.
                        tokio::time::sleep(Duration::from_millis(rng.below(THINK_MS))).await;
                        while Instant::now() < deadline {
                            let Some(&topic) = rng.pick(&topics) else {
                                break;
                            };
                            let t = Instant::now();
                            match view(&ctx, &ctx.people.actors[i], &association, topic).await {
                                Ok(()) => rec.ok(t.elapsed()),
                                Err(e) => rec.err(|| e),
                            }
                            let think = rng.range(THINK_MS / 2, THINK_MS * 3 / 2);
                            tokio::time::sleep(Duration::from_millis(think)).await;
                        }
                        rec
                    })
                })
                .collect();
            let mut all = Recorder::default();
            for t in tasks {
                if let Ok(r) = t.await {
                    all.merge(r);
                }
            }
            all
        }
    };

    let mut quiet = colleagues_round(rng.fork(1)).await;
    let flood_topics = topics_in(flooder);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let floods: Vec<_> = (0..FLOOD_AT_ONCE)
        .map(|n| {
            let ctx = Arc::clone(ctx);
            let association = association.clone();
            let topics = flood_topics.clone();
            let stop = Arc::clone(&stop);
            let mut rng = rng.fork(1000 + n as u64);
            tokio::spawn(async move {
                let (mut served, mut limited, mut other) = (0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let Some(&topic) = rng.pick(&topics) else {
                        break;
                    };
                    match view(&ctx, &ctx.people.actors[flooder], &association, topic).await {
                        Ok(()) => served += 1,
                        Err(e) if e.starts_with("HTTP 429") => limited += 1,
                        Err(_) => other += 1,
                    }
                }
                (served, limited, other)
            })
        })
        .collect();
    let mut flooded = colleagues_round(rng.fork(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut served, mut limited, mut other) = (0, 0, 0);
    for f in floods {
        if let Ok((s, l, o)) = f.await {
            served += s;
            limited += l;
            other += o;
        }
    }
    let (q, f) = (quiet.summary(), flooded.summary());
    let mut samples = quiet.samples().to_vec();
    samples.extend(flooded.samples().iter().cloned());
    Some(crate::report::Fairness {
        association: association.to_str().unwrap_or_default().to_owned(),
        normal_clients: colleagues.len(),
        seconds_each: length.as_secs_f64(),
        quiet_requests: q.ok + q.errors,
        quiet_p95_ms: q.p95_ms,
        quiet_errors: q.errors,
        flooded_requests: f.ok + f.errors,
        flooded_p95_ms: f.p95_ms,
        flooded_errors: f.errors,
        error_samples: samples,
        flood_concurrency: FLOOD_AT_ONCE,
        flood_served: served,
        flood_rate_limited: limited,
        flood_other: other,
    })
}

fn choose_mixed(rng: &mut Rng, actor: &Actor) -> Op {
    let mut roll = rng.below(100);
    let mut op = Op::Home;
    for (o, w) in MIXED {
        if roll < w {
            op = o;
            break;
        }
        roll -= w;
    }
    // Someone with nothing to open looks at the home page instead; someone who knows of no
    // conversation yet opens their list of them.
    if actor.can(op.needs()) {
        op
    } else if op == Op::ReadConversation {
        Op::ListConversations
    } else {
        Op::Home
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements of the machine and the server

/// Samples the server's VmRSS `every` so often until told to stop; the highest value (kB).
fn sample_memory(
    pid: Option<u32>,
    every: Duration,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<Option<u64>>) {
    let (tx, mut rx) = watch::channel(false);
    let task = tokio::spawn(async move {
        let pid = pid?;
        let mut max = proc_status_kb(pid, "VmRSS:");
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = rx.wait_for(|s| *s) => break,
                _ = tick.tick() => {
                    if let Some(kb) = proc_status_kb(pid, "VmRSS:") {
                        max = Some(max.map_or(kb, |m| m.max(kb)));
                    }
                }
            }
        }
        max
    });
    (tx, task)
}

/// A `kB` line of /proc/<pid>/status (e.g. `VmRSS:`).
fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb_line(&status, key)
}

fn parse_kb_line(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn kb_to_mb(kb: u64) -> f64 {
    (kb as f64 / 1024.0 * 10.0).round() / 10.0
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    Machine {
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model,
        memory_total_mb: parse_kb_line(&meminfo, "MemTotal:").map_or(0, |kb| kb / 1024),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    }
}

/// The value of an unlabelled metric in Prometheus text.
fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse::<f64>().ok())?
        })
        .map(|v| v as u64)
}

/// Ticks per second of `/proc/<pid>/stat`'s times (USER_HZ: 100 on every Linux this runs on).
fn clock_ticks() -> f64 {
    100.0
}

/// User + system CPU ticks of `pid`, and of its reaped children when `children` is set.
fn stat_ticks(pid: u32, children: bool) -> Option<(u64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is 4, utime 14, stime 15, cutime 16, cstime 17.
    let at = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let mut ticks = at(14)? + at(15)?;
    if children {
        ticks += at(16)? + at(17)?;
    }
    Some((ticks, at(4)? as u32))
}

/// The machine's busy and total CPU ticks so far (all CPUs, from `/proc/stat`); idle and
/// iowait are the idle ones.
fn machine_ticks() -> Option<(u64, u64)> {
    busy_and_all_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn busy_and_all_ticks(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let all: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((all - idle, all))
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    stat_ticks(pid, false).map(|(t, _)| t)
}

/// CPU of the postmaster, its live children and the children it has reaped.
fn tree_cpu_ticks(postmaster: u32) -> Option<u64> {
    let mut total = stat_ticks(postmaster, true)?.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ticks, parent)) = stat_ticks(pid, false) {
            if parent == postmaster {
                total += ticks;
            }
        }
    }
    Some(total)
}

/// The PostgreSQL server's process id, from `postmaster.pid` in its data directory (readable
/// when the benchmark runs as the cluster's owner or root).
async fn postmaster_pid(url: &str) -> Option<u32> {
    let dir: String = async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .ok()?;
        sqlx::query_scalar("SELECT current_setting('data_directory')")
            .fetch_one(&mut conn)
            .await
            .ok()
    }
    .await?;
    let text = std::fs::read_to_string(std::path::Path::new(&dir).join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

async fn database_size(url: &str) -> Option<f64> {
    let result: Result<i64, sqlx::Error> = async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await?;
        let size = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&pool)
            .await;
        pool.close().await;
        size
    }
    .await;
    match result {
        Ok(bytes) => Some((bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0),
        Err(e) => {
            eprintln!("cannot read the database size: {e}");
            None
        }
    }
}

/// An operation's p95 budget in the single phases (ms): the mixed phase and the requests the
/// overload phase accepts are held to twice it. `None`: no latency budget (counts, files).
fn latency_budget_ms(op: &str) -> Option<f64> {
    match op {
        "home" | "conversations" | "home_heavy" => Some(20.0),
        "topic_view" | "post_comment" | "send_message" | "read_conversation" | "patients"
        | "patients_register" | "calendar" | "topic_crowded" => Some(30.0),
        "search" | "search_two_chars" => Some(100.0),
        _ => None,
    }
}

/// Of `(operation, p95 ms)`, the one furthest over its budget, as a budget of its own: at most
/// twice the single phase's budget.
fn within_twice(what: &str, p95s: impl Iterator<Item = (String, f64)>, applies: bool) -> Budget {
    let worst = p95s
        .filter_map(|(name, p95)| latency_budget_ms(&name).map(|b| (name, p95 / b)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    Budget {
        name: match &worst {
            Some((name, _)) => format!("{what} p95 over its budget, worst ({name})"),
            None => format!("{what} p95 over its budget"),
        },
        limit: 2.0,
        actual: worst.as_ref().map(|w| (w.1 * 100.0).round() / 100.0),
        unit: "× budget".to_owned(),
        met: worst.is_some_and(|w| w.1 <= 2.0),
        applies,
    }
}

/// What the mixed and overload phases must keep: every operation within twice its budget;
/// refusals fast, memory bounded, service back at once.
fn load_budgets(
    operations: &[Operation],
    overload: Option<&crate::report::Overload>,
    applies: bool,
) -> Vec<Budget> {
    let mut out = Vec::new();
    if operations
        .iter()
        .any(|o| o.phase == "mixed" && o.requests > 0)
    {
        out.push(within_twice(
            "mixed phase",
            operations
                .iter()
                .filter(|o| o.phase == "mixed" && o.requests > o.errors)
                .map(|o| (o.name.trim_start_matches("mixed:").to_owned(), o.p95_ms)),
            applies,
        ));
    }
    if let Some(o) = overload {
        out.push(within_twice(
            "overload: accepted",
            o.accepted_by_operation
                .iter()
                .map(|a| (a.name.clone(), a.p95_ms)),
            applies,
        ));
        let mut limit = |name: &str, limit: f64, actual: Option<f64>, unit: &str| {
            out.push(Budget {
                name: name.to_owned(),
                limit,
                actual,
                unit: unit.to_owned(),
                met: actual.is_some_and(|a| a <= limit),
                applies,
            });
        };
        // Nothing shed (0 ms): no refusal was slow.
        limit("overload: shed p95", 50.0, Some(o.shed_p95_ms), "ms");
        limit("overload: server RSS", 200.0, o.max_rss_mb, "MB");
        limit(
            "overload: normal service again after",
            5.0,
            o.recovery_seconds,
            "s",
        );
    }
    out
}

fn budgets(
    operations: &[Operation],
    mixed: &Mixed,
    subs: &Subscriptions,
    server: &Server,
    uploads: Option<&crate::report::Uploads>,
    applies: bool,
) -> Vec<Budget> {
    let p95 = |name: &str| {
        operations
            .iter()
            .find(|o| o.phase == "single" && o.name == name && o.requests > o.errors)
            .map(|o| o.p95_ms)
    };
    let latency = |op: &str, limit: f64| {
        let actual = p95(op);
        Budget {
            name: format!("{op} p95 (single phase)"),
            limit,
            actual,
            unit: "ms".to_owned(),
            met: actual.is_some_and(|a| a <= limit),
            applies,
        }
    };
    let rss = server.max_rss_during_subscriptions_mb;
    vec![
        latency("home", 20.0),
        latency("topic_view", 30.0),
        latency("post_comment", 30.0),
        // Direct messages: a message as a reply, the list as the home page, a conversation as
        // a topic.
        latency("send_message", 30.0),
        latency("conversations", 20.0),
        latency("read_conversation", 30.0),
        latency("patients", 30.0),
        latency("patients_register", 30.0),
        latency("calendar", 30.0),
        // Search over everything a person in the most groups may see.
        latency("search_two_chars", 100.0),
        // The same budgets for the same pages at their heaviest.
        latency("topic_crowded", 30.0),
        latency("home_heavy", 20.0),
        Budget {
            name: "mixed-phase errors with ≥ 5000 people".to_owned(),
            limit: 0.0,
            actual: Some(mixed.errors as f64),
            unit: "errors".to_owned(),
            met: mixed.errors == 0 && mixed.people >= 5000 && mixed.actions > 0,
            applies,
        },
        Budget {
            name: "server RSS with ≥ 2000 open subscriptions".to_owned(),
            limit: 200.0,
            actual: rss,
            unit: "MB".to_owned(),
            met: subs.opened >= 2000 && rss.is_some_and(|r| r <= 200.0),
            applies,
        },
        {
            let growth = uploads.and_then(crate::report::Uploads::growth_mb);
            Budget {
                name: "server RSS: 20 MB uploads over 1 MB".to_owned(),
                limit: UPLOAD_RSS_MARGIN_MB,
                actual: growth,
                unit: "MB".to_owned(),
                met: growth.is_some_and(|g| g <= UPLOAD_RSS_MARGIN_MB),
                applies,
            }
        },
    ]
}

/// Drafts measured for the rotation budget.
const DRAFT_RUNS: u64 = 50;

/// The slowest of [`DRAFT_RUNS`] drafts of a 31-day month (May 2027, Golden Week) for five
/// doctors with absences, in this process: the drafter runs inside the request that asks for
/// it, so its time is the page's.
fn rotation_draft_ms() -> f64 {
    use musubi_calendar::rotation::{self, Absence, AbsencePart, DutyKind, Participant, Shape};
    let Some(first) = chrono::NaiveDate::from_ymd_opt(2027, 5, 1) else {
        return f64::NAN;
    };
    let shape = Shape {
        weekday: vec![DutyKind::Night],
        weekend_holiday: vec![DutyKind::Day, DutyKind::Night],
        saturday_is_weekend: true,
    };
    let slots = rotation::slots_for_month(2027, 5, &shape, &musubi_calendar::holidays::is_holiday)
        .unwrap_or_default();
    let people: Vec<Participant> = (1..=5u128)
        .map(|i| Participant::new(Uuid::from_u128(i)))
        .collect();
    let absences: Vec<Absence> = people
        .iter()
        .take(2)
        .enumerate()
        .map(|(i, p)| Absence {
            person: p.id,
            from: first + chrono::Days::new(3 + 7 * i as u64),
            to_inclusive: first + chrono::Days::new(9 + 7 * i as u64),
            part: AbsencePart::AllDay,
        })
        .collect();
    let mut slowest = 0.0f64;
    for seed in 0..DRAFT_RUNS {
        let started = std::time::Instant::now();
        let draft = rotation::draft(&slots, &people, &absences, &Default::default(), &[], seed);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        std::hint::black_box(draft);
        slowest = slowest.max(ms);
    }
    slowest
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_machine_is_busy_but_for_idle_and_iowait() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 5 20 800 30 1 4 10 50 0\ncpu0 50 2 10 400 15 0 2 5 25 0\n";
        assert_eq!(busy_and_all_ticks(stat), Some((140, 970)));
        assert_eq!(busy_and_all_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn errors_fail_even_with_data() {
        let body = br#"{"data":{"home":{"groups":[],"counts":{"total":0}}},"errors":[{"message":"boom","extensions":{"code":"INTERNAL"}}]}"#;
        assert_eq!(validate(Op::Home, 200, body).unwrap_err(), "INTERNAL: boom");
        let body = br#"{"data":null,"errors":[{"message":"not signed in","extensions":{"code":"UNAUTHENTICATED"}}]}"#;
        assert_eq!(
            validate(Op::TopicView, 200, body).unwrap_err(),
            "UNAUTHENTICATED: not signed in"
        );
        // An empty list still counts: the key must be absent.
        let body = br#"{"data":{"unreadCounts":{"total":1}},"errors":[]}"#;
        assert!(validate(Op::UnreadCounts, 200, body).is_err());
    }

    #[test]
    fn expected_shapes_pass_and_others_fail() {
        let home = br#"{"data":{"home":{"counts":{"total":3},"invitations":0,"groups":[{"groupId":"x","items":[]}]}}}"#;
        assert!(validate(Op::Home, 200, home).is_ok());
        assert!(validate(Op::Home, 500, home)
            .unwrap_err()
            .starts_with("HTTP 500"));
        let not_array = br#"{"data":{"home":{"counts":{"total":3},"groups":{}}}}"#;
        assert!(validate(Op::Home, 200, not_array)
            .unwrap_err()
            .starts_with("unexpected shape"));
        assert!(validate(Op::Home, 200, b"<html>")
            .unwrap_err()
            .starts_with("invalid JSON"));

        let topic =
            br#"{"data":{"topic":{"topic":{"id":"t"},"comments":[{"id":"c","readers":[]}]}}}"#;
        assert!(validate(Op::TopicView, 200, topic).is_ok());
        let empty = br#"{"data":{"topic":{"comments":[]}}}"#;
        assert_eq!(
            validate(Op::TopicView, 200, empty).unwrap_err(),
            "data.topic.comments is empty"
        );

        assert!(validate(Op::PostComment, 200, br#"{"data":{"postComment":"abc"}}"#).is_ok());
        assert!(validate(Op::PostComment, 200, br#"{"data":{"postComment":null}}"#).is_err());
        assert!(validate(Op::PostComment, 200, br#"{"data":null}"#).is_err());

        let group = br#"{"data":{"group":{"topics":[],"members":[{"userId":"u"}]}}}"#;
        assert!(validate(Op::Group, 200, group).is_ok());

        assert!(validate(
            Op::Floor,
            200,
            br#"{"data":{"user":{"id":"u","name":"n"}}}"#
        )
        .is_ok());
        assert!(validate(
            Op::Floor,
            404,
            br#"{"data":null,"errors":[{"message":"no such user"}]}"#
        )
        .is_err());

        let ok = br#"{"data":{"signIn":{"token":"t","next":"DONE"}}}"#;
        assert!(validate(Op::SignIn, 200, ok).is_ok());
        let second = br#"{"data":{"signIn":{"token":"t","next":"SECOND_FACTOR"}}}"#;
        assert_eq!(
            validate(Op::SignIn, 200, second).unwrap_err(),
            "signIn.next is not DONE"
        );
    }

    #[test]
    fn comment_bodies_vary_and_stay_short() {
        let mut rng = Rng::new(1);
        let a = crate::text::comment_body(&mut rng);
        let b = crate::text::comment_body(&mut rng);
        assert_ne!(a, b);
        assert!(a.chars().count() < 200);
    }

    #[test]
    fn crowded_and_heavy_phases_reuse_the_queries_and_have_budgets() {
        let crowded = SINGLE.iter().find(|p| p.name == "topic_crowded").unwrap();
        assert_eq!((crowded.op, crowded.who), (Op::TopicView, Who::Crowded));
        let heavy = SINGLE.iter().find(|p| p.name == "home_heavy").unwrap();
        assert_eq!((heavy.op, heavy.who), (Op::Home, Who::Heavy));
        let register = SINGLE
            .iter()
            .find(|p| p.name == "patients_register")
            .unwrap();
        assert_eq!((register.op, register.who), (Op::Patients, Who::Registrars));
        // The other phases act as the regular people under their operation's name.
        for p in SINGLE.iter().filter(|p| p.who == Who::People) {
            assert_eq!(p.name, p.op.name());
        }

        let single = |name: &str, p95_ms: f64| Operation {
            name: name.to_owned(),
            phase: "single".to_owned(),
            requests: 10,
            errors: 0,
            throughput_rps: 1.0,
            p50_ms: 1.0,
            p95_ms,
            p99_ms: p95_ms,
            max_ms: p95_ms,
            ratio_to_floor: None,
            musubi_cpu_ms_per_request: None,
            postgres_cpu_ms_per_request: None,
            error_samples: Vec::new(),
        };
        let ops = [
            single("topic_crowded", 31.0),
            single("home_heavy", 12.0),
            single("patients_register", 29.0),
        ];
        let b = budgets(
            &ops,
            &Mixed::default(),
            &Subscriptions::default(),
            &Server::default(),
            None,
            true,
        );
        let find = |name: &str| b.iter().find(|b| b.name == name).unwrap();
        let t = find("topic_crowded p95 (single phase)");
        assert_eq!((t.limit, t.actual, t.met), (30.0, Some(31.0), false));
        let h = find("home_heavy p95 (single phase)");
        assert_eq!((h.limit, h.actual, h.met), (20.0, Some(12.0), true));
        let r = find("patients_register p95 (single phase)");
        assert_eq!((r.limit, r.actual, r.met), (30.0, Some(29.0), true));
    }

    #[test]
    fn the_mixed_and_overload_phases_are_held_to_twice_each_budget() {
        let op = |name: &str, phase: &str, p95: f64| Operation {
            name: name.to_owned(),
            phase: phase.to_owned(),
            requests: 10,
            errors: 0,
            throughput_rps: 1.0,
            p50_ms: p95,
            p95_ms: p95,
            p99_ms: p95,
            max_ms: p95,
            ratio_to_floor: None,
            musubi_cpu_ms_per_request: None,
            postgres_cpu_ms_per_request: None,
            error_samples: Vec::new(),
        };
        let ops = [
            op("home", "single", 500.0),
            op("mixed:home", "mixed", 30.0),
            op("mixed:topic_view", "mixed", 66.0),
            // No budget of its own: not judged.
            op("mixed:unread_counts", "mixed", 900.0),
        ];
        let overload = crate::report::Overload {
            accepted_by_operation: vec![crate::report::OverloadOperation {
                name: "search".to_owned(),
                accepted: 3,
                p95_ms: 150.0,
            }],
            shed: 10,
            shed_p95_ms: 60.0,
            max_rss_mb: Some(150.0),
            recovery_seconds: Some(0.5),
            ..Default::default()
        };
        let b = load_budgets(&ops, Some(&overload), true);
        let mixed = &b[0];
        assert_eq!(
            mixed.name,
            "mixed phase p95 over its budget, worst (topic_view)"
        );
        assert_eq!((mixed.actual, mixed.met), (Some(2.2), false));
        let accepted = &b[1];
        assert_eq!((accepted.actual, accepted.met), (Some(1.5), true));
        let find = |n: &str| b.iter().find(|x| x.name == n).unwrap();
        assert!(!find("overload: shed p95").met);
        assert!(find("overload: server RSS").met);
        assert!(find("overload: normal service again after").met);
        // No mixed phase, no overload: nothing to judge.
        assert!(load_budgets(&ops[..1], None, true).is_empty());
    }

    #[test]
    fn mixed_weights_add_up() {
        assert_eq!(MIXED.iter().map(|(_, w)| w).sum::<u64>(), 100);
        // Direct messages: a few percent of what people do.
        let messages: u64 = MIXED
            .iter()
            .filter(|(op, _)| {
                matches!(
                    op,
                    Op::SendMessage | Op::ListConversations | Op::ReadConversation
                )
            })
            .map(|(_, w)| w)
            .sum();
        assert!((3..=10).contains(&messages), "{messages}");
    }

    #[test]
    fn direct_messages_have_single_phases_and_budgets() {
        let ops = [Op::SendMessage, Op::ListConversations, Op::ReadConversation];
        for op in ops {
            assert!(MIXED.iter().any(|(o, _)| *o == op), "{}", op.name());
            assert!(SINGLE.iter().any(|p| p.op == op && p.name == op.name()));
        }
        // Written first, so that the people know of conversations to open.
        let at = |op: Op| SINGLE.iter().position(|p| p.op == op).unwrap();
        assert!(at(Op::SendMessage) < at(Op::ListConversations));
        assert!(at(Op::SendMessage) < at(Op::ReadConversation));
        // A conversation is read with the topic view's query.
        assert_eq!(Op::ReadConversation.query(), Op::TopicView.query());
        let b = budgets(
            &[],
            &Mixed::default(),
            &Subscriptions::default(),
            &Server::default(),
            None,
            true,
        );
        for (name, limit) in [
            ("send_message", 30.0),
            ("conversations", 20.0),
            ("read_conversation", 30.0),
        ] {
            let budget = b
                .iter()
                .find(|b| b.name == format!("{name} p95 (single phase)"))
                .unwrap();
            assert_eq!(
                (budget.limit, budget.actual, budget.met),
                (limit, None, false)
            );
        }
    }

    #[test]
    fn message_answers_are_checked() {
        let sent = br#"{"data":{"sendDirectMessage":{"conversationId":"g","topicId":"t","commentId":"c","associationSlug":"bench-01","existing":false}}}"#;
        assert!(validate(Op::SendMessage, 200, sent).is_ok());
        let no_comment = br#"{"data":{"sendDirectMessage":{"conversationId":"g","topicId":"t","commentId":"","associationSlug":"bench-01","existing":true}}}"#;
        assert_eq!(
            validate(Op::SendMessage, 200, no_comment).unwrap_err(),
            "data.sendDirectMessage has an empty id"
        );
        let not_found = br#"{"data":null,"errors":[{"message":"not found","extensions":{"code":"NOT_FOUND"}}]}"#;
        assert_eq!(
            validate(Op::SendMessage, 200, not_found).unwrap_err(),
            "NOT_FOUND: not found"
        );
        assert!(validate(Op::SendMessage, 200, br#"{"data":null}"#).is_err());

        let list = br#"{"data":{"conversations":[{"id":"g","topicId":"t","associationSlug":"bench-01","pair":true,"others":["x"],"unread":2,"lastAt":"2026-01-01T00:00:00Z","excerpt":"e"}]}}"#;
        assert!(validate(Op::ListConversations, 200, list).is_ok());
        assert!(validate(
            Op::ListConversations,
            200,
            br#"{"data":{"conversations":[]}}"#
        )
        .is_ok());
        let negative = br#"{"data":{"conversations":[{"id":"g","topicId":"t","associationSlug":"a","pair":true,"others":[],"unread":-1}]}}"#;
        assert_eq!(
            validate(Op::ListConversations, 200, negative).unwrap_err(),
            "data.conversations has a negative unread count"
        );
        assert!(validate(Op::ListConversations, 200, br#"{"data":{}}"#).is_err());

        let empty = br#"{"data":{"topic":{"comments":[]}}}"#;
        assert_eq!(
            validate(Op::ReadConversation, 200, empty).unwrap_err(),
            "data.topic.comments is empty"
        );

        let sent: MessageData = parsed(sent).unwrap();
        let t = Uuid::new_v4();
        let k = known(&sent.sent.association_slug, &t.to_string()).unwrap();
        assert_eq!((k.association.to_str().unwrap(), k.topic), ("bench-01", t));
        assert!(known("bench-01", "t").is_err());
    }

    #[test]
    fn a_person_remembers_the_conversations_they_were_seen_in() {
        let person = Person {
            id: Uuid::new_v4(),
            token: "t".to_owned(),
            groups: Vec::new(),
            topics: Vec::new(),
            attachments: Vec::new(),
            home: "bench-01".to_owned(),
            contacts: vec![Uuid::new_v4()],
        };
        let actor = Actor::new(&person, "http://floor").unwrap();
        assert!(actor.can(Needs::Contact));
        assert!(!actor.can(Needs::Conversation));
        let cast = Cast::new(std::slice::from_ref(&person), "http://floor").unwrap();
        assert!(cast.eligible(Needs::Conversation).is_empty());
        // Someone who knows of no conversation opens their list instead.
        let mut rng = Rng::new(1);
        for _ in 0..500 {
            assert_ne!(choose_mixed(&mut rng, &actor), Op::ReadConversation);
        }
        let c = |topic: Uuid| KnownConversation {
            association: HeaderValue::from_static("bench-01"),
            topic,
        };
        let first = Uuid::new_v4();
        actor.remember(c(first));
        actor.remember(c(Uuid::new_v4()));
        actor.remember(c(first));
        assert_eq!(actor.conversations.lock().unwrap().len(), 2);
        assert_eq!(actor.conversations.lock().unwrap()[0].topic, first);
        assert!(actor.can(Needs::Conversation));
        assert_eq!(
            actor.known_conversation(&mut rng).unwrap().association,
            "bench-01"
        );
        actor.remember_list((0..20).map(|_| c(Uuid::new_v4())).collect());
        assert_eq!(
            actor.conversations.lock().unwrap().len(),
            KNOWN_CONVERSATIONS
        );
        cast.actors[0].remember(c(first));
        assert_eq!(cast.eligible(Needs::Conversation).as_ref(), &[0]);

        let nobody = Person {
            contacts: Vec::new(),
            ..person
        };
        assert!(!Actor::new(&nobody, "http://floor")
            .unwrap()
            .can(Needs::Contact));
    }

    #[test]
    fn operations_are_indexed_in_order() {
        for (i, op) in OPS.iter().enumerate() {
            assert_eq!(op_index(*op), i, "{}", op.name());
        }
    }

    #[test]
    fn both_upload_phases_have_the_same_clients_and_memory_is_judged_on_their_difference() {
        let upload = |op: Op| UPLOADS.iter().find(|p| p.op == op).unwrap();
        assert_eq!(
            upload(Op::UploadPdf).clients,
            upload(Op::UploadLarge).clients
        );
        assert!(upload(Op::UploadLarge).max_requests.is_some());
        // The photos come last: their decoding must not hide what the documents take.
        let at = |op: Op| UPLOADS.iter().position(|p| p.op == op).unwrap();
        assert!(at(Op::UploadPdf) < at(Op::UploadLarge));
        assert!(at(Op::UploadLarge) < at(Op::UploadPhoto));

        let judge = |small: f64, large: f64| {
            let u = crate::report::Uploads {
                pdf_max_rss_mb: Some(small),
                large_max_rss_mb: Some(large),
                ..Default::default()
            };
            let b = budgets(
                &[],
                &Mixed::default(),
                &Subscriptions::default(),
                &Server::default(),
                Some(&u),
                true,
            );
            let b = b
                .iter()
                .find(|b| b.name.starts_with("server RSS: 20 MB"))
                .unwrap();
            (b.actual, b.met)
        };
        assert_eq!(judge(120.0, 150.0), (Some(30.0), true));
        assert_eq!(judge(120.0, 200.0), (Some(80.0), false));
    }

    #[test]
    fn uploads_are_a_photo_and_two_letters_with_their_name_encoded() {
        let u = Uploads::build(1).unwrap();
        assert!(u.photo.starts_with(&[0xFF, 0xD8]) && u.photo.len() > 900_000);
        assert!(u.pdf.starts_with(b"%PDF-") && u.pdf.len() >= PDF_BYTES);
        assert!(u.large.starts_with(b"%PDF-") && u.large.len() >= LARGE_BYTES);
        let name = u.pdf_name.to_str().unwrap();
        let decoded = percent_encoding::percent_decode_str(name)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, "診療情報提供書_スキャン.pdf");
    }

    #[test]
    fn kb_lines() {
        let s = "Name:\tmusubi\nVmHWM:\t  123456 kB\nVmRSS:\t   65536 kB\n";
        assert_eq!(parse_kb_line(s, "VmRSS:"), Some(65536));
        assert_eq!(parse_kb_line(s, "VmHWM:"), Some(123_456));
        assert_eq!(parse_kb_line(s, "VmSwap:"), None);
        assert_eq!(kb_to_mb(65536), 64.0);
    }
}
