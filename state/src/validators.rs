//! The validator set: who votes on blocks and with what voting power.
//!
//! At genesis the set is the genesis document's `validators`; at every epoch boundary it is
//! elected from committed state: every registered node with the validator role whose entity holds
//! the stake its registrations require. An entity's stake is split evenly between its validator
//! nodes. If nobody qualifies, the previous set stays (a chain never elects an empty set).
//! The set for height `h` is the one in the state after `h - 1`.

use crate::address::Address;
use crate::crypto::PublicKey;
use crate::genesis::Genesis;
use crate::state::{RoleMask, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many validators (the largest by voting power).
pub const MAX_VALIDATORS: usize = 100;

/// One validator's voting power is at most this (2^40): `MAX_VALIDATORS` of them sum to less
/// than 2^47, so quorum arithmetic (×2, ×3) can never overflow a u64.
pub const MAX_VOTING_POWER: u64 = 1 << 40;

/// A validator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// Consensus public key: signs proposals and votes.
    pub consensus_id: PublicKey,
    /// The entity whose stake backs it.
    pub entity_id: PublicKey,
    /// The registered node (none for a genesis validator before its node registers).
    pub node_id: Option<PublicKey>,
    /// Voting power, from stake; 1 ..= [`MAX_VOTING_POWER`].
    pub voting_power: u64,
}

/// A validator set, ordered by consensus key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSet {
    /// The validators, sorted by `consensus_id`, no duplicates.
    pub validators: Vec<Validator>,
}

fn power(stake: u64, share: usize) -> u64 {
    let share = u64::try_from(share.max(1)).unwrap_or(u64::MAX);
    (stake / share).clamp(1, MAX_VOTING_POWER)
}

impl ValidatorSet {
    /// Builds a set: keeps the [`MAX_VALIDATORS`] largest (ties by key), sorted by key.
    fn from_candidates(mut v: Vec<Validator>) -> Self {
        v.sort_by(|a, b| {
            b.voting_power
                .cmp(&a.voting_power)
                .then(a.consensus_id.cmp(&b.consensus_id))
        });
        v.dedup_by(|a, b| a.consensus_id == b.consensus_id);
        v.truncate(MAX_VALIDATORS);
        v.sort_by_key(|a| a.consensus_id);
        Self { validators: v }
    }

    /// The first epoch's set.
    pub fn from_genesis(g: &Genesis) -> Self {
        let mut per_entity: BTreeMap<PublicKey, usize> = BTreeMap::new();
        for v in &g.validators {
            *per_entity.entry(v.entity_id).or_default() += 1;
        }
        Self::from_candidates(
            g.validators
                .iter()
                .map(|v| {
                    let stake = g
                        .staking
                        .escrow
                        .get(&Address::from_public_key(&v.entity_id))
                        .copied()
                        .unwrap_or(0);
                    Validator {
                        consensus_id: v.consensus_id,
                        entity_id: v.entity_id,
                        node_id: None,
                        voting_power: power(stake, per_entity[&v.entity_id]),
                    }
                })
                .collect(),
        )
    }

    /// Elects the set from committed state; `None` when no registered node qualifies.
    pub fn elect(state: &State) -> Option<Self> {
        let qualified: Vec<_> = state
            .nodes
            .values()
            .filter(|n| n.roles.contains(RoleMask::VALIDATOR) && n.expiration >= state.epoch)
            .filter(|n| state.stake_of(&n.entity_id) >= state.required_stake(&n.entity_id, None))
            .collect();
        if qualified.is_empty() {
            return None;
        }
        let mut per_entity: BTreeMap<PublicKey, usize> = BTreeMap::new();
        for n in &qualified {
            *per_entity.entry(n.entity_id).or_default() += 1;
        }
        Some(Self::from_candidates(
            qualified
                .iter()
                .map(|n| Validator {
                    consensus_id: n.consensus.id,
                    entity_id: n.entity_id,
                    node_id: Some(n.id),
                    voting_power: power(state.stake_of(&n.entity_id), per_entity[&n.entity_id]),
                })
                .collect(),
        ))
    }

    /// Why the node whose consensus key is `id` is not in the set elected from `state`, in
    /// words an operator can act on (the rules of [`Self::elect`], checked in order).
    pub fn why_not_elected(state: &State, id: &PublicKey) -> String {
        let Some(n) = state.nodes.values().find(|n| n.consensus.id == *id) else {
            return format!(
                "no registered node has consensus key {id}: its registration expired (a node \
                 re-registers every epoch and lapses after {} epochs without: was it stopped, \
                 frozen or cut off from the validators?) or it never registered",
                state.genesis.registry.max_node_expiration
            );
        };
        if !n.roles.contains(RoleMask::VALIDATOR) {
            return format!(
                "node {} is registered with roles {}, without the validator role",
                n.id, n.roles
            );
        }
        if n.expiration < state.epoch {
            return format!(
                "the registration of node {} expired at epoch {} (now epoch {}): it did not \
                 re-register in time",
                n.id, n.expiration, state.epoch
            );
        }
        let (stake, required) = (
            state.stake_of(&n.entity_id),
            state.required_stake(&n.entity_id, None),
        );
        if stake < required {
            return format!(
                "entity {} has {stake} in escrow, below the {required} its registered nodes \
                 require",
                n.entity_id
            );
        }
        format!(
            "node {} qualifies but is not among the {MAX_VALIDATORS} with the most voting power",
            n.id
        )
    }

    /// Sum of the voting powers (cannot overflow: see [`MAX_VOTING_POWER`]).
    pub fn total_power(&self) -> u64 {
        self.validators.iter().map(|v| v.voting_power).sum()
    }

    /// Smallest power that is more than two thirds of the total.
    pub fn quorum(&self) -> u64 {
        self.total_power() * 2 / 3 + 1
    }

    /// The validator with this consensus key.
    pub fn get(&self, id: &PublicKey) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.consensus_id.cmp(id))
            .ok()
            .map(|i| &self.validators[i])
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &PublicKey) -> bool {
        self.get(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PublicKey;

    fn v(k: u8, p: u64) -> Validator {
        Validator {
            consensus_id: PublicKey([k; 32]),
            entity_id: PublicKey([0; 32]),
            node_id: None,
            voting_power: p,
        }
    }

    #[test]
    fn keeps_the_largest_and_sorts_by_key() {
        let mut c: Vec<_> = (0..=200u8).map(|k| v(k, u64::from(k) + 1)).collect();
        c.push(v(7, 1000)); // duplicate key: the larger entry wins
        let s = ValidatorSet::from_candidates(c);
        assert_eq!(s.validators.len(), MAX_VALIDATORS);
        assert!(s
            .validators
            .windows(2)
            .all(|w| w[0].consensus_id < w[1].consensus_id));
        assert_eq!(
            s.get(&PublicKey([7; 32])).map(|v| v.voting_power),
            Some(1000)
        );
        assert!(!s.contains(&PublicKey([8; 32])));
    }

    #[test]
    fn power_is_bounded_and_never_zero() {
        assert_eq!(power(0, 1), 1);
        assert_eq!(power(u64::MAX, 1), MAX_VOTING_POWER);
        assert_eq!(power(10, 3), 3);
        let s = ValidatorSet::from_candidates((0..100u8).map(|k| v(k, MAX_VOTING_POWER)).collect());
        assert_eq!(s.total_power(), 100 * MAX_VOTING_POWER);
        assert_eq!(s.quorum(), s.total_power() * 2 / 3 + 1);
    }
}
