//! Signed transactions: a call, its signer's Ed25519 key and the signer's nonce, signed. The
//! dispatcher checks the signature and the nonce before the runtime sees the call (check-tx: the
//! nonce is not behind the account's; execute: it is exactly the account's, which then moves on
//! by one even if the call fails), so every ParaTime built on the SDK pays what a real one pays.
//!
//! Wire form: the CBOR of [`SignedTx`]; its `body` is the CBOR of [`TxBody`] and the signature
//! is over [`SIGNATURE_CONTEXT`] ‖ [`domain`] ‖ `body`: the domain names the chain and the
//! runtime, so a transaction signed for one ParaTime or network is refused by every other. A raw transaction that is not a [`SignedTx`] is an
//! unsigned [`Call`] (no signer, no nonce), which a runtime may refuse.

use crate::dispatcher::{Call, CallError};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Domain separation of transaction signatures.
pub const SIGNATURE_CONTEXT: &[u8] = b"paratime-sdk/tx: v1\0";
/// State key prefix of account nonces (‖ 32-byte public key → u64 big-endian).
pub const NONCE_PREFIX: &[u8] = b"auth/nonce/";
/// Module name of authentication errors.
pub const MODULE: &str = "auth";
/// Error code: the signature does not verify.
pub const ERR_SIGNATURE: u32 = 1;
/// Error code: the nonce is not the account's.
pub const ERR_NONCE: u32 = 2;
/// Error code: the signed envelope is malformed (or not in its one canonical encoding).
pub const ERR_MALFORMED: u32 = 3;
/// Error code: the runtime wrote a key reserved to the dispatcher (`auth/nonce/…`).
pub const ERR_RESERVED: u32 = 4;
/// How far ahead of the account's nonce check-tx accepts a transaction (it waits in the pool
/// for the ones before it); further ahead is refused, so one signer cannot fill a pool with
/// transactions that can never run. Wide enough for a signer keeping dozens in flight: the
/// compute nodes check gossiped transactions against their own state, which may be a round
/// or two behind the state the submitter saw (with 64, a signer keeping 48 in flight had some
/// refused by a compute node one round behind, and its later transactions stalled).
pub const MAX_NONCE_AHEAD: u64 = 256;

/// What the signature covers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxBody {
    /// The call.
    pub call: Call,
    /// The signer's Ed25519 public key (32 bytes).
    pub signer: ByteBuf,
    /// The signer's nonce: its number of transactions executed before this one.
    pub nonce: u64,
}

/// A signed transaction as submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedTx {
    /// CBOR of the [`TxBody`].
    pub body: ByteBuf,
    /// Ed25519 signature of [`SIGNATURE_CONTEXT`] ‖ `body` (64 bytes).
    pub signature: ByteBuf,
}

/// A transaction whose signature was checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The call.
    pub call: Call,
    /// The signer.
    pub signer: [u8; 32],
    /// Its nonce.
    pub nonce: u64,
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into memory cannot fail");
    out
}

fn malformed(what: impl std::fmt::Display) -> CallError {
    CallError::new(
        MODULE,
        ERR_MALFORMED,
        format!("malformed signed transaction: {what}"),
    )
}

/// The signature domain of a runtime on a chain: SHA-512/256 of the chain context, a zero byte
/// and the runtime ID. The host tells the runtime both at the handshake.
pub fn domain(chain_context: &str, runtime_id: &[u8; 32]) -> [u8; 32] {
    let mut b = chain_context.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(runtime_id);
    crate::state::hash(&b)
}

fn message(domain: &[u8; 32], body: &[u8]) -> Vec<u8> {
    let mut msg = SIGNATURE_CONTEXT.to_vec();
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    msg
}

