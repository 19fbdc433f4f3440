//! What is new for a person: the home page (unread comments across every association),
//! unread counts for badges and live updates, and "mark all as read".
//!
//! Unread is kept as counters (`unread` rows per person and topic), updated on every write;
//! counts and the home page read those, never scanning comments.

use crate::audit::AuditAction;
use crate::change::EventSpec;
use crate::groups::{active_role, viewer_bit, GroupKind};
use crate::sessions::Viewer;
use crate::types::{CommentId, GroupId, TopicId};
use crate::Actor;
use crate::{AppError, AppResult, Services};
use chrono::{DateTime, Utc};
use musubi_authz::{Action, Object};
use musubi_db::groups::{self as repo};

/// Most topics the home page lists per group (the most important and newest first): a
/// summary for a phone. Each group says how many topics and comments are unread; counts stay
/// exact.
pub const HOME_TOPICS_PER_GROUP: i64 = 10;

/// An unread comment on the home page.
#[derive(Debug, Clone)]
pub struct HomeItem {
    pub topic_id: TopicId,
    pub topic_title: String,
    pub comment_id: CommentId,
    pub seq: i32,
    pub author_name: String,
    pub excerpt: String,
    pub important: bool,
    pub created_at: DateTime<Utc>,
}

/// A topic with something unread, on the home page.
#[derive(Debug, Clone)]
pub struct HomeTopic {
    pub topic_id: TopicId,
    pub title: String,
    pub unread: i64,
    /// Of those, marked 重要.
    pub important: i64,
    pub last_at: DateTime<Utc>,
}

/// One group on the home page: a line with its counts and its headline comment, and its
/// topics with something unread.
#[derive(Debug, Clone)]
pub struct HomeGroup {
    pub association_slug: String,
    pub association_name: String,
    pub group_id: GroupId,
    /// For a conversation of direct messages, the other people's names.
    pub group_name: String,
    pub patient: bool,
    /// A conversation of direct messages (`group_id` is the conversation).
    pub conversation: bool,
    pub unread: i64,
    /// Unread comments marked 重要.
    pub important: i64,
    /// Topics with something unread (`topics` lists the first [`HOME_TOPICS_PER_GROUP`]).
    pub unread_topics: i64,
    /// The newest important unread comment, else the newest unread one.
    pub headline: Option<HomeItem>,
    /// Important first, then the newest.
    pub topics: Vec<HomeTopic>,
    pub newest_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub struct UnreadCounts {
    pub total: i64,
    /// (association slug, association name, count)
    pub associations: Vec<(String, String, i64)>,
    /// (association slug, group id, count)
    pub groups: Vec<(String, GroupId, i64)>,
}

#[derive(Debug, Clone, Default)]
pub struct Home {
    /// Groups with important unread comments first, then patient groups, then by newest.
    pub groups: Vec<HomeGroup>,
    pub counts: UnreadCounts,
    /// How many group invitations wait for the viewer.
    pub invitations: usize,
}

pub(crate) fn excerpt(body: &str) -> String {
    const MAX: usize = 120;
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX {
        let mut s: String = one_line.chars().take(MAX).collect();
        s.push('…');
        s
    } else {
        one_line
    }
}

impl Services {
    /// "Mark all as read" for a group: clears the counters without leaving footprints (the
    /// comments were not actually read).
    pub async fn mark_group_read(&self, actor: &Actor<'_>, group_id: GroupId) -> AppResult<u64> {
        let me = actor.viewer.user.id;
        let mut c = self.change(actor).await?;
        let (hosted, group) = repo::group(c.conn(), actor.tenant, me, group_id)
            .await?
            .ok_or_else(AppError::not_found)?;
        c.about_group(&group.name);
        c.authorize(&hosted, active_role(&group), Object::Topics, Action::Read)
            .await?;
        let cleared = repo::mark_group_read(c.conn(), me, &hosted).await?;
        c.event(&hosted, EventSpec::unread(me)).await?;
        let entry = c
            .entry(AuditAction::GroupMarkRead)
            .on("group", group_id)
            .with_detail("topics", i64::try_from(cleared).unwrap_or(i64::MAX));
        c.audit(entry);
        c.commit().await?;
        Ok(cleared)
    }

