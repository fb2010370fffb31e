//! Malachite's `Context` for our chain: heights are block heights, addresses are consensus
//! public keys, the value is the block hash (the block itself travels as proposal parts), and
//! votes are stake-weighted by the validator set of the committed state.

use malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType,
};
use paratime_state::crypto::{PublicKey, SignatureBytes};
use paratime_state::encoding::{hash_of, Hash};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A block height.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Self(0);
    const INITIAL: Self = Self(1);

    fn increment_by(&self, n: u64) -> Self {
        Self(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its consensus public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address(pub PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Address for Address {}

/// A block hash, the value consensus decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockHash(pub Hash);

impl fmt::Display for BlockHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The value: a block, named by its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Value(pub BlockHash);

impl mc::Value for Value {
    type Id = BlockHash;

    fn id(&self) -> BlockHash {
        self.0
    }
}

/// The wire form of a round (`-1` = nil).
pub fn round_to_wire(r: Round) -> i64 {
    r.as_i64()
}

/// A round from its wire form.
pub fn round_from_wire(r: i64) -> Round {
    Round::from(r)
}

/// A proposal: the proposer's signed claim that `value` is its block for `(height, round)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// Block hash.
    pub value: Value,
    /// Proof-of-lock round (nil if none).
    pub pol_round: Round,
    /// Proposer.
    pub proposer: Address,
}

impl Proposal {
    /// The bytes the proposer signs.
    pub fn sign_bytes(&self) -> Vec<u8> {
        paratime_state::encoding::canonical_cbor(&(
            "proposal",
            self.height.0,
            round_to_wire(self.round),
            self.value.0 .0,
            round_to_wire(self.pol_round),
            self.proposer.0,
        ))
    }
}

impl mc::Proposal<Ctx> for Proposal {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &Value {
        &self.value
    }
    fn take_value(self) -> Value {
        self.value
    }
    fn pol_round(&self) -> Round {
        self.pol_round
    }
    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit. No extensions: the signed bytes are exactly what
/// `new_prevote`/`new_precommit` rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// Prevote or precommit.
    pub typ: VoteType,
    /// Height.
    pub height: Height,
    /// Round.
    pub round: Round,
    /// The block voted for, or nil.
    pub value: NilOrVal<BlockHash>,
    /// Voter.
    pub validator: Address,
}

/// 0 prevote, 1 precommit.
pub fn vote_type_to_wire(t: VoteType) -> u8 {
    match t {
        VoteType::Prevote => 0,
        VoteType::Precommit => 1,
    }
}

/// A vote type from its wire form.
pub fn vote_type_from_wire(t: u8) -> Option<VoteType> {
    match t {
        0 => Some(VoteType::Prevote),
        1 => Some(VoteType::Precommit),
        _ => None,
    }
}

/// A nil-or-value from its wire form.
pub fn nil_or_val(v: Option<Hash>) -> NilOrVal<BlockHash> {
    match v {
        Some(h) => NilOrVal::Val(BlockHash(h)),
        None => NilOrVal::Nil,
    }
}

/// A nil-or-value's wire form.
pub fn nil_or_val_to_wire(v: &NilOrVal<BlockHash>) -> Option<Hash> {
    match v {
        NilOrVal::Val(h) => Some(h.0),
        NilOrVal::Nil => None,
    }
}

impl Vote {
    /// The bytes the voter signs.
    pub fn sign_bytes(&self) -> Vec<u8> {
        paratime_state::encoding::canonical_cbor(&(
            "vote",
            vote_type_to_wire(self.typ),
            self.height.0,
            round_to_wire(self.round),
            nil_or_val_to_wire(&self.value),
            self.validator.0,
        ))
    }
}

impl mc::Vote<Ctx> for Vote {
    fn height(&self) -> Height {
        self.height
    }
    fn round(&self) -> Round {
        self.round
    }
    fn value(&self) -> &NilOrVal<BlockHash> {
        &self.value
    }
    fn take_value(self) -> NilOrVal<BlockHash> {
        self.value
    }
    fn vote_type(&self) -> VoteType {
        self.typ
    }
    fn validator_address(&self) -> &Address {
        &self.validator
    }
    fn extension(&self) -> Option<&SignedExtension<Ctx>> {
        None
    }
    fn take_extension(&mut self) -> Option<SignedExtension<Ctx>> {
        None
    }
    fn extend(self, _extension: SignedExtension<Ctx>) -> Self {
        self
    }
}

/// A proposal part: the block, streamed after the proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProposalPart {
    /// First part: whose block for which round, and its total size.
    Init {
        /// Height.
        height: u64,
        /// Round.
        round: i64,
        /// Proof-of-lock round.
        pol_round: i64,
        /// Proposer.
        proposer: PublicKey,
        /// Length of the encoded block.
        len: u64,
    },
    /// A chunk of the encoded block.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl mc::ProposalPart<Ctx> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, Self::Init { .. })
    }
    fn is_last(&self) -> bool {
        false
    }
}

