//! Acts out `groups.toml` and `conversation.toml` as the demo people, through the services
//! (so audit records, events and unread counters are what real use leaves behind), then moves
//! what each step wrote back to the scripted time.

use crate::data::{self, Audience, Dataset, Step, When};
use chrono::{DateTime, Duration, Utc};
use musubi_authz::GroupRole;
use musubi_db::backdate;
use musubi_domain::audit::RequestMeta;
use musubi_domain::groups::{GroupInput, GroupKind, ReceiptMode, Scope};
use musubi_domain::operator::Operator;
use musubi_domain::sessions::Viewer;
use musubi_domain::topics::TopicPatch;
use musubi_domain::types::{CommentId, GroupId, TopicId};
use musubi_domain::Actor;
use musubi_domain::{AppError, AppResult, Services, Tenant};
use std::collections::HashMap;

/// Something created earlier in the script, with the association hosting it.
#[derive(Clone, Copy)]
struct Made<'d, I> {
    slug: &'d str,
    id: I,
}

/// Acts as the demo people, one step at a time, and backdates what each step wrote.
struct Script<'a, 'd> {
    op: &'a Operator,
    services: &'a Services,
    tenants: HashMap<String, Tenant>,
    people: HashMap<&'d str, Viewer>,
    groups: HashMap<&'d str, Made<'d, GroupId>>,
    topics: HashMap<&'d str, Made<'d, TopicId>>,
    /// Replies with a key, and topics' bodies under the topic's key.
    comments: HashMap<&'d str, Made<'d, CommentId>>,
    client: RequestMeta,
    /// The database's clock when seeding began: every scripted time is before it, and rows
    /// stamped at or after it are the ones the current step just wrote.
    started: DateTime<Utc>,
    /// Midnight today, Japan time.
    today: DateTime<Utc>,
    clock: DateTime<Utc>,
}

/// Runs the whole script on freshly created associations and people.
pub(crate) async fn run(
    op: &Operator,
    data: &Dataset,
    tenants: HashMap<String, Tenant>,
) -> AppResult<()> {
    let mut s = Script::new(op, data, tenants).await?;
    for g in &data.groups {
        s.group(g).await?;
    }
    for step in &data.steps {
        s.step(step).await?;
    }
    let (host, other) = (s.tenant("minatogawa")?, s.tenant("sakuradai")?);
    crate::calendar::seed(&crate::calendar::Cast {
        services: s.services,
        client: &s.client,
        people: &s.people,
        host: &host,
        other: &other,
        doctors: Script::made(&s.groups, "group", "doctors")?.id,
        yamada: Script::made(&s.groups, "group", "yamada")?.id,
        rota: s.topics.get("rota").map(|t| t.id),
    })
    .await
}

fn missing(what: &str, key: &str) -> AppError {
    // Dataset::load checked every name; reaching this is a bug in the loader.
    tracing::error!(
        what,
        key,
        "demo data names something the script has not made"
    );
    AppError::not_found()
}

impl<'a, 'd> Script<'a, 'd> {
    async fn new(
        op: &'a Operator,
        data: &'d Dataset,
        tenants: HashMap<String, Tenant>,
    ) -> AppResult<Self> {
        let mut people = HashMap::new();
        for p in &data.people {
            people.insert(p.key.as_str(), op.act_as(&p.email).await?);
        }
        let started = backdate::database_now(op.db().pool()).await?;
        Ok(Self {
            op,
            services: op.services(),
            tenants,
            people,
            groups: HashMap::new(),
            topics: HashMap::new(),
            comments: HashMap::new(),
            client: RequestMeta::new("", "musubi demo"),
            started,
            today: musubi_config::time::japan_midnight(started),
            clock: started - Duration::days(30),
        })
    }

    fn who(&self, key: &str) -> AppResult<&Viewer> {
        self.people.get(key).ok_or_else(|| missing("person", key))
    }

    /// `key` acting in `tenant`, as the demo's own request.
    fn actor<'s>(&'s self, key: &str, tenant: &'s Tenant) -> AppResult<Actor<'s>> {
        Ok(Actor::new(self.who(key)?, tenant, &self.client))
    }

    fn tenant(&self, slug: &str) -> AppResult<Tenant> {
        self.tenants
            .get(slug)
            .cloned()
            .ok_or_else(|| missing("association", slug))
    }