/// Signs `call` as `key`'s transaction number `nonce` for the runtime and chain of `domain`;
/// returns the raw transaction.
pub fn sign(key: &SigningKey, domain: &[u8; 32], call: Call, nonce: u64) -> Vec<u8> {
    let body = TxBody {
        call,
        signer: ByteBuf::from(key.verifying_key().to_bytes().to_vec()),
        nonce,
    };
    let mut body_bytes = Vec::new();
    ciborium::into_writer(&body, &mut body_bytes).expect("CBOR encoding into memory cannot fail");
    let signature = key.sign(&message(domain, &body_bytes)).to_bytes().to_vec();
    let mut out = Vec::new();
    ciborium::into_writer(
        &SignedTx {
            body: ByteBuf::from(body_bytes),
            signature: ByteBuf::from(signature),
        },
        &mut out,
    )
    .expect("CBOR encoding into memory cannot fail");
    out
}

/// The signer a raw transaction names, if it is a signed envelope at all — nothing verified:
/// only to read the signers' nonces of a batch ahead of running it. The call is skipped, not
/// decoded.
pub(crate) fn claimed_signer(raw: &[u8]) -> Option<[u8; 32]> {
    #[derive(Deserialize)]
    struct Signer {
        signer: ByteBuf,
    }
    let signed = ciborium::from_reader::<SignedTx, _>(raw).ok()?;
    let body: Signer = ciborium::from_reader(signed.body.as_slice()).ok()?;
    body.signer.as_slice().try_into().ok()
}

/// Decodes a raw transaction: `Ok(Some)` for a signed one whose signature verifies, `Ok(None)`
/// when it is not a signed envelope at all (an unsigned call), an error when it is one that does
/// not verify.
pub fn open(raw: &[u8], domain: &[u8; 32]) -> Result<Option<Verified>, CallError> {
    open_known(raw, domain, false, &mut Keys::new(0))
}

/// The compressed encodings of Ed25519's eight points of small order (the canonical ones, as a
/// point's compression writes them).
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    ENCODINGS
        .get_or_init(|| curve25519_dalek::constants::EIGHT_TORSION.map(|p| p.compress().to_bytes()))
}

/// Accepts exactly what `key.verify_strict(message, signature)` accepts, for ~12 % less CPU.
///
/// ed25519-dalek's `verify_strict` is its `verify` (the signature's scalar is canonical and
/// `R` equals the compression of `[s]B − [k]A`) plus three checks: `R` decompresses, and
/// neither `R` nor `A` is of small order. Decompressing `R` costs a field exponentiation, a
/// tenth of a verification. Where `verify` passes, `R` is the canonical compression of a point,
/// so it decompresses, to that point, and that point is of small order exactly when `R` is one
/// of the eight encodings of [`small_order_encodings`] (compression is one-to-one on points).
/// Where `verify` fails both refuse. So this checks `R` against the eight encodings, `A` as
/// `verify_strict` does, then runs `verify`. Every node must accept the same transactions; the
/// tests compare both on random, damaged and crafted signatures (valid under plain `verify`
/// with `R` of small order, and with a weak key).
pub fn verify_strict(
    key: &VerifyingKey,
    message: &[u8],
    signature: &Signature,
) -> Result<(), ed25519_dalek::SignatureError> {
    use ed25519_dalek::Verifier as _;
    if small_order_encodings().contains(signature.r_bytes()) || key.is_weak() {
        return Err(ed25519_dalek::SignatureError::new());
    }
    key.verify(message, signature)
}

/// Decoded Ed25519 public keys by their bytes. Decoding a key is a field exponentiation, about
/// a fifth of a verification, and a ParaTime's transactions come from far fewer signers than
/// transactions. Decoding is a pure function of the 32 bytes, so a cached key gives exactly
/// what decoding again would. Keys that do not decode are not kept. At most
/// `max_entries` (~230 bytes each); when full it starts over, so signers that never come
/// back (a flood of one-off keys) cost what they would without it.
#[derive(Debug)]
pub struct Keys {
    map: std::collections::HashMap<[u8; 32], VerifyingKey>,
    max_entries: usize,
}

