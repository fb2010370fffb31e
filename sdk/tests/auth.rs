//! The dispatcher's signed-transaction rules, against a host played by the test over a real
//! socketpair: signatures checked, nonces in order, a failed call's writes undone while its
//! nonce moves on, and `auth.Nonce` answered.

use ed25519_dalek::SigningKey;
use paratime_sdk::auth;
use paratime_sdk::dispatcher::{Call, NONCE_QUERY};
use paratime_sdk::protocol::{
    read_frame, write_frame, Body, HostStorageGetManyResponse, HostStorageGetResponse, Message,
    RuntimeCheckTxBatchRequest, RuntimeExecuteTxBatchRequest, RuntimeInfoRequest,
    RuntimeQueryRequest, TxResult, MESSAGE_REQUEST, MESSAGE_RESPONSE,
};
use paratime_sdk::{CallError, Runtime, TxContext, Version};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use std::os::unix::net::UnixStream;

/// Writes `put` calls; `fail` calls write, then fail.
struct Writer;

impl Runtime for Writer {
    fn version(&self) -> Version {
        Version::new(0, 1, 0)
    }

    fn execute(
        &self,
        ctx: &mut TxContext<'_>,
        method: &str,
        _body: &ciborium::Value,
    ) -> Result<ciborium::Value, CallError> {
        let who = ctx.signer().map_or(b"anyone".to_vec(), |s| s.to_vec());
        ctx.insert(&[b"by/".as_slice(), &who].concat(), method.as_bytes());
        match method {
            "put" => Ok(ciborium::Value::Null),
            "steal" => {
                // A runtime that lets a caller choose keys must not reach the nonces.
                if let Some(s) = ctx.signer() {
                    ctx.remove(&auth::nonce_key(&s));
                }
                Ok(ciborium::Value::Null)
            }
            _ => Err(CallError::new("test", 1, "failed on purpose")),
        }
    }
}

struct Host {
    stream: UnixStream,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    next: u64,
    /// Answers reads of several keys (a host before them answers an error).
    reads_many: bool,
    /// Reads asked for: one key at a time, several at once.
    gets: usize,
    get_manys: usize,
}

impl Host {
    /// The handshake: the chain context and runtime ID set the signature domain.
    fn handshake(&mut self, chain: &str, rid: [u8; 32]) {
        match self.call(Body::RuntimeInfoRequest(RuntimeInfoRequest {
            runtime_id: ByteBuf::from(rid.to_vec()),
            host_protocol_version: paratime_sdk::protocol::PROTOCOL_VERSION,
            local_config: None,
            chain_context: chain.into(),
        })) {
            Body::RuntimeInfoResponse(_) => {}
            other => panic!("handshake: {}", other.name()),
        }
    }

    fn call(&mut self, body: Body) -> Body {
        self.next += 1;
        let id = self.next;
        write_frame(
            &mut self.stream,
            &Message {
                id,
                message_type: MESSAGE_REQUEST,
                body,
            },
        )
        .expect("send");
        loop {
            let m = read_frame(&mut self.stream).expect("read");
            if m.message_type == MESSAGE_RESPONSE && m.id == id {
                return m.body;
            }
            let value = |k: &ByteBuf| self.state.get(k.as_slice()).cloned().map(ByteBuf::from);
            let body = match m.body {
                Body::HostStorageGetRequest(r) => {
                    self.gets += 1;
                    Body::HostStorageGetResponse(HostStorageGetResponse {
                        value: value(&r.key),
                    })
                }
                Body::HostStorageGetManyRequest(r) if self.reads_many => {
                    self.get_manys += 1;
                    Body::HostStorageGetManyResponse(HostStorageGetManyResponse {
                        values: r.keys.iter().map(value).collect(),
                    })
                }
                Body::HostStorageGetManyRequest(_) => {
                    self.get_manys += 1;
                    Body::Error(paratime_sdk::protocol::Error {
                        module: "rhp/host".into(),
                        code: 1,
                        message: "unsupported host request HostStorageGetManyRequest".into(),
                    })
                }
                other => panic!("unexpected {}", other.name()),
            };
            write_frame(
                &mut self.stream,
                &Message {
                    id: m.id,
                    message_type: MESSAGE_RESPONSE,
                    body,
                },
            )
            .expect("reply");
        }
    }

