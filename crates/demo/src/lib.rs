//! A fictional demo dataset, seeded by `musubi demo` when the database has no association:
//! two associations, their people, and a week of groups, topics, comments, footprints and
//! unread items (see `docs/sns.md`). The data lives in `data/*.toml` (compiled in); this crate
//! loads it and acts it out through the services. Every name there is invented; e-mail
//! addresses use the reserved `.example` domain.

mod calendar;
mod data;
mod register;
mod script;

use data::Dataset;
use musubi_db::accounts::{self as repo, NewUser};
use musubi_domain::associations::CreateAssociation;
use musubi_domain::operator::Operator;
use musubi_domain::{AppError, AppResult};
use std::collections::HashMap;
use uuid::Uuid;

pub use data::DataError;
pub use register::{seed_register, DEFAULT_EXTRA_PATIENTS};

/// The password of every demo account. Demo data only: never seeded by `serve`.
pub const DEMO_PASSWORD: &str = "musubi-demo-2026";

/// Seeds the demo dataset if no association exists yet; returns whether it seeded.
pub async fn seed_if_empty(op: &Operator) -> AppResult<bool> {
    if !op.db().list_associations().await?.is_empty() {
        return Ok(false);
    }
    // Checked before anything is written: a broken data file leaves the database empty.
    let data = Dataset::load().map_err(AppError::internal)?;
    let mut tenants = HashMap::new();
    for a in &data.associations {
        let tenant = op
            .create_association(&CreateAssociation {
                slug: a.slug.clone(),
                name: a.name.clone(),
                area: a.area.clone(),
                description: a.description.clone(),
            })
            .await?;
        tracing::info!(association = %a.slug, "demo association created");
        tenants.insert(a.slug.clone(), tenant);
        for n in &a.neighbours {
            op.set_neighbours(&a.slug, n, true).await?;
        }
    }
    seed_people(op, &data, &tenants).await?;
    script::run(op, &data, tenants).await?;
    Ok(true)
}

/// Facilities, people and memberships, in one transaction. People join an association by
/// invitation in real use; here they are written straight in (an operator's act).
async fn seed_people(
    op: &Operator,
    data: &Dataset,
    tenants: &HashMap<String, musubi_domain::Tenant>,
) -> AppResult<()> {
    let hash = musubi_auth::password::hash_password_async(DEMO_PASSWORD.to_owned())
        .await
        .map_err(AppError::internal)?;
    let association_id = |slug: &str| {
        tenants
            .get(slug)
            .map(|t| t.id)
            .ok_or_else(AppError::not_found)
    };
    let mut tx = op.db().core_tx().await?;
    let mut facilities: HashMap<(&str, &str), Uuid> = HashMap::new();
    for a in &data.associations {
        for f in &a.facilities {
            let id =
                repo::insert_facility(&mut tx, association_id(&a.slug)?, &f.name, f.kind).await?;
            facilities.insert((&a.slug, &f.name), id);
        }
    }
    for p in &data.people {
        let user = repo::insert_user(
            &mut tx,
            &NewUser {
                email: &p.email,
                name: &p.name,
                name_kana: &p.kana,
                profession: p.profession,
                doctor_kind: p.doctor_kind,
                password_hash: Some(&hash),
            },
        )
        .await?;
        for m in &p.memberships {
            let facility = m
                .facility
                .as_deref()
                .and_then(|f| facilities.get(&(m.association.as_str(), f)).copied());
            repo::insert_membership(
                &mut tx,
                user,
                association_id(&m.association)?,
                m.role,
                facility,
            )
            .await?;
        }
    }
    tx.commit().await.map_err(AppError::internal)
}