impl Keys {
    /// Keys kept by the dispatcher (~1 MB).
    pub const MAX_ENTRIES: usize = 4_096;

    /// An empty cache of at most `max_entries` keys (0 keeps none).
    pub fn new(max_entries: usize) -> Self {
        Self {
            map: std::collections::HashMap::new(),
            max_entries,
        }
    }

    /// The key `bytes` encode.
    pub fn get(&mut self, bytes: &[u8; 32]) -> Result<VerifyingKey, ed25519_dalek::SignatureError> {
        if let Some(k) = self.map.get(bytes) {
            return Ok(*k);
        }
        let k = VerifyingKey::from_bytes(bytes)?;
        if self.max_entries > 0 {
            if self.map.len() >= self.max_entries {
                self.map.clear();
            }
            self.map.insert(*bytes, k);
        }
        Ok(k)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// [`open`], without the signature check when `verified` says these exact bytes were verified
/// under this domain before ([`Checked`]): the encoding checks still run, and the signer's key
/// is not decoded again (it decoded when the signature verified). Keys come from `keys`.
pub(crate) fn open_known(
    raw: &[u8],
    domain: &[u8; 32],
    verified: bool,
    keys: &mut Keys,
) -> Result<Option<Verified>, CallError> {
    let Ok(signed) = ciborium::from_reader::<SignedTx, _>(raw) else {
        return Ok(None);
    };
    // One encoding per transaction: trailing bytes or another CBOR form of the same envelope
    // would give a signed transaction a second hash.
    if cbor(&signed) != raw {
        return Err(malformed("not in canonical form"));
    }
    let body: TxBody = ciborium::from_reader(signed.body.as_slice()).map_err(malformed)?;
    if cbor(&body) != signed.body.as_slice() {
        return Err(malformed("body not in canonical form"));
    }
    let signer: [u8; 32] = body
        .signer
        .as_slice()
        .try_into()
        .map_err(|_| malformed(format!("signer of {} bytes, not 32", body.signer.len())))?;
    let signature: [u8; 64] = signed.signature.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "signature of {} bytes, not 64",
            signed.signature.len()
        ))
    })?;
    if !verified {
        let key = keys.get(&signer).map_err(|_| {
            CallError::new(MODULE, ERR_SIGNATURE, "signer is not an Ed25519 public key")
        })?;
        verify_strict(
            &key,
            &message(domain, &signed.body),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| CallError::new(MODULE, ERR_SIGNATURE, "signature does not verify"))?;
    }
    Ok(Some(Verified {
        call: body.call,
        signer,
        nonce: body.nonce,
    }))
}

/// Transactions whose signature [`open`] verified in a check-tx that passed, by the hash of
/// their exact bytes, so that executing them does not verify the signature a second time: a
/// compute node checks each transaction when it arrives and executes it a round or two later,
/// and the signature check is most of what the dispatcher costs. Only the fact is kept, not the
/// decoded call (a call decodes to many times its size: a cache of decoded calls bounded by raw
/// bytes could be made to hold far more than its bound), and execution still decodes the bytes
/// and checks their encoding. The check it replaces is a pure function of the bytes and the
/// domain (the cache is emptied when the domain changes), so execution gives every node the
/// same result whether it checked the transaction first or not — which is also why no other
/// verification (batched, cofactored) may feed it. At most [`Self::MAX_ENTRIES`] hashes
/// (~1.5 MB), oldest out first: check-tx of transactions that never execute only cycles it.
#[derive(Debug)]
pub struct Checked {
    /// Hash of the bytes → the sequence number of its record.
    entries: std::collections::HashMap<[u8; 32], u64>,
    /// Insertion order (sequence, key); a record taken or replaced leaves its old pair here
    /// until it reaches the front or the queue is compacted.
    order: std::collections::VecDeque<(u64, [u8; 32])>,
    next: u64,
    max_entries: usize,
    hits: u64,
}