    /// Executes a batch and applies its write log; returns the results.
    fn execute(&mut self, inputs: &[Vec<u8>]) -> Vec<TxResult> {
        let body = self.call(Body::RuntimeExecuteTxBatchRequest(
            RuntimeExecuteTxBatchRequest {
                round: 1,
                state_root: ByteBuf::from(vec![0; 32]),
                inputs: inputs.iter().cloned().map(ByteBuf::from).collect(),
            },
        ));
        let Body::RuntimeExecuteTxBatchResponse(r) = body else {
            panic!("unexpected {}", body.name());
        };
        for e in r.write_log {
            match e.value {
                Some(v) => self.state.insert(e.key.into_vec(), v.into_vec()),
                None => self.state.remove(e.key.as_slice()),
            };
        }
        r.results
    }

    fn check(&mut self, inputs: &[Vec<u8>]) -> Vec<TxResult> {
        let body = self.call(Body::RuntimeCheckTxBatchRequest(
            RuntimeCheckTxBatchRequest {
                state_root: ByteBuf::from(vec![0; 32]),
                inputs: inputs.iter().cloned().map(ByteBuf::from).collect(),
            },
        ));
        let Body::RuntimeCheckTxBatchResponse(r) = body else {
            panic!("unexpected {}", body.name());
        };
        r.results
    }
}

fn call(method: &str) -> Call {
    Call {
        method: method.into(),
        body: ciborium::Value::Null,
    }
}

fn error(r: &TxResult) -> Option<(String, u32)> {
    r.error.as_ref().map(|e| (e.module.clone(), e.code))
}

