//! A fictional demo dataset, seeded by `musubi demo` when the database has no association:
//! two associations, their people, and a week of groups, topics, comments, footprints and
//! unread items (see `docs/sns.md`). Every name here is invented; e-mail addresses use the
//! reserved `.example` domain.

use crate::associations::CreateAssociation;
use crate::audit::RequestMeta;
use crate::groups::{GroupInput, GroupKind, ReceiptMode, Scope};
use crate::sessions::{principal_for, Viewer};
use crate::topics::TopicPatch;
use crate::{AppError, AppResult, Services, Tenant};
use chrono::{DateTime, Duration, NaiveTime, Utc};
use musubi_authz::GroupRole;
use musubi_db::accounts::{self as repo, NewUser, SessionRow};
use musubi_db::types::{AssociationRole, DoctorKind, FacilityKind, Profession};
use std::collections::HashMap;
use uuid::Uuid;

/// The password of every demo account. Demo data only: never seeded by `serve`.
pub const DEMO_PASSWORD: &str = "musubi-demo-2026";

fn demo_associations() -> Vec<CreateAssociation> {
    vec![
        CreateAssociation {
            slug: "minatogawa".into(),
            name: "みなと川医師会".into(),
            area: "みなと川区".into(),
            description: "みなと川区の在宅医療を支える医師会です。連携医・訪問看護・ケアマネジャー・薬局が患者さんごとのグループで情報を共有しています。".into(),
        },
        CreateAssociation {
            slug: "sakuradai".into(),
            name: "さくら台医師会".into(),
            area: "さくら台市".into(),
            description: "さくら台市の医師会です。病院医師と診療所の連携医が、区境をこえてみなと川医師会と共同で運用しています。".into(),
        },
    ]
}

/// (association slug, facility name, kind)
const FACILITIES: &[(&str, &str, FacilityKind)] = &[
    ("minatogawa", "みなと川医師会 事務局", FacilityKind::Other),
    ("minatogawa", "川村内科クリニック", FacilityKind::Clinic),
    (
        "minatogawa",
        "訪問看護ステーションみなと",
        FacilityKind::VisitingNurseStation,
    ),
    (
        "minatogawa",
        "みなと居宅介護支援事業所",
        FacilityKind::CareManagementOffice,
    ),
    ("minatogawa", "みなと川薬局", FacilityKind::Pharmacy),
    ("sakuradai", "さくら台医師会 事務局", FacilityKind::Other),
    (
        "sakuradai",
        "高橋ファミリークリニック",
        FacilityKind::Clinic,
    ),
    (
        "sakuradai",
        "さくら台訪問看護ステーション",
        FacilityKind::VisitingNurseStation,
    ),
    (
        "sakuradai",
        "さくら台ケアプランセンター",
        FacilityKind::CareManagementOffice,
    ),
    ("sakuradai", "さくら台総合病院", FacilityKind::Hospital),
];

struct DemoPerson {
    email: &'static str,
    name: &'static str,
    kana: &'static str,
    profession: Profession,
    doctor_kind: Option<DoctorKind>,
    /// (association slug, role, facility name)
    memberships: &'static [(&'static str, AssociationRole, Option<&'static str>)],
}

const PEOPLE: &[DemoPerson] = &[
    DemoPerson {
        email: "admin@minatogawa.example",
        name: "港 事務子",
        kana: "みなと じむこ",
        profession: Profession::Clerk,
        doctor_kind: None,
        memberships: &[(
            "minatogawa",
            AssociationRole::Admin,
            Some("みなと川医師会 事務局"),
        )],
    },
    DemoPerson {
        email: "kawamura@minatogawa.example",
        name: "川村 健一",
        kana: "かわむら けんいち",
        profession: Profession::Physician,
        doctor_kind: Some(DoctorKind::Clinic),
        memberships: &[(
            "minatogawa",
            AssociationRole::Member,
            Some("川村内科クリニック"),
        )],
    },
    DemoPerson {
        email: "aoki@minatogawa.example",
        name: "青木 さくら",
        kana: "あおき さくら",
        profession: Profession::Nurse,
        doctor_kind: None,
        memberships: &[(
            "minatogawa",
            AssociationRole::Member,
            Some("訪問看護ステーションみなと"),
        )],
    },
    DemoPerson {
        email: "morita@minatogawa.example",
        name: "森田 由美",
        kana: "もりた ゆみ",
        profession: Profession::CareManager,
        doctor_kind: None,
        memberships: &[(
            "minatogawa",
            AssociationRole::Member,
            Some("みなと居宅介護支援事業所"),
        )],
    },
    DemoPerson {
        email: "hayashi@minatogawa.example",
        name: "林 大輔",
        kana: "はやし だいすけ",
        profession: Profession::Pharmacist,
        doctor_kind: None,
        memberships: &[("minatogawa", AssociationRole::Member, Some("みなと川薬局"))],
    },
    DemoPerson {
        email: "ishii@minatogawa.example",
        name: "石井 翔",
        kana: "いしい しょう",
        profession: Profession::PhysicalTherapist,
        doctor_kind: None,
        memberships: &[(
            "minatogawa",
            AssociationRole::Member,
            Some("訪問看護ステーションみなと"),
        )],
    },
    DemoPerson {
        email: "admin@sakuradai.example",
        name: "桜井 花子",
        kana: "さくらい はなこ",
        profession: Profession::Clerk,
        doctor_kind: None,
        memberships: &[(
            "sakuradai",
            AssociationRole::Admin,
            Some("さくら台医師会 事務局"),
        )],
    },
    DemoPerson {
        email: "takahashi@sakuradai.example",
        name: "高橋 誠",
        kana: "たかはし まこと",
        profession: Profession::Physician,
        doctor_kind: Some(DoctorKind::Clinic),
        memberships: &[(
            "sakuradai",
            AssociationRole::Member,
            Some("高橋ファミリークリニック"),
        )],
    },
    DemoPerson {
        email: "nakamura@sakuradai.example",
        name: "中村 愛",
        kana: "なかむら あい",
        profession: Profession::Nurse,
        doctor_kind: None,
        memberships: &[(
            "sakuradai",
            AssociationRole::Member,
            Some("さくら台訪問看護ステーション"),
        )],
    },
    DemoPerson {
        email: "kobayashi@sakuradai.example",
        name: "小林 恵",
        kana: "こばやし めぐみ",
        profession: Profession::CareManager,
        doctor_kind: None,
        memberships: &[(
            "sakuradai",
            AssociationRole::Member,
            Some("さくら台ケアプランセンター"),
        )],
    },
    // A hospital doctor whose patients come from both districts: one account, two associations.
    DemoPerson {
        email: "sato@sakuradai-hospital.example",
        name: "佐藤 隆",
        kana: "さとう たかし",
        profession: Profession::Physician,
        doctor_kind: Some(DoctorKind::Hospital),
        memberships: &[
            (
                "sakuradai",
                AssociationRole::Member,
                Some("さくら台総合病院"),
            ),
            ("minatogawa", AssociationRole::Member, None),
        ],
    },
];