impl Checked {
    /// Hashes kept by the dispatcher: a few seconds of transactions at thousands per second.
    pub const MAX_ENTRIES: usize = 16_384;

    /// An empty cache of at most `max_entries` hashes.
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
            next: 0,
            max_entries,
            hits: 0,
        }
    }

    /// Remembers that the signature of `raw` verified.
    pub fn insert(&mut self, raw: &[u8]) {
        if self.max_entries == 0 {
            return;
        }
        let key = crate::state::hash(raw);
        let seq = self.next;
        self.next += 1;
        self.entries.insert(key, seq);
        self.order.push_back((seq, key));
        while self.entries.len() > self.max_entries {
            let Some((seq, key)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&key) == Some(&seq) {
                self.entries.remove(&key);
            }
        }
        if self.order.len() > 2 * self.max_entries + 16 {
            let entries = &self.entries;
            self.order.retain(|(s, k)| entries.get(k) == Some(s));
        }
    }

    /// Whether the signature of `raw` verified (the record is removed: a transaction executes
    /// once).
    pub fn take(&mut self, raw: &[u8]) -> bool {
        let found = self.entries.remove(&crate::state::hash(raw)).is_some();
        self.hits += u64::from(found);
        found
    }

    /// Forgets everything (the domain changed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Hashes held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Executions that skipped the signature check so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }
}

/// The state key of `signer`'s nonce.
pub fn nonce_key(signer: &[u8; 32]) -> Vec<u8> {
    let mut k = NONCE_PREFIX.to_vec();
    k.extend_from_slice(signer);
    k
}