/// A validator with its voting power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Address (= public key).
    pub address: Address,
    /// Public key.
    pub public_key: PublicKey,
    /// Voting power.
    pub voting_power: u64,
}

impl mc::Validator<Ctx> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }
    fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    fn voting_power(&self) -> u64 {
        self.voting_power
    }
}

/// The validator set of a height, from committed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    /// Sorted by address (the state's order).
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// From the state's set.
    pub fn from_state(set: &paratime_state::validators::ValidatorSet) -> Self {
        Self {
            validators: set
                .validators
                .iter()
                .map(|v| Validator {
                    address: Address(v.consensus_id),
                    public_key: v.consensus_id,
                    voting_power: v.voting_power,
                })
                .collect(),
        }
    }
}

impl mc::ValidatorSet<Ctx> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }
    fn total_voting_power(&self) -> u64 {
        // Bounded by the state crate: at most 100 validators of at most 2^40 each.
        self.validators
            .iter()
            .fold(0u64, |s, v| s.saturating_add(v.voting_power))
    }
    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .map(|i| &self.validators[i])
    }
    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// Ed25519 with our encodings. The private key never enters the engine (the node's signer
/// holds it), so the scheme's private key type is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheme;

/// No private key here.
#[derive(Clone, Debug)]
pub struct NoPrivateKey;

impl mc::SigningScheme for Scheme {
    type DecodingError = String;
    type Signature = SignatureBytes;
    type PublicKey = PublicKey;
    type PrivateKey = NoPrivateKey;

    fn decode_signature(bytes: &[u8]) -> Result<SignatureBytes, String> {
        <[u8; 64]>::try_from(bytes)
            .map(SignatureBytes)
            .map_err(|_| format!("a signature is 64 bytes, not {}", bytes.len()))
    }
    fn encode_signature(signature: &SignatureBytes) -> Vec<u8> {
        signature.0.to_vec()
    }
    fn decode_public_key(bytes: &[u8]) -> Result<PublicKey, String> {
        <[u8; 32]>::try_from(bytes)
            .map(PublicKey)
            .map_err(|_| format!("a public key is 32 bytes, not {}", bytes.len()))
    }
    fn encode_public_key(public_key: &PublicKey) -> Vec<u8> {
        public_key.0.to_vec()
    }
}

/// Our context.
#[derive(Clone, Debug, Default)]
pub struct Ctx;

impl mc::Context for Ctx {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = Value;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Scheme;

    /// Stake-weighted and deterministic: a point in `[0, total power)` drawn from the hash of
    /// (height, round) picks the validator whose cumulative power covers it.
    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        let total = mc::ValidatorSet::<Self>::total_voting_power(validator_set).max(1);
        let seed = hash_of(&(height.0, round_to_wire(round)));
        let mut point = u64::from_be_bytes(seed[..8].try_into().unwrap_or([0; 8])) % total;
        for v in &validator_set.validators {
            if point < v.voting_power {
                return v;
            }
            point -= v.voting_power;
        }
        validator_set
            .validators
            .last()
            .expect("Malachite never asks for a proposer of an empty validator set")
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: Value,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<BlockHash>,
        address: Address,
    ) -> Vote {
        Vote {
            typ: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}
