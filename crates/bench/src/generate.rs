//! `musubi-bench generate`: fills a freshly migrated database with the dataset of a scale.
//!
//! Associations are created through Musubi's own provisioning (`Db::create_association`), so
//! their schemas are exactly production's; everything else is bulk-loaded with COPY from an
//! in-memory model built from the seed (see `model.rs`). Footprints and unread counters are
//! derived from one read position per person and topic, so they agree the way the app keeps
//! them: footprints on others' comments up to the position, unread counters for the rest.

mod copy;
mod files;
mod load;
mod model;

use crate::manifest::{AttachmentRef, DatasetCounts, GroupRef, Manifest, Person, TopicRef};
use anyhow::{bail, Context as _};
use load::Ctx;
use model::Model;
use musubi_db::{Db, NewAssociation};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Most groups and topics listed per person in the manifest.
const MANIFEST_GROUPS: usize = 30;
/// Searchers in the manifest: the regular people in the most groups.
const SEARCHERS: usize = 50;
const MANIFEST_TOPICS: usize = 40;
/// How many of those topics should be long ones (40–60 comments) when the person has them.
const MANIFEST_LONG_TOPICS: usize = 15;
/// Most attachments listed per person (from those topics).
const MANIFEST_ATTACHMENTS: usize = 10;
/// People each person writes direct messages to.
const MANIFEST_CONTACTS: usize = 5;
const SIGN_IN_ADDRESSES: usize = 20;

struct Progress(Instant);

impl Progress {
    fn say(&self, what: impl std::fmt::Display) {
        eprintln!("[{:7.2}s] {what}", self.0.elapsed().as_secs_f64());
    }
}

