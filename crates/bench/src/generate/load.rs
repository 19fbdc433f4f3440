//! The rows of every table, streamed from the model through COPY.

use super::copy::copy;
use super::files::{self, Templates};
use super::model::{
    id_at, Model, DAY, DELETED, EDITED, EDITED_TWICE, HOUR, IMPORTANT, MINUTE, NOW, SECOND,
};
use crate::rng::Rng;
use crate::text;
use chrono::Datelike as _;
use musubi_db::search::folded_segments;
use musubi_db::types::japanese::{fold, grams};
use sqlx::PgConnection;
use std::sync::Arc;
use uuid::Uuid;

/// What the load needs besides the model: the registry's ids and schemas, the clock, secrets.
pub struct Ctx {
    pub model: Model,
    /// By association index.
    pub assoc_ids: Vec<Uuid>,
    pub schemas: Vec<String>,
    /// Unix microseconds of virtual time 0.
    pub base_us: i64,
    pub password_hash: String,
    /// Session token of each person (by index).
    pub tokens: Vec<String>,
    /// Comments with an attachment, per mille, and what their objects hold.
    pub attachments_per_mille: u32,
    pub templates: Templates,
    /// Today in Japan when generating (calendar rows are placed around it).
    pub today: chrono::NaiveDate,
}

const TITLE_SALT: u64 = 0x0071_71E5;
const BODY_SALT: u64 = 0x00B0_D1E5;
const SESSION_SALT: u64 = 0x5E55_1035;
const MEMBER_SALT: u64 = 0x06E0_01E5;
const FOOTPRINT_SALT: u64 = 0x0000_F007;
const PATIENT_SALT: u64 = 0x0BA7_1E47;
const CALENDAR_SALT: u64 = 0x0CA1_E0DA;

/// The text and history of one comment, derived from the seed and its index alone so that
/// `comments` and `comment_versions` agree.
struct CommentText {
    body: String,
    /// Earlier versions: (body, written at).
    versions: Vec<(String, i64)>,
    edited_t: Option<i64>,
    deleted: Option<(i64, u32)>,
}

fn comment_text(m: &Model, index: u32, seq: u32) -> CommentText {
    let c = &m.comments[index as usize];
    let topic = &m.topics[c.topic as usize];
    let group = &m.groups[topic.group as usize];
    let mut r = Rng::new(m.seed ^ BODY_SALT).fork(u64::from(index));
    let mut body = if seq == 1 {
        text::topic_body(&mut r, group.patient)
    } else {
        text::reply_body(&mut r, group.patient)
    };
    let mut versions = Vec::new();
    let mut edited_t = None;
    if c.flags & EDITED != 0 {
        let edits = if c.flags & EDITED_TWICE != 0 { 2 } else { 1 };
        let mut written = c.t;
        for _ in 0..edits {
            let at = (written + r.range(2 * MINUTE as u64, 3 * HOUR as u64) as i64).min(NOW);
            versions.push((body.clone(), written));
            body.push('\n');
            body.push_str(&text::addendum(&mut r));
            written = at;
        }
        edited_t = Some(written);
    }
    let deleted = (c.flags & DELETED != 0).then(|| {
        let at = (c.t + r.range(MINUTE as u64, 2 * HOUR as u64) as i64).min(NOW);
        // The author, or now and then a group owner (moderation).
        let by = if r.chance(0.8) {
            c.author
        } else {
            group.owners.first().copied().unwrap_or(c.author)
        };
        (at, by)
    });
    CommentText {
        body,
        versions,
        edited_t,
        deleted,
    }
}

pub fn session_token(seed: u64, num: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("musubi-bench:{seed}:{num}").as_bytes());
    data_encoding::BASE64URL_NOPAD.encode(&digest)
}

fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// Loads core.facilities, users, memberships, sessions, groups and group_members; returns
/// (facilities, group memberships).
pub async fn core(conn: &mut PgConnection, ctx: &Arc<Ctx>) -> anyhow::Result<(u64, u64)> {
    let c = ctx.clone();
    let facilities = copy(
        conn,
        "core.facilities (id, association_id, name, kind, created_at, search_key)",
        ctx.base_us,
        move |s| {
            for f in &c.model.facilities {
                s.uuid(f.id)
                    .uuid(c.assoc_ids[f.assoc as usize])
                    .text(&f.name)
                    .text(f.kind)
                    .ts(f.created_t)
                    .text(&fold(&f.name));
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let c = ctx.clone();
    copy(
        conn,
        "core.users (id, email, name, name_kana, profession, doctor_kind, password_hash, \
         password_changed_at, created_at, updated_at, search_key)",
        ctx.base_us,
        move |s| {
            for p in &c.model.people {
                s.uuid(p.id)
                    .text(&p.email())
                    .text(&p.name)
                    .text(&p.kana)
                    .text(p.prof.code());
                match p.prof.doctor_kind() {
                    Some(k) => s.text(k),
                    None => s.null(),
                };
                s.text(&c.password_hash)
                    .ts(p.created_t)
                    .ts(p.created_t)
                    .ts(p.created_t)
                    .text(&musubi_db::accounts::person_search_key(&p.name, &p.kana));
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    // One absence per doctor, somewhere between ten days ago and a month ahead (the calendar
    // shows the absences of everyone sharing a group).
    let c = ctx.clone();
    copy(
        conn,
        "core.absences (id, user_id, first_day, last_day, part, note)",
        ctx.base_us,
        move |s| {
            let today = c.today;
            for p in &c.model.people {
                if p.prof.doctor_kind().is_none() {
                    continue;
                }
                let mut r = Rng::new(c.model.seed ^ CALENDAR_SALT).fork(u64::from(p.num));
                let first = today + chrono::Days::new(r.below(40)) - chrono::Days::new(10);
                let half = r.chance(0.2);
                let last = if half {
                    first
                } else {
                    first + chrono::Days::new(r.below(4))
                };
                s.uuid(id_at(0, &mut r))
                    .uuid(p.id)
                    .text(&first.to_string())
                    .text(&last.to_string())
                    .text(if half { "pm" } else { "all" })
                    .text(if half { "研修" } else { "学会出張" });
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let c = ctx.clone();
    copy(
        conn,
        "core.memberships (user_id, association_id, role, facility_id, status, created_at)",
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for p in &m.people {
                s.uuid(p.id)
                    .uuid(c.assoc_ids[p.home as usize])
                    .text(if p.admin { "admin" } else { "member" })
                    .uuid(m.facilities[p.facility as usize].id)
                    .text("active")
                    .ts(p.created_t);
                s.end()?;
                for e in &p.extra {
                    s.uuid(p.id)
                        .uuid(c.assoc_ids[*e as usize])
                        .text("member")
                        .null()
                        .text("active")
                        .ts(p.created_t + DAY);
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;

    let c = ctx.clone();
    copy(
        conn,
        "core.sessions (id, token_hash, user_id, kind, second_factor_done, created_at, \
         last_seen_at, idle_seconds, idle_expires_at, absolute_expires_at, ip, user_agent)",
        ctx.base_us,
        move |s| {
            let mut r = Rng::new(c.model.seed ^ SESSION_SALT);
            for (p, token) in c.model.people.iter().zip(&c.tokens) {
                let hash = musubi_auth::token::hash_token(token);
                let hex = format!("\\x{}", data_encoding::HEXLOWER.encode(&hash));
                s.uuid(id_at(NOW, &mut r))
                    .text(&hex)
                    .uuid(p.id)
                    .text("api")
                    .bool(true)
                    .ts(NOW)
                    .ts(NOW)
                    .int(30 * 86_400)
                    .ts(NOW + 30 * DAY)
                    .ts(NOW + 30 * DAY)
                    .text("127.0.0.1")
                    .text("musubi-bench");
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let c = ctx.clone();
    copy(
        conn,
        "core.groups (id, association_id, kind, created_at)",
        ctx.base_us,
        move |s| {
            for g in &c.model.groups {
                s.uuid(g.id)
                    .uuid(c.assoc_ids[g.assoc as usize])
                    .text(if g.patient { "patient" } else { "general" })
                    .ts(g.created_t);
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let c = ctx.clone();
    let members = copy(
        conn,
        // The host association too: triggers are off while loading.
        "core.group_members (group_id, user_id, role, status, invited_by, created_at, joined_at, \
         association_id)",
        ctx.base_us,
        move |s| {
            let m = &c.model;
            let mut r = Rng::new(m.seed ^ MEMBER_SALT);
            for g in &m.groups {
                let creator = g.owners.first().copied();
                for p in &g.members {
                    let owner = g.owners.contains(p);
                    let joined = if Some(*p) == creator {
                        g.created_t
                    } else {
                        g.created_t + r.range(MINUTE as u64, HOUR as u64) as i64
                    };
                    s.uuid(g.id)
                        .uuid(m.people[*p as usize].id)
                        .text(if owner { "owner" } else { "member" })
                        .text("active");
                    match creator.filter(|c| c != p) {
                        Some(c) => s.uuid(m.people[c as usize].id),
                        None => s.null(),
                    };
                    s.ts(joined).ts(joined).uuid(c.assoc_ids[g.assoc as usize]);
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok((facilities, members))
}

/// Rows written into one association's schema.
#[derive(Debug, Default, Clone, Copy)]
pub struct TenantCounts {
    pub patients: u64,
    pub topics: u64,
    pub comments: u64,
    pub versions: u64,
    pub footprints: u64,
    pub unread: u64,
    pub files: u64,
    pub search_docs: u64,
    pub events: u64,
}

/// Loads one association's groups, topics, comments, their attachments, versions, footprints
/// and unread rows.
pub async fn tenant(
    conn: &mut PgConnection,
    ctx: &Arc<Ctx>,
    a: u32,
) -> anyhow::Result<TenantCounts> {
    let m = &ctx.model;
    let schema = quote(&ctx.schemas[a as usize]);
    let groups: Arc<Vec<u32>> = Arc::new(
        (0..m.groups.len() as u32)
            .filter(|g| m.groups[*g as usize].assoc == a)
            .collect(),
    );
    let mut topics: Vec<u32> = groups
        .iter()
        .flat_map(|g| m.groups[*g as usize].topics.iter().copied())
        .collect();
    topics.sort_by_key(|t| m.topics[*t as usize].id);
    // Comments in id (= time) order, as production would have inserted them.
    let mut order: Vec<(Uuid, u32)> = topics
        .iter()
        .flat_map(|t| {
            let t = &m.topics[*t as usize];
            t.first..t.first + t.len
        })
        .map(|i| (m.comment_id(i), i))
        .collect();
    order.sort_unstable();
    let topics = Arc::new(topics);
    let order = Arc::new(order);
    let mut counts = TenantCounts::default();

    let (c, gs) = (ctx.clone(), groups.clone());
    copy(
        conn,
        &format!(
            "{schema}.groups (id, kind, name, description, join_policy, receipt_mode, \
             created_by, created_at, last_activity_at)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for g in gs.iter().map(|g| &m.groups[*g as usize]) {
                let creator = g.creator();
                s.uuid(g.id)
                    .text(if g.patient { "patient" } else { "general" })
                    .text(&g.name)
                    .text(&g.description)
                    .text(if g.request { "request" } else { "invite" })
                    .null()
                    .uuid(m.people[creator as usize].id)
                    .ts(g.created_t)
                    .ts(g.last_activity_t);
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    // One register entry per patient group, as the registration form makes them.
    let (c, gs) = (ctx.clone(), groups.clone());
    counts.patients = copy(
        conn,
        &format!(
            "{schema}.patients (id, group_id, name, name_kana, name_folded, kana_folded, \
             birth_date, sex, town, town_folded, care_level, status, end_reason, \
             registered_by, registered_at, updated_at)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for gi in gs.iter() {
                let g = &m.groups[*gi as usize];
                if !g.patient {
                    continue;
                }
                let mut r = Rng::new(m.seed ^ PATIENT_SALT).fork(u64::from(*gi));
                let p = text::patient(&mut r);
                let creator = g.creator();
                s.uuid(Uuid::from_u128(g.id.as_u128() ^ u128::from(PATIENT_SALT)))
                    .uuid(g.id)
                    .text(&p.name)
                    .text(&p.kana)
                    .text(&format!("{}\n{}", fold(&p.name), fold(&p.kana)))
                    .text(&fold(&p.kana))
                    .text(&p.birth)
                    .text(p.sex)
                    .text(&p.town)
                    .text(&fold(&p.town))
                    .text(p.care_level)
                    .text(p.status)
                    .text_or_null(p.end_reason)
                    .uuid(m.people[creator as usize].id)
                    .ts(g.created_t)
                    .ts(g.created_t);
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let (c, ts) = (ctx.clone(), topics.clone());
    counts.topics = copy(
        conn,
        &format!(
            "{schema}.topics (id, group_id, author_id, title, scope, pinned, closed, created_at, \
             last_seq, last_comment_at)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for ti in ts.iter() {
                let t = &m.topics[*ti as usize];
                let g = &m.groups[t.group as usize];
                let mut r = Rng::new(m.seed ^ TITLE_SALT).fork(u64::from(*ti));
                s.uuid(t.id)
                    .uuid(g.id)
                    .uuid(m.people[t.author as usize].id)
                    .text(&text::topic_title(&mut r, g.patient))
                    .int(i64::from(t.scope))
                    .bool(t.pinned)
                    .bool(t.closed)
                    .ts(m.topic_created_t(t))
                    .int(i64::from(t.len))
                    .ts(m.topic_last_t(t));
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let (c, ord) = (ctx.clone(), order.clone());
    counts.comments = copy(
        conn,
        &format!(
            "{schema}.comments (id, topic_id, group_id, seq, author_id, body, important, \
             created_at, edited_at, version, deleted_at, deleted_by)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for (id, ci) in ord.iter() {
                let cm = &m.comments[*ci as usize];
                let t = &m.topics[cm.topic as usize];
                let seq = ci - t.first + 1;
                let text = comment_text(m, *ci, seq);
                s.uuid(*id)
                    .uuid(t.id)
                    .uuid(m.groups[t.group as usize].id)
                    .int(i64::from(seq))
                    .uuid(m.people[cm.author as usize].id)
                    .text(&text.body)
                    .bool(cm.flags & IMPORTANT != 0)
                    .ts(cm.t);
                match text.edited_t {
                    Some(e) => s.ts(e),
                    None => s.null(),
                };
                s.int(text.versions.len() as i64 + 1);
                match text.deleted {
                    Some((at, by)) => s.ts(at).uuid(m.people[by as usize].id),
                    None => s.null().null(),
                };
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    let (c, ord) = (ctx.clone(), order.clone());
    let association = ctx.assoc_ids[a as usize];
    counts.files = copy(
        conn,
        &format!(
            "{schema}.files (id, group_id, topic_id, comment_id, kind, name, content_type, \
             size_bytes, sha256, object_key, uploaded_by, uploaded_at, pending, width, height, \
             has_preview)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for (id, ci) in ord.iter() {
                let Some(f) = files::of_comment(m, c.attachments_per_mille, *ci) else {
                    continue;
                };
                let file = c.templates.get(f.template);
                let cm = &m.comments[*ci as usize];
                let t = &m.topics[cm.topic as usize];
                let sha256 = format!("\\x{}", data_encoding::HEXLOWER.encode(&file.sha256));
                s.uuid(f.id)
                    .uuid(m.groups[t.group as usize].id)
                    .uuid(t.id)
                    .uuid(*id)
                    .text(f.kind)
                    .text(&f.name)
                    .text(file.content_type)
                    .int(file.size() as i64)
                    .text(&sha256)
                    .text(&files::object_key(association, f.id))
                    .uuid(m.people[cm.author as usize].id)
                    .ts(f.uploaded_t)
                    .bool(false);
                match (file.width, file.height) {
                    (Some(w), Some(h)) => s.int(i64::from(w)).int(i64::from(h)),
                    _ => s.null().null(),
                };
                s.bool(file.thumb.is_some());
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;

    counts.search_docs = search_docs(conn, ctx, &schema, &groups, &topics, &order).await?;
    counts.events = calendar_events(conn, ctx, &schema, &groups).await?;

    let (c, ord) = (ctx.clone(), order.clone());
    counts.versions = copy(
        conn,
        &format!("{schema}.comment_versions (comment_id, version, body, important, written_at)"),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for (id, ci) in ord.iter() {
                let cm = &m.comments[*ci as usize];
                if cm.flags & EDITED == 0 {
                    continue;
                }
                let seq = ci - m.topics[cm.topic as usize].first + 1;
                for (v, (body, at)) in comment_text(m, *ci, seq).versions.iter().enumerate() {
                    s.uuid(*id)
                        .int(v as i64 + 1)
                        .text(body)
                        .bool(cm.flags & IMPORTANT != 0)
                        .ts(*at);
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;

    let (c, ord) = (ctx.clone(), order.clone());
    counts.footprints = copy(
        conn,
        &format!("{schema}.footprints (comment_id, user_id, read_at)"),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            let salt = Rng::new(m.seed ^ FOOTPRINT_SALT);
            // In comment id order, readers in id order: the primary key grows at its end.
            for (id, ci) in ord.iter() {
                let cm = &m.comments[*ci as usize];
                if cm.flags & DELETED != 0 {
                    continue;
                }
                // One stream per comment: the times do not depend on the other comments.
                let mut r = salt.fork(u64::from(*ci));
                let t = &m.topics[cm.topic as usize];
                let seq = ci - t.first + 1;
                for p in m.topic_pairs(t) {
                    if p.k < seq || p.person == cm.author {
                        continue;
                    }
                    // Read a little after it was written, no later than the last visit.
                    let delay = 30 * SECOND + (-(1.0 - r.f64()).ln() * 3.0 * HOUR as f64) as i64;
                    let at = (cm.t + delay).min(p.open_t).max(cm.t);
                    s.uuid(*id).uuid(m.people[p.person as usize].id).ts(at);
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;

    let (c, ts) = (ctx.clone(), topics.clone());
    counts.unread = copy(
        conn,
        &format!("{schema}.unread (user_id, topic_id, group_id, count, first_seq, last_at)"),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            // (person, topic id, topic, count, first_seq, last_t)
            let mut rows: Vec<(u32, Uuid, u32, u32, u32, i64)> = Vec::new();
            for ti in ts.iter() {
                let t = &m.topics[*ti as usize];
                for p in m.topic_pairs(t) {
                    if let Some((count, first, last)) = m.unread(t, p) {
                        rows.push((p.person, t.id, *ti, count, first, last));
                    }
                }
            }
            rows.sort_unstable_by_key(|r| (r.0, r.1));
            for (person, topic_id, ti, count, first, last) in rows {
                let t = &m.topics[ti as usize];
                s.uuid(m.people[person as usize].id)
                    .uuid(topic_id)
                    .uuid(m.groups[t.group as usize].id)
                    .int(i64::from(count))
                    .int(i64::from(first))
                    .ts(last);
                s.end()?;
            }
            Ok(())
        },
    )
    .await?;
    Ok(counts)
}

/// Free-word search's documents (migration tenant/0008), as the server writes them with the
/// content: topics' titles, live comments' current text, attachments' names, patients' names.
/// The GIN index is built once after the rows (much faster than row by row), and the
/// association is marked back-filled so that the server's start-up does not look for more.
async fn search_docs(
    conn: &mut PgConnection,
    ctx: &Arc<Ctx>,
    schema: &str,
    groups: &Arc<Vec<u32>>,
    topics: &Arc<Vec<u32>>,
    order: &Arc<Vec<(Uuid, u32)>>,
) -> anyhow::Result<u64> {
    sqlx::query(&format!("DROP INDEX {schema}.search_docs_grams_group"))
        .execute(&mut *conn)
        .await?;
    let (c, gs, ts, ord) = (ctx.clone(), groups.clone(), topics.clone(), order.clone());
    let rows = copy(
        conn,
        &format!(
            "{schema}.search_docs (id, kind, group_id, topic_id, scope, topic_author, \
             author_id, at, folded, grams)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            for gi in gs.iter() {
                let g = &m.groups[*gi as usize];
                if !g.patient {
                    continue;
                }
                let mut r = Rng::new(m.seed ^ PATIENT_SALT).fork(u64::from(*gi));
                let p = text::patient(&mut r);
                let folded = format!("{}\n{}", fold(&p.name), fold(&p.kana));
                s.uuid(Uuid::from_u128(g.id.as_u128() ^ u128::from(PATIENT_SALT)))
                    .text("patient")
                    .uuid(g.id)
                    .null()
                    .int(7)
                    .null()
                    .null()
                    .ts(g.created_t)
                    .text(&folded)
                    .int_array(&grams(&folded));
                s.end()?;
            }
            for ti in ts.iter() {
                let t = &m.topics[*ti as usize];
                let g = &m.groups[t.group as usize];
                let mut r = Rng::new(m.seed ^ TITLE_SALT).fork(u64::from(*ti));
                let folded = folded_segments(&[&text::topic_title(&mut r, g.patient)]);
                let author = m.people[t.author as usize].id;
                s.uuid(t.id)
                    .text("topic")
                    .uuid(g.id)
                    .uuid(t.id)
                    .int(i64::from(t.scope))
                    .uuid(author)
                    .uuid(author)
                    .ts(m.topic_created_t(t))
                    .text(&folded)
                    .int_array(&grams(&folded));
                s.end()?;
            }
            for (id, ci) in ord.iter() {
                let cm = &m.comments[*ci as usize];
                if cm.flags & DELETED != 0 {
                    continue;
                }
                let t = &m.topics[cm.topic as usize];
                let g = m.groups[t.group as usize].id;
                let topic_author = m.people[t.author as usize].id;
                let author = m.people[cm.author as usize].id;
                let seq = ci - t.first + 1;
                let folded = folded_segments(&[&comment_text(m, *ci, seq).body]);
                s.uuid(*id)
                    .text("comment")
                    .uuid(g)
                    .uuid(t.id)
                    .int(i64::from(t.scope))
                    .uuid(topic_author)
                    .uuid(author)
                    .ts(cm.t)
                    .text(&folded)
                    .int_array(&grams(&folded));
                s.end()?;
                if let Some(f) = files::of_comment(m, c.attachments_per_mille, *ci) {
                    let folded = folded_segments(&[&f.name, ""]);
                    s.uuid(f.id)
                        .text("file")
                        .uuid(g)
                        .uuid(t.id)
                        .int(i64::from(t.scope))
                        .uuid(topic_author)
                        .uuid(author)
                        .ts(f.uploaded_t)
                        .text(&folded)
                        .int_array(&grams(&folded));
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;
    // The same expression as tenant migration 0014's, so that searches use it.
    sqlx::query(&format!(
        "CREATE INDEX search_docs_grams_group ON {schema}.search_docs \
         USING gin ((grams || {schema}.search_group_token(group_id)))"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "UPDATE {schema}.settings SET search_backfilled = true"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(rows)
}

/// Calendar events (migration tenant/0009): a care conference or a visit in each patient group
/// within a month of today, and in each general group a weekly series and a monthly meeting.
async fn calendar_events(
    conn: &mut PgConnection,
    ctx: &Arc<Ctx>,
    schema: &str,
    groups: &Arc<Vec<u32>>,
) -> anyhow::Result<u64> {
    let (c, gs) = (ctx.clone(), groups.clone());
    let rows = copy(
        conn,
        &format!(
            "{schema}.calendar_events (id, group_id, category, title, first_day, last_day, \
             starts_at, ends_at, rrule, place, notes, created_by)"
        ),
        ctx.base_us,
        move |s| {
            let m = &c.model;
            let today = c.today;
            for gi in gs.iter() {
                let g = &m.groups[*gi as usize];
                if g.members.is_empty() {
                    // The register's extra entries: no team yet, nothing planned.
                    continue;
                }
                let mut r = Rng::new(m.seed ^ CALENDAR_SALT).fork(u64::from(*gi));
                let by = m.people[g.creator() as usize].id;
                let day =
                    |r: &mut Rng| (today + chrono::Days::new(r.below(45))) - chrono::Days::new(15);
                if g.patient {
                    let d = day(&mut r).to_string();
                    let (category, title) = if r.chance(0.5) {
                        ("conference", "サービス担当者会議")
                    } else {
                        ("visit", "臨時往診")
                    };
                    s.uuid(id_at(0, &mut r))
                        .uuid(g.id)
                        .text(category)
                        .text(title)
                        .text(&d)
                        .text(&d)
                        .text("14:00:00")
                        .text("15:00:00")
                        .null()
                        .text("ご自宅")
                        .text("")
                        .uuid(by);
                    s.end()?;
                } else {
                    // Each series starts on one of its own days (see Rule::produces).
                    let weekday_index = r.below(5);
                    let weekday = ["MO", "TU", "WE", "TH", "FR"][weekday_index as usize];
                    let back = today - chrono::Days::new(60);
                    let ahead =
                        (7 + weekday_index - u64::from(back.weekday().num_days_from_monday())) % 7;
                    let first = (back + chrono::Days::new(ahead)).to_string();
                    let month_start = back.with_day(1).unwrap_or(back);
                    let to_tuesday =
                        (7 + 1 - u64::from(month_start.weekday().num_days_from_monday())) % 7;
                    let second_tuesday =
                        (month_start + chrono::Days::new(to_tuesday + 7)).to_string();
                    s.uuid(id_at(0, &mut r))
                        .uuid(g.id)
                        .text("absence")
                        .text("午後休診")
                        .text(&first)
                        .text(&first)
                        .text("13:00:00")
                        .text("18:00:00")
                        .text(&format!("FREQ=WEEKLY;BYDAY={weekday}"))
                        .text("")
                        .text("")
                        .uuid(by);
                    s.end()?;
                    s.uuid(id_at(0, &mut r))
                        .uuid(g.id)
                        .text("conference")
                        .text("定例会議")
                        .text(&second_tuesday)
                        .text(&second_tuesday)
                        .text("19:00:00")
                        .text("20:30:00")
                        .text("FREQ=MONTHLY;BYDAY=2TU")
                        .text("医師会館")
                        .text("")
                        .uuid(by);
                    s.end()?;
                }
            }
            Ok(())
        },
    )
    .await?;
    Ok(rows)
}
