//! Typed ids: a group id cannot be passed where a topic id is expected. Stored and sent as
//! plain UUIDs (`sqlx` and `serde` see through them).

use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident;)+) => {$(
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id (time-ordered, as every id Musubi makes).
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )+};
}

id_type! {
    /// `core.associations.id`.
    AssociationId;
    /// `core.groups.id` (and the host's `groups.id`).
    GroupId;
    /// `topics.id`.
    TopicId;
    /// `comments.id`.
    CommentId;
    /// `core.users.id`: one person, whatever their associations.
    PersonId;
    /// `patients.id`: one entry of an association's patient register.
    PatientId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_and_print_as_their_uuid() {
        let u = Uuid::now_v7();
        let g = GroupId::from(u);
        assert_eq!(g.to_string(), u.to_string());
        assert_eq!(g.to_string().parse::<GroupId>().ok(), Some(g));
        assert!("not-a-uuid".parse::<TopicId>().is_err());
        assert_eq!(Uuid::from(g), u);
        let json = serde_json::to_string(&PersonId::from(u)).expect("serialise");
        assert_eq!(json, format!("\"{u}\""));
    }
}