#[test]
fn signed_transactions_are_checked_ordered_and_counted() {
    let rid = [5u8; 32];
    let (mut host, rt) = started("test-chain", rid);
    let d = auth::domain("test-chain", &rid);
    let alice = SigningKey::from_bytes(&[1; 32]);
    let a = alice.verifying_key().to_bytes();
    let nonce_of = |h: &Host| {
        h.state.get(&auth::nonce_key(&a)).map_or(0, |v| {
            u64::from_be_bytes(v.as_slice().try_into().expect("8 bytes"))
        })
    };
    // One batch: nonce 0 passes; 0 again is a replay; 2 skips 1; a tampered one is refused; 1
    // calls a failing method (its write is undone, its nonce is spent); then 2 passes.
    let mut tampered = auth::sign(&alice, &d, call("put"), 1);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let results = host.execute(&[
        auth::sign(&alice, &d, call("put"), 0),
        auth::sign(&alice, &d, call("put"), 0),
        auth::sign(&alice, &d, call("put"), 2),
        tampered,
        auth::sign(&alice, &d, call("fail"), 1),
        auth::sign(&alice, &d, call("put"), 2),
        call("put").encode(),
        // Signed for another ParaTime, and for another chain.
        auth::sign(
            &alice,
            &auth::domain("test-chain", &[6; 32]),
            call("put"),
            3,
        ),
        auth::sign(&alice, &auth::domain("other-chain", &rid), call("put"), 3),
        // A call that writes a nonce key: refused, its nonce spent.
        auth::sign(&alice, &d, call("steal"), 3),
    ]);
    let errors: Vec<Option<(String, u32)>> = results.iter().map(error).collect();
    assert_eq!(
        errors,
        vec![
            None,
            Some(("auth".into(), auth::ERR_NONCE)),
            Some(("auth".into(), auth::ERR_NONCE)),
            Some(("auth".into(), auth::ERR_SIGNATURE)),
            Some(("test".into(), 1)),
            None,
            None,
            Some(("auth".into(), auth::ERR_SIGNATURE)),
            Some(("auth".into(), auth::ERR_SIGNATURE)),
            Some(("auth".into(), auth::ERR_RESERVED)),
        ]
    );
    assert_eq!(nonce_of(&host), 4);
    let by_alice = [b"by/".as_slice(), &a].concat();
    assert_eq!(
        host.state.get(&by_alice).map(Vec::as_slice),
        Some(b"put".as_slice())
    );
    assert_eq!(
        host.state.get(b"by/anyone".as_slice()).map(Vec::as_slice),
        Some(b"put".as_slice()),
        "an unsigned call has no signer"
    );
    // Check-tx: a nonce behind is refused, one ahead (within the window) waits in the pool.
    let checked = host.check(&[
        auth::sign(&alice, &d, call("put"), 3),
        auth::sign(&alice, &d, call("put"), 4),
        auth::sign(&alice, &d, call("put"), 5),
        auth::sign(&alice, &d, call("put"), 4 + auth::MAX_NONCE_AHEAD + 1),
    ]);
    let errors: Vec<Option<u32>> = checked.iter().map(|r| error(r).map(|e| e.1)).collect();
    assert_eq!(
        errors,
        vec![Some(auth::ERR_NONCE), None, None, Some(auth::ERR_NONCE)]
    );
    // Accepted ones name their signer and nonce, so a node's pool proposes them in order.
    let senders: Vec<Option<(Vec<u8>, u64, u64)>> = checked
        .iter()
        .map(|r| {
            r.sender
                .as_ref()
                .map(|s| (s.id.to_vec(), s.seq, s.state_seq))
        })
        .collect();
    assert_eq!(
        senders,
        vec![
            None,
            Some((a.to_vec(), 4, 4)),
            Some((a.to_vec(), 5, 4)),
            None
        ]
    );
    // The nonce query, by hex or bytes; garbage is refused.
    let q = |host: &mut Host, args: ciborium::Value| {
        host.call(Body::RuntimeQueryRequest(RuntimeQueryRequest {
            state_root: ByteBuf::from(vec![0; 32]),
            method: NONCE_QUERY.into(),
            args,
        }))
    };
    let map = |v: ciborium::Value| {
        ciborium::Value::Map(vec![(ciborium::Value::Text("signer".into()), v)])
    };
    let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
    for args in [
        map(ciborium::Value::Text(hex)),
        map(ciborium::Value::Bytes(a.to_vec())),
    ] {
        match q(&mut host, args) {
            Body::RuntimeQueryResponse(r) => assert_eq!(r.data, ciborium::Value::Integer(4.into())),
            other => panic!("unexpected {}", other.name()),
        }
    }
    assert!(matches!(
        q(&mut host, map(ciborium::Value::Text("zz".into()))),
        Body::Error(_)
    ));
    // 64 bytes of text that are not 64 ASCII digits: refused, and the runtime still answers.
    let odd = format!("a\u{e9}{}", "a".repeat(61));
    assert_eq!(odd.len(), 64);
    assert!(matches!(
        q(&mut host, map(ciborium::Value::Text(odd))),
        Body::Error(_)
    ));
    assert!(matches!(
        q(&mut host, map(ciborium::Value::Bytes(a.to_vec()))),
        Body::RuntimeQueryResponse(_)
    ));
    drop(host);
    rt.join().expect("join").expect("dispatcher");
}

/// The dispatcher serving [`Writer`] on a thread, after a handshake for `chain` and `rid`.
fn started(
    chain: &str,
    rid: [u8; 32],
) -> (
    Host,
    std::thread::JoinHandle<Result<(), paratime_sdk::protocol::FrameError>>,
) {
    let (host_end, rt_end) = UnixStream::pair().expect("socketpair");
    let rt = std::thread::spawn(move || paratime_sdk::dispatcher::serve(Writer, rt_end));
    let mut host = Host {
        stream: host_end,
        state: BTreeMap::new(),
        next: 0,
        reads_many: true,
        gets: 0,
        get_manys: 0,
    };
    host.handshake(chain, rid);
    (host, rt)
}