    /// The home page: what is unread across every association the viewer has groups in, one
    /// line per group (those with 重要 unread first, then patient groups, then the newest), each
    /// with its counts, its headline comment and its topics with something unread. One
    /// directory query, then one statement per host association; nothing scales with the
    /// comments ever written.
    pub async fn home(&self, viewer: &Viewer) -> AppResult<Home> {
        let directory = repo::directory_of(self.db().pool(), viewer.user.id).await?;
        let invitations = directory.iter().map(|d| d.invited as usize).sum();
        let mut home = Home {
            invitations,
            ..Home::default()
        };
        let bit = viewer_bit(viewer);
        for repo::DirectoryRow { slug, name, .. } in directory.into_iter().filter(|d| d.active > 0)
        {
            let Ok(tenant) = self.db().resolve_tenant(&slug).await else {
                continue;
            };
            let mut conn = self.db().tenant_read(&tenant).await?;
            let lines = repo::home_lines(
                &mut conn,
                tenant.plan_slot(),
                viewer.user.id,
                bit,
                HOME_TOPICS_PER_GROUP,
            )
            .await?;
            // The counts come with the lines (each group's first line has its totals over all
            // its topics), so both are of one snapshot. Counters are kept to what the person
            // may see (scope changes and departures rebuild them), so these equal the badges'.
            let counts: Vec<(GroupId, i64)> = lines
                .iter()
                .filter(|l| l.rank == 1)
                .map(|l| (l.group_id, l.group_unread))
                .collect();
            let conversations: Vec<GroupId> = lines
                .iter()
                .filter(|l| l.rank == 1 && l.group_kind == Some(GroupKind::Direct))
                .map(|l| l.group_id)
                .collect();
            let others = if conversations.is_empty() {
                Vec::new()
            } else {
                musubi_db::groups::messages::others_of_groups(
                    &mut conn,
                    viewer.user.id,
                    &conversations,
                )
                .await?
            };
            conn.done();
            let sum: i64 = counts.iter().map(|(_, n)| n).sum();
            home.counts.total += sum;
            home.counts
                .associations
                .push((slug.clone(), name.clone(), sum));
            for (g, n) in &counts {
                home.counts.groups.push((slug.clone(), *g, *n));
            }
            for line in lines {
                if line.rank == 1 {
                    let headline = match (line.comment_id, line.seq, line.created_at) {
                        (Some(comment_id), Some(seq), Some(created_at)) => Some(HomeItem {
                            topic_id: line.topic_id,
                            topic_title: line.topic_title.clone(),
                            comment_id,
                            seq,
                            author_name: line.author_name.clone().unwrap_or_default(),
                            excerpt: excerpt(line.body.as_deref().unwrap_or_default()),
                            important: line.comment_important.unwrap_or(false),
                            created_at,
                        }),
                        _ => None,
                    };
                    home.groups.push(HomeGroup {
                        association_slug: slug.clone(),
                        association_name: name.clone(),
                        group_id: line.group_id,
                        group_name: match others.iter().find(|(g, _)| *g == line.group_id) {
                            Some((_, names)) => names.join("、"),
                            None => line.group_name.clone().unwrap_or_default(),
                        },
                        patient: line.group_kind == Some(GroupKind::Patient),
                        conversation: line.group_kind == Some(GroupKind::Direct),
                        unread: line.group_unread,
                        important: line.group_important,
                        unread_topics: line.group_topics,
                        headline,
                        topics: Vec::new(),
                        newest_at: None,
                    });
                }
                let Some(group) = home
                    .groups
                    .last_mut()
                    .filter(|g| g.group_id == line.group_id)
                else {
                    continue;
                };
                group.newest_at = group.newest_at.max(Some(line.last_at));
                group.topics.push(HomeTopic {
                    topic_id: line.topic_id,
                    title: line.topic_title,
                    unread: i64::from(line.unread),
                    important: i64::from(line.important),
                    last_at: line.last_at,
                });
            }
        }
        home.groups.sort_by(|a, b| {
            (b.important > 0)
                .cmp(&(a.important > 0))
                .then_with(|| b.patient.cmp(&a.patient))
                .then_with(|| b.newest_at.cmp(&a.newest_at))
        });
        Ok(home)
    }

    /// Unread counts only (for badges and live updates).
    pub async fn unread_counts(&self, viewer: &Viewer) -> AppResult<UnreadCounts> {
        let directory = repo::directory_of(self.db().pool(), viewer.user.id).await?;
        let hosts: Vec<(String, String)> = directory
            .into_iter()
            .filter(|d| d.active > 0)
            .map(|d| (d.slug, d.name))
            .collect();
        self.unread_counts_at(viewer, &hosts).await
    }

    /// Unread counts in the given host associations (slug, name), which the caller read from
    /// the directory: a live subscription keeps them between membership changes.
    pub async fn unread_counts_at(
        &self,
        viewer: &Viewer,
        hosts: &[(String, String)],
    ) -> AppResult<UnreadCounts> {
        Ok(self.tracked_unread_counts(viewer, hosts).await?.counts)
    }

