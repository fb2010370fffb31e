//! The wire and WAL encoding of the engine's messages: CBOR of plain mirror structs, so no
//! Malachite type needs serde and every field is checked when decoding (sizes are bounded by the
//! engine's network limits before a message reaches us).

use crate::context::{
    nil_or_val, nil_or_val_to_wire, round_from_wire, round_to_wire, vote_type_from_wire,
    vote_type_to_wire, Address, BlockHash, Ctx, Height, Proposal, ProposalPart, Value, Vote,
};
use bytes::Bytes;
use malachitebft_app_channel::app::consensus::LivenessMsg;
use malachitebft_app_channel::app::streaming::StreamContent;
use malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use malachitebft_app_channel::app::types::core::{
    CommitCertificate, CommitSignature, ExtendedCommitCertificate, ExtendedCommitSignature,
    PolkaCertificate, PolkaSignature, RoundCertificate, RoundCertificateType, RoundSignature,
    SignedMessage, ValidatorProof, Validity,
};
use malachitebft_app_channel::app::types::streaming::{StreamId, StreamMessage};
use malachitebft_app_channel::app::types::sync::{RawDecidedValue, Request, Response, Status};
use malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use malachitebft_sync::{ValueRequest, ValueResponse};
use paratime_state::crypto::{PublicKey, SignatureBytes};
use paratime_state::encoding::Hash;
use serde::{Deserialize, Serialize};

/// Encoding errors.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Malformed bytes.
    #[error("malformed consensus message: {0}")]
    Malformed(String),
}

/// The one codec for network, sync and WAL.
#[derive(Clone, Copy, Debug, Default)]
pub struct CborCodec;

fn enc<T: Serialize>(v: &T) -> Result<Bytes, CodecError> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(Bytes::from(out))
}

fn dec<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, CodecError> {
    ciborium::from_reader(b.as_ref()).map_err(|e| CodecError::Malformed(e.to_string()))
}

fn bad(what: &str) -> CodecError {
    CodecError::Malformed(what.to_string())
}

#[derive(Serialize, Deserialize)]
struct WVote {
    t: u8,
    h: u64,
    r: i64,
    v: Option<Hash>,
    a: PublicKey,
}

