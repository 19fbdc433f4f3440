//! Unread counters and footprints: what each person has still to read, kept up to date on every write so that "what is new" never scans comments.

use super::*;
use musubi_types::PersonId;
use musubi_types::{CommentId, GroupId, TopicId};

/// A comment just posted, with what deciding who has it unread needs.
#[derive(Debug, Clone, Copy)]
pub struct Posted {
    pub topic_id: TopicId,
    pub topic_author: PersonId,
    pub scope: Scope,
    /// The comment's author, who has nothing new to read.
    pub author_id: PersonId,
    pub seq: i32,
    pub at: DateTime<Utc>,
    /// Marked 重要: counted apart, so that the home page puts it first.
    pub important: bool,
}

/// Counts the new comment as unread for every active member in scope but its author, and
/// marks the group active. One statement whatever the group's size.
pub async fn spread_unread(
    conn: &mut PgConnection,
    group: &HostedGroup,
    posted: &Posted,
) -> DbResult<()> {
    let group_id = group.id;
    let Posted {
        topic_id,
        topic_author,
        scope,
        author_id,
        seq,
        at,
        important,
    } = *posted;
    let sql = group.plan_slot.sql(
        "WITH g AS (UPDATE groups SET last_activity_at = $7 WHERE id = $1) \
         INSERT INTO unread (user_id, topic_id, group_id, count, first_seq, last_at, important) \
         SELECT gm.user_id, $2, $1, 1, $6, $7, $8 \
         FROM core.group_members gm JOIN core.users u ON u.id = gm.user_id \
         WHERE gm.group_id = $1 AND gm.status = 'active' AND gm.user_id <> $5 \
           AND (core.scope_bit(u.doctor_kind) & $4 <> 0 OR gm.user_id = $3) \
         ON CONFLICT (user_id, topic_id) DO UPDATE \
            SET count = unread.count + 1, last_at = EXCLUDED.last_at, \
                important = unread.important + EXCLUDED.important",
    );
    sqlx::query(&sql)
        .bind(group_id)
        .bind(topic_id)
        .bind(topic_author)
        .bind(scope)
        .bind(author_id)
        .bind(seq)
        .bind(at)
        .bind(i32::from(important))
        .execute(conn)
        .await?;
    Ok(())
}

