//! Choosing the swarm responsible for an account (network spec §2.2).
//!
//! Swarm ids and swarm-space values live on a ring of size 2^64. For a value `v`, `right`
//! is the first swarm with id ≥ `v` (wrapping to the lowest id) and `left` is the swarm just
//! before `right` on the ring. `right` wins only if it is strictly closer; ties go to
//! `left`. The id 2^64−1 marks an unassigned node and is never a swarm.

use crate::error::{Error, Result};
use crate::space::AccountId;

/// The swarm id oxend uses for "no swarm" (unassigned nodes).
pub const INVALID_SWARM_ID: u64 = u64::MAX;

fn check_id(id: u64) -> Result<u64> {
    if id == INVALID_SWARM_ID {
        Err(Error::InvalidSwarmId)
    } else {
        Ok(id)
    }
}

/// One-pass closest-swarm search over swarm ids in any order (duplicates allowed), fed one
/// id at a time (lets callers stream ids without collecting them first).
///
/// The ring successor-or-equal (`right`) minimises `id − v` and the ring predecessor
/// minimises `v − id` (both wrapping), which is exactly the sorted-list rule.
#[derive(Debug, Clone, Copy)]
pub struct ClosestScan {
    space: u64,
    best: Option<(u64, u64, u64, u64)>, // (right, dright, left, dleft)
}

impl ClosestScan {
    /// Starts a search for the swarm-space value `space`.
    pub fn new(space: u64) -> Self {
        Self { space, best: None }
    }

    /// Considers one swarm id.
    #[inline]
    pub fn push(&mut self, id: u64) -> Result<()> {
        let id = check_id(id)?;
        let dr = id.wrapping_sub(self.space);
        let dl = self.space.wrapping_sub(id);
        match &mut self.best {
            None => self.best = Some((id, dr, id, dl)),
            Some((right, dright, left, dleft)) => {
                if dr < *dright {
                    *right = id;
                    *dright = dr;
                }
                if dl < *dleft {
                    *left = id;
                    *dleft = dl;
                }
            }
        }
        Ok(())
    }

    /// The chosen swarm: `right` only if strictly closer, else `left`.
    pub fn finish(self) -> Result<u64> {
        let (right, dright, left, dleft) = self.best.ok_or(Error::NoSwarms)?;
        // An exact match has dright == 0 == dleft and left == right.
        Ok(if dright < dleft { right } else { left })
    }
}

/// Closest swarm for a swarm-space value, over swarm ids in any order (duplicates allowed).
pub fn closest_swarm_for_space(space: u64, swarm_ids: &[u64]) -> Result<u64> {
    let mut scan = ClosestScan::new(space);
    for &id in swarm_ids {
        scan.push(id)?;
    }
    scan.finish()
}

/// Closest swarm for an account ID (66 hex digits, any prefix), over swarm ids in any order.
pub fn closest_swarm(account_id: &str, swarm_ids: &[u64]) -> Result<u64> {
    closest_swarm_for_space(AccountId::parse(account_id)?.swarm_space(), swarm_ids)
}

/// A sorted, deduplicated set of swarm ids for repeated lookups in O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmIndex {
    ids: Vec<u64>,
}

impl SwarmIndex {
    /// Builds the index; ids may come in any order and may repeat. An empty index is allowed
    /// (lookups then fail with [`Error::NoSwarms`]).
    pub fn new(ids: impl IntoIterator<Item = u64>) -> Result<Self> {
        let mut ids = ids
            .into_iter()
            .map(check_id)
            .collect::<Result<Vec<u64>>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(Self { ids })
    }

    /// The swarm ids, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Number of distinct swarms.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True if there are no swarms.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// True if `id` is one of the swarms.
    pub fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Closest swarm for a swarm-space value (binary search).
    pub fn closest_for_space(&self, space: u64) -> Result<u64> {
        let ids = &self.ids;
        let n = ids.len();
        if n == 0 {
            return Err(Error::NoSwarms);
        }
        let r = ids.partition_point(|&id| id < space);
        let right = if r == n { ids[0] } else { ids[r] };
        let left = if r == 0 || r == n {
            ids[n - 1]
        } else {
            ids[r - 1]
        };
        let dright = right.wrapping_sub(space);
        let dleft = space.wrapping_sub(left);
        Ok(if dright < dleft { right } else { left })
    }

    /// Closest swarm for an account ID (66 hex digits, any prefix).
    pub fn closest(&self, account_id: &str) -> Result<u64> {
        self.closest_for_space(AccountId::parse(account_id)?.swarm_space())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_invalid() {
        assert_eq!(closest_swarm_for_space(5, &[]), Err(Error::NoSwarms));
        assert_eq!(
            closest_swarm_for_space(5, &[1, u64::MAX]),
            Err(Error::InvalidSwarmId)
        );
        assert_eq!(SwarmIndex::new([3, u64::MAX]), Err(Error::InvalidSwarmId));
        let empty = SwarmIndex::new([]).expect("empty index is allowed");
        assert_eq!(empty.closest_for_space(0), Err(Error::NoSwarms));
    }

    #[test]
    fn single_swarm_always_wins() {
        let idx = SwarmIndex::new([42]).expect("valid");
        for v in [0, 41, 42, 43, u64::MAX / 2, u64::MAX] {
            assert_eq!(idx.closest_for_space(v), Ok(42));
            assert_eq!(closest_swarm_for_space(v, &[42]), Ok(42));
        }
    }

    #[test]
    fn linear_matches_index_exhaustively_on_small_ring_cases() {
        // Ids near both ends of the ring to exercise wrap-around and ties.
        let ids = [0u64, 7, 8, 20, u64::MAX - 9, u64::MAX - 1];
        let idx = SwarmIndex::new(ids).expect("valid");
        let mut values: Vec<u64> = (0..40).collect();
        values.extend((0..40).map(|d| u64::MAX - d));
        values.extend([u64::MAX / 2, u64::MAX / 2 + 1]);
        for v in values {
            for k in 1..=ids.len() {
                let sub = &ids[..k];
                let sub_idx = SwarmIndex::new(sub.iter().copied()).expect("valid");
                let mut rev = sub.to_vec();
                rev.reverse();
                let expected = sub_idx.closest_for_space(v).expect("non-empty");
                assert_eq!(
                    closest_swarm_for_space(v, sub),
                    Ok(expected),
                    "v={v} ids={sub:?}"
                );
                assert_eq!(
                    closest_swarm_for_space(v, &rev),
                    Ok(expected),
                    "v={v} ids={rev:?}"
                );
            }
            assert!(idx.closest_for_space(v).is_ok());
        }
    }
}