impl WVote {
    fn from(v: &Vote) -> Self {
        Self {
            t: vote_type_to_wire(v.typ),
            h: v.height.0,
            r: round_to_wire(v.round),
            v: nil_or_val_to_wire(&v.value),
            a: v.validator.0,
        }
    }
    fn into(self) -> Result<Vote, CodecError> {
        Ok(Vote {
            typ: vote_type_from_wire(self.t).ok_or_else(|| bad("vote type"))?,
            height: Height(self.h),
            round: round_from_wire(self.r),
            value: nil_or_val(self.v),
            validator: Address(self.a),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WProposal {
    h: u64,
    r: i64,
    v: Hash,
    pol: i64,
    a: PublicKey,
}

impl WProposal {
    fn from(p: &Proposal) -> Self {
        Self {
            h: p.height.0,
            r: round_to_wire(p.round),
            v: p.value.0 .0,
            pol: round_to_wire(p.pol_round),
            a: p.proposer.0,
        }
    }
    fn into(self) -> Proposal {
        Proposal {
            height: Height(self.h),
            round: round_from_wire(self.r),
            value: Value(BlockHash(self.v)),
            pol_round: round_from_wire(self.pol),
            proposer: Address(self.a),
        }
    }
}

#[derive(Serialize, Deserialize)]
enum WConsensus {
    Vote(WVote, SignatureBytes),
    Proposal(WProposal, SignatureBytes),
}

fn consensus_to_wire(m: &SignedConsensusMsg<Ctx>) -> WConsensus {
    match m {
        SignedConsensusMsg::Vote(v) => WConsensus::Vote(WVote::from(&v.message), v.signature),
        SignedConsensusMsg::Proposal(p) => {
            WConsensus::Proposal(WProposal::from(&p.message), p.signature)
        }
    }
}

fn consensus_from_wire(w: WConsensus) -> Result<SignedConsensusMsg<Ctx>, CodecError> {
    Ok(match w {
        WConsensus::Vote(v, s) => SignedConsensusMsg::Vote(SignedMessage::new(v.into()?, s)),
        WConsensus::Proposal(p, s) => SignedConsensusMsg::Proposal(SignedMessage::new(p.into(), s)),
    })
}

#[derive(Serialize, Deserialize)]
struct WPolka {
    h: u64,
    r: i64,
    v: Hash,
    sigs: Vec<(PublicKey, SignatureBytes)>,
}

fn polka_to_wire(c: &PolkaCertificate<Ctx>) -> WPolka {
    WPolka {
        h: c.height.0,
        r: round_to_wire(c.round),
        v: c.value_id.0,
        sigs: c
            .polka_signatures
            .iter()
            .map(|s| (s.address.0, s.signature))
            .collect(),
    }
}

fn polka_from_wire(w: WPolka) -> PolkaCertificate<Ctx> {
    PolkaCertificate {
        height: Height(w.h),
        round: round_from_wire(w.r),
        value_id: BlockHash(w.v),
        polka_signatures: w
            .sigs
            .into_iter()
            .map(|(a, s)| PolkaSignature::new(Address(a), s))
            .collect(),
    }
}

#[derive(Serialize, Deserialize)]
struct WRound {
    h: u64,
    r: i64,
    skip: bool,
    sigs: Vec<(u8, Option<Hash>, PublicKey, SignatureBytes)>,
}

#[derive(Serialize, Deserialize)]
enum WLiveness {
    Vote(WVote, SignatureBytes),
    Polka(WPolka),
    Skip(WRound),
}

#[derive(Serialize, Deserialize)]
struct WStream {
    id: serde_bytes::ByteBuf,
    seq: u64,
    part: Option<ProposalPart>,
}

#[derive(Serialize, Deserialize)]
struct WProof {
    pk: serde_bytes::ByteBuf,
    peer: serde_bytes::ByteBuf,
    sig: SignatureBytes,
}

#[derive(Serialize, Deserialize)]
struct WStatus {
    peer: serde_bytes::ByteBuf,
    tip: u64,
    min: u64,
}

#[derive(Serialize, Deserialize)]
struct WCert {
    h: u64,
    r: i64,
    v: Hash,
    sigs: Vec<(PublicKey, SignatureBytes)>,
}

/// A commit certificate's encoding (also what [`crate::chain::CommitCert`] holds).
pub fn encode_cert(c: &CommitCertificate<Ctx>) -> Vec<u8> {
    enc(&WCert {
        h: c.height.0,
        r: round_to_wire(c.round),
        v: c.value_id.0,
        sigs: c
            .commit_signatures
            .iter()
            .map(|s| (s.address.0, s.signature))
            .collect(),
    })
    .map(|b| b.to_vec())
    .unwrap_or_default()
}

/// Decodes a commit certificate.
pub fn decode_cert(b: &[u8]) -> Result<CommitCertificate<Ctx>, CodecError> {
    let w: WCert = dec(&Bytes::copy_from_slice(b))?;
    Ok(CommitCertificate {
        height: Height(w.h),
        round: round_from_wire(w.r),
        value_id: BlockHash(w.v),
        commit_signatures: w
            .sigs
            .into_iter()
            .map(|(a, s)| CommitSignature::new(Address(a), s))
            .collect(),
    })
}

#[derive(Serialize, Deserialize)]
struct WDecided {
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    cert: WCert,
}

#[derive(Serialize, Deserialize)]
struct WResponse {
    start: u64,
    values: Vec<WDecided>,
}

#[derive(Serialize, Deserialize)]
struct WProposed {
    h: u64,
    r: i64,
    vr: i64,
    proposer: PublicKey,
    v: Hash,
    valid: bool,
}

impl Codec<ProposalPart> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        dec(&bytes)
    }
    fn encode(&self, msg: &ProposalPart) -> Result<Bytes, CodecError> {
        enc(msg)
    }
}

impl Codec<SignedConsensusMsg<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<Ctx>, CodecError> {
        consensus_from_wire(dec(&bytes)?)
    }
    fn encode(&self, msg: &SignedConsensusMsg<Ctx>) -> Result<Bytes, CodecError> {
        enc(&consensus_to_wire(msg))
    }
}

impl Codec<LivenessMsg<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<Ctx>, CodecError> {
        Ok(match dec::<WLiveness>(&bytes)? {
            WLiveness::Vote(v, s) => LivenessMsg::Vote(SignedMessage::new(v.into()?, s)),
            WLiveness::Polka(p) => LivenessMsg::PolkaCertificate(polka_from_wire(p)),
            WLiveness::Skip(r) => {
                let mut sigs = Vec::with_capacity(r.sigs.len());
                for (t, v, a, s) in r.sigs {
                    sigs.push(RoundSignature::new(
                        vote_type_from_wire(t).ok_or_else(|| bad("vote type"))?,
                        nil_or_val(v),
                        Address(a),
                        s,
                    ));
                }
                LivenessMsg::SkipRoundCertificate(RoundCertificate {
                    height: Height(r.h),
                    round: round_from_wire(r.r),
                    cert_type: if r.skip {
                        RoundCertificateType::Skip
                    } else {
                        RoundCertificateType::Precommit
                    },
                    round_signatures: sigs,
                })
            }
        })
    }
    fn encode(&self, msg: &LivenessMsg<Ctx>) -> Result<Bytes, CodecError> {
        enc(&match msg {
            LivenessMsg::Vote(v) => WLiveness::Vote(WVote::from(&v.message), v.signature),
            LivenessMsg::PolkaCertificate(p) => WLiveness::Polka(polka_to_wire(p)),
            LivenessMsg::SkipRoundCertificate(r) => WLiveness::Skip(WRound {
                h: r.height.0,
                r: round_to_wire(r.round),
                skip: matches!(r.cert_type, RoundCertificateType::Skip),
                sigs: r
                    .round_signatures
                    .iter()
                    .map(|s| {
                        (
                            vote_type_to_wire(s.vote_type),
                            nil_or_val_to_wire(&s.value_id),
                            s.address.0,
                            s.signature,
                        )
                    })
                    .collect(),
            }),
        })
    }
}

