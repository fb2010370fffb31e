#!/usr/bin/env python3
"""Regenerates the hand-written seeds of fuzz/corpus/ (RHP frames, p2p messages, configs).

The bundle and ELF seeds are files (a bundle built around /bin/true, small ELF executables); see
fuzz/README.md. CBOR is written the way serde + ciborium/cbor4ii lay these types out: structs as
maps with text keys, enums externally tagged, ByteBuf as bytes, [u8; 32] hashes as arrays of
integers, public keys and signatures as bytes, runtime IDs as hex text.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


class Bytes(bytes):
    pass


def head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for add, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | add]) + struct.pack(fmt, n)
    raise ValueError(n)


def cbor(v):
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return head(0, v) if v >= 0 else head(1, -1 - v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, bytes):
        return head(2, len(v)) + v
    if isinstance(v, str):
        b = v.encode()
        return head(3, len(b)) + b
    if isinstance(v, list):
        return head(4, len(v)) + b"".join(cbor(x) for x in v)
    if isinstance(v, dict):
        return head(5, len(v)) + b"".join(cbor(k) + cbor(x) for k, x in v.items())
    raise TypeError(v)


def h(b):
    """A [u8; 32] hash: an array of 32 integers."""
    return [b] * 32


RUNTIME = "00" * 31 + "01"
PK = bytes(range(32))
SIG = bytes(range(64))


def signed(raw):
    return {"untrusted_raw_value": raw, "signature": {"public_key": PK, "signature": SIG}}


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(msg):
    body = cbor(msg)
    return struct.pack(">I", len(body)) + body


def rhp():
    v = {"major": 5, "minor": 0, "patch": 0}
    msgs = {
        "info-request": {"id": 1, "message_type": 1, "body": {"RuntimeInfoRequest": {
            "runtime_id": bytes(31) + b"\x01", "host_protocol_version": v,
            "local_config": {"key": [1, -2, "x", 1.5, None]}}}},
        "info-response": {"id": 1, "message_type": 2, "body": {"RuntimeInfoResponse": {
            "protocol_version": v, "runtime_version": {"major": 0, "minor": 1, "patch": 0}}}},
        "ping": {"id": 2, "message_type": 1, "body": {"RuntimePingRequest": {}}},
        "empty": {"id": 2, "message_type": 2, "body": {"Empty": {}}},
        "check-request": {"id": 3, "message_type": 1, "body": {"RuntimeCheckTxBatchRequest": {
            "state_root": bytes(32), "inputs": [b"tx-1", b""]}}},
        "execute-request": {"id": 4, "message_type": 1, "body": {"RuntimeExecuteTxBatchRequest": {
            "round": 7, "state_root": bytes(32), "inputs": [b"\xa1\x63key\x63val"]}}},
        "execute-response": {"id": 4, "message_type": 2, "body": {"RuntimeExecuteTxBatchResponse": {
            "results": [{"error": None, "output": {"ok": True}},
                        {"error": {"module": "kv", "code": 2, "message": "no"}, "output": None}],
            "write_log": [{"key": b"a", "value": b"1"}, {"key": b"b", "value": None}],
            "state_root": bytes(32), "io_root": bytes(32)}}},
        "query-request": {"id": 5, "message_type": 1, "body": {"RuntimeQueryRequest": {
            "state_root": bytes(32), "method": "kv.Get", "args": {"key": b"a"}}}},
        "query-response": {"id": 5, "message_type": 2, "body": {"RuntimeQueryResponse": {"data": b"1"}}},
        "abort": {"id": 6, "message_type": 1, "body": {"RuntimeAbortRequest": {}}},
        "shutdown": {"id": 7, "message_type": 1, "body": {"RuntimeShutdownRequest": {}}},
        "storage-get": {"id": 8, "message_type": 1, "body": {"HostStorageGetRequest": {"key": b"a"}}},
        "storage-get-response": {"id": 8, "message_type": 2, "body": {"HostStorageGetResponse": {"value": b"1"}}},
        "error": {"id": 9, "message_type": 2, "body": {"Error": {"module": "rhp/host", "code": 1, "message": "unsupported"}}},
    }
    for name, m in msgs.items():
        write("rhp_frame", name, frame(m))
    # A stream of frames, and a bare body (decode_body sees the whole input).
    write("rhp_frame", "stream", b"".join(frame(msgs[n]) for n in ("ping", "storage-get", "execute-response")))
    write("rhp_frame", "body-only", cbor(msgs["execute-request"]))


def p2p():
    tx = {"nonce": 3, "fee": {"amount": 0, "gas": 1000}, "method": "staking.Transfer",
          "body": {"to": bytes(21), "amount": 10}}
    tx_raw = cbor(tx)
    header = {"height": 2, "parent_hash": h(1), "time_ms": 1700000000000, "epoch": 0,
              "txs_hash": h(2), "state_root": h(3), "proposer": PK}
    block = {"header": signed(cbor(header)), "txs": [signed(tx_raw)]}
    batch = {"runtime": RUNTIME, "round": 4, "previous_state_root": h(0), "state_root": h(5),
             "io_root": h(6), "inputs": [b"in-1"],
             "results": [{"error": None, "output": {"ok": 1}}],
             "write_log": [{"key": b"k1", "value": b"v1"}, {"key": b"k2", "value": None}]}
    proposal = {"runtime": RUNTIME, "round": 4, "previous_hash": h(7), "batch_hash": h(8),
                "batch": [b"in-1"]}
    seeds = {
        "block": (0, block),
        "tx": (1, signed(tx_raw)),
        "runtime-txs": (2, {"txs": [b"a", b"bc"], "salt": 42}),
        "committee-proposal": (3, {"Proposal": signed(cbor(proposal))}),
        "committee-executed": (3, {"Executed": batch}),
        "sync-request-blocks": (4, {"Blocks": {"from": 1, "max": 100}}),
        "sync-request-round": (4, {"Round": {"runtime": RUNTIME, "round": 4}}),
        "sync-reply-blocks": (5, {"Blocks": {"blocks": [block], "height": 2}}),
        "sync-reply-round": (5, {"Round": batch}),
        "sync-reply-round-none": (5, {"Round": None}),
        "transaction": (6, tx),
        "proposal": (7, proposal),
    }
    for name, (which, v) in seeds.items():
        write("p2p_messages", name, bytes([which]) + cbor(v))


def config():
    base = os.path.dirname(OUT)
    with open(os.path.join(base, "..", "nix", "tests", "example-config.yml"), "rb") as f:
        write("config", "example-config.yml", f.read())
    write("config", "client.yml",
          b"mode: client\ncommon:\n  data_dir: /tmp/pt-fuzz/data\ngenesis:\n  file: /tmp/pt-fuzz/genesis.json\n")
    write("config", "env-and-limits.yml",
          b"mode: compute\n"
          b"common:\n  data_dir: ${PT_FUZZ_SET:-/tmp/pt-fuzz}/data\n  log:\n    level:\n      default: debug\n      p2p: warn\n    format: JSON\n"
          b"genesis:\n  file: ${PT_FUZZ_UNSET}/genesis.json\n"
          b"p2p:\n  port: 9200\n  seeds: ['H6u9MtuoWRKn5DKSgarj/dzr2Z9BsjuRHgRAoXITOcU=@203.0.113.7:9200']\n"
          b"runtime:\n  provisioner: sandboxed\n  paths: [/tmp/pt-fuzz/a.orc]\n  limits:\n    memory: 512MiB\n    log_rate: 64kb\n"
          b"  config:\n    '0000000000000000000000000000000000000000000000000000000000000001': {a: 1}\n")
    write("config", "placeholder.yml",
          b"mode: compute\ncommon:\n  data_dir: {{ node_dir }}\nregistration:\n  entity: <entity_id>\n")


if __name__ == "__main__":
    rhp()
    p2p()
    config()
    sys.exit(0)
