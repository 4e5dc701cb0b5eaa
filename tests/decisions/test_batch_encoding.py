"""BatchCheck answers pre-encoded bytes; they must be what protobuf itself writes (SPEC §3)."""

from __future__ import annotations

import itertools

from orgauthz.api import authorization
from orgauthz.api.authorization import ResultEncoder
from orgauthz.v1 import authorization_pb2 as pb

REVISIONS = [0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**32 + 5, 2**63 - 1, 2**64 - 1]
REASONS = [
    [],
    ["organization Admin"],
    ["workspace role Developer", "included by manage_flows"],
    ["ü·漢"],
    ["missing " + "x" * 300],
]


def expected(results: list[tuple[bool, int, list[str]]]) -> bytes:
    encoded: bytes = pb.BatchCheckResponse(
        results=[pb.CheckResponse(allowed=a, revision=r, reasons=why) for a, r, why in results]
    ).SerializeToString()
    return encoded


def test_each_result_encodes_as_protobuf_does() -> None:
    encode = ResultEncoder()
    for allowed, rev, why in itertools.product((True, False), REVISIONS, REASONS):
        got = encode(allowed, rev, why)
        assert got == expected([(allowed, rev, why)]), (allowed, rev, why)
        back = pb.BatchCheckResponse.FromString(got).results
        assert [(r.allowed, r.revision, list(r.reasons)) for r in back] == [(allowed, rev, why)]


def test_a_joined_batch_is_the_serialized_response() -> None:
    encode = ResultEncoder()
    rows = [(i % 3 == 0, REVISIONS[i % len(REVISIONS)], REASONS[i % len(REASONS)]) for i in range(1000)]
    assert b"".join(encode(*r) for r in rows) == expected(rows)
    assert authorization._encoded(b"".join(encode(*r) for r in rows)) == expected(rows)


def test_remembered_entries_stay_right_past_the_bound() -> None:
    encode = ResultEncoder()
    n = authorization._MEMO_MAX * 2 + 7
    rows: list[tuple[bool, int, list[str]]] = [(bool(i % 2), i, []) for i in range(n)]
    rows += [(True, 5, []), (False, 5, [])]
    assert b"".join(encode(*r) for r in rows) == expected(rows)
    assert len(encode._memo) <= authorization._MEMO_MAX


def test_a_message_response_is_still_serialized() -> None:
    msg = pb.BatchCheckResponse(results=[pb.CheckResponse(allowed=True, revision=9)])
    assert authorization._encoded(msg) == msg.SerializeToString()