    /// [`Self::unread_counts_at`] with the snapshot each association's counts were read under,
    /// so that a live subscription can add the comments posted since without reading again.
    pub async fn tracked_unread_counts(
        &self,
        viewer: &Viewer,
        hosts: &[(String, String)],
    ) -> AppResult<TrackedCounts> {
        let mut tracked = TrackedCounts::default();
        for (slug, name) in hosts {
            let Ok(tenant) = self.db().resolve_tenant(slug).await else {
                continue;
            };
            let mut conn = self.db().tenant_read(&tenant).await?;
            let (snapshot, by_group) =
                repo::unread_by_group_at(&mut conn, tenant.plan_slot(), viewer.user.id).await?;
            conn.done();
            let counts = &mut tracked.counts;
            let sum: i64 = by_group.iter().map(|(_, n)| n).sum();
            counts.total += sum;
            counts.associations.push((slug.clone(), name.clone(), sum));
            counts
                .groups
                .extend(by_group.into_iter().map(|(g, n)| (slug.clone(), g, n)));
            if let Some(snapshot) = Snapshot::parse(&snapshot) {
                tracked.snapshots.push((slug.clone(), snapshot));
            }
        }
        Ok(tracked)
    }
}

/// Unread counts and, per association, which transactions they include.
#[derive(Debug, Clone, Default)]
pub struct TrackedCounts {
    pub counts: UnreadCounts,
    /// (association slug, snapshot its counts were read under)
    pub snapshots: Vec<(String, Snapshot)>,
}

impl TrackedCounts {
    /// Counts a comment posted in `group` of association `slug` by transaction `xid`, unless
    /// the counts already include it; `false` when they cannot tell (read again then).
    pub fn add_posted(&mut self, slug: &str, group: GroupId, xid: u64, comments: i64) -> bool {
        let Some((_, snapshot)) = self.snapshots.iter().find(|(s, _)| s == slug) else {
            return false;
        };
        if snapshot.includes(xid) {
            return true;
        }
        let counts = &mut self.counts;
        let Some(association) = counts.associations.iter_mut().find(|(s, _, _)| s == slug) else {
            return false;
        };
        association.2 += comments;
        counts.total += comments;
        match counts
            .groups
            .iter_mut()
            .find(|(s, g, _)| s == slug && *g == group)
        {
            Some(entry) => entry.2 += comments,
            None => counts.groups.push((slug.to_owned(), group, comments)),
        }
        true
    }
}

/// The transactions a read saw (`pg_current_snapshot()`): those finished before `xmin`, and
/// those before `xmax` not in progress then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    xmin: u64,
    xmax: u64,
    in_progress: Vec<u64>,
}

impl Snapshot {
    /// Parses PostgreSQL's text form, `xmin:xmax:xip1,xip2,…`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().splitn(3, ':');
        let xmin = parts.next()?.parse().ok()?;
        let xmax = parts.next()?.parse().ok()?;
        let in_progress = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        (xmin <= xmax).then_some(Self {
            xmin,
            xmax,
            in_progress,
        })
    }

    /// Whether what was read includes the writes of `xid`, a transaction known to have
    /// committed (its events are published only then).
    pub fn includes(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.in_progress.contains(&xid))
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn snapshots_parse_and_tell_what_they_include() {
        let s = Snapshot::parse("100:105:101,103").expect("parses");
        assert!(s.includes(99), "finished before the snapshot");
        assert!(s.includes(100) && s.includes(102) && s.includes(104));
        assert!(!s.includes(101) && !s.includes(103), "in progress then");
        assert!(!s.includes(105) && !s.includes(200), "started after");
        let empty = Snapshot::parse("7:7:").expect("no transaction in progress");
        assert!(empty.includes(6) && !empty.includes(7));
        for bad in ["", "1", "1:2", "a:2:", "5:4:", "1:2:x", "1:2:3,"] {
            assert_eq!(Snapshot::parse(bad), None, "{bad:?}");
        }
    }

    fn tracked() -> (TrackedCounts, GroupId, GroupId) {
        let (g1, g2) = (GroupId::generate(), GroupId::generate());
        let tracked = TrackedCounts {
            counts: UnreadCounts {
                total: 3,
                associations: vec![("a".into(), "A".into(), 3), ("b".into(), "B".into(), 0)],
                groups: vec![("a".into(), g1, 3)],
            },
            snapshots: vec![
                ("a".into(), Snapshot::parse("10:12:11").expect("a")),
                ("b".into(), Snapshot::parse("10:10:").expect("b")),
            ],
        };
        (tracked, g1, g2)
    }

    #[test]
    fn a_comment_the_counts_missed_is_added_once_and_one_they_have_is_not() {
        let (mut t, g1, g2) = tracked();
        assert!(t.add_posted("a", g1, 9, 1), "already counted");
        assert_eq!(t.counts.total, 3);
        assert!(
            t.add_posted("a", g1, 11, 1),
            "in progress when read: not counted yet"
        );
        assert!(t.add_posted("b", g2, 10, 1), "after the read");
        assert_eq!(t.counts.total, 5);
        assert_eq!(t.counts.associations[0].2, 4);
        assert_eq!(t.counts.associations[1].2, 1);
        assert_eq!(t.counts.groups[0].2, 4);
        assert_eq!(t.counts.groups[1], ("b".to_owned(), g2, 1));
    }

    #[test]
    fn an_association_whose_counts_were_not_read_asks_for_a_read() {
        let (mut t, g1, _) = tracked();
        assert!(!t.add_posted("c", g1, 50, 1));
        t.snapshots.retain(|(s, _)| s != "a");
        assert!(!t.add_posted("a", g1, 50, 1));
        assert_eq!(t.counts.total, 3, "unchanged when it cannot tell");
    }
}
