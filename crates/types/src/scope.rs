//! Topic visibility scopes.

use crate::ProfessionClass;

/// Who may see a topic: a non-empty set of profession classes, stored as bits in a smallint
/// (`topics.scope`; see `core.scope_bit`). Bits outside 1..=7 fail to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Scope(i16);

impl sqlx::Type<sqlx::Postgres> for Scope {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <i16 as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <i16 as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for Scope {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <i16 as sqlx::Encode<'q, sqlx::Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Scope {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let bits = <i16 as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
        Scope::from_bits(bits).ok_or_else(|| format!("not a scope: {bits}").into())
    }
}

impl Scope {
    pub const CO_MEDICAL: Scope = Scope(1);
    pub const COLLABORATING_DOCTORS: Scope = Scope(2);
    pub const HOSPITAL_DOCTORS: Scope = Scope(4);
    /// Everyone in the group.
    pub const EVERYONE: Scope = Scope(7);
    pub const DOCTORS: Scope = Scope(2 | 4);

    /// The one-class scope of `class`: a viewer's bit.
    pub const fn of(class: ProfessionClass) -> Scope {
        match class {
            ProfessionClass::CoMedical => Self::CO_MEDICAL,
            ProfessionClass::CollaboratingDoctor => Self::COLLABORATING_DOCTORS,
            ProfessionClass::HospitalDoctor => Self::HOSPITAL_DOCTORS,
        }
    }

    /// The scope of these classes; `None` when there are none.
    pub fn from_classes(classes: &[ProfessionClass]) -> Option<Scope> {
        let bits = classes.iter().fold(0, |acc, c| acc | Self::of(*c).0);
        Self::from_bits(bits)
    }

    /// A scope from stored or submitted bits; `None` outside 1..=7.
    pub fn from_bits(bits: i16) -> Option<Scope> {
        (1..=Self::EVERYONE.0)
            .contains(&bits)
            .then_some(Scope(bits))
    }

    pub const fn bits(self) -> i16 {
        self.0
    }

    /// Whether the two scopes share a class (e.g. a topic's scope and a viewer's bit).
    pub const fn intersects(self, other: Scope) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn includes(self, class: ProfessionClass) -> bool {
        self.intersects(Self::of(class))
    }

    /// Both scopes' classes.
    pub const fn union(self, other: Scope) -> Scope {
        Scope(self.0 | other.0)
    }

    pub fn classes(self) -> Vec<ProfessionClass> {
        ProfessionClass::ALL
            .into_iter()
            .filter(|c| self.includes(*c))
            .collect()
    }

    pub const fn is_everyone(self) -> bool {
        self.0 == Self::EVERYONE.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_non_empty_sets_of_the_three_classes_are_scopes() {
        assert_eq!(Scope::from_bits(0), None);
        assert_eq!(Scope::from_bits(8), None);
        assert_eq!(Scope::from_bits(-1), None);
        assert_eq!(Scope::from_bits(7), Some(Scope::EVERYONE));
        assert_eq!(Scope::from_classes(&[]), None);
        assert_eq!(
            Scope::from_classes(&[
                ProfessionClass::CollaboratingDoctor,
                ProfessionClass::HospitalDoctor
            ]),
            Some(Scope::DOCTORS)
        );
    }

    #[test]
    fn classes_round_trip() {
        for bits in 1..=7 {
            let scope = Scope::from_bits(bits).expect("in range");
            assert_eq!(Scope::from_classes(&scope.classes()), Some(scope));
        }
        assert!(Scope::DOCTORS.includes(ProfessionClass::HospitalDoctor));
        assert!(!Scope::DOCTORS.includes(ProfessionClass::CoMedical));
        assert!(Scope::EVERYONE.is_everyone());
    }
}