impl Codec<StreamMessage<ProposalPart>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        let w: WStream = dec(&bytes)?;
        let content = match w.part {
            Some(p) => StreamContent::Data(p),
            None => StreamContent::Fin,
        };
        Ok(StreamMessage::new(
            StreamId::new(Bytes::from(w.id.into_vec())),
            w.seq,
            content,
        ))
    }
    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        enc(&WStream {
            id: serde_bytes::ByteBuf::from(msg.stream_id.to_bytes().to_vec()),
            seq: msg.sequence,
            part: match &msg.content {
                StreamContent::Data(p) => Some(p.clone()),
                StreamContent::Fin => None,
            },
        })
    }
}

impl Codec<ValidatorProof<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<Ctx>, CodecError> {
        let w: WProof = dec(&bytes)?;
        Ok(ValidatorProof::new(
            w.pk.into_vec(),
            w.peer.into_vec(),
            w.sig,
        ))
    }
    fn encode(&self, msg: &ValidatorProof<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WProof {
            pk: serde_bytes::ByteBuf::from(msg.public_key.clone()),
            peer: serde_bytes::ByteBuf::from(msg.peer_id.clone()),
            sig: msg.signature,
        })
    }
}

impl Codec<Status<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Status<Ctx>, CodecError> {
        let w: WStatus = dec(&bytes)?;
        Ok(Status {
            peer_id: PeerId::from_bytes(&w.peer).map_err(|e| bad(&format!("peer id: {e}")))?,
            tip_height: Height(w.tip),
            history_min_height: Height(w.min),
        })
    }
    fn encode(&self, msg: &Status<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WStatus {
            peer: serde_bytes::ByteBuf::from(msg.peer_id.to_bytes()),
            tip: msg.tip_height.0,
            min: msg.history_min_height.0,
        })
    }
}

impl Codec<Request<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Request<Ctx>, CodecError> {
        let (a, b): (u64, u64) = dec(&bytes)?;
        Ok(Request::ValueRequest(ValueRequest::new(
            Height(a)..=Height(b),
        )))
    }
    fn encode(&self, msg: &Request<Ctx>) -> Result<Bytes, CodecError> {
        match msg {
            Request::ValueRequest(r) => enc(&(r.range.start().0, r.range.end().0)),
        }
    }
}

fn ext_cert_to_wire(c: &ExtendedCommitCertificate<Ctx>) -> WCert {
    WCert {
        h: c.height.0,
        r: round_to_wire(c.round),
        v: c.value_id.0,
        sigs: c
            .commit_signatures
            .iter()
            .map(|s| (s.address.0, s.signature))
            .collect(),
    }
}

impl Codec<Response<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<Response<Ctx>, CodecError> {
        let w: WResponse = dec(&bytes)?;
        let values = w
            .values
            .into_iter()
            .map(|d| {
                let cert = ExtendedCommitCertificate {
                    height: Height(d.cert.h),
                    round: round_from_wire(d.cert.r),
                    value_id: BlockHash(d.cert.v),
                    commit_signatures: d
                        .cert
                        .sigs
                        .into_iter()
                        .map(|(a, s)| ExtendedCommitSignature::new(Address(a), s, None))
                        .collect(),
                };
                RawDecidedValue::new(Bytes::from(d.value), cert)
            })
            .collect();
        Ok(Response::ValueResponse(ValueResponse::new(
            Height(w.start),
            values,
        )))
    }
    fn encode(&self, msg: &Response<Ctx>) -> Result<Bytes, CodecError> {
        match msg {
            Response::ValueResponse(r) => enc(&WResponse {
                start: r.start_height.0,
                values: r
                    .values
                    .iter()
                    .map(|v| WDecided {
                        value: v.value_bytes.to_vec(),
                        cert: ext_cert_to_wire(&v.certificate),
                    })
                    .collect(),
            }),
        }
    }
}