/// Decodes a stored nonce (absent: 0).
pub fn decode_nonce(v: Option<&[u8]>) -> Result<u64, CallError> {
    match v {
        None => Ok(0),
        Some(b) => b
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| CallError::new(MODULE, ERR_MALFORMED, "stored nonce is not 8 bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signature over `msg` for the point `[a]B + torsion` (which may be weak: `a` = 0) whose
    /// `R` is the small-order point `target`, valid under plain `verify`: `s = k·a` makes
    /// `[s]B − [k]A = −[k]·torsion`, so messages are tried until that is `target`.
    fn small_order_r(
        a: curve25519_dalek::Scalar,
        torsion: curve25519_dalek::EdwardsPoint,
        target: curve25519_dalek::EdwardsPoint,
    ) -> (VerifyingKey, Vec<u8>, Signature) {
        crafted(a, torsion, curve25519_dalek::Scalar::ZERO, target)
    }

    /// [`small_order_r`] with `R = [s0]B + target` and `s = k·a + s0` (so `R` is of small order
    /// only when `s0` is 0).
    fn crafted(
        a: curve25519_dalek::Scalar,
        torsion: curve25519_dalek::EdwardsPoint,
        s0: curve25519_dalek::Scalar,
        target: curve25519_dalek::EdwardsPoint,
    ) -> (VerifyingKey, Vec<u8>, Signature) {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use sha2::Digest as _;
        let point = B * a + torsion;
        let key = VerifyingKey::from_bytes(&point.compress().to_bytes()).expect("a point");
        let r = (B * s0 + target).compress().to_bytes();
        for n in 0u32..10_000 {
            let msg = n.to_le_bytes().to_vec();
            let mut h = sha2::Sha512::new();
            h.update(r);
            h.update(key.as_bytes());
            h.update(&msg);
            let wide: [u8; 64] = h.finalize().into();
            let k = curve25519_dalek::Scalar::from_bytes_mod_order_wide(&wide);
            if -(torsion * k) == target {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&r);
                sig[32..].copy_from_slice((k * a + s0).as_bytes());
                return (key, msg, Signature::from_bytes(&sig));
            }
        }
        panic!("no message gave R = target");
    }

    /// `verify_strict` refuses every signature whose `R` is of small order and every weak key
    /// (with `R` of small or of large order), as ed25519-dalek's does, although plain `verify`
    /// accepts each of them.
    #[test]
    fn verify_strict_refuses_small_order_r_and_weak_keys_that_plain_verify_accepts() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use ed25519_dalek::Verifier as _;
        let a = curve25519_dalek::Scalar::from_bytes_mod_order([42; 32]);
        let zero = curve25519_dalek::Scalar::ZERO;
        let mut cases = Vec::new();
        for target in EIGHT_TORSION {
            // An ordinary-looking key with a torsion component (not weak): R alone is refused.
            cases.push(small_order_r(a, EIGHT_TORSION[1], target));
            // A weak key (of small order): anyone can sign for it under plain verify.
            cases.push(small_order_r(zero, EIGHT_TORSION[1], target));
        }
        // A key of prime order and R the identity.
        cases.push(small_order_r(a, EIGHT_TORSION[0], EIGHT_TORSION[0]));
        // A weak key with an R of large order: only the key's check refuses it.
        let s0 = curve25519_dalek::Scalar::from_bytes_mod_order([9; 32]);
        for target in EIGHT_TORSION {
            cases.push(crafted(zero, EIGHT_TORSION[1], s0, target));
        }
        for (key, msg, sig) in &cases {
            assert!(
                key.verify(msg, sig).is_ok(),
                "crafted signature valid under verify"
            );
            assert!(key.verify_strict(msg, sig).is_err());
            assert!(verify_strict(key, msg, sig).is_err(), "{:?}", sig.r_bytes());
        }
        assert_eq!(cases.len(), 25);
        assert_eq!(
            small_order_encodings()
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            8
        );
    }

    proptest::proptest! {
        /// On honest, damaged and re-keyed signatures, `verify_strict` agrees with
        /// ed25519-dalek's `verify_strict`.
        #[test]
        fn verify_strict_agrees_with_ed25519_dalek(
            seed in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            damage in 0u8..5,
            at in proptest::prelude::any::<u16>(),
        ) {
            let key = SigningKey::from_bytes(&seed);
            let mut sig = key.sign(&msg).to_bytes();
            let mut msg = msg;
            let mut vk = key.verifying_key();
            match damage {
                0 => {}
                1 => sig[usize::from(at) % 64] ^= 1 << (at % 8),
                2 if !msg.is_empty() => {
                    let i = usize::from(at) % msg.len();
                    msg[i] ^= 1 << (at % 8);
                }
                3 => vk = SigningKey::from_bytes(&[seed[0] ^ 1; 32]).verifying_key(),
                // R replaced by an encoding of small order.
                _ => sig[..32].copy_from_slice(&small_order_encodings()[usize::from(at) % 8]),
            }
            let sig = Signature::from_bytes(&sig);
            proptest::prop_assert_eq!(
                verify_strict(&vk, &msg, &sig).is_ok(),
                vk.verify_strict(&msg, &sig).is_ok()
            );
            if damage == 0 {
                proptest::prop_assert!(verify_strict(&vk, &msg, &sig).is_ok());
            }
        }
    }

    fn call() -> Call {
        Call {
            method: "kv.Put".into(),
            body: ciborium::Value::Text("x".into()),
        }
    }

    /// The key cache gives what decoding gives, keeps no key that does not decode, stays
    /// within its bound under a flood of one-off signers, and never stands in for a signature:
    /// a cached signer's forged or replayed transaction is refused as before.
    #[test]
    fn decoded_keys_are_the_keys_and_a_cached_signer_still_needs_a_valid_signature() {
        let mut keys = Keys::new(8);
        let not_a_point = (0u8..=255)
            .map(|b| [b; 32])
            .find(|b| VerifyingKey::from_bytes(b).is_err())
            .expect("some 32-byte string is not a curve point");
        for _ in 0..3 {
            assert!(keys.get(&not_a_point).is_err());
        }
        assert!(keys.is_empty(), "a key that does not decode was kept");
        for i in 0..100u8 {
            let k = SigningKey::from_bytes(&[i; 32]).verifying_key();
            assert_eq!(keys.get(&k.to_bytes()).expect("decodes"), k);
            assert!(keys.len() <= 8, "{} keys kept, bound 8", keys.len());
        }
        let signer = SigningKey::from_bytes(&[7; 32]);
        let d = domain("chain", &[1; 32]);
        let raw = sign(&signer, &d, call(), 3);
        let mut keys = Keys::new(8);
        assert!(open_known(&raw, &d, false, &mut keys)
            .expect("verifies")
            .is_some());
        assert_eq!(keys.len(), 1);
        let mut forged: SignedTx = ciborium::from_reader(raw.as_slice()).expect("decode");
        forged.signature[5] ^= 1;
        let forged = cbor(&forged);
        for _ in 0..2 {
            assert_eq!(
                open_known(&forged, &d, false, &mut keys)
                    .expect_err("forged")
                    .code,
                ERR_SIGNATURE
            );
            assert_eq!(
                open_known(&raw, &domain("other chain", &[1; 32]), false, &mut keys)
                    .expect_err("replayed")
                    .code,
                ERR_SIGNATURE
            );
        }
        // A signer that is not a point is refused whether or not the cache is used.
        let body = cbor(&TxBody {
            call: call(),
            signer: ByteBuf::from(not_a_point.to_vec()),
            nonce: 0,
        });
        let bad = cbor(&SignedTx {
            body: ByteBuf::from(body),
            signature: ByteBuf::from(vec![0; 64]),
        });
        for mut k in [Keys::new(0), Keys::new(8)] {
            assert_eq!(
                open_known(&bad, &d, false, &mut k)
                    .expect_err("no key")
                    .code,
                ERR_SIGNATURE
            );
        }
    }

    /// A client's transaction whose call is nested 100,000 arrays deep, or whose envelope
    /// lies about its lengths: naming its signer for the nonce read-ahead neither recurses
    /// without bound nor trusts it, and opening it is an error, not a crash.
    #[test]
    fn a_deeply_nested_or_lying_transaction_names_no_signer_and_does_not_open() {
        let mut body = vec![0xa3, 0x64];
        body.extend_from_slice(b"call");
        body.extend(std::iter::repeat_n(0x81u8, 100_000));
        body.push(0x00);
        body.push(0x66);
        body.extend_from_slice(b"signer");
        body.extend_from_slice(&[0x58, 32]);
        body.extend_from_slice(&[7; 32]);
        body.push(0x65);
        body.extend_from_slice(b"nonce");
        body.push(0x00);
        let raw = cbor(&SignedTx {
            body: ByteBuf::from(body),
            signature: ByteBuf::from(vec![0; 64]),
        });
        // Skipped or refused at ciborium's depth limit; either way no overflow, and the signer
        // it may name is only ever used to read a nonce.
        let _ = claimed_signer(&raw);
        assert!(open(&raw, &[0; 32]).is_err());
        // An envelope claiming a 4 GiB body it does not carry.
        let mut lying = vec![0xa2, 0x64];
        lying.extend_from_slice(b"body");
        lying.extend_from_slice(&[0x5a, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(claimed_signer(&lying), None);
    }

    #[test]
    fn signed_transactions_open_and_tampered_ones_do_not() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let d = domain("chain", &[1; 32]);
        let raw = sign(&key, &d, call(), 3);
        let v = open(&raw, &d).expect("verifies").expect("signed");
        assert_eq!(
            (v.call, v.signer, v.nonce),
            (call(), key.verifying_key().to_bytes(), 3)
        );
        // An unsigned call is not an envelope.
        assert_eq!(open(&call().encode(), &d).expect("plain"), None);
        // Any changed byte of the body or signature is refused.
        let mut signed: SignedTx = ciborium::from_reader(raw.as_slice()).expect("decode");
        for i in [0, signed.body.len() / 2, signed.body.len() - 1] {
            let mut t = signed.clone();
            t.body[i] ^= 1;
            let mut bytes = Vec::new();
            ciborium::into_writer(&t, &mut bytes).expect("encode");
            let e = open(&bytes, &d).expect_err("tampered body");
            assert_eq!(e.module, MODULE);
        }
        signed.signature[10] ^= 1;
        let mut bytes = Vec::new();
        ciborium::into_writer(&signed, &mut bytes).expect("encode");
        assert_eq!(open(&bytes, &d).expect_err("tampered").code, ERR_SIGNATURE);
        // Lying lengths.
        let short = SignedTx {
            body: signed.body.clone(),
            signature: ByteBuf::from(vec![0; 63]),
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&short, &mut bytes).expect("encode");
        assert_eq!(open(&bytes, &d).expect_err("short").code, ERR_MALFORMED);
        // Another runtime, another chain: the signature does not verify there.
        for other in [domain("chain", &[2; 32]), domain("other chain", &[1; 32])] {
            assert_eq!(
                open(&raw, &other).expect_err("replayed").code,
                ERR_SIGNATURE
            );
        }
        // Trailing bytes (another hash for the same transaction) are refused.
        let mut padded = raw.clone();
        padded.push(0);
        assert_eq!(open(&padded, &d).expect_err("padded").code, ERR_MALFORMED);
    }

    #[test]
    fn the_checked_cache_serves_exact_bytes_once_and_stays_bounded() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let d = domain("chain", &[1; 32]);
        let mut c = Checked::new(4);
        let raws: Vec<Vec<u8>> = (0..10).map(|n| sign(&key, &d, call(), n)).collect();
        for raw in &raws {
            c.insert(raw);
            assert!(c.len() <= 4);
        }
        // The oldest went first.
        assert!(!c.take(&raws[0]));
        assert!(c.take(&raws[9]), "newest kept");
        // Taken once: a second execution of the same bytes verifies again.
        assert!(!c.take(&raws[9]));
        assert_eq!(c.hits(), 1);
        // Other bytes of the same transaction (a flipped signature bit) are not served, and a
        // known signature does not make tampered bytes open.
        let mut other = raws[8].clone();
        let last = other.len() - 1;
        other[last] ^= 1;
        assert!(!c.take(&other));
        assert_eq!(
            open_known(&other, &d, false, &mut Keys::new(4))
                .expect_err("tampered")
                .code,
            ERR_SIGNATURE
        );
        // Skipping the check still decodes and checks the encoding.
        let mut padded = raws[8].clone();
        padded.push(0);
        assert_eq!(
            open_known(&padded, &d, true, &mut Keys::new(4))
                .expect_err("padded")
                .code,
            ERR_MALFORMED
        );
        assert_eq!(
            open_known(&raws[8], &d, true, &mut Keys::new(4)).expect("opens"),
            open(&raws[8], &d).expect("opens")
        );
        // Replacing a record keeps the count right; the order queue is compacted.
        for _ in 0..100 {
            c.insert(&raws[8]);
        }
        assert!(c.len() <= 4 && c.order.len() <= 2 * 4 + 16 + 1);
        // Entries are fixed-size hashes: a huge transaction costs what a small one does.
        let huge = vec![0u8; 1 << 20];
        c.insert(&huge);
        assert!(c.take(&huge));
        c.clear();
        assert!(c.is_empty());
    }

    #[test]
    fn stored_nonces_decode_or_are_refused() {
        assert_eq!(decode_nonce(None), Ok(0));
        assert_eq!(decode_nonce(Some(&9u64.to_be_bytes())), Ok(9));
        assert!(decode_nonce(Some(&[1, 2, 3])).is_err());
    }
}