/// Seeds the demo dataset if no association exists yet; returns whether it seeded.
pub async fn seed_if_empty(services: &Services) -> AppResult<bool> {
    if !services.db().list_associations().await?.is_empty() {
        return Ok(false);
    }
    let mut associations = HashMap::new();
    let mut tenants = HashMap::new();
    for a in demo_associations() {
        let tenant = services.create_association(&a).await?;
        tracing::info!(association = %a.slug, "demo association created");
        associations.insert(a.slug.clone(), tenant.id);
        tenants.insert(a.slug.clone(), tenant);
    }
    let hash = musubi_auth::password::hash_password_async(DEMO_PASSWORD.to_owned())
        .await
        .map_err(AppError::internal)?;
    let mut tx = services
        .db()
        .pool()
        .begin()
        .await
        .map_err(AppError::internal)?;
    let mut facilities: HashMap<&str, Uuid> = HashMap::new();
    for (slug, name, kind) in FACILITIES {
        let id = repo::insert_facility(&mut tx, associations[*slug], name, *kind).await?;
        facilities.insert(name, id);
    }
    for p in PEOPLE {
        let user = repo::insert_user(
            &mut tx,
            &NewUser {
                email: p.email,
                name: p.name,
                name_kana: p.kana,
                profession: p.profession,
                doctor_kind: p.doctor_kind,
                password_hash: Some(&hash),
            },
        )
        .await?;
        for (slug, role, facility) in p.memberships {
            let facility = facility.and_then(|f| facilities.get(f).copied());
            repo::insert_membership(&mut tx, user, associations[*slug], *role, facility).await?;
        }
    }
    tx.commit().await.map_err(AppError::internal)?;
    seed_groups(services, tenants).await?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Groups, topics and comments: a few days of work around four patients, written through the
// services (so audit records, events and unread counters are what real use leaves behind) and
// then moved back to the scripted times.

const ADMIN_M: &str = "admin@minatogawa.example";
const KAWAMURA: &str = "kawamura@minatogawa.example";
const AOKI: &str = "aoki@minatogawa.example";
const MORITA: &str = "morita@minatogawa.example";
const HAYASHI: &str = "hayashi@minatogawa.example";
const ISHII: &str = "ishii@minatogawa.example";
const ADMIN_S: &str = "admin@sakuradai.example";
const TAKAHASHI: &str = "takahashi@sakuradai.example";
const NAKAMURA: &str = "nakamura@sakuradai.example";
const KOBAYASHI: &str = "kobayashi@sakuradai.example";
const SATO: &str = "sato@sakuradai-hospital.example";

const DOCTORS: Scope = Scope::DOCTORS;
const CO_MEDICAL: Scope = Scope::CO_MEDICAL;

/// When a step happened: days before today at a Japan clock time, or minutes before now.
#[derive(Clone, Copy)]
enum When {
    Day(i64, u32, u32),
    MinutesAgo(i64),
}

fn d(days_ago: i64, hour: u32, minute: u32) -> When {
    When::Day(days_ago, hour, minute)
}

fn ago(minutes: i64) -> When {
    When::MinutesAgo(minutes)
}

#[derive(Clone, Copy)]
struct G {
    slug: &'static str,
    id: Uuid,
}

#[derive(Clone, Copy)]
struct T {
    slug: &'static str,
    id: Uuid,
}

#[derive(Clone, Copy)]
struct C {
    slug: &'static str,
    id: Uuid,
}

/// Acts as the demo people, one step at a time, and backdates what each step wrote.
struct Script<'a> {
    services: &'a Services,
    tenants: HashMap<String, Tenant>,
    people: HashMap<&'static str, Viewer>,
    client: RequestMeta,
    /// The database's clock when seeding began: every scripted time is before it, and rows
    /// stamped at or after it are the ones the current step just wrote.
    started: DateTime<Utc>,
    /// Midnight today, Japan time.
    today: DateTime<Utc>,
    clock: DateTime<Utc>,
}

/// A demo person acting without a session (seeding is not a request).
async fn demo_viewer(services: &Services, email: &str) -> AppResult<Viewer> {
    let user = repo::user_by_email(services.db().pool(), email)
        .await?
        .ok_or_else(AppError::not_found)?;
    let memberships = repo::memberships_of(services.db().pool(), user.id).await?;
    let principal = principal_for(&user, &memberships);
    let now = Utc::now();
    let session = SessionRow {
        id: Uuid::nil(),
        user_id: user.id,
        kind: musubi_db::types::SessionKind::Web,
        second_factor_done: true,
        created_at: now,
        last_seen_at: now,
        idle_expires_at: now,
        absolute_expires_at: now,
        ip: String::new(),
        user_agent: String::new(),
    };
    Ok(Viewer {
        user,
        session,
        memberships,
        principal,
    })
}

impl<'a> Script<'a> {
    async fn new(services: &'a Services, tenants: HashMap<String, Tenant>) -> AppResult<Self> {
        let mut people = HashMap::new();
        for p in PEOPLE {
            people.insert(p.email, demo_viewer(services, p.email).await?);
        }
        let started: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(services.db().pool())
            .await
            .map_err(AppError::internal)?;
        let jst = Duration::hours(9);
        let today = ((started + jst).date_naive().and_time(NaiveTime::MIN)).and_utc() - jst;
        Ok(Self {
            services,
            tenants,
            people,
            client: RequestMeta::new("", "musubi demo"),
            started,
            today,
            clock: started - Duration::days(30),
        })
    }