impl HasEncodedLen<Response<Ctx>> for CborCodec {
    fn encoded_len(&self, msg: &Response<Ctx>) -> Result<usize, CodecError> {
        Codec::<Response<Ctx>>::encode(self, msg).map(|b| b.len())
    }
}

impl Codec<ProposedValue<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<Ctx>, CodecError> {
        let w: WProposed = dec(&bytes)?;
        Ok(ProposedValue {
            height: Height(w.h),
            round: round_from_wire(w.r),
            valid_round: round_from_wire(w.vr),
            proposer: Address(w.proposer),
            value: Value(BlockHash(w.v)),
            validity: Validity::from_bool(w.valid),
        })
    }
    fn encode(&self, msg: &ProposedValue<Ctx>) -> Result<Bytes, CodecError> {
        enc(&WProposed {
            h: msg.height.0,
            r: round_to_wire(msg.round),
            vr: round_to_wire(msg.valid_round),
            proposer: msg.proposer.0,
            v: msg.value.0 .0,
            valid: msg.validity.is_valid(),
        })
    }
}

impl Codec<PolkaCertificate<Ctx>> for CborCodec {
    type Error = CodecError;
    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<Ctx>, CodecError> {
        Ok(polka_from_wire(dec(&bytes)?))
    }
    fn encode(&self, msg: &PolkaCertificate<Ctx>) -> Result<Bytes, CodecError> {
        enc(&polka_to_wire(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use malachitebft_app_channel::app::types::core::{NilOrVal, Round, VoteType};

    fn vote() -> SignedConsensusMsg<Ctx> {
        SignedConsensusMsg::Vote(SignedMessage::new(
            Vote {
                typ: VoteType::Precommit,
                height: Height(7),
                round: Round::new(2),
                value: NilOrVal::Val(BlockHash([3; 32])),
                validator: Address(PublicKey([4; 32])),
            },
            SignatureBytes([5; 64]),
        ))
    }

    #[test]
    fn messages_round_trip() {
        let c = CborCodec;
        let v = vote();
        let back: SignedConsensusMsg<Ctx> = c.decode(c.encode(&v).expect("enc")).expect("dec");
        assert_eq!(back, v);
        let cert = CommitCertificate::<Ctx> {
            height: Height(9),
            round: Round::new(0),
            value_id: BlockHash([1; 32]),
            commit_signatures: vec![CommitSignature::new(
                Address(PublicKey([2; 32])),
                SignatureBytes([3; 64]),
            )],
        };
        assert_eq!(decode_cert(&encode_cert(&cert)).expect("cert"), cert);
        let part = StreamMessage::new(
            StreamId::new(Bytes::from_static(b"id")),
            3,
            StreamContent::Data(ProposalPart::Data(vec![1, 2, 3])),
        );
        let back: StreamMessage<ProposalPart> =
            c.decode(c.encode(&part).expect("enc")).expect("dec");
        assert_eq!(back.sequence, 3);
        assert_eq!(back.content.as_data(), part.content.as_data());
    }

    /// Bytes from a hostile peer: truncated, flipped or random input is an error, never a panic.
    #[test]
    fn hostile_bytes_are_errors() {
        let c = CborCodec;
        let good = c.encode(&vote()).expect("enc").to_vec();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..2000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = good.clone();
            match i % 3 {
                0 => b.truncate(usize::try_from(x).unwrap_or(0) % good.len()),
                1 => {
                    let at = usize::try_from(x).unwrap_or(0) % b.len();
                    b[at] ^= (x >> 8) as u8 | 1;
                }
                _ => b = x.to_le_bytes().repeat(1 + i % 7),
            }
            let bytes = Bytes::from(b);
            let _ = Codec::<SignedConsensusMsg<Ctx>>::decode(&c, bytes.clone());
            let _ = Codec::<LivenessMsg<Ctx>>::decode(&c, bytes.clone());
            let _ = Codec::<StreamMessage<ProposalPart>>::decode(&c, bytes.clone());
            let _ = Codec::<Response<Ctx>>::decode(&c, bytes.clone());
            let _ = Codec::<Status<Ctx>>::decode(&c, bytes.clone());
            let _ = decode_cert(&bytes);
        }
        // A vote type that does not exist is refused by name.
        let w = WConsensus::Vote(
            WVote {
                t: 9,
                h: 1,
                r: 0,
                v: None,
                a: PublicKey([0; 32]),
            },
            SignatureBytes([0; 64]),
        );
        let e = Codec::<SignedConsensusMsg<Ctx>>::decode(&c, enc(&w).expect("enc"))
            .expect_err("bad vote type");
        assert!(e.to_string().contains("vote type"), "{e}");
    }
}