    fn made<I: Copy>(
        map: &HashMap<&'d str, Made<'d, I>>,
        what: &str,
        key: &str,
    ) -> AppResult<Made<'d, I>> {
        map.get(key).copied().ok_or_else(|| missing(what, key))
    }

    /// The time of the next step: as scripted, but always after the previous step and before
    /// seeding began, so that comment numbers and times agree.
    fn at(&mut self, when: When) -> DateTime<Utc> {
        let wanted = match when {
            When::Day {
                days_ago,
                hour,
                minute,
            } => {
                self.today - Duration::days(days_ago)
                    + Duration::hours(i64::from(hour))
                    + Duration::minutes(i64::from(minute))
            }
            When::MinutesAgo(m) => self.started - Duration::minutes(m),
        };
        let t = wanted
            .max(self.clock + Duration::seconds(1))
            .min(self.started - Duration::seconds(1));
        self.clock = t.max(self.clock + Duration::milliseconds(1));
        self.clock
    }

    async fn group(&mut self, g: &'d data::Group) -> AppResult<()> {
        let at = self.at(g.at);
        let input = GroupInput {
            name: g.name.clone(),
            description: g.description.clone(),
            accepts_requests: g.accepts_requests,
            receipt_mode: g.receipt_mode.map(|m| match m {
                data::ReceiptMode::Footprints => ReceiptMode::Footprints,
                data::ReceiptMode::Acknowledgement => ReceiptMode::Acknowledgement,
                data::ReceiptMode::Off => ReceiptMode::Off,
            }),
        };
        let kind = match g.kind {
            data::Kind::General => GroupKind::General,
            data::Kind::Patient => GroupKind::Patient,
        };
        let tenant = self.tenant(&g.association)?;
        let id = self
            .services
            .create_group(&self.actor(&g.owner, &tenant)?, kind, &input)
            .await?;
        for m in &g.members {
            let user = self.who(m)?.user().id;
            self.op
                .add_group_member(&tenant, id, user, GroupRole::Member)
                .await?;
        }
        if let Some(p) = &g.patient {
            let physician_id = match &p.physician {
                Some(key) => Some(self.who(key)?.user().id),
                None => None,
            };
            let form = musubi_domain::patients::PatientForm {
                name: p.name.clone(),
                name_kana: p.kana.clone(),
                birth_date: p.birth.clone(),
                sex: Some(p.sex),
                town: p.town.clone(),
                care_level: Some(p.care_level),
                diagnoses: p.diagnoses.clone(),
                physician_id,
                // The script's teams span facilities: the patients agreed to sharing.
                consent_date: "2026-11-01".to_owned(),
                consent_by: self.who(&g.owner)?.user().name.clone(),
                consent_scope: "担当の医師・看護師・薬剤師・ケアマネジャー".to_owned(),
                ..musubi_domain::patients::PatientForm::default()
            };
            self.services
                .attach_patient(&self.actor(&g.owner, &tenant)?, id, &form)
                .await?;
        }
        let mut tx = self.op.db().tenant_tx(&tenant).await?;
        backdate::group(&mut tx, id, at, self.started).await?;
        tx.commit().await.map_err(AppError::internal)?;
        self.groups.insert(
            &g.key,
            Made {
                slug: &g.association,
                id,
            },
        );
        Ok(())
    }

    async fn step(&mut self, step: &'d Step) -> AppResult<()> {
        match step {
            Step::Topic {
                key,
                group,
                by,
                at,
                title,
                body,
                scope,
                important,
            } => {
                let g = Self::made(&self.groups, "group", group)?;
                let at = self.at(*at);
                let tenant = self.tenant(g.slug)?;
                let scope = match scope {
                    Audience::Everyone => Scope::EVERYONE,
                    Audience::CoMedical => Scope::CO_MEDICAL,
                    Audience::Doctors => Scope::DOCTORS,
                };
                let id = self
                    .services
                    .create_topic(
                        &self.actor(by, &tenant)?,
                        &musubi_domain::topics::NewTopic {
                            group_id: g.id,
                            title,
                            body,
                            scope,
                            important: *important,
                        },
                    )
                    .await?;
                let body = self.body_of(&tenant, id).await?;
                self.backdate_comment(&tenant, at, body).await?;
                self.topics.insert(key, Made { slug: g.slug, id });
                self.comments.insert(
                    key,
                    Made {
                        slug: g.slug,
                        id: body,
                    },
                );
            }
            Step::Reply {
                key,
                topic,
                by,
                at,
                body,
                important,
            } => {
                let t = Self::made(&self.topics, "topic", topic)?;
                let at = self.at(*at);
                let tenant = self.tenant(t.slug)?;
                let id = self
                    .services
                    .post_comment(&self.actor(by, &tenant)?, t.id, body, *important)
                    .await?;
                self.backdate_comment(&tenant, at, id).await?;
                if let Some(key) = key {
                    self.comments.insert(key, Made { slug: t.slug, id });
                }
            }
            Step::Open { topic, by, at } => {
                let t = Self::made(&self.topics, "topic", topic)?;
                let at = self.at(*at);
                let tenant = self.tenant(t.slug)?;
                let viewer = self.who(by)?.clone();
                self.services
                    .open_topic(&Actor::new(&viewer, &tenant, &self.client), t.id, true)
                    .await?;
                let mut tx = self.op.db().tenant_tx(&tenant).await?;
                backdate::footprints(&mut tx, viewer.user().id, at, self.started).await?;
                tx.commit().await.map_err(AppError::internal)?;
            }
            Step::Acknowledge { comment, by, at } => {
                let c = Self::made(&self.comments, "comment", comment)?;
                let at = self.at(*at);
                let tenant = self.tenant(c.slug)?;
                self.services
                    .acknowledge_comment(&self.actor(by, &tenant)?, c.id)
                    .await?;
                let mut tx = self.op.db().tenant_tx(&tenant).await?;
                backdate::acknowledgement(&mut tx, c.id, at, self.started).await?;
                tx.commit().await.map_err(AppError::internal)?;
            }
            Step::Edit {
                comment,
                by,
                at,
                body,
                important,
            } => {
                let c = Self::made(&self.comments, "comment", comment)?;
                let at = self.at(*at);
                let tenant = self.tenant(c.slug)?;
                self.services
                    .edit_comment(&self.actor(by, &tenant)?, c.id, body, *important)
                    .await?;
                let mut tx = self.op.db().tenant_tx(&tenant).await?;
                backdate::edit(&mut tx, c.id, at, self.started).await?;
                tx.commit().await.map_err(AppError::internal)?;
            }
            Step::Delete { comment, by, at } => {
                let c = Self::made(&self.comments, "comment", comment)?;
                let at = self.at(*at);
                let tenant = self.tenant(c.slug)?;
                self.services
                    .delete_comment(&self.actor(by, &tenant)?, c.id)
                    .await?;
                let mut tx = self.op.db().tenant_tx(&tenant).await?;
                backdate::deletion(&mut tx, c.id, at, self.started).await?;
                tx.commit().await.map_err(AppError::internal)?;
            }
            Step::Pin { topic, by } => {
                let t = Self::made(&self.topics, "topic", topic)?;
                let tenant = self.tenant(t.slug)?;
                let patch = TopicPatch {
                    title: None,
                    scope: None,
                    pinned: Some(true),
                    closed: None,
                };
                self.services
                    .update_topic(&self.actor(by, &tenant)?, t.id, &patch)
                    .await?;
            }
        }
        Ok(())
    }

    /// A new topic's body: its only comment so far (number 1).
    async fn body_of(&self, tenant: &Tenant, topic: TopicId) -> AppResult<CommentId> {
        let mut conn = self.op.db().tenant_read(tenant).await?;
        let comments =
            musubi_db::groups::comments_of_topic(&mut conn, tenant.plan_slot(), topic, 1, 1)
                .await?;
        match comments.as_slice() {
            [body] if body.seq == 1 => Ok(body.id),
            _ => Err(missing("topic body", &topic.to_string())),
        }
    }

    async fn backdate_comment(
        &self,
        tenant: &Tenant,
        at: DateTime<Utc>,
        comment: CommentId,
    ) -> AppResult<()> {
        let mut tx = self.op.db().tenant_tx(tenant).await?;
        backdate::comment(&mut tx, comment, at, self.started).await?;
        tx.commit().await.map_err(AppError::internal)
    }
}