/// A batch's signers' nonces are read in one request before it runs, not one per transaction;
/// against a host that does not answer such a request, the dispatcher reads them one at a time
/// and every result and write is the same. Forged and unsigned transactions cost a read at most.
#[test]
fn a_batchs_nonces_are_read_at_once_with_the_same_results_as_one_at_a_time() {
    let rid = [6u8; 32];
    let d = auth::domain("test-chain", &rid);
    let keys: Vec<SigningKey> = (0..40u8)
        .map(|i| SigningKey::from_bytes(&[i + 10; 32]))
        .collect();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        batch.push(auth::sign(k, &d, call("put"), 0));
        if i % 3 == 0 {
            batch.push(auth::sign(k, &d, call("put"), 1));
        }
        if i % 7 == 0 {
            batch.push(auth::sign(k, &d, call("fail"), 2));
        }
    }
    let mut forged = auth::sign(&keys[1], &d, call("put"), 1);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    batch.push(forged);
    batch.push(call("put").encode());
    batch.push(b"not a call".to_vec());

    let (mut at_once, at_once_rt) = started("test-chain", rid);
    let (mut one_by_one, one_by_one_rt) = started("test-chain", rid);
    one_by_one.reads_many = false;
    for round in 0..2 {
        let checked = at_once.check(&batch);
        assert_eq!(checked, one_by_one.check(&batch), "check-tx, round {round}");
        let executed = at_once.execute(&batch);
        assert_eq!(
            executed,
            one_by_one.execute(&batch),
            "execution, round {round}"
        );
        assert_eq!(at_once.state, one_by_one.state);
        // The first round runs the signed calls; the second replays them (nonces moved on).
        let ok = executed.iter().filter(|r| r.error.is_none()).count();
        assert!(if round == 0 { ok > 40 } else { ok == 1 }, "{ok} ran");
    }
    // Two rounds of a check and an execution: one request each, no read of a single key.
    assert_eq!((at_once.get_manys, at_once.gets), (4, 0));
    assert_eq!(one_by_one.get_manys, 4, "asked, refused");
    assert!(one_by_one.gets >= 2 * 2 * keys.len(), "{}", one_by_one.gets);
    for (h, rt) in [(at_once, at_once_rt), (one_by_one, one_by_one_rt)] {
        drop(h);
        rt.join().expect("join").expect("dispatcher");
    }
}

/// Execution reuses what check-tx verified (`auth::Checked`): a batch executed after its
/// transactions were checked must give exactly the results and state of the same batch executed
/// cold, including replays, failures, a nonce checked ahead, tampered bytes and a handshake that
/// changes the domain in between.
#[test]
fn executing_checked_transactions_gives_the_results_of_executing_them_cold() {
    let rid = [5u8; 32];
    let d = auth::domain("test-chain", &rid);
    let alice = SigningKey::from_bytes(&[1; 32]);
    let bob = SigningKey::from_bytes(&[2; 32]);
    let mut tampered = auth::sign(&bob, &d, call("put"), 1);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let batch = vec![
        auth::sign(&alice, &d, call("put"), 0),
        auth::sign(&alice, &d, call("put"), 0),
        auth::sign(&bob, &d, call("put"), 0),
        auth::sign(&alice, &d, call("fail"), 1),
        tampered,
        auth::sign(&alice, &d, call("put"), 2),
        auth::sign(&alice, &d, call("steal"), 3),
        auth::sign(&bob, &d, call("put"), 2),
        auth::sign(&bob, &d, call("put"), 1),
    ];
    let (mut cold, cold_rt) = started("test-chain", rid);
    let cold_results = cold.execute(&batch);
    let (mut warm, warm_rt) = started("test-chain", rid);
    // Checked one by one and as a batch (check-tx runs against the state before the batch:
    // every nonce ahead of 0 passes there), some twice.
    for tx in &batch {
        warm.check(std::slice::from_ref(tx));
    }
    warm.check(&batch);
    let warm_results = warm.execute(&batch);
    assert_eq!(warm_results, cold_results);
    assert_eq!(warm.state, cold.state);
    // Executed again: everything is a replay now, cached or not.
    let again_cold = cold.execute(&batch);
    assert_eq!(warm.execute(&batch), again_cold);
    // Checked under one chain, executed after a handshake for another: the cache is gone and
    // the signatures do not verify there.
    let (mut other, other_rt) = started("test-chain", rid);
    other.check(&batch);
    other.handshake("other-chain", rid);
    let results = other.execute(&batch);
    assert!(
        results
            .iter()
            .all(|r| error(r) == Some(("auth".into(), auth::ERR_SIGNATURE))),
        "{results:?}"
    );
    for (h, rt) in [(cold, cold_rt), (warm, warm_rt), (other, other_rt)] {
        drop(h);
        rt.join().expect("join").expect("dispatcher");
    }
}