pub async fn run(args: crate::GenerateArgs) -> anyhow::Result<()> {
    let progress = Progress(Instant::now());
    let sizes = args.scale.sizes();
    let seed = args.seed;
    let options = PgConnectOptions::from_str(&args.database_url)
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    let db = Db::connect(options.clone(), 4, Duration::from_secs(10))
        .await
        .context("cannot connect to the database")?;
    preflight(&db).await?;
    // Before the long part: a store that cannot be reached fails the run now.
    let file_store = files::open_store(&args.data_dir).await?;
    progress.say(format!(
        "generating scale {} (seed {seed}): {} associations, {} people, {} patient + {} general groups, {} comments, ~{} footprints",
        args.scale.name(),
        sizes.associations,
        sizes.people,
        sizes.patient_groups,
        sizes.general_groups,
        sizes.comments,
        sizes.footprints
    ));

    // CPU work on blocking threads while the associations are created.
    let model_task =
        tokio::task::spawn_blocking(move || Model::build(seed, sizes, sizes.footprints));
    let templates_task = tokio::task::spawn_blocking(move || files::Templates::build(seed));
    let password = password_for(seed);
    let hash_task = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || musubi_auth::password::hash_password(&p))
    };

    let mut slugs = Vec::new();
    for i in 0..sizes.associations as usize {
        let a = model::Assoc::nth(i);
        let new = NewAssociation {
            slug: a.slug,
            name: a.name,
            area: a.area,
            description: a.description,
        };
        db.create_association(&new)
            .await
            .with_context(|| format!("creating association {}", new.slug))?;
        slugs.push(new.slug);
    }
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, slug, schema_name FROM core.associations WHERE slug = ANY($1)")
            .bind(&slugs)
            .fetch_all(db.pool())
            .await?;
    let mut assoc_ids = Vec::new();
    let mut schemas = Vec::new();
    for slug in &slugs {
        let (id, _, schema) = rows
            .iter()
            .find(|r| &r.1 == slug)
            .with_context(|| format!("association {slug} vanished"))?;
        assoc_ids.push(*id);
        schemas.push(schema.clone());
    }
    progress.say(format!("{} associations created", slugs.len()));

    let model = model_task.await.context("the model builder panicked")?;
    progress.say(format!(
        "model built: {} topics, {} comments, {} readers×topics; footprints {} of {} possible (knob {:.3})",
        model.topics.len(),
        model.comments.len(),
        model.pairs.len(),
        model.footprints,
        model.footprints_max,
        model.read_knob
    ));
    let extras = extras(&model);
    progress.say(format!(
        "of which extras: {} crowded groups ({} topics of {} comments, {} members each), {} heavy readers ({} unread in all, at least {} in {} topics each)",
        extras.crowded_groups,
        extras.crowded_topics,
        model::CROWDED_LEN,
        model::CROWDED_MEMBERS,
        extras.heavy_readers,
        extras.heavy_unread,
        extras.heavy_min_unread,
        extras.heavy_min_topics
    ));
    let password_hash = hash_task
        .await
        .context("password hashing panicked")?
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e:?}"))?;
    let tokens: Vec<String> = model
        .people
        .iter()
        .map(|p| load::session_token(seed, p.num))
        .collect();
    let templates = templates_task
        .await
        .context("building the attachments' files panicked")??;
    let base_us = chrono::Utc::now().timestamp_micros() - model::NOW;
    let ctx = Arc::new(Ctx {
        model,
        assoc_ids,
        schemas,
        base_us,
        password_hash,
        tokens,
        attachments_per_mille: sizes.attachments_per_mille,
        templates,
        today: (chrono::Utc::now() + chrono::Duration::hours(9)).date_naive(),
    });

    let mut conn = PgConnection::connect_with(&options)
        .await
        .context("cannot open the loading connection")?;
    // Known-consistent data: skip per-row foreign-key triggers. Needs a superuser.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
        .context("SET session_replication_role needs a superuser")?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    // The search index is built after its rows (see load::search_docs).
    sqlx::query("SET maintenance_work_mem = '256MB'")
        .execute(&mut conn)
        .await?;
    let (facilities, memberships) = load::core(&mut conn, &ctx).await?;
    progress.say(format!(
        "core loaded: {facilities} facilities, {} people, {} groups, {memberships} group memberships",
        ctx.model.people.len(),
        ctx.model.groups.len()
    ));
    let mut total = load::TenantCounts::default();
    for a in 0..slugs.len() as u32 {
        let c = load::tenant(&mut conn, &ctx, a).await?;
        progress.say(format!(
            "{}: {} patients, {} topics, {} comments, {} attachments, {} search documents, {} versions, {} footprints, {} unread rows",
            slugs[a as usize], c.patients, c.topics, c.comments, c.files, c.search_docs, c.versions, c.footprints, c.unread
        ));
        total.patients += c.patients;
        total.topics += c.topics;
        total.comments += c.comments;
        total.versions += c.versions;
        total.footprints += c.footprints;
        total.unread += c.unread;
        total.files += c.files;
        total.search_docs += c.search_docs;
        total.events += c.events;
    }
    sqlx::query("RESET session_replication_role")
        .execute(&mut conn)
        .await?;

    // Set hint bits and the visibility map now, not during the first measured reads.
    let mut tables: Vec<String> = [
        "absences",
        "facilities",
        "users",
        "memberships",
        "sessions",
        "groups",
        "group_members",
    ]
    .iter()
    .map(|t| format!("core.{t}"))
    .collect();
    for schema in &ctx.schemas {
        for t in [
            "groups",
            "topics",
            "comments",
            "comment_versions",
            "footprints",
            "unread",
            "files",
            "patients",
            "search_docs",
            "calendar_events",
        ] {
            tables.push(format!("\"{schema}\".{t}"));
        }
    }
    sqlx::query(&format!("VACUUM (ANALYZE) {}", tables.join(", ")))
        .execute(&mut conn)
        .await
        .context("VACUUM ANALYZE")?;
    conn.close().await.ok();
    progress.say("vacuumed and analyzed");
    let objects = files::store_objects(&file_store.store, &ctx).await?;
    progress.say(format!(
        "{objects} objects of {} attachments stored in {}",
        total.files, file_store.description
    ));

    let m = &ctx.model;
    let counts = DatasetCounts {
        associations: slugs.len() as u64,
        facilities,
        people: m.people.len() as u64,
        patient_groups: m.groups.iter().filter(|g| g.patient).count() as u64,
        general_groups: m.groups.iter().filter(|g| !g.patient).count() as u64,
        group_memberships: memberships,
        topics: total.topics,
        comments: total.comments,
        footprints: total.footprints,
        unread_rows: total.unread,
        crowded_groups: extras.crowded_groups,
        crowded_topics: extras.crowded_topics,
        heavy_readers: extras.heavy_readers,
        heavy_unread: extras.heavy_unread,
        attachments: total.files,
        search_docs: total.search_docs,
        searcher_groups_min: 0,
        searcher_groups_max: 0,
    };
    let groups_of = groups_of(m);
    let regular: Vec<u32> = (0..m.regular_people).collect();
    let mut searchers = regular.clone();
    searchers.sort_by_key(|p| (std::cmp::Reverse(groups_of[*p as usize].len()), *p));
    searchers.truncate(SEARCHERS);
    let mut counts = counts;
    counts.searcher_groups_min = searchers
        .iter()
        .map(|p| groups_of[*p as usize].len() as u64)
        .min()
        .unwrap_or(0);
    counts.searcher_groups_max = searchers
        .iter()
        .map(|p| groups_of[*p as usize].len() as u64)
        .max()
        .unwrap_or(0);
    let crowded: Vec<u32> = m
        .crowded_groups
        .iter()
        .flat_map(|g| m.groups[*g as usize].members.iter().copied())
        .collect();
    let manifest = Manifest {
        version: crate::manifest::VERSION,
        scale: args.scale.name().to_owned(),
        seed,
        generation_seconds: progress.0.elapsed().as_secs_f64(),
        password,
        sign_in: sign_in_addresses(m),
        people: manifest_people(&ctx, &slugs, &groups_of, &regular),
        crowded: manifest_people(&ctx, &slugs, &groups_of, &crowded),
        heavy: manifest_people(&ctx, &slugs, &groups_of, &m.heavy_readers),
        searchers: manifest_people(&ctx, &slugs, &groups_of, &searchers),
        registrars: registrars(&ctx, &slugs, &groups_of),
        counts,
    };
    manifest
        .write(&args.manifest)
        .with_context(|| format!("writing {}", args.manifest.display()))?;
    progress.say(format!(
        "done in {:.1}s: {} comments, {} footprints, {} unread rows, {} comment versions; manifest {}",
        manifest.generation_seconds,
        total.comments,
        total.footprints,
        total.unread,
        total.versions,
        args.manifest.display()
    ));
    db.close().await;
    Ok(())
}

