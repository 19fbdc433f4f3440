//! Medical associations (医師会): the tenants of a deployment.

use crate::audit::{AuditAction, AuditEntry, RequestMeta};
use crate::{text, AppError, AppResult, Services, Tenant};
use chrono::{DateTime, Utc};
use musubi_db::associations as repo;
use musubi_db::NewAssociation;
use uuid::Uuid;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_AREA_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// What the landing page and the public API show of an association.
#[derive(Debug, Clone)]
pub struct AssociationCard {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub area: String,
    pub description: String,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct CreateAssociation {
    pub slug: String,
    pub name: String,
    pub area: String,
    pub description: String,
}

/// Lowercase ASCII letters, digits and inner hyphens, 3–40 characters: safe in URLs and headers.
pub fn is_valid_slug(slug: &str) -> bool {
    let b = slug.as_bytes();
    (3..=40).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl CreateAssociation {
    fn validate(&self) -> AppResult<NewAssociation> {
        let slug = self.slug.trim();
        if !is_valid_slug(slug) {
            return Err(AppError::invalid(
                "slug",
                "slug must be 3–40 lowercase letters, digits or hyphens, starting with a letter",
            ));
        }
        Ok(NewAssociation {
            slug: slug.to_owned(),
            name: text::line("name", &self.name, MAX_NAME_CHARS)?,
            area: text::optional_line("area", &self.area, MAX_AREA_CHARS)?.unwrap_or_default(),
            description: text::optional_lines(
                "description",
                &self.description,
                MAX_DESCRIPTION_CHARS,
            )?,
        })
    }
}

impl Services {
    /// Provisions an association: registry row and migrated schema, all or nothing.
    /// Operators only (CLI and, later, the platform console).
    pub(crate) async fn create_association(&self, input: &CreateAssociation) -> AppResult<Tenant> {
        let new = input.validate()?;
        match self.db().create_association(&new).await {
            Ok(t) => Ok(t),
            Err(musubi_db::DbError::Conflict(_)) => Err(AppError {
                field: Some("slug"),
                ..AppError::new(
                    crate::ErrorCode::SlugTaken,
                    "an association with this slug already exists",
                )
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Records (`neighbours` true) or ends two associations' agreement to share their
    /// directories: each one's members may then find and invite the other's people (see
    /// `group_invite_candidates`). Operators only; written to both associations' audit logs.
    /// Returns whether anything changed.
    pub(crate) async fn set_neighbours(
        &self,
        slug: &str,
        other: &str,
        neighbours: bool,
    ) -> AppResult<bool> {
        let a = self.db().resolve_tenant(slug).await?;
        let b = self.db().resolve_tenant(other).await?;
        if a.id == b.id {
            return Err(AppError::invalid(
                "neighbour",
                "an association is not its own neighbour",
            ));
        }
        let mut tx = self.db().core_tx().await?;
        let changed = repo::set_neighbours(&mut tx, a.id, b.id, neighbours).await?;
        tx.commit().await.map_err(AppError::internal)?;
        if changed {
            for (tenant, neighbour) in [(&a, &b), (&b, &a)] {
                let entry =
                    AuditEntry::new(AuditAction::AssociationNeighbours, &RequestMeta::default())
                        .with_detail("neighbour", neighbour.slug.clone())
                        .with_detail("neighbours", neighbours);
                self.audit_record(tenant, &entry).await?;
            }
        }
        Ok(changed)
    }

    /// The associations sharing their directory with `tenant`, by name (slug, name).
    pub async fn neighbours(&self, tenant: &Tenant) -> AppResult<Vec<(String, String)>> {
        let mut tx = self.db().core_tx().await?;
        let rows = repo::neighbours_of(&mut tx, tenant.id).await?;
        tx.commit().await.map_err(AppError::internal)?;
        Ok(rows.into_iter().map(|r| (r.slug, r.name)).collect())
    }

    /// Every association of the deployment with its profile, read from each schema.
    pub async fn association_cards(&self) -> AppResult<Vec<AssociationCard>> {
        let tenants = self.db().tenants().await?;
        let mut cards = Vec::with_capacity(tenants.len());
        // Fan out over the schemas; associations are few, so one after another is fine.
        for t in tenants {
            cards.push(self.association_card(&t).await?);
        }
        Ok(cards)
    }

    /// The association a request is routed to, with its profile.
    pub async fn association_card(&self, tenant: &Tenant) -> AppResult<AssociationCard> {
        let mut tx = self.db().tenant_snapshot(tenant).await?;
        let p = repo::read_profile(&mut tx).await?;
        tx.commit().await?;
        Ok(AssociationCard {
            id: tenant.id.uuid(),
            slug: tenant.slug.clone(),
            name: tenant.name.clone(),
            area: p.area,
            description: p.description,
            updated_at: p.updated_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_url_safe() {
        for ok in ["minatogawa", "abc", "sakura-dai2"] {
            assert!(is_valid_slug(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Abc",
            "1abc",
            "abc-",
            "a_b_c",
            "ab c",
            "浅草",
            "a\"; drop",
        ] {
            assert!(!is_valid_slug(bad), "{bad}");
        }
    }

    #[test]
    fn create_input_is_validated_with_field_names() {
        let mut input = CreateAssociation {
            slug: "minatogawa".into(),
            name: "  ".into(),
            area: String::new(),
            description: String::new(),
        };
        let err = input.validate().unwrap_err();
        assert_eq!(err.field, Some("name"));
        input.name = "み".repeat(101);
        assert_eq!(input.validate().unwrap_err().field, Some("name"));
        input.name = "みなと川医師会".into();
        assert_eq!(input.validate().expect("valid").name, "みなと川医師会");
    }
}
