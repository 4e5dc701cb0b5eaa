"""BatchCheck reads its request still encoded (``wire.BatchReader``); what it reads must be
what protobuf parses from the same bytes (SPEC §2: results in request order; §4: bytes
that do not decode are INVALID_ARGUMENT)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orgauthz.api import wire
from orgauthz.errors import InvalidArgument
from orgauthz.v1 import authorization_pb2 as pb
from tests.support.rpcs import scaled

TEXT = st.text(max_size=160)  # past 127 bytes an item's length takes two bytes
ITEMS = st.builds(
    pb.CheckRequest,
    subject=TEXT,
    workspace=TEXT,
    organization=TEXT,
    scope=TEXT,
    explain=st.booleans(),
    min_revision=st.integers(0, 2**64 - 1),
)
REQUESTS = st.builds(pb.BatchCheckRequest, items=st.lists(ITEMS, max_size=12), min_revision=st.integers(0, 2**64 - 1))


def protobuf_reads(data: bytes) -> tuple[list[tuple[str, str, str, str, bool]], int]:
    request = pb.BatchCheckRequest.FromString(data)
    return [(m.subject, m.workspace, m.organization, m.scope, m.explain) for m in request.items], request.min_revision


@settings(max_examples=scaled(300), deadline=None)
@given(requests=st.lists(REQUESTS, min_size=1, max_size=3), unknown=st.booleans())
def test_reads_what_protobuf_parses(requests: list[pb.BatchCheckRequest], unknown: bool) -> None:
    """Concatenated encodings merge (items appended, the last min_revision wins); an unknown
    field sends the request to protobuf's own parser; either way the rows are the same."""
    data = b"".join(r.SerializeToString() for r in requests)
    if unknown:
        data += b"\xc2\x3e\x03abc"  # field 1000, length-delimited
    read = wire.BatchReader()
    assert read(data) == protobuf_reads(data)
    assert read(data) == protobuf_reads(data)  # the second time from the memo


@settings(max_examples=scaled(60), deadline=None)
@given(request=REQUESTS.filter(lambda r: len(r.items) > 0))
def test_a_truncated_request_is_refused_exactly_when_protobuf_refuses_it(request: pb.BatchCheckRequest) -> None:
    data = request.SerializeToString()
    read = wire.BatchReader()
    for end in range(len(data)):
        cut = data[:end]
        try:
            expected = protobuf_reads(cut)
        except Exception:  # DecodeError, whatever protobuf raises
            with pytest.raises(InvalidArgument, match=r"^(request|items\[\d+\]): not a valid encoding"):
                read(cut)
        else:
            assert read(cut) == expected, end


def test_an_item_that_does_not_decode_is_named() -> None:
    good = pb.CheckRequest(subject="user:bob", workspace="ws", scope="see_flows").SerializeToString()
    bad_utf8 = bytes([0x0A, 1, 0xFF])  # subject: one byte of invalid UTF-8
    data = b"".join(b"\x0a" + bytes([len(item)]) + item for item in (good, good, bad_utf8))
    with pytest.raises(InvalidArgument) as err:
        wire.BatchReader()(data)
    assert err.value.field == "items[2]"
    assert "bad UTF-8" in str(err.value)


def test_a_request_that_does_not_decode_is_named() -> None:
    with pytest.raises(InvalidArgument) as err:
        wire.BatchReader()(b"\x0a\x05ab")
    assert err.value.field == "request"


def test_the_memo_stays_bounded_and_right_past_its_bound() -> None:
    read = wire.BatchReader(max_rows=8)
    items = [pb.CheckRequest(subject=f"user:u{i}", workspace="ws", scope="see_flows") for i in range(30)]
    for i in range(0, 30, 3):
        data = pb.BatchCheckRequest(items=items[i : i + 5], min_revision=i).SerializeToString()
        assert read(data) == protobuf_reads(data)
        assert len(read._rows) <= 8


def test_long_items_are_read_but_not_remembered() -> None:
    """A valid item is at most about 430 bytes; longer ones (invalid, or padded with unknown
    fields) are parsed each time, so the memo's size stays bounded in bytes too."""
    read = wire.BatchReader()
    long = pb.CheckRequest(subject="user:" + "x" * 600, workspace="ws", scope="see_flows")
    short = pb.CheckRequest(subject="user:bob", workspace="ws", scope="see_flows")
    data = pb.BatchCheckRequest(items=[long, short]).SerializeToString()
    assert read(data) == protobuf_reads(data)
    assert [len(k) for k in read._rows] == [len(short.SerializeToString())]


def test_too_many_items_are_refused_before_any_is_parsed() -> None:
    bad = bytes([0x0A, 1, 0xFF])  # would fail to decode if it were parsed
    with pytest.raises(InvalidArgument) as err:
        wire.BatchReader()(bad * 1001)
    assert err.value.field == "items"


FRAGMENTS = st.one_of(
    REQUESTS.map(lambda r: r.SerializeToString()),
    ITEMS.map(lambda m: m.SerializeToString()),
    st.sampled_from([b"\x0a", b"\x10", b"\x12", b"\x8a\x00", b"\x80", b"\xff", b"\x00", b"\x3b", b"\x3c"]),
    st.integers(0, 2**70).map(lambda n: wire.encode_varint(n & (2**64 - 1))),
    st.binary(max_size=6),
)


@settings(max_examples=scaled(400), deadline=None)
@given(parts=st.lists(FRAGMENTS, max_size=8))
def test_any_bytes_read_as_protobuf_reads_them_or_are_refused_as_it_refuses_them(parts: list[bytes]) -> None:
    data = b"".join(parts)
    try:
        expected = protobuf_reads(data)
    except Exception:  # DecodeError, whatever protobuf raises
        with pytest.raises(InvalidArgument):
            wire.BatchReader()(data)
    else:
        assert wire.BatchReader()(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x80\x80\x80\x80\x80\x00",  # a length in six bytes
        b"\x0a" + b"\x80" * 9 + b"\x02",  # a ten-byte length that wraps past 2^64 to 0
        b"\x0a\xff\xff\xff\xff\x0f",  # a length of 2^32 - 1
        b"\x0a\xc8\x01" + b"\x3b" * 100 + b"\x3c" * 100,  # an item nesting groups one level too deep
    ],
)
def test_what_protobuf_refuses_is_refused(data: bytes) -> None:
    with pytest.raises(Exception):  # noqa: B017, PT011  # DecodeError, whatever protobuf raises
        pb.BatchCheckRequest.FromString(data)
    with pytest.raises(InvalidArgument):
        wire.BatchReader()(data)


def test_a_long_walk_goes_to_protobufs_parser() -> None:
    """Many top-level fields would be a long loop in Python: past 1,002 the C parser reads them."""
    data = b"\x10\x05" * 5000
    assert wire.BatchReader._walk(data) is None
    assert wire.BatchReader()(data) == ([], 5)


def test_non_ascii_items_are_read_but_not_remembered() -> None:
    read = wire.BatchReader()
    data = pb.BatchCheckRequest(
        items=[pb.CheckRequest(subject="user:bøb", workspace="ws", scope="s")]
    ).SerializeToString()
    assert read(data) == protobuf_reads(data)
    assert not read._rows