/// A migrated core schema, current, with no association and nobody in it yet.
async fn preflight(db: &Db) -> anyhow::Result<()> {
    let core: Option<String> = sqlx::query_scalar("SELECT to_regclass('core.associations')::text")
        .fetch_one(db.pool())
        .await?;
    if core.is_none() {
        bail!("the database has no Musubi schema: run `musubi migrate` on it first");
    }
    db.readiness()
        .await
        .map_err(|e| anyhow::anyhow!("the database is not ready for this Musubi: {e}"))?;
    let (associations, users): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM core.associations), (SELECT count(*) FROM core.users)",
    )
    .fetch_one(db.pool())
    .await?;
    if associations > 0 || users > 0 {
        bail!(
            "the database already has {associations} associations and {users} people: \
             generate into a freshly migrated, empty database"
        );
    }
    Ok(())
}

/// Strong (length, four kinds), and the same for the same seed.
fn password_for(seed: u64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("musubi-bench-password:{seed}").as_bytes());
    let word = data_encoding::BASE64URL_NOPAD.encode(&digest[..12]);
    format!("Bench#{word}-9z")
}

/// The extras in figures (the counts and the progress line).
struct Extras {
    crowded_groups: u64,
    crowded_topics: u64,
    heavy_readers: u64,
    heavy_unread: u64,
    /// The least any heavy reader has unread, and in how many topics.
    heavy_min_unread: u64,
    heavy_min_topics: u64,
}

fn extras(m: &Model) -> Extras {
    let heavy: Vec<(u64, u64)> = m
        .heavy_readers
        .iter()
        .map(|reader| {
            let (mut unread, mut topics) = (0u64, 0u64);
            for t in &m.topics {
                if let Some(p) = m.topic_pairs(t).iter().find(|p| p.person == *reader) {
                    if let Some((count, _, _)) = m.unread(t, p) {
                        unread += u64::from(count);
                        topics += 1;
                    }
                }
            }
            (unread, topics)
        })
        .collect();
    Extras {
        crowded_groups: m.crowded_groups.len() as u64,
        crowded_topics: m
            .crowded_groups
            .iter()
            .map(|g| m.groups[*g as usize].topics.len() as u64)
            .sum(),
        heavy_readers: heavy.len() as u64,
        heavy_unread: heavy.iter().map(|h| h.0).sum(),
        heavy_min_unread: heavy.iter().map(|h| h.0).min().unwrap_or(0),
        heavy_min_topics: heavy.iter().map(|h| h.1).min().unwrap_or(0),
    }
}

