"""Fuzzing the host's parsers of what a board sends (hypothesis): the frame decoder over any
bytes, and the JSON frames (HELLO, READY, SUMMARY, PHASE, BAUD) over any JSON and any fields.
Whatever arrives, the host answers with frames, a checked dict or a LinkError: never another
exception, never a hang, and the decoder's memory stays within its bound.

Bounded to run in seconds here; `I2S_FUZZ_EXAMPLES=200000` runs it long (docs/reliability.md).
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from i2scli import protocol as proto
from i2scli.link import schema
from i2scli.link.errors import LinkError, board_error, frame_json
from i2scli.protocol import FrameType as T

EXAMPLES = int(os.environ.get("I2S_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=8,
)
KINDS = {"HELLO": schema.HELLO, "READY": schema.READY, "SUMMARY": schema.SUMMARY, "PHASE": schema.PHASE,
         "BAUD": schema.BAUD}


def _fields(kind: str):
    """Objects with the kind's own keys (so the checks are reached) holding any JSON values."""
    keys = st.sampled_from(sorted(KINDS[kind])) | st.text(max_size=8)
    return st.dictionaries(keys, json_values, max_size=12)


def _parse(kind: str, f: proto.Frame) -> None:
    try:
        out = schema.check(kind, frame_json(f), "fuzz")
    except LinkError as e:
        assert str(e).isprintable() and "\n" not in str(e)
        return
    for name, value in out.items():  # what passes is what the host may use as it is
        ok, _ = KINDS[kind][name]
        assert ok(value), (name, value)


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(sorted(KINDS)), st.one_of(
    st.builds(lambda k, o: json.dumps(o).encode(), st.just(None), json_values),
    st.binary(max_size=300),
    st.just(b"[" * 5000),  # nested past the parser's depth
))
def test_any_payload_of_a_json_frame(kind, payload):
    _parse(kind, proto.Frame(T.SUMMARY, 0, payload))


@pytest.mark.slow
@FUZZ
@given(st.sampled_from(sorted(KINDS)).flatmap(lambda k: st.tuples(st.just(k), _fields(k))))
def test_any_fields_of_a_json_frame(kind_obj):
    kind, obj = kind_obj
    _parse(kind, proto.Frame(T.HELLO, 0, json.dumps(obj).encode()))


@pytest.mark.slow
@FUZZ
@given(json_values)
def test_any_error_frame_is_one_exception(obj):
    e = board_error(proto.Frame(T.ERROR, 0, json.dumps(obj).encode())) if isinstance(obj, dict) else None
    if e is not None:
        assert isinstance(str(e), str)


def _frames_and_noise():
    frame = st.builds(lambda t, s, p, crc: proto.encode(t, s, p, crc),
                      st.sampled_from([int(t) for t in T] + [0, 0x7F]), st.integers(0, 255),
                      st.binary(max_size=600), st.booleans())
    def header(t: int, s: int, n: int) -> bytes:  # a header that passes its check, of any length
        return proto.SYNC + bytes([t, s, n & 0xFF, n >> 8, ~(t + s + (n & 0xFF) + (n >> 8)) & 0xFF])

    headers = st.builds(header, st.integers(0, 255), st.integers(0, 255), st.integers(0, 0xFFFF))
    return st.lists(frame | headers | st.binary(max_size=200) | st.just(proto.SYNC), max_size=30)


@pytest.mark.slow
@FUZZ
@given(_frames_and_noise(), st.integers(0, 4096), st.lists(st.integers(1, 700), min_size=1, max_size=8))
def test_the_decoder_takes_any_bytes_in_any_pieces(parts, max_payload, cuts):
    data = b"".join(parts)
    dec = proto.Decoder(max_payload=max_payload)
    out = []
    i, k = 0, 0
    while i < len(data):
        n = cuts[k % len(cuts)]
        out += dec.feed(data[i:i + n])
        assert dec.buffered <= dec.max_buffer
        i += n
        k += 1
    out += dec.flush()
    for f in out:
        assert isinstance(f.type, T) and len(f.payload) <= max_payload
        if f.type == T.CREDIT:
            try:
                assert f.credit() >= 0
            except ValueError:
                pass
    # whole frames among the noise are found whatever the pieces: the same as in one piece
    one = proto.Decoder(max_payload=max_payload)
    assert [x.encode() for x in one.feed(data) + one.flush()] == [x.encode() for x in out]


def test_the_schema_covers_every_field_the_protocol_defines():
    """A field the protocol defines but the schema does not know would be dropped unread."""
    assert set(proto.HELLO_KEYS) == set(schema.HELLO)
    assert set(proto.READY_KEYS) == set(schema.READY)
    summary = set(proto.SUMMARY_KEYS).union(*map(set, proto.SUMMARY_MODE_KEYS.values()))
    assert summary == set(schema.SUMMARY)