/// Rebuilds the unread counters of one topic after its scope changed from `old_scope`: people
/// now outside lose theirs; people newly inside count what they have not read (footprints) yet.
/// Those in both scopes keep theirs: without footprints (acknowledgement mode, "mark all as
/// read") what they read is known only from their cleared counter.
pub async fn rebuild_unread(
    conn: &mut PgConnection,
    group: &HostedGroup,
    topic_id: TopicId,
    topic_author: PersonId,
    old_scope: Scope,
    scope: Scope,
) -> DbResult<()> {
    let group_id = group.id;
    sqlx::query(
        "DELETE FROM unread ur USING core.users u \
         WHERE ur.topic_id = $1 AND u.id = ur.user_id AND ur.user_id <> $3 \
           AND core.scope_bit(u.doctor_kind) & $2 = 0",
    )
    .bind(topic_id)
    .bind(scope)
    .bind(topic_author)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO unread (user_id, topic_id, group_id, count, first_seq, last_at, important) \
         SELECT gm.user_id, $2, $1, count(*), min(c.seq), max(c.created_at), \
                count(*) FILTER (WHERE c.important) \
         FROM core.group_members gm \
         JOIN core.users u ON u.id = gm.user_id \
         JOIN comments c ON c.topic_id = $2 AND c.author_id <> gm.user_id AND c.deleted_at IS NULL \
         WHERE gm.group_id = $1 AND gm.status = 'active' AND gm.user_id <> $4 \
           AND core.scope_bit(u.doctor_kind) & $3 <> 0 AND core.scope_bit(u.doctor_kind) & $5 = 0 \
           AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = gm.user_id) \
         GROUP BY gm.user_id \
         ON CONFLICT (user_id, topic_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(topic_id)
    .bind(scope)
    .bind(topic_author)
    .bind(old_scope)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Clears the person's unread counter on a topic; returns the first unread seq it held.
pub async fn take_unread(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
    topic_id: TopicId,
) -> DbResult<Option<i32>> {
    Ok(sqlx::query_scalar(
        &slot.sql("DELETE FROM unread WHERE user_id = $1 AND topic_id = $2 RETURNING first_seq"),
    )
    .bind(user_id)
    .bind(topic_id)
    .fetch_optional(conn)
    .await?)
}

/// What opening a topic page read: the first unread seq its counter held (cleared now) and
/// the footprints newly recorded.
#[derive(Debug, Default)]
pub struct PageRead {
    pub first_unread_seq: Option<i32>,
    pub footprints: Vec<(CommentId, DateTime<Utc>)>,
}

/// [`take_unread`] and then [`record_footprints`] from the first unread comment (or from
/// `from_seq` when nothing was counted unread), in one statement: a topic page is the most
/// frequent write, and each round trip inside its transaction is one more wait for a core.
pub async fn take_unread_and_record_footprints(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
    topic_id: TopicId,
    from_seq: i32,
) -> DbResult<PageRead> {
    // The counter's first unread seq on every row; a footprint per row, or none on one row.
    type Row = (Option<i32>, Option<CommentId>, Option<DateTime<Utc>>);
    let rows: Vec<Row> = sqlx::query_as(&slot.sql(
        // Both data-modifying parts see the statement's snapshot; the insert reads the
        // deleted counter's seq through the CTE, never the table.
        "WITH taken AS ( \
                 DELETE FROM unread WHERE user_id = $1 AND topic_id = $2 RETURNING first_seq), \
             fresh AS ( \
                 INSERT INTO footprints (comment_id, user_id, read_at) \
                 SELECT c.id, $1, now() FROM comments c \
                 WHERE c.topic_id = $2 \
                   AND c.seq >= coalesce((SELECT first_seq FROM taken), $3) \
                   AND c.author_id <> $1 AND c.deleted_at IS NULL \
                   AND NOT EXISTS (SELECT 1 FROM footprints f \
                                   WHERE f.comment_id = c.id AND f.user_id = $1) \
                 ON CONFLICT DO NOTHING RETURNING comment_id, read_at) \
             SELECT (SELECT first_seq FROM taken), f.comment_id, f.read_at \
             FROM (SELECT 1) AS one LEFT JOIN fresh f ON true",
    ))
    .bind(user_id)
    .bind(topic_id)
    .bind(from_seq)
    .fetch_all(conn)
    .await?;
    let mut read = PageRead::default();
    for (first, comment, at) in rows {
        read.first_unread_seq = first;
        if let (Some(comment), Some(at)) = (comment, at) {
            read.footprints.push((comment, at));
        }
    }
    Ok(read)
}

/// Records footprints on the comments of others from `from_seq` on (only those numbered
/// `only`, when given: what was on screen), not deleted and not read before; returns the
/// comments newly read and the time recorded.
pub async fn record_footprints(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
    topic_id: TopicId,
    from_seq: i32,
    only: Option<&[i32]>,
) -> DbResult<Vec<(CommentId, DateTime<Utc>)>> {
    Ok(sqlx::query_as(&slot.sql(
        // The anti-join skips what was read before without a speculative insert per comment;
        // ON CONFLICT still settles two devices opening the topic at once.
        "INSERT INTO footprints (comment_id, user_id, read_at) \
         SELECT c.id, $1, now() FROM comments c \
         WHERE c.topic_id = $2 AND c.seq >= $3 AND ($4::int[] IS NULL OR c.seq = ANY($4)) \
           AND c.author_id <> $1 AND c.deleted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = $1) \
         ON CONFLICT DO NOTHING RETURNING comment_id, read_at",
    ))
    .bind(user_id)
    .bind(topic_id)
    .bind(from_seq)
    .bind(only)
    .fetch_all(conn)
    .await?)
}

/// The first comment the person has not read in a topic, when something is unread (the counter
/// is left as it is).
pub async fn first_unread(
    conn: &mut PgConnection,
    user_id: PersonId,
    topic_id: TopicId,
) -> DbResult<Option<i32>> {
    Ok(
        sqlx::query_scalar("SELECT first_seq FROM unread WHERE user_id = $1 AND topic_id = $2")
            .bind(user_id)
            .bind(topic_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// The comments of others from `from_seq` on, not deleted, that do not have the person's
/// footprint yet.
pub async fn unseen_among(
    conn: &mut PgConnection,
    user_id: PersonId,
    topic_id: TopicId,
    from_seq: i32,
) -> DbResult<Vec<i32>> {
    Ok(sqlx::query_scalar(
        "SELECT c.seq FROM comments c \
         WHERE c.topic_id = $2 AND c.seq >= $3 AND c.author_id <> $1 AND c.deleted_at IS NULL \
           AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = $1) \
         ORDER BY c.seq",
    )
    .bind(user_id)
    .bind(topic_id)
    .bind(from_seq)
    .fetch_all(conn)
    .await?)
}

/// Moves a person's unread counter of a topic past the comments numbered `seqs`, which have
/// been on their screen. With footprints, what is left is exactly the comments without one;
/// without (acknowledgement mode, receipts off), the counter only moves past what was seen
/// from its first unread comment on without a gap, and counts everything after that. Returns
/// whether the counter changed. The row lock orders this against a comment being posted.
pub async fn settle_unread(
    conn: &mut PgConnection,
    user_id: PersonId,
    topic_id: TopicId,
    seqs: &[i32],
    footprints: bool,
) -> DbResult<bool> {
    let row: Option<(i32, i32)> = sqlx::query_as(
        "SELECT first_seq, count FROM unread WHERE user_id = $1 AND topic_id = $2 FOR UPDATE",
    )
    .bind(user_id)
    .bind(topic_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((first_seq, count)) = row else {
        return Ok(false);
    };
    let (next, left, after_next, important_left, important_after): (
        Option<i32>,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        // With footprints the footprints alone decide (this transaction's own are visible):
        // a reported comment that was committed only after they were recorded has none and
        // stays unread, as the counter must agree with the footprints.
        "WITH rest AS (SELECT c.seq, c.important FROM comments c \
             WHERE c.topic_id = $2 AND c.seq >= $3 AND c.author_id <> $1 \
               AND c.deleted_at IS NULL AND ($5 OR c.seq <> ALL($4)) \
               AND (NOT $5 OR NOT EXISTS \
                    (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = $1))) \
         SELECT (SELECT min(seq) FROM rest), (SELECT count(*) FROM rest), \
                (SELECT count(*) FROM comments c WHERE c.topic_id = $2 AND c.author_id <> $1 \
                   AND c.deleted_at IS NULL AND c.seq >= (SELECT min(seq) FROM rest)), \
                (SELECT count(*) FROM rest WHERE important), \
                (SELECT count(*) FROM comments c WHERE c.topic_id = $2 AND c.author_id <> $1 \
                   AND c.deleted_at IS NULL AND c.important \
                   AND c.seq >= (SELECT min(seq) FROM rest))",
    )
    .bind(user_id)
    .bind(topic_id)
    .bind(first_seq)
    .bind(seqs)
    .bind(footprints)
    .fetch_one(&mut *conn)
    .await?;
    let Some(next) = next else {
        sqlx::query("DELETE FROM unread WHERE user_id = $1 AND topic_id = $2")
            .bind(user_id)
            .bind(topic_id)
            .execute(conn)
            .await?;
        return Ok(true);
    };
    let (left, important) = if footprints {
        (left, important_left)
    } else {
        (after_next, important_after)
    };
    let left = i32::try_from(left).unwrap_or(i32::MAX);
    let important = i32::try_from(important).unwrap_or(i32::MAX);
    if (next, left) == (first_seq, count) {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE unread SET first_seq = $3, count = $4, important = $5 \
         WHERE user_id = $1 AND topic_id = $2",
    )
    .bind(user_id)
    .bind(topic_id)
    .bind(next)
    .bind(left)
    .bind(important)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Clears every unread counter of the person in a group; returns the topics cleared.
pub async fn mark_group_read(
    conn: &mut PgConnection,
    user_id: PersonId,
    group: &HostedGroup,
) -> DbResult<u64> {
    let group_id = group.id;
    Ok(
        sqlx::query("DELETE FROM unread WHERE user_id = $1 AND group_id = $2")
            .bind(user_id)
            .bind(group_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Unread counts of a person per group in this tenant.
pub async fn unread_by_group(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
) -> DbResult<Vec<(GroupId, i64)>> {
    Ok(sqlx::query_as(&slot.sql(
        "SELECT group_id, sum(count)::bigint FROM unread WHERE user_id = $1 GROUP BY group_id",
    ))
    .bind(user_id)
    .fetch_all(conn)
    .await?)
}

/// [`unread_by_group`] with the snapshot it was read under (`pg_current_snapshot()` as text,
/// `xmin:xmax:xip,…`): which transactions' writes the counts include.
pub async fn unread_by_group_at(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
) -> DbResult<(String, Vec<(GroupId, i64)>)> {
    let (snapshot, groups, counts): (String, Vec<GroupId>, Vec<i64>) = sqlx::query_as(&slot.sql(
        // One statement, so one snapshot for the counts and the reported snapshot.
        "SELECT pg_current_snapshot()::text, coalesce(array_agg(group_id), '{}'), \
                coalesce(array_agg(n), '{}') \
         FROM (SELECT group_id, sum(count)::bigint AS n FROM unread WHERE user_id = $1 \
               GROUP BY group_id) per_group",
    ))
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok((snapshot, groups.into_iter().zip(counts).collect()))
}

/// One topic with something unread for the person, as a line of the home page, with its
/// group's totals; the group's first line also carries its headline comment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HomeLineRow {
    pub group_id: GroupId,
    /// The group's name and kind: on its first line only (`rank` 1), like the headline.
    pub group_name: Option<String>,
    pub group_kind: Option<GroupKind>,
    /// Over all the group's topics with something unread (not only the lines returned).
    pub group_unread: i64,
    pub group_important: i64,
    pub group_topics: i64,
    pub topic_id: TopicId,
    pub topic_title: String,
    pub unread: i32,
    pub important: i32,
    pub last_at: DateTime<Utc>,
    /// 1 for the group's first line: important first, then the newest.
    pub rank: i64,
    /// The headline (first line only): the newest important unread comment, else the newest.
    pub comment_id: Option<CommentId>,
    pub seq: Option<i32>,
    pub author_name: Option<String>,
    pub body: Option<String>,
    pub comment_important: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The home page's lines in this tenant: per group with something unread, its `per_group`
/// topics with the most important and newest unread first, and one headline comment. Reads
/// the unread counters and one or two comments per group: a doctor with thousands of unread
/// comments in hundreds of topics costs the counters' rows, not the comments.
pub async fn home_lines(
    conn: &mut PgConnection,
    slot: PlanSlot,
    user_id: PersonId,
    viewer_bit: Scope,
    per_group: i64,
) -> DbResult<Vec<HomeLineRow>> {
    // Few joined relations, the rest scalar subqueries: a wide join took longer to plan than
    // to run, and each connection plans this once per association (see `crate::plans`). The
    // group's name and kind are read for its first line only, as its headline is: for a heavy
    // reader that is a tenth of the lookups.
    Ok(sqlx::query_as(&slot.sql(concat!(
        "WITH mine AS ( \
             SELECT ur.group_id, ur.topic_id, ur.count, ur.important, ur.first_seq, ur.last_at, \
                    t.title, \
                    row_number() OVER (PARTITION BY ur.group_id \
                        ORDER BY ur.important > 0 DESC, ur.last_at DESC, ur.topic_id) AS rank, \
                    sum(ur.count) OVER (PARTITION BY ur.group_id) AS group_unread, \
                    sum(ur.important) OVER (PARTITION BY ur.group_id) AS group_important, \
                    count(*) OVER (PARTITION BY ur.group_id) AS group_topics \
             FROM unread ur JOIN topics t ON t.id = ur.topic_id \
             WHERE ur.user_id = $1 AND (t.scope & $2 <> 0 OR t.author_id = $1) \
               AND EXISTS (SELECT 1 FROM ",
        group_members!(),
        " gm WHERE gm.group_id = ur.group_id AND gm.user_id = $1 AND gm.status = 'active')) \
         SELECT m.group_id, gg.name AS group_name, gg.kind AS group_kind, \
                m.group_unread::bigint AS group_unread, \
                m.group_important::bigint AS group_important, m.group_topics, \
                m.topic_id, m.title AS topic_title, m.count AS unread, m.important, m.last_at, \
                m.rank, h.id AS comment_id, h.seq, \
                (SELECT u.name FROM core.users u WHERE u.id = h.author_id) AS author_name, \
                h.body, h.important AS comment_important, h.created_at \
         FROM mine m \
         LEFT JOIN LATERAL ( \
             SELECT * FROM ( \
                 (SELECT c.id, c.seq, c.author_id, c.body, c.important, c.created_at \
                  FROM comments c WHERE c.topic_id = m.topic_id AND c.seq >= m.first_seq \
                    AND c.important AND c.deleted_at IS NULL AND c.author_id <> $1 \
                  ORDER BY c.seq DESC LIMIT 1) \
                 UNION ALL \
                 (SELECT c.id, c.seq, c.author_id, c.body, c.important, c.created_at \
                  FROM comments c WHERE c.topic_id = m.topic_id AND c.seq >= m.first_seq \
                    AND c.deleted_at IS NULL AND c.author_id <> $1 \
                  ORDER BY c.seq DESC LIMIT 1)) x \
             WHERE m.rank = 1 LIMIT 1 \
         ) h ON true \
         LEFT JOIN LATERAL (SELECT g.name, g.kind FROM groups g \
                            WHERE g.id = m.group_id AND m.rank = 1) gg ON true \
         WHERE m.rank <= $3 \
         ORDER BY m.group_id, m.rank",
    )))
    .bind(user_id)
    .bind(viewer_bit)
    .bind(per_group)
    .fetch_all(conn)
    .await?)
}