/// Regular people only: the extras are for their own phases.
fn sign_in_addresses(m: &Model) -> Vec<String> {
    let n = m.regular_people as usize;
    let step = (n / SIGN_IN_ADDRESSES).max(1);
    m.people[..n]
        .iter()
        .step_by(step)
        .take(SIGN_IN_ADDRESSES)
        .map(|p| p.email())
        .collect()
}

/// Each person's groups (indices), in group order.
/// The first association's administrators, each with one of its patient groups standing for
/// the association whose register they read.
fn registrars(ctx: &Ctx, slugs: &[String], groups_of: &[Vec<u32>]) -> Vec<Person> {
    let m = &ctx.model;
    let Some(first) = m.assocs.first() else {
        return Vec::new();
    };
    let Some(entry) = m.groups.iter().find(|g| g.patient && g.assoc == 0) else {
        return Vec::new();
    };
    let admins: Vec<u32> = first
        .people
        .iter()
        .copied()
        .filter(|p| m.people[*p as usize].admin)
        .collect();
    let mut people = manifest_people(ctx, slugs, groups_of, &admins);
    for p in &mut people {
        p.groups = vec![GroupRef {
            association: slugs[0].clone(),
            id: entry.id,
        }];
    }
    people
}

fn groups_of(m: &Model) -> Vec<Vec<u32>> {
    let mut groups_of: Vec<Vec<u32>> = vec![Vec::new(); m.people.len()];
    for (gi, g) in m.groups.iter().enumerate() {
        for p in &g.members {
            groups_of[*p as usize].push(gi as u32);
        }
    }
    groups_of
}

/// The people `who` with their token, some of their groups and open topics they may see
/// there, long (40–60 comment) topics first, and attachments of those topics.
fn manifest_people(
    ctx: &Ctx,
    slugs: &[String],
    groups_of: &[Vec<u32>],
    who: &[u32],
) -> Vec<Person> {
    let m = &ctx.model;
    let mut out = Vec::with_capacity(who.len());
    for &pi in who {
        let person = &m.people[pi as usize];
        let visible = |gi: u32| {
            m.groups[gi as usize]
                .topics
                .iter()
                .copied()
                .filter(move |t| {
                    let t = &m.topics[*t as usize];
                    !t.closed && m.sees(pi, t)
                })
        };
        let mut mine = groups_of[pi as usize].clone();
        // Groups with something to open first, then the most recently active.
        mine.sort_by_key(|g| {
            let has = visible(*g).next().is_some();
            (
                !has,
                std::cmp::Reverse(m.groups[*g as usize].last_activity_t),
            )
        });
        mine.truncate(MANIFEST_GROUPS);
        let mut topics: Vec<u32> = mine.iter().flat_map(|g| visible(*g)).collect();
        topics.sort_by_key(|t| {
            let t = &m.topics[*t as usize];
            std::cmp::Reverse(m.topic_last_t(t))
        });
        let (long, short): (Vec<u32>, Vec<u32>) = topics
            .into_iter()
            .partition(|t| (40..=60).contains(&m.topics[*t as usize].len));
        let n_long = long.len().min(MANIFEST_LONG_TOPICS);
        let mut chosen: Vec<u32> = long.iter().copied().take(n_long).collect();
        chosen.extend(short.iter().copied().take(MANIFEST_TOPICS - n_long));
        if chosen.len() < MANIFEST_TOPICS {
            let room = MANIFEST_TOPICS - chosen.len();
            chosen.extend(long.iter().copied().skip(n_long).take(room));
        }
        let mut attachments = Vec::new();
        'topics: for t in &chosen {
            let t = &m.topics[*t as usize];
            let association = &slugs[m.groups[t.group as usize].assoc as usize];
            for ci in t.first..t.first + t.len {
                let Some(f) = files::of_comment(m, ctx.attachments_per_mille, ci) else {
                    continue;
                };
                let file = ctx.templates.get(f.template);
                attachments.push(AttachmentRef {
                    association: association.clone(),
                    id: f.id,
                    size: file.size(),
                    thumbnail: file.thumb.is_some(),
                });
                if attachments.len() == MANIFEST_ATTACHMENTS {
                    break 'topics;
                }
            }
        }
        out.push(Person {
            id: person.id,
            token: ctx.tokens[pi as usize].clone(),
            groups: mine
                .iter()
                .map(|g| {
                    let g = &m.groups[*g as usize];
                    GroupRef {
                        association: slugs[g.assoc as usize].clone(),
                        id: g.id,
                    }
                })
                .collect(),
            topics: chosen
                .iter()
                .map(|t| {
                    let t = &m.topics[*t as usize];
                    let g = &m.groups[t.group as usize];
                    TopicRef {
                        association: slugs[g.assoc as usize].clone(),
                        group_id: g.id,
                        id: t.id,
                        comments: t.len,
                    }
                })
                .collect(),
            attachments,
            home: slugs[person.home as usize].clone(),
            contacts: contacts_of(m, groups_of, pi),
        });
    }
    out
}

