//! The engine-neutral interface between a consensus engine and the node's chain.

use paratime_state::block::Proposed;
use paratime_state::crypto::PublicKey;
use paratime_state::encoding::Hash;
use paratime_state::validators::ValidatorSet;
use paratime_state::Height;

pub use paratime_state::block::CommitCert;

/// What a consensus engine needs from the node's chain. Deterministic where it matters: every
/// honest node answers `validator_set` and `verify_block` the same from the same committed
/// blocks.
pub trait ChainApp: Send + Sync + 'static {
    /// The chain context (domain separation of signatures).
    fn chain_context(&self) -> String;
    /// Height of the last committed block (0 = genesis only).
    fn last_committed(&self) -> Height;
    /// The validator set that votes on `height`: the set in the state after `height - 1`.
    /// `None` when that state is not known (yet).
    fn validator_set(&self, height: Height) -> Option<ValidatorSet>;
    /// Builds the block at `height` (the next one) for `proposer`, with pending transactions.
    fn build_block(
        &self,
        height: Height,
        proposer: PublicKey,
        time_ms: u64,
    ) -> Result<Proposed, ChainError>;
    /// Whether the next block is worth building now. A proposer asks before it builds its
    /// block and, while the answer is no, waits — at most one block interval — for what is
    /// missing (a runtime round's commitments on their way). Only when the proposer takes its
    /// snapshot of the mempool depends on it, never what any node accepts.
    fn ready_to_propose(&self) -> bool {
        true
    }
    /// Verifies a proposed block at `height` by deterministic re-execution on committed state.
    fn verify_block(&self, height: Height, block: &Proposed) -> Result<(), ChainError>;
    /// Commits a decided block with its certificate, durably, before returning.
    fn commit(&self, block: &Proposed, cert: &CommitCert) -> Result<(), ChainError>;
    /// A committed block with its certificate.
    fn committed(&self, height: Height) -> Option<(Proposed, CommitCert)>;
    /// The lowest height still served to syncing peers.
    fn earliest_height(&self) -> Height;
    /// Remembers a proposal seen (or made) for `(height, round)`, for crash replay.
    fn remember_proposal(&self, height: Height, round: u32, proposer: PublicKey, block: &Proposed);
    /// Proposals remembered for `height`: (round, proposer, block).
    fn proposals_seen(&self, height: Height) -> Vec<(u32, PublicKey, Proposed)>;
    /// A remembered proposal by block hash.
    fn proposal_by_hash(&self, height: Height, hash: &Hash) -> Option<Proposed> {
        self.proposals_seen(height)
            .into_iter()
            .map(|(_, _, b)| b)
            .find(|b| &b.hash() == hash)
    }
    /// Misbehaviour the engine saw (equivocating proposals or votes), for the record.
    fn record_evidence(&self, height: Height, offender: PublicKey, what: &str);
}

/// Why the chain application refused or failed a block.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The engine asked about a height that is not the next one.
    #[error("block {asked} is not the next one (committed: {committed})")]
    NotNext {
        /// The height asked about.
        asked: Height,
        /// The last committed height.
        committed: Height,
    },
    /// The block breaks a rule of the chain: the proposer's fault.
    #[error(transparent)]
    Invalid(#[from] paratime_state::block::BlockError),
    /// The node's own storage failed: not the block's fault.
    #[error("storage: {0}")]
    Storage(String),
    /// The node stops before this height (an upgrade halt): it neither votes for nor commits it.
    #[error("halted for an upgrade: {0}")]
    Halted(String),
}

/// Why a commit certificate is refused.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Made by another consensus engine.
    #[error("commit certificate of engine '{0}', expected '{engine}'", engine = crate::engine::CERT_ENGINE)]
    Engine(String),
    /// Not decodable.
    #[error("commit certificate: {0}")]
    Malformed(String),
    /// For another height or block.
    #[error(
        "commit certificate is for height {cert_height} block {cert_block}, not height {height}"
    )]
    OtherBlock {
        /// The certificate's height.
        cert_height: Height,
        /// The certificate's block.
        cert_block: String,
        /// The height it was offered for.
        height: Height,
    },
    /// Signatures invalid or short of two thirds.
    #[error("commit certificate of height {height}: {reason}")]
    Signatures {
        /// The height.
        height: Height,
        /// The verifier's reason.
        reason: String,
    },
}

/// Verifies a commit certificate: made by this engine, for `height` and `block_hash`, with valid
/// signatures of more than two thirds of `validators`' voting power.
pub async fn verify_commit(
    chain_context: &str,
    height: Height,
    block_hash: &Hash,
    cert: &CommitCert,
    validators: &ValidatorSet,
) -> Result<(), CertError> {
    use malachitebft_app_channel::app::types::core::ThresholdParams;
    use malachitebft_signing::VerifierExt;
    if cert.engine != crate::engine::CERT_ENGINE {
        return Err(CertError::Engine(cert.engine.clone()));
    }
    let c =
        crate::codec::decode_cert(&cert.bytes).map_err(|e| CertError::Malformed(e.to_string()))?;
    if c.height.0 != height.0 || &c.value_id.0 != block_hash {
        return Err(CertError::OtherBlock {
            cert_height: Height(c.height.0),
            cert_block: c.value_id.to_string(),
            height,
        });
    }
    let verifier = crate::signing::EngineVerifier::new(chain_context.to_string());
    verifier
        .verify_commit_certificate(
            &crate::context::Ctx,
            &c,
            &crate::context::ValidatorSet::from_state(validators),
            ThresholdParams::default(),
        )
        .await
        .map_err(|e| CertError::Signatures {
            height,
            reason: format!("{e:?}"),
        })
}

/// What a certificate says, for status: the round it was decided in and who signed it.
pub fn cert_summary(cert: &CommitCert) -> Option<(i64, Vec<PublicKey>)> {
    let c = crate::codec::decode_cert(&cert.bytes).ok()?;
    Some((
        c.round.as_i64(),
        c.commit_signatures.iter().map(|s| s.address.0).collect(),
    ))
}
