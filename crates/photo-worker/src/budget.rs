//! One memory budget for the whole process (`PHOTO_MEMORY_BUDGET`).
//!
//! Limits per image (pixels, sides) cannot bound a process that works on
//! several photos at once: three photos each under the limits can still take
//! more memory than the pod has. So each photo's working memory is estimated
//! from its header ([`crate::imaging::Header::working_bytes`]) and reserved
//! here before a pixel is decoded; the reservation is held until the blocking
//! work ends, and a photo waits while others hold the budget. A photo that
//! needs more than the whole budget can never run and is refused at once.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in KiB: a semaphore takes at most `u32` permits at once.
const UNIT: u64 = 1024;

/// The bytes that photos in work may hold at once. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    units: Arc<Semaphore>,
    total_units: u32,
}

/// A reservation of a photo's working memory, returned to the budget on drop.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

/// More than the whole budget was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("about {} MiB, more than PHOTO_MEMORY_BUDGET ({} MiB)", .needed.div_ceil(1 << 20), .budget >> 20)]
pub struct OverBudget {
    pub needed: u64,
    pub budget: u64,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to whole KiB, at most 4 TiB).
    pub fn new(bytes: u64) -> Self {
        let total_units = u32::try_from(bytes / UNIT).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
        }
    }

    /// The whole budget in bytes.
    pub fn total(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Fails at once when `bytes` is more than the whole budget, so that a
    /// photo that can never run is refused before it waits for anything.
    pub fn check(&self, bytes: u64) -> Result<(), OverBudget> {
        if bytes.div_ceil(UNIT) > u64::from(self.total_units) {
            return Err(OverBudget {
                needed: bytes,
                budget: self.total(),
            });
        }
        Ok(())
    }

    /// Waits until `bytes` are free and reserves them.
    pub async fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        self.check(bytes)?;
        let units = u32::try_from(bytes.div_ceil(UNIT).max(1)).unwrap_or(u32::MAX);
        let permit = Arc::clone(&self.units)
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed");
        Ok(Reservation { _permit: permit })
    }

    /// Bytes reserved right now.
    pub fn reserved(&self) -> u64 {
        u64::from(self.total_units).saturating_sub(self.units.available_permits() as u64) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_room_and_return_it_when_dropped() {
        let budget = MemoryBudget::new(10 << 20);
        let first = budget.reserve(6 << 20).await.expect("fits");
        assert_eq!(budget.reserved(), 6 << 20);
        let second = budget.reserve(6 << 20);
        tokio::pin!(second);
        assert!(
            futures::poll!(second.as_mut()).is_pending(),
            "no room until the first is dropped"
        );
        drop(first);
        let second = second.await.expect("fits now");
        assert_eq!(budget.reserved(), 6 << 20);
        drop(second);
        assert_eq!(budget.reserved(), 0);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once_with_both_figures() {
        let budget = MemoryBudget::new(1 << 20);
        let err = budget.reserve(3 << 20).await.expect_err("over");
        assert_eq!(
            err.to_string(),
            "about 3 MiB, more than PHOTO_MEMORY_BUDGET (1 MiB)"
        );
        assert_eq!(budget.reserved(), 0);
    }
}