/// Whom `pi` writes direct messages to: regular people at home in the same association (an
/// active member's directory holds them whatever the policies), colleagues of their groups
/// first, then the people next to them in the association's list.
fn contacts_of(m: &Model, groups_of: &[Vec<u32>], pi: u32) -> Vec<Uuid> {
    let home = m.people[pi as usize].home;
    let fits = |q: u32| q != pi && q < m.regular_people && m.people[q as usize].home == home;
    let mut chosen: Vec<u32> = Vec::with_capacity(MANIFEST_CONTACTS);
    let mut mine = groups_of[pi as usize].clone();
    mine.sort_by_key(|g| std::cmp::Reverse(m.groups[*g as usize].last_activity_t));
    'groups: for g in mine {
        for &q in &m.groups[g as usize].members {
            if chosen.len() == MANIFEST_CONTACTS {
                break 'groups;
            }
            if fits(q) && !chosen.contains(&q) {
                chosen.push(q);
            }
        }
    }
    let at_home = &m.assocs[home as usize].people;
    let start = at_home.iter().position(|q| *q == pi).unwrap_or(0);
    for i in 1..at_home.len() {
        if chosen.len() == MANIFEST_CONTACTS {
            break;
        }
        let q = at_home[(start + i) % at_home.len()];
        if fits(q) && !chosen.contains(&q) {
            chosen.push(q);
        }
    }
    chosen.iter().map(|q| m.people[*q as usize].id).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::scale::Sizes;

    #[test]
    fn contacts_are_regular_people_at_home_in_the_same_association() {
        let sizes = Sizes {
            associations: 3,
            people: 90,
            patient_groups: 40,
            general_groups: 3,
            comments: 2000,
            footprints: 8000,
            crowded_groups: 1,
            heavy_readers: 1,
            heavy_topics_per_group: 2,
            attachments_per_mille: 0,
            register_first: 0,
        };
        let m = Model::build(3, sizes, sizes.footprints);
        let groups_of = groups_of(&m);
        let index: std::collections::HashMap<Uuid, usize> = m
            .people
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i))
            .collect();
        for pi in 0..m.people.len() as u32 {
            let contacts = contacts_of(&m, &groups_of, pi);
            assert_eq!(contacts.len(), MANIFEST_CONTACTS, "person {pi}");
            for c in &contacts {
                let q = index[c];
                assert_ne!(q, pi as usize);
                assert!(
                    q < m.regular_people as usize,
                    "a contact is a regular person"
                );
                assert_eq!(m.people[q].home, m.people[pi as usize].home);
            }
            let mut unique = contacts.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), contacts.len());
        }
        // Colleagues first: someone in a group with people at home has one of them first.
        let pi = (0..m.regular_people)
            .find(|p| !groups_of[*p as usize].is_empty())
            .unwrap();
        let first = index[&contacts_of(&m, &groups_of, pi)[0]] as u32;
        assert!(groups_of[pi as usize]
            .iter()
            .any(|g| m.groups[*g as usize].members.contains(&first)));
    }
}
