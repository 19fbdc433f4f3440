//! Statement texts per plan slot, so that prepared plans survive a connection's moves between
//! associations.
//!
//! PostgreSQL re-plans a prepared statement whenever `search_path` differs from the one it was
//! planned under, and a tenant connection changes it each time it moves to another association
//! ([`crate::broker`]). On the medium benchmark a third of the topic views ran on a connection
//! that had just moved, and planning was a third of PostgreSQL's CPU. The statements that are
//! costly to plan therefore carry their association's slot in a leading comment: one prepared
//! statement per slot and connection, each keeping the plan for its own schema. Associations
//! get slots in the order they were created, so up to [`PLAN_SLOTS`] of them never share one;
//! beyond that, those sharing a slot re-plan when a connection alternates between them, as every
//! statement did before. PostgreSQL still checks `search_path` and privileges at each execution,
//! so a slot only ever saves work, never changes a result.

use musubi_types::AssociationId;

/// Distinct slots. Each costs every tenant connection a prepared statement (a few tens of
/// kilobytes of PostgreSQL memory) per slotted statement once used.
pub const PLAN_SLOTS: usize = 16;

/// Statement texts that carry a slot (19 today, with some room).
const SLOTTED_STATEMENTS: usize = 20;

/// Room in each tenant connection's statement cache: the unslotted statements plus every
/// slotted one in every slot, so that slots never evict each other.
pub(crate) const STATEMENT_CACHE: usize = 200 + SLOTTED_STATEMENTS * PLAN_SLOTS;

/// An association's plan slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlanSlot(u8);

impl PlanSlot {
    /// The slot of the association created `ordinal`-th (counting from 0).
    pub(crate) fn of_ordinal(ordinal: usize) -> Self {
        // PLAN_SLOTS fits in a u8.
        Self((ordinal % PLAN_SLOTS) as u8)
    }

    /// A slot from the id alone, for an association the registry has not loaded yet.
    pub(crate) fn of_id(id: AssociationId) -> Self {
        let bytes = id.uuid().into_bytes();
        Self::of_ordinal(usize::from(bytes[15]))
    }

    /// `sql` as this slot's statement text.
    pub fn sql(self, sql: &str) -> String {
        format!("/* plan {} */ {sql}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_wrap_around_and_name_their_statements() {
        assert_eq!(
            PlanSlot::of_ordinal(3),
            PlanSlot::of_ordinal(3 + PLAN_SLOTS)
        );
        assert_ne!(PlanSlot::of_ordinal(3), PlanSlot::of_ordinal(4));
        let a = PlanSlot::of_ordinal(1).sql("SELECT 1");
        let b = PlanSlot::of_ordinal(2).sql("SELECT 1");
        assert_ne!(a, b, "each slot is a statement text of its own");
        assert!(a.ends_with("SELECT 1"));
    }
}