    fn who(&self, email: &str) -> &Viewer {
        &self.people[email]
    }

    fn tenant(&self, slug: &str) -> &Tenant {
        &self.tenants[slug]
    }

    /// The time of the next step: as scripted, but always after the previous step and before
    /// seeding began, so that comment numbers and times agree.
    fn at(&mut self, when: When) -> DateTime<Utc> {
        let wanted = match when {
            When::Day(days, h, m) => {
                let t = self.today - Duration::days(days)
                    + Duration::hours(i64::from(h))
                    + Duration::minutes(i64::from(m));
                debug_assert!(t > self.clock, "the demo script goes back in time at {t}");
                t
            }
            When::MinutesAgo(m) => self.started - Duration::minutes(m),
        };
        let t = wanted
            .max(self.clock + Duration::seconds(1))
            .min(self.started - Duration::seconds(1));
        self.clock = t.max(self.clock + Duration::milliseconds(1));
        self.clock
    }

    /// Runs backdating statements in the tenant; each gets the step's time (`$1`), when
    /// seeding began (`$2`, to find what the step just wrote) and one id (`$3`).
    async fn backdate(
        &self,
        slug: &str,
        at: DateTime<Utc>,
        statements: &[(&str, Uuid)],
    ) -> AppResult<()> {
        let mut tx = self.services.db().tenant_tx(self.tenant(slug)).await?;
        for (sql, id) in statements {
            sqlx::query(sql)
                .bind(at)
                .bind(self.started)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(AppError::internal)?;
        }
        tx.commit().await.map_err(AppError::internal)
    }

    #[allow(clippy::too_many_arguments)]
    async fn group(
        &mut self,
        slug: &'static str,
        owner: &str,
        kind: GroupKind,
        name: &str,
        description: &str,
        accepts_requests: bool,
        receipt_mode: Option<ReceiptMode>,
        members: &[&str],
        when: When,
    ) -> AppResult<G> {
        let at = self.at(when);
        let input = GroupInput {
            name: name.into(),
            description: description.into(),
            accepts_requests,
            receipt_mode,
        };
        let tenant = self.tenant(slug).clone();
        let id = self
            .services
            .create_group(self.who(owner), &tenant, kind, &input, &self.client)
            .await?;
        for m in members {
            let user = self.who(m).user.id;
            self.services
                .add_group_member_directly(&tenant, id, user, GroupRole::Member)
                .await?;
        }
        self.backdate(
            slug,
            at,
            &[
                (
                    "UPDATE groups SET created_at = $1, last_activity_at = $1 \
                     WHERE id = $3 AND created_at >= $2",
                    id,
                ),
                (
                    "UPDATE core.group_members SET created_at = $1, joined_at = $1 \
                     WHERE group_id = $3 AND created_at >= $2",
                    id,
                ),
            ],
        )
        .await?;
        Ok(G { slug, id })
    }

