//! Malachite's signer and verifier over the node's one signer: every proposal and vote goes
//! through [`SlotSigner`], which records it before the signature leaves, and refuses a second,
//! different message for the same height, round and step.

use crate::context::{Ctx, Proposal, Vote};
use malachitebft_app_channel::app::types::core::{
    SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use malachitebft_signing::{Error, Signer, VerificationResult, Verifier};
use paratime_state::crypto::{self, PublicKey, Signature, SignatureBytes};
use paratime_state::signing::{KeyRole, Slot, SlotSigner, Step};
use std::sync::Arc;

/// Domain of consensus proposals.
pub const CONTEXT_PROPOSAL: &str = "paratime-node/consensus: proposal";
/// Domain of consensus votes.
pub const CONTEXT_VOTE: &str = "paratime-node/consensus: vote";
/// Domain of the proof binding a consensus key to a consensus-network peer ID.
pub const CONTEXT_PEER: &str = "paratime-node/consensus: peer binding";

/// Signs for the engine through the node's signer.
pub struct EngineSigner {
    signer: Arc<dyn SlotSigner>,
    chain_context: String,
}

impl EngineSigner {
    /// A signer for `chain_context`.
    pub fn new(signer: Arc<dyn SlotSigner>, chain_context: String) -> Self {
        Self {
            signer,
            chain_context,
        }
    }

    fn sign(&self, slot: &Slot, base: &str, bytes: &[u8]) -> Result<SignatureBytes, Error> {
        let ctx = crypto::context(base, Some(&self.chain_context));
        self.signer
            .sign(KeyRole::Consensus, slot, &ctx, bytes)
            .map(|s| s.signature)
            .map_err(|e| {
                log::error!(target: "consensus", "{e}");
                Error::from_source(e)
            })
    }
}

fn round_u32(r: malachitebft_app_channel::app::types::core::Round) -> u32 {
    r.as_u32().unwrap_or(u32::MAX)
}

#[async_trait::async_trait]
impl Signer<Ctx> for EngineSigner {
    async fn sign_vote(&self, vote: Vote) -> Result<SignedMessage<Ctx, Vote>, Error> {
        let slot = Slot::Consensus {
            height: vote.height.0,
            round: round_u32(vote.round),
            step: match vote.typ {
                VoteType::Prevote => Step::Prevote,
                VoteType::Precommit => Step::Precommit,
            },
        };
        let sig = self.sign(&slot, CONTEXT_VOTE, &vote.sign_bytes())?;
        Ok(SignedMessage::new(vote, sig))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<Ctx, Proposal>, Error> {
        let slot = Slot::Consensus {
            height: proposal.height.0,
            round: round_u32(proposal.round),
            step: Step::Propose,
        };
        let sig = self.sign(&slot, CONTEXT_PROPOSAL, &proposal.sign_bytes())?;
        Ok(SignedMessage::new(proposal, sig))
    }

    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<Ctx>,
        _extension: (),
    ) -> Result<SignedMessage<Ctx, ()>, Error> {
        Err(Error::from_source(
            "vote extensions are disabled on this chain".to_string(),
        ))
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<Ctx>, Error> {
        let bytes = ValidatorProof::<Ctx>::signing_bytes(&public_key, &peer_id);
        // One slot per binding: the same binding again repeats its signature.
        let slot = Slot::PeerBinding {
            digest: paratime_state::encoding::hash(&bytes),
        };
        let sig = self.sign(&slot, CONTEXT_PEER, &bytes)?;
        Ok(ValidatorProof::new(public_key, peer_id, sig))
    }
}

/// Verifies the engine's signatures.
pub struct EngineVerifier {
    chain_context: String,
}

impl EngineVerifier {
    /// A verifier for `chain_context`.
    pub fn new(chain_context: String) -> Self {
        Self { chain_context }
    }

    fn verify(
        &self,
        base: &str,
        bytes: &[u8],
        signature: &SignatureBytes,
        public_key: &PublicKey,
    ) -> VerificationResult {
        let s = Signature {
            public_key: *public_key,
            signature: *signature,
        };
        VerificationResult::from_bool(
            s.verify(&crypto::context(base, Some(&self.chain_context)), bytes),
        )
    }
}

#[async_trait::async_trait]
impl Verifier<Ctx> for EngineVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &SignatureBytes,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(self.verify(CONTEXT_VOTE, &vote.sign_bytes(), signature, public_key))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &SignatureBytes,
        public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(self.verify(
            CONTEXT_PROPOSAL,
            &proposal.sign_bytes(),
            signature,
            public_key,
        ))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<Ctx>,
        _extension: &(),
        _signature: &SignatureBytes,
        _public_key: &PublicKey,
    ) -> Result<VerificationResult, Error> {
        Ok(VerificationResult::Invalid)
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<Ctx>,
    ) -> Result<VerificationResult, Error> {
        let Ok(pk) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        Ok(self.verify(
            CONTEXT_PEER,
            &proof.preimage(),
            &proof.signature,
            &PublicKey(pk),
        ))
    }
}