    /// Moves a new comment (and the counters it touched) to the step's time.
    async fn backdate_comment(
        &self,
        slug: &str,
        at: DateTime<Utc>,
        comment: Uuid,
    ) -> AppResult<()> {
        self.backdate(
            slug,
            at,
            &[
                (
                    "UPDATE topics t SET last_comment_at = $1, \
                            created_at = CASE WHEN c.seq = 1 THEN $1 ELSE t.created_at END \
                     FROM comments c WHERE c.id = $3 AND t.id = c.topic_id AND c.created_at >= $2",
                    comment,
                ),
                (
                    "UPDATE groups g SET last_activity_at = $1 FROM comments c \
                     WHERE c.id = $3 AND g.id = c.group_id AND g.last_activity_at >= $2",
                    comment,
                ),
                (
                    "UPDATE unread u SET last_at = $1 FROM comments c \
                     WHERE c.id = $3 AND u.topic_id = c.topic_id AND u.last_at >= $2",
                    comment,
                ),
                // Last: the topic statement above recognises the new comment by its time.
                (
                    "UPDATE comments SET created_at = $1 WHERE id = $3 AND created_at >= $2",
                    comment,
                ),
            ],
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn topic(
        &mut self,
        g: G,
        author: &str,
        when: When,
        title: &str,
        body: &str,
        scope: Scope,
        important: bool,
    ) -> AppResult<T> {
        let at = self.at(when);
        let tenant = self.tenant(g.slug).clone();
        let id = self
            .services
            .create_topic(
                self.who(author),
                &tenant,
                g.id,
                title,
                body,
                scope,
                important,
                &self.client,
            )
            .await?;
        let first: Uuid = {
            let mut tx = self.services.db().tenant_tx(&tenant).await?;
            let first =
                sqlx::query_scalar("SELECT id FROM comments WHERE topic_id = $1 AND seq = 1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(AppError::internal)?;
            tx.commit().await.map_err(AppError::internal)?;
            first
        };
        self.backdate_comment(g.slug, at, first).await?;
        Ok(T { slug: g.slug, id })
    }

    /// The topic's body as a comment (for confirming or editing it).
    async fn body_of(&self, t: T) -> AppResult<C> {
        let mut tx = self.services.db().tenant_tx(self.tenant(t.slug)).await?;
        let id = sqlx::query_scalar("SELECT id FROM comments WHERE topic_id = $1 AND seq = 1")
            .bind(t.id)
            .fetch_one(&mut *tx)
            .await
            .map_err(AppError::internal)?;
        tx.commit().await.map_err(AppError::internal)?;
        Ok(C { slug: t.slug, id })
    }

    async fn reply(
        &mut self,
        t: T,
        author: &str,
        when: When,
        body: &str,
        important: bool,
    ) -> AppResult<C> {
        let at = self.at(when);
        let tenant = self.tenant(t.slug).clone();
        let id = self
            .services
            .post_comment(
                self.who(author),
                &tenant,
                t.id,
                body,
                important,
                &self.client,
            )
            .await?;
        self.backdate_comment(t.slug, at, id).await?;
        Ok(C { slug: t.slug, id })
    }

    /// Someone opens the topic: footprints (or nothing, by the group's mode), unread cleared.
    async fn open(&mut self, t: T, who: &str, when: When) -> AppResult<()> {
        let at = self.at(when);
        let tenant = self.tenant(t.slug).clone();
        let viewer = self.who(who).clone();
        self.services
            .open_topic(&viewer, &tenant, t.id, true, &self.client)
            .await?;
        self.backdate(
            t.slug,
            at,
            &[(
                "UPDATE footprints SET read_at = $1 WHERE user_id = $3 AND read_at >= $2",
                viewer.user.id,
            )],
        )
        .await
    }

    async fn acknowledge(&mut self, c: C, who: &str, when: When) -> AppResult<()> {
        let at = self.at(when);
        let tenant = self.tenant(c.slug).clone();
        let viewer = self.who(who).clone();
        self.services
            .acknowledge_comment(&viewer, &tenant, c.id, &self.client)
            .await?;
        self.backdate(
            c.slug,
            at,
            &[(
                "UPDATE acknowledgements SET at = $1 WHERE comment_id = $3 AND at >= $2",
                c.id,
            )],
        )
        .await
    }

    async fn edit(
        &mut self,
        c: C,
        who: &str,
        when: When,
        body: &str,
        important: bool,
    ) -> AppResult<()> {
        let at = self.at(when);
        let tenant = self.tenant(c.slug).clone();
        self.services
            .edit_comment(self.who(who), &tenant, c.id, body, important, &self.client)
            .await?;
        self.backdate(
            c.slug,
            at,
            &[(
                "UPDATE comments SET edited_at = $1 WHERE id = $3 AND edited_at >= $2",
                c.id,
            )],
        )
        .await
    }

    async fn delete(&mut self, c: C, who: &str, when: When) -> AppResult<()> {
        let at = self.at(when);
        let tenant = self.tenant(c.slug).clone();
        self.services
            .delete_comment(self.who(who), &tenant, c.id, &self.client)
            .await?;
        self.backdate(
            c.slug,
            at,
            &[(
                "UPDATE comments SET deleted_at = $1 WHERE id = $3 AND deleted_at >= $2",
                c.id,
            )],
        )
        .await
    }

    async fn pin(&mut self, t: T, who: &str) -> AppResult<()> {
        let tenant = self.tenant(t.slug).clone();
        let patch = TopicPatch {
            title: None,
            scope: None,
            pinned: Some(true),
            closed: None,
        };
        self.services
            .update_topic(self.who(who), &tenant, t.id, &patch, &self.client)
            .await
    }
}

/// The demo's groups and conversations. Afterwards every demo person has read something
/// (footprints) and has something unread; one topic is for co-medical staff only and one for
/// doctors only; one comment was edited and one deleted.
async fn seed_groups(services: &Services, tenants: HashMap<String, Tenant>) -> AppResult<()> {
    let mut s = Script::new(services, tenants).await?;
    let everyone = Scope::EVERYONE;

    // --- Groups -------------------------------------------------------------------------
    let doctors = s
        .group(
            "minatogawa",
            KAWAMURA,
            GroupKind::General,
            "みなと川 連携医グループ",
            "みなと川区とさくら台市の在宅医療を担う連携医と病院医師のグループです。休日当番や紹介・逆紹介の連絡に使います。",
            false,
            // The on-call rota is confirmed with 「確認しました」.
            Some(ReceiptMode::Acknowledgement),
            &[TAKAHASHI, SATO],
            d(20, 9, 0),
        )
        .await?;
    let forum = s
        .group(
            "minatogawa",
            ADMIN_M,
            GroupKind::General,
            "多職種連携の会",
            "医師・看護師・薬剤師・ケアマネジャー・リハビリ職が、地域の在宅医療について情報交換する場です。参加を希望される方は申請してください。",
            true,
            None,
            &[KAWAMURA, AOKI, MORITA, HAYASHI, ISHII],
            d(20, 9, 30),
        )
        .await?;
    let sakura_forum = s
        .group(
            "sakuradai",
            ADMIN_S,
            GroupKind::General,
            "さくら台 在宅医療連絡会",
            "さくら台医師会の在宅医療にかかわる職種の連絡の場です。研修会・症例検討会の案内もここで行います。",
            false,
            None,
            &[TAKAHASHI, NAKAMURA, KOBAYASHI, SATO],
            d(20, 10, 0),
        )
        .await?;
    let yamada = s
        .group(
            "minatogawa",
            KAWAMURA,
            GroupKind::Patient,
            "山田 太郎さん（85歳・在宅酸素）",
            "COPD（慢性閉塞性肺疾患）で在宅酸素療法中（安静時 1L）。長男夫婦と同居。さくら台総合病院 呼吸器内科を退院後、川村内科クリニックが訪問診療を担当。",
            false,
            None,
            &[AOKI, MORITA, HAYASHI, ISHII, SATO],
            d(7, 17, 0),
        )
        .await?;
    let suzuki = s
        .group(
            "minatogawa",
            MORITA,
            GroupKind::Patient,
            "鈴木 花子さん（78歳・認知症・独居）",
            "アルツハイマー型認知症。独居で、長女は県外在住（月1回来訪）。訪問介護 週5回、訪問看護 週1回。",
            false,
            None,
            &[KAWAMURA, AOKI, HAYASHI],
            d(7, 17, 30),
        )
        .await?;
    let tanaka = s
        .group(
            "minatogawa",
            KAWAMURA,
            GroupKind::Patient,
            "田中 一郎さん（92歳・看取り期）",
            "老衰。ご本人・ご家族（奥様・次女さん）ともに自宅での看取りを希望されています。",
            false,
            None,
            &[AOKI, MORITA, HAYASHI, SATO],
            d(7, 18, 0),
        )
        .await?;
    // Hosted by さくら台; the patient lives on the boundary, so people of both associations
    // care for him.
    let ito = s
        .group(
            "sakuradai",
            TAKAHASHI,
            GroupKind::Patient,
            "伊藤 正男さん（80歳・心不全）",
            "慢性心不全。さくら台総合病院を退院し在宅療養へ。住まいはみなと川区との区境で、訪問看護はさくら台・みなとの両ステーション、薬はみなと川薬局が担当。",
            false,
            None,
            &[SATO, NAKAMURA, KOBAYASHI, AOKI, HAYASHI],
            d(7, 18, 30),
        )
        .await?;

    // --- Six days ago ---------------------------------------------------------------------
    let seminar = s
        .topic(
            forum,
            ADMIN_M,
            d(6, 9, 0),
            "1月の多職種研修会のお知らせ（人生会議・ACP）",
            "1月の多職種研修会のご案内です。\n\n日時：1月18日（土）14:00〜16:00\n会場：みなと川医師会館 2階会議室（オンライン参加も可）\nテーマ：人生会議（ACP）を在宅でどう進めるか\n講師：川村 健一 先生（川村内科クリニック）\n\n参加を希望される方は、このトピックにコメントをお願いします。資料は https://minatogawa.example/kenshu に掲載します。",
            everyone,
            true,
        )
        .await?;
    s.pin(seminar, ADMIN_M).await?;
    let discharge = s
        .topic(
            yamada,
            KAWAMURA,
            d(6, 10, 30),
            "退院後の訪問診療開始について",
            "さくら台総合病院 呼吸器内科を退院された山田さんの訪問診療を開始します。\n・在宅酸素：安静時 1L、労作時 2L（指示書は発行済み）\n・内服：テオフィリン、カルボシステイン、吸入薬（チオトロピウム）\n・訪問診療：隔週木曜\n佐藤先生、診療情報提供書をありがとうございました。",
            everyone,
            false,
        )
        .await?;
    s.open(discharge, SATO, d(6, 10, 55)).await?;
    s.reply(
        discharge,
        SATO,
        d(6, 11, 0),
        "川村先生、引き継ぎをありがとうございます。入院中は CO2 貯留なく経過しました。増悪時は当院呼吸器内科で受け入れますので、ご連絡ください。",
        false,
    )
    .await?;
    for (who, m) in [(AOKI, 5), (MORITA, 20), (HAYASHI, 40), (ISHII, 55)] {
        s.open(discharge, who, d(6, 13, m)).await?;
    }
    let rota = s
        .topic(
            doctors,
            KAWAMURA,
            d(6, 14, 0),
            "年末年始の休日当番表（案）",
            "年末年始の在宅当番表（案）です。\n12/29 川村\n12/30 佐藤先生\n12/31 高橋先生\n1/1 川村\n1/2 高橋先生\n1/3 佐藤先生\nご都合の悪い日があれば今週中にお知らせください。確認された方は「確認しました」を押してください。",
            everyone,
            true,
        )
        .await?;
    s.pin(rota, KAWAMURA).await?;
    let rota_body = s.body_of(rota).await?;
    s.open(rota, TAKAHASHI, d(6, 18, 20)).await?;
    s.acknowledge(rota_body, TAKAHASHI, d(6, 18, 21)).await?;

    // --- Five days ago --------------------------------------------------------------------
    let report = s
        .topic(
            yamada,
            AOKI,
            d(5, 8, 50),
            "訪問看護報告（退院後初回）",
            "退院後初回の訪問です。\n【バイタル】BP 132/78、脈拍 84、SpO2 94%（O2 1L 安静時）、体温 37.8℃\n【呼吸】労作時の息切れあり。トイレ歩行後に SpO2 88% まで低下、2分の休息で 93% に回復。\n【食事】摂取量 主食7割・副食5割。むせ込みなし。\n【皮膚】仙骨部に発赤（褥瘡 d1、2×2cm）。体圧分散マットレスを検討します。\n【排便】2日なし。腹部膨満軽度。\n【その他】ご本人「家に帰れてほっとした」と笑顔がみられました。",
            everyone,
            false,
        )
        .await?;
    // A typo in the temperature, corrected: the first text stays visible as history.
    let report_body = s.body_of(report).await?;
    s.edit(
        report_body,
        AOKI,
        d(5, 9, 5),
        "退院後初回の訪問です。\n【バイタル】BP 132/78、脈拍 84、SpO2 94%（O2 1L 安静時）、体温 36.8℃\n【呼吸】労作時の息切れあり。トイレ歩行後に SpO2 88% まで低下、2分の休息で 93% に回復。\n【食事】摂取量 主食7割・副食5割。むせ込みなし。\n【皮膚】仙骨部に発赤（褥瘡 d1、2×2cm）。体圧分散マットレスを検討します。\n【排便】2日なし。腹部膨満軽度。\n【その他】ご本人「家に帰れてほっとした」と笑顔がみられました。\n（体温を訂正しました）",
        false,
    )
    .await?;
    s.reply(
        report,
        AOKI,
        d(5, 9, 30),
        "川村先生、労作時の SpO2 低下（88%）について、労作時の酸素流量を 3L に上げてよいかご指示をお願いします。また排便コントロールのため、緩下剤の追加をご検討いただけますか。",
        true,
    )
    .await?;
    s.open(report, KAWAMURA, d(5, 12, 35)).await?;
    s.reply(
        report,
        KAWAMURA,
        d(5, 12, 40),
        "青木さん、報告ありがとうございます。\n・労作時は 3L まで上げて結構です。安静時は 1L のままで（CO2 貯留に注意し、頭痛や傾眠があれば連絡ください）。\n・酸化マグネシウム 330mg 1日2回を追加します（処方変更）。林さん、調剤をお願いします。\n・次回の往診は木曜 14時です。仙骨部の発赤も確認します。",
        true,
    )
    .await?;
    s.open(report, HAYASHI, d(5, 13, 5)).await?;
    s.reply(
        report,
        HAYASHI,
        d(5, 13, 10),
        "承知しました。本日夕方に酸化マグネシウムをお届けし、服薬カレンダーに追加します。",
        false,
    )
    .await?;
    s.open(report, AOKI, d(5, 13, 30)).await?;
    let meds = s
        .topic(
            yamada,
            HAYASHI,
            d(5, 15, 0),
            "服薬状況と残薬の確認",
            "本日訪問しました。\n【残薬】テオフィリン 6日分余り（夕食後の飲み忘れが多い様子）。カルボシステインは残薬なし。\n【吸入】吸入手技は良好です。\n【対応】服薬カレンダーを壁掛け式に変更し、夕食後の欄に目印をつけました。長男の奥様にも夕食後の声かけをお願いしています。\n次回の訪問は来週火曜です。",
            everyone,
            false,
        )
        .await?;
    // Written in the wrong patient's group, then deleted: the mark stays, the text does not.
    let wrong = s
        .reply(
            meds,
            HAYASHI,
            d(5, 15, 20),
            "服薬カレンダーを一包化対応のものに交換しました。",
            false,
        )
        .await?;
    s.delete(wrong, HAYASHI, d(5, 15, 22)).await?;
    s.open(rota, SATO, d(5, 15, 55)).await?;
    s.acknowledge(rota_body, SATO, d(5, 16, 0)).await?;
    s.reply(
        rota,
        SATO,
        d(5, 16, 5),
        "12/30 は当院の救急外来の当番と重なるため、12/31 と交換していただけますか。高橋先生、ご検討ください。",
        false,
    )
    .await?;
    s.open(meds, AOKI, d(5, 16, 30)).await?;
    let neighbours = s
        .topic(
            suzuki,
            MORITA,
            d(5, 17, 0),
            "近隣の方からの連絡（新聞がたまっている）",
            "本日午前、民生委員の方から「新聞が2日分たまっている」と連絡がありました。訪問したところご本人は在宅で、体調に変わりはありませんでしたが、冷蔵庫に期限切れの食品が多く、食事が十分にとれていない可能性があります。\n青木さん、次回の訪問時に体重と脱水の有無を見ていただけますか。",
            everyone,
            true,
        )
        .await?;

    // --- Four days ago --------------------------------------------------------------------
    s.open(neighbours, AOKI, d(4, 8, 55)).await?;
    s.reply(
        neighbours,
        AOKI,
        d(4, 9, 0),
        "承知しました。明日の訪問で体重・皮膚の張り・口腔内を確認します。水分は1日 1000ml を目標に、ヘルパーさんにも声かけをお願いしたいです。",
        false,
    )
    .await?;
    s.open(rota, TAKAHASHI, d(4, 10, 25)).await?;
    s.reply(
        rota,
        TAKAHASHI,
        d(4, 10, 30),
        "12/30 と 12/31 の交換、了解です。",
        false,
    )
    .await?;
    s.open(rota, KAWAMURA, d(4, 10, 45)).await?;
    s.reply(
        rota,
        KAWAMURA,
        d(4, 11, 0),
        "では 12/30 を高橋先生、12/31 を佐藤先生に修正します。ありがとうございました。",
        false,
    )
    .await?;
    s.open(report, ISHII, d(4, 11, 10)).await?;
    let rehab = s
        .topic(
            yamada,
            ISHII,
            d(4, 11, 30),
            "リハビリ報告：歩行訓練と転倒リスク",
            "訪問リハビリの初回です。\n【歩行】屋内は伝い歩きで自立。居間からトイレまで約8m、途中で1回の休憩が必要です。\n【転倒リスク】TUG 18秒（転倒リスク高）。トイレ前の段差（約5cm）でつまずきがありました。\n【提案】段差解消スロープとトイレ内の手すりの設置をおすすめします。森田さん、福祉用具の手配をご相談させてください。\n【訓練】下肢筋力訓練、口すぼめ呼吸を併用した歩行練習。SpO2 は 90% 以上を保って実施しました。",
            everyone,
            false,
        )
        .await?;
    s.open(rehab, MORITA, d(4, 13, 55)).await?;
    s.reply(
        rehab,
        MORITA,
        d(4, 14, 0),
        "石井さん、ありがとうございます。スロープと手すりは福祉用具専門相談員に連絡し、来週のサービス担当者会議で提案します。",
        false,
    )
    .await?;
    let meeting = s
        .topic(
            yamada,
            MORITA,
            d(4, 14, 30),
            "サービス担当者会議の日程",
            "サービス担当者会議を下記のとおり開催します。\n日時：来週水曜 15:00〜15:30\n場所：山田さん宅（オンライン参加も可）\n議題：退院後のケアプラン、福祉用具（電動ベッド・スロープ・手すり）、通所リハビリの利用\n川村先生、ご都合が合わなければ事前にご意見をいただけると助かります。",
            everyone,
            false,
        )
        .await?;
    let burden = s
        .topic(
            yamada,
            MORITA,
            d(4, 15, 0),
            "ご家族の介護負担について（コメディカル間）",
            "長男の奥様から「夜間のトイレ介助で眠れない」とご相談がありました。先生方に報告する前に、まず事業所間で状況をそろえたいと思います。\n・夜間の排泄：ポータブルトイレの導入を検討\n・レスパイト：ショートステイの空き状況を確認中\n各事業所で気づいた点があれば教えてください。",
            CO_MEDICAL,
            false,
        )
        .await?;
    s.open(burden, AOKI, d(4, 15, 55)).await?;
    s.reply(
        burden,
        AOKI,
        d(4, 16, 0),
        "訪問時もお疲れの様子でした。夜間のみおむつを併用する方法も、ご家族に提案してみます。",
        false,
    )
    .await?;
    let policy = s
        .topic(
            tanaka,
            KAWAMURA,
            d(4, 17, 30),
            "看取りの方針について（医師間）",
            "佐藤先生\n田中さんは経口摂取が1日数口まで低下しています。ご本人・奥様・次女さんとも、病院には戻らず自宅での看取りを希望されています。急変時は救急要請をせず当院に連絡いただく方針とし、訪問看護にもお伝えします。貴院への再入院は、ご家族が希望された場合のみご相談させてください。",
            DOCTORS,
            false,
        )
        .await?;
    s.open(policy, SATO, d(4, 18, 5)).await?;
    s.reply(
        policy,
        SATO,
        d(4, 18, 10),
        "承知しました。方針に異論はありません。ご家族の気持ちが揺れたときは、いつでも当院で相談に応じます。",
        false,
    )
    .await?;
    s.open(report, SATO, d(4, 19, 0)).await?;

    // --- Three days ago -------------------------------------------------------------------
    let end_of_life = s
        .topic(
            tanaka,
            AOKI,
            d(3, 9, 15),
            "訪問看護報告（看取り期）",
            "【バイタル】BP 98/60、脈拍 96、SpO2 92%（室内気）、体温 37.2℃\n【呼吸】時々 10秒程度の無呼吸あり。下顎呼吸はありません。\n【食事・水分】ゼリーを数口、水分 200ml 程度。\n【排泄】尿量減少（おむつ交換 1日2回、少量）。排便 3日なし。\n【皮膚】両踵部に発赤。2時間ごとの体位変換を継続しています。\n【ご家族】奥様は落ち着いて付き添われています。看取りのパンフレットをお渡しし、これからの呼吸の変化について説明しました。",
            everyone,
            true,
        )
        .await?;
    s.open(end_of_life, KAWAMURA, d(3, 9, 55)).await?;
    s.reply(
        end_of_life,
        KAWAMURA,
        d(3, 10, 0),
        "ありがとうございます。本日 16時に往診します。発熱時はアセトアミノフェン坐薬 200mg を使用してください（頓用、処方済み）。",
        false,
    )
    .await?;
    s.open(end_of_life, HAYASHI, d(3, 10, 25)).await?;
    s.reply(
        end_of_life,
        HAYASHI,
        d(3, 10, 30),
        "アセトアミノフェン坐薬は本日お届けしました。冷蔵庫で保管していただくようお伝えしています。",
        false,
    )
    .await?;
    s.open(end_of_life, MORITA, d(3, 11, 0)).await?;
    s.open(end_of_life, SATO, d(3, 12, 10)).await?;
    let sakura_meeting = s
        .topic(
            sakura_forum,
            ADMIN_S,
            d(3, 12, 15),
            "2月の症例検討会の日程調整",
            "2月の症例検討会（テーマ：在宅での心不全管理）の日程を調整します。\n候補：2/6（木）、2/13（木）、2/20（木）いずれも 19:00〜\nご都合の悪い日をお知らせください。",
            everyone,
            false,
        )
        .await?;
    s.open(sakura_meeting, TAKAHASHI, d(3, 12, 25)).await?;
    s.reply(
        sakura_meeting,
        TAKAHASHI,
        d(3, 12, 30),
        "2/13 は学会のため欠席します。ほかの日は参加できます。",
        false,
    )
    .await?;
    s.open(sakura_meeting, NAKAMURA, d(3, 12, 55)).await?;
    s.reply(
        sakura_meeting,
        NAKAMURA,
        d(3, 13, 0),
        "ステーションとしては 2/6 が参加しやすいです。",
        false,
    )
    .await?;
    s.reply(
        neighbours,
        AOKI,
        d(3, 13, 30),
        "訪問しました。体重 41.2kg（前月比 -1.5kg）、皮膚の張りやや低下、口腔内の乾燥あり。水分摂取を促し、経口補水液の用意をヘルパーさんに依頼しました。\n川村先生、食欲低下について一度診ていただけますか。",
        true,
    )
    .await?;
    s.open(neighbours, KAWAMURA, d(3, 14, 0)).await?;
    s.reply(
        neighbours,
        KAWAMURA,
        d(3, 14, 5),
        "承知しました。明後日の午前に往診し、採血（血算・生化学）も行います。",
        false,
    )
    .await?;
    s.open(neighbours, HAYASHI, d(3, 14, 30)).await?;
    let calendar = s
        .topic(
            suzuki,
            HAYASHI,
            d(3, 15, 0),
            "服薬カレンダーの設置と残薬",
            "一包化に変更し、服薬カレンダーを設置しました。朝の分は、ヘルパーさんの訪問時に一緒に確認していただくようお願いしました。\n【残薬】ドネペジル 10日分余り（飲み忘れ）。",
            everyone,
            false,
        )
        .await?;
    s.open(calendar, MORITA, d(3, 15, 25)).await?;
    s.reply(
        calendar,
        MORITA,
        d(3, 15, 30),
        "ありがとうございます。ヘルパー事業所にも共有しました。",
        false,
    )
    .await?;
    s.open(seminar, AOKI, d(3, 15, 55)).await?;
    s.reply(
        seminar,
        AOKI,
        d(3, 16, 0),
        "訪問看護ステーションみなとから2名参加します。",
        false,
    )
    .await?;
    s.open(seminar, HAYASHI, d(3, 16, 25)).await?;
    s.reply(
        seminar,
        HAYASHI,
        d(3, 16, 30),
        "みなと川薬局から1名、オンラインで参加します。",
        false,
    )
    .await?;
    s.open(seminar, ADMIN_M, d(3, 17, 0)).await?;
    s.open(seminar, KAWAMURA, d(3, 18, 0)).await?;
    s.open(seminar, ISHII, d(3, 19, 0)).await?;

    // --- Two days ago ---------------------------------------------------------------------
    let ito_discharge = s
        .topic(
            ito,
            SATO,
            d(2, 9, 0),
            "退院のご連絡と在宅での体重管理について",
            "伊藤さんは心不全の増悪で入院されていましたが、明日退院されます。\n・退院時体重 58.0kg（目標体重）\n・内服：フロセミド 20mg、カルベジロール 2.5mg、エナラプリル 2.5mg\n・体重が2日で 2kg 以上増えたら高橋先生に連絡をお願いします。\n高橋先生、訪問診療の引き継ぎをよろしくお願いいたします。",
            everyone,
            true,
        )
        .await?;
    s.open(ito_discharge, TAKAHASHI, d(2, 9, 35)).await?;
    s.reply(
        ito_discharge,
        TAKAHASHI,
        d(2, 9, 40),
        "承知しました。退院翌週の火曜に初回の往診に伺います。",
        false,
    )
    .await?;
    s.open(ito_discharge, KOBAYASHI, d(2, 9, 55)).await?;
    s.reply(
        ito_discharge,
        KOBAYASHI,
        d(2, 10, 0),
        "退院に合わせて、電動ベッドを明日午前に搬入します。訪問看護は、さくら台（中村さん）週1回、みなと（青木さん）週1回の体制です。",
        false,
    )
    .await?;
    s.open(ito_discharge, NAKAMURA, d(2, 11, 0)).await?;
    s.open(ito_discharge, HAYASHI, d(2, 11, 30)).await?;
    s.open(ito_discharge, AOKI, d(2, 12, 0)).await?;
    s.reply(
        report,
        AOKI,
        d(2, 13, 0),
        "本日の訪問：BP 128/74、SpO2 95%（O2 1L）、体温 36.5℃。酸化マグネシウム開始後、排便2回ありました。仙骨部の発赤は消退傾向です。",
        false,
    )
    .await?;
    s.open(report, KAWAMURA, d(2, 14, 0)).await?;
    s.open(report, HAYASHI, d(2, 14, 30)).await?;
    let disaster = s
        .topic(
            forum,
            MORITA,
            d(2, 15, 0),
            "災害時の連絡体制について",
            "災害時に、在宅酸素や人工呼吸器を使っている方の安否確認をどの順番で行うか、事業所間で決めておきたいと思います。次回の多職種連携の会で話し合いませんか。たたき台を作ってみます。",
            everyone,
            false,
        )
        .await?;
    s.open(disaster, KAWAMURA, d(2, 16, 0)).await?;
    s.reply(
        disaster,
        KAWAMURA,
        d(2, 16, 30),
        "賛成です。酸素業者の緊急連絡先も一覧にしておくとよいと思います。",
        false,
    )
    .await?;
    s.open(sakura_meeting, KOBAYASHI, d(2, 16, 55)).await?;
    s.reply(
        sakura_meeting,
        KOBAYASHI,
        d(2, 17, 0),
        "2/6 で参加できます。",
        false,
    )
    .await?;
    s.open(report, MORITA, d(2, 18, 0)).await?;
    s.open(sakura_meeting, SATO, d(2, 18, 30)).await?;

    // --- Yesterday ------------------------------------------------------------------------
    s.reply(
        end_of_life,
        AOKI,
        d(1, 9, 0),
        "本日早朝から呼吸状態が変化し、下顎呼吸がみられ始めました。奥様と次女さんが付き添っています。川村先生、本日の往診をお願いできますか。",
        true,
    )
    .await?;
    s.open(end_of_life, KAWAMURA, d(1, 9, 5)).await?;
    s.reply(
        end_of_life,
        KAWAMURA,
        d(1, 9, 10),
        "11時に伺います。呼吸の変化は自然な経過であることを、ご家族にお伝えください。",
        false,
    )
    .await?;
    s.open(end_of_life, MORITA, d(1, 9, 30)).await?;
    let ito_report = s
        .topic(
            ito,
            NAKAMURA,
            d(1, 10, 0),
            "訪問看護報告：体重増加と下腿浮腫",
            "【バイタル】BP 118/70、脈拍 78（不整なし）、SpO2 96%、体温 36.4℃\n【体重】59.6kg（退院時 +1.6kg）\n【浮腫】両下腿に圧痕性浮腫（+）\n【食事】塩分の多い漬物を毎食召し上がっているとのこと。減塩について説明しました。\n高橋先生、体重増加についてご判断をお願いします。",
            everyone,
            true,
        )
        .await?;
    s.open(ito_report, TAKAHASHI, d(1, 10, 35)).await?;
    s.reply(
        ito_report,
        TAKAHASHI,
        d(1, 10, 40),
        "フロセミドを 20mg から 40mg に増量します（処方変更、本日分から）。明後日に体重を再確認してください。2kg 以上の増加や息切れがあれば臨時往診します。",
        true,
    )
    .await?;
    s.open(ito_report, HAYASHI, d(1, 11, 15)).await?;
    s.reply(
        ito_report,
        HAYASHI,
        d(1, 11, 20),
        "増量分をお届けしました。服薬カレンダーの朝の欄を入れ替えています。",
        false,
    )
    .await?;
    s.reply(
        neighbours,
        KAWAMURA,
        d(1, 11, 30),
        "往診しました。食事量の低下は軽い脱水によるものと考えます。採血結果は明日お知らせします。",
        false,
    )
    .await?;
    s.reply(
        rehab,
        ISHII,
        d(1, 13, 0),
        "本日は SpO2 を確認しながら屋外歩行（50m）まで実施しました。段差でのつまずきはありませんでした。",
        false,
    )
    .await?;
    let oxygen = s
        .topic(
            doctors,
            SATO,
            d(1, 14, 0),
            "在宅酸素を導入して退院する方の連絡手順",
            "当院で在宅酸素を導入して退院する方について、酸素業者への指示書と急変時の受け入れ先を、退院前に連携医の先生方と確認する手順を作りたいと思います。たたき台を次回お持ちします。ご意見をお聞かせください。",
            everyone,
            false,
        )
        .await?;
    s.open(oxygen, TAKAHASHI, d(1, 14, 55)).await?;
    s.reply(
        oxygen,
        TAKAHASHI,
        d(1, 15, 0),
        "ありがとうございます。退院前カンファレンスに酸素業者の担当者も同席してもらえると助かります。",
        false,
    )
    .await?;
    s.open(sakura_meeting, ADMIN_S, d(1, 16, 0)).await?;
    s.reply(
        sakura_meeting,
        ADMIN_S,
        d(1, 16, 5),
        "2/6（木）19:00 に決定します。会場はさくら台医師会館 3階です。",
        true,
    )
    .await?;
    s.reply(
        meeting,
        MORITA,
        d(1, 17, 0),
        "福祉用具専門相談員の同席が決まりました。当日はスロープの実物を持参してもらいます。",
        false,
    )
    .await?;
    s.open(burden, HAYASHI, d(1, 17, 25)).await?;
    s.reply(
        burden,
        HAYASHI,
        d(1, 17, 30),
        "夜間頻尿の原因になりうる薬がないか、処方内容を確認します。",
        false,
    )
    .await?;

    // --- Today: still unread for most ---------------------------------------------------
    s.reply(
        end_of_life,
        KAWAMURA,
        ago(150),
        "往診しました。ご家族と今後の経過についてお話ししました。今夜は訪問看護ステーションみなとの緊急連絡体制でお願いします。",
        true,
    )
    .await?;
    s.reply(
        seminar,
        ADMIN_M,
        ago(120),
        "会場の定員が 40名のため、先着順とさせていただきます。現在 12名のお申し込みがあります。",
        false,
    )
    .await?;
    s.reply(
        ito_report,
        KOBAYASHI,
        ago(90),
        "減塩の件、配食サービス（減塩食）の利用をご家族と相談しました。来週から開始予定です。",
        false,
    )
    .await?;
    s.reply(
        sakura_meeting,
        NAKAMURA,
        ago(60),
        "2/6 の件、ステーションのほかのスタッフにも案内しました。",
        false,
    )
    .await?;
    s.reply(
        oxygen,
        KAWAMURA,
        ago(30),
        "賛成です。当院では退院前に酸素業者と緊急連絡先を共有しています。",
        false,
    )
    .await?;
    Ok(())
}
