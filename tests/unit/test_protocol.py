"""Property tests of the wire protocol's host half (i2scli/protocol.py, docs/protocol.md)."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from i2scli.protocol import (
    CRC_FLAG,
    CRC_SIZE,
    HEADER_SIZE,
    MAX_PAYLOAD_LIMIT,
    SYNC,
    CreditError,
    CreditGate,
    Decoder,
    Encoder,
    Frame,
    FrameType,
    encode,
    encode_json,
    frame_size,
    stream_rate,
)

MAXP = 300  # max payload of most decoders here: small keeps hypothesis fast, the logic is the same
KNOWN = {int(t) for t in FrameType}

settings.register_profile("protocol", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SETTINGS = settings.get_profile("protocol")


# -- a reference receiver: the spec, transcribed slowly and plainly ------------------------------------


def frame_at(s: bytes, p: int, max_payload: int) -> Frame | None:
    """The frame starting at `s[p]` if a complete, valid one does (per docs/protocol.md), else None."""
    if s[p:p + 2] != SYNC or len(s) - p < HEADER_SIZE:
        return None
    tb, seq, lo, hi, hs = s[p + 2:p + 7]
    ln = lo + 256 * hi
    if hs != (255 - (tb + seq + lo + hi) % 256) or (tb & 0x7F) not in KNOWN or ln > max_payload:
        return None
    has_crc = bool(tb & 0x80)
    payload = s[p + 7:p + 7 + ln]
    if len(payload) < ln:
        return None
    if has_crc:
        trailer = s[p + 7 + ln:p + 11 + ln]
        if len(trailer) < 4 or int.from_bytes(trailer, "little") != zlib.crc32(payload):
            return None
    return Frame(FrameType(tb & 0x7F), seq, payload, has_crc)


def reference_decode(s: bytes, max_payload: int) -> tuple[list[Frame], dict[str, int], bytes]:
    """Decode a whole stream byte by byte: the frames, the counters as the Decoder defines them (at end of
    stream), and the skipped bytes."""
    frames: list[Frame] = []
    garbage = bytearray()
    skipped = resyncs = crc_errors = gaps = 0
    in_run = False
    expect = None
    p = 0
    while p < len(s):
        f = frame_at(s, p, max_payload)
        if f is None:
            if (s[p:p + 2] == SYNC and len(s) - p >= 7 and s[p + 2] & 0x80 and (s[p + 2] & 0x7F) in KNOWN
                    and s[p + 6] == 255 - sum(s[p + 2:p + 6]) % 256
                    and s[p + 4] + 256 * s[p + 5] <= max_payload
                    and len(s) - p >= frame_size(s[p + 4] + 256 * s[p + 5])):
                crc_errors += 1  # complete CRC candidate, header fine: its CRC failed
            skipped += 1
            garbage.append(s[p])
            resyncs += not in_run
            in_run = True
            p += 1
            continue
        in_run = False
        gaps += expect is not None and f.seq != expect
        expect = (f.seq + 1) % 256
        frames.append(f)
        p += f.wire_size
    return frames, {"frames": len(frames), "crc_errors": crc_errors, "resyncs": resyncs, "seq_gaps": gaps,
                    "skipped_bytes": skipped}, bytes(garbage)


def feed_chunked(dec: Decoder, data: bytes, cuts: list[int], flush: bool = True) -> list[Frame]:
    """Feed `data` cut at the positions `cuts` (any order, duplicates fine); checks the buffer bound."""
    out: list[Frame] = []
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in zip(bounds, bounds[1:]):
        out += dec.feed(data[a:b])
        assert dec.buffered <= dec.max_buffer
        assert dec.buffered < frame_size(dec.max_payload)  # at most one incomplete candidate is held back
    if flush:
        out += dec.flush()
        assert dec.buffered == 0
    return out


# -- strategies ----------------------------------------------------------------------------------------

ftypes = st.sampled_from(list(FrameType))
seqs = st.integers(0, 255)


@st.composite
def frames(draw, max_payload: int = MAXP) -> Frame:
    size = draw(st.one_of(st.integers(0, min(16, max_payload)), st.integers(0, max_payload), st.just(max_payload)))
    payload = draw(st.one_of(st.binary(min_size=size, max_size=size),
                             st.just(bytes(size)),
                             st.just((SYNC * (size // 2 + 1))[:size])))
    return Frame(draw(ftypes), draw(seqs), payload, draw(st.booleans()))


def header(tb: int, seq: int, ln: int, good_hsum: bool = True) -> bytes:
    hs = ~(tb + seq + (ln & 0xFF) + (ln >> 8)) & 0xFF
    return SYNC + struct.pack("<BBHB", tb, seq, ln, hs if good_hsum else hs ^ 0x01)


@st.composite
def fake_header(draw) -> bytes:
    """Bytes that look like the start of a frame: sync plus a header that is wrong, or right but whose CRC
    candidate cannot check out (or whose length is over the limit)."""
    kind = draw(st.sampled_from(["bad_hsum", "too_long", "unknown_type", "crc_candidate"]))
    seq = draw(seqs)
    if kind == "bad_hsum":
        return header(draw(st.integers(0, 255)), seq, draw(st.integers(0, 0xFFFF)), good_hsum=False)
    if kind == "too_long":
        return header(draw(st.integers(0, 255)), seq, draw(st.integers(MAXP + 1, 0xFFFF)))
    if kind == "unknown_type":
        t = draw(st.sampled_from([0, 12, 0x40, 0x7F]))
        return header(t | draw(st.sampled_from([0, CRC_FLAG])), seq, draw(st.integers(0, MAXP)))
    return header(int(draw(ftypes)) | CRC_FLAG, seq, draw(st.integers(0, MAXP)))


@st.composite
def garbage(draw) -> bytes:
    """REPL chatter, stray sync bytes, fake headers, truncated and corrupted CRC frames, in any mix."""
    parts = draw(st.lists(st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\xa5", b"\x5a", SYNC, SYNC + SYNC, b"\xa5\xa5\x5a", b"Traceback (most recent call):\r\n"]),
        fake_header(),
        frames().map(lambda f: f.encode()[:-1]),  # truncated: lacks its last byte
        frames().filter(lambda f: f.crc).map(lambda f: _flip_last(f.encode())),  # CRC frame with a bad CRC
    ), max_size=8))
    return b"".join(parts)


def _flip_last(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0x10])


def stream(frames_: list[Frame]) -> bytes:
    return b"".join(f.encode() for f in frames_)


# -- encoding ------------------------------------------------------------------------------------------


def test_encode_known_bytes():
    assert encode(FrameType.HELLO, 0, b"", crc=False) == bytes.fromhex("a55a01000000fe")
    # type 0x84 (DATA | CRC), seq 7, len 3: hsum = ~(0x84 + 7 + 3) = ~0x8e = 0x71; crc32(b"abc") = 0x352441c2
    assert encode(FrameType.DATA, 7, b"abc") == bytes.fromhex("a55a8407030071") + b"abc" + bytes.fromhex("c2412435")
    assert encode(FrameType.END, 255, b"") == bytes.fromhex("a55a86ff0000") + bytes([~(0x86 + 0xFF) & 0xFF]) + bytes(4)
    assert len(encode(FrameType.PROBE, 1, bytes(MAX_PAYLOAD_LIMIT))) == frame_size(MAX_PAYLOAD_LIMIT)
    with pytest.raises(ValueError):
        encode(FrameType.DATA, 256)
    with pytest.raises(ValueError):
        encode(0x80, 0)
    with pytest.raises(ValueError):
        encode(FrameType.DATA, 0, bytes(MAX_PAYLOAD_LIMIT + 1))


def test_json_frames():
    obj = {"mode": "tx", "rate": 48000, "crc": True, "pins": [1, 2], "name": "ü"}
    (f,) = Decoder().feed(encode_json(FrameType.START, 3, obj))
    assert (f.type, f.seq, f.json()) == (FrameType.START, 3, obj)
    enc = Encoder(crc=False, seq=255)
    data = enc.json(FrameType.HELLO, {"proto": 1}) + enc.frame(FrameType.CREDIT, struct.pack("<I", 1234))
    hello, credit = Decoder().feed(data)
    assert hello.json() == {"proto": 1} and (hello.seq, credit.seq, credit.crc) == (255, 0, False)
    assert credit.credit() == 1234 and enc.seq == 1
    with pytest.raises(ValueError):
        hello.credit()
    assert "HELLO" in repr(hello) and len(repr(Frame(FrameType.DATA, 0, bytes(4000)))) < 200


@pytest.mark.slow
@SETTINGS
@given(st.lists(frames(), max_size=6), st.booleans())
def test_encoder_numbers_frames(fs, crc):
    enc = Encoder(crc=crc, seq=250)
    data = b"".join(enc.frame(f.type, f.payload) for f in fs)
    assert enc.seq == (250 + len(fs)) % 256
    assert Decoder(MAXP).feed(data) == [Frame(f.type, (250 + k) % 256, f.payload, crc) for k, f in enumerate(fs)]


# -- decoding ------------------------------------------------------------------------------------------


@SETTINGS
@given(frames(max_payload=2000))
def test_round_trip(f):
    dec = Decoder(max_payload=2000)
    assert dec.feed(f.encode()) == [f]
    assert dec.buffered == 0 and dec.counters() == {"frames": 1, "crc_errors": 0, "resyncs": 0, "seq_gaps": 0,
                                                    "skipped_bytes": 0}


@pytest.mark.parametrize("crc", [True, False])
def test_round_trip_at_the_limit(crc):
    f = Frame(FrameType.PROBE, 9, random.Random(1).randbytes(MAX_PAYLOAD_LIMIT), crc)
    dec = Decoder(max_payload=MAX_PAYLOAD_LIMIT)
    data = f.encode()
    assert dec.feed(data[:-1]) == [] and dec.buffered == len(data) - 1
    assert dec.feed(data[-1:]) == [f]
    # one byte more than the decoder's limit is a resync, not a frame
    small = Decoder(max_payload=MAX_PAYLOAD_LIMIT - 1)
    assert small.feed(data) + small.flush() == [] and small.skipped_bytes == len(data)


@pytest.mark.slow
@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=8), st.lists(st.integers(0, 10**6), max_size=12))
def test_chunking_does_not_matter(fs, cuts):
    """A concatenation of frames, fed in arbitrary pieces, decodes to the same frames, nothing else."""
    for k, f in enumerate(fs):  # consecutive seqs: no gaps
        fs[k] = Frame(f.type, k, f.payload, f.crc)
    dec = Decoder(MAXP)
    assert feed_chunked(dec, stream(fs), cuts, flush=False) == fs
    assert dec.buffered == 0 and dec.skipped_bytes == dec.resyncs == dec.seq_gaps == dec.crc_errors == 0


@pytest.mark.slow
@SETTINGS
@given(st.lists(st.one_of(frames().map(lambda f: f.encode()), garbage()), max_size=8),
       st.lists(st.integers(0, 10**6), max_size=12))
def test_decoder_matches_the_reference(parts, cuts):
    """On any mix of frames and garbage, fed in any pieces, the decoder finds what the plain byte-by-byte
    transcription of the spec finds, with the same counters and garbage."""
    data = b"".join(parts)
    dec = Decoder(MAXP)
    got = feed_chunked(dec, data, cuts)
    want, counters, skipped = reference_decode(data, MAXP)
    assert got == want
    assert dec.counters() == counters
    assert dec.pending_garbage() == skipped[-512:]


@pytest.mark.slow
@SETTINGS
@given(st.lists(st.tuples(garbage(), frames()), min_size=1, max_size=5), st.lists(st.integers(0, 10**6), max_size=8))
def test_resync_finds_every_frame_after_garbage(pairs, cuts):
    """Guarantee: if no byte position inside the garbage starts a complete, valid frame of the combined
    stream (the one case where garbage *is* a frame), every real frame before and after it is decoded, however
    many stray syncs, fake headers, truncated or corrupted frames the garbage holds. Once all bytes are in,
    `flush` releases frames a false candidate (a fake header waiting for its long payload) holds back."""
    data = b""
    garbage_positions: list[int] = []
    real = []
    for k, (g, f) in enumerate(pairs):
        garbage_positions += range(len(data), len(data) + len(g))
        f = Frame(f.type, k, f.payload, f.crc)
        data += g + f.encode()
        real.append(f)
    assume(all(frame_at(data, p, MAXP) is None for p in garbage_positions))
    dec = Decoder(MAXP)
    assert feed_chunked(dec, data, cuts) == real
    assert dec.skipped_bytes == len(garbage_positions) and dec.seq_gaps == 0
    assert dec.resyncs == sum(1 for g, _ in pairs if g)


def test_frame_inside_a_false_candidate_is_found():
    """A fake CRC header whose claimed payload covers real frames: the CRC fails, one byte is dropped and the
    real frames inside are found; the fake candidate only delays them until its length has arrived."""
    real = [Frame(FrameType.DATA, k, bytes([k]) * 20, True) for k in range(3)]
    data = stream(real)
    for ln in (len(data) - 20, len(data) - 4, len(data) + 50):
        dec = Decoder(MAXP)
        fake = header(FrameType.DATA | CRC_FLAG, 200, ln)
        out = dec.feed(fake + data)
        if ln + CRC_SIZE <= len(data):
            assert out == real
        else:  # still waiting for the fake candidate's payload; more bytes (or flush) release the frames
            assert out == [] and dec.buffered == len(fake + data)
            assert dec.feed(bytes(100)) == real
        assert dec.crc_errors == 1 and dec.skipped_bytes - len(fake) in (0, 100)


def test_max_payload_can_change_between_feeds():
    big = Frame(FrameType.DATA, 0, bytes(range(256)) * 6)
    small = [Frame(FrameType.DATA, k, b"small") for k in (1, 2)]
    dec = Decoder(max_payload=100)
    dec.max_payload = 2000  # START negotiated a larger payload: applies at once
    assert dec.feed(big.encode() + small[0].encode()) == [big, small[0]]
    dec = Decoder(max_payload=2000)
    data = big.encode() + stream(small)
    assert dec.feed(data[:1000]) == [] and dec.buffered == 1000
    dec.max_payload = 100  # the held-back frame no longer fits: dropped when the next bytes come
    assert dec.feed(data[1000:]) == small and dec.skipped_bytes == big.wire_size and dec.buffered == 0
    assert dec.max_buffer < 200
    with pytest.raises(ValueError):
        dec.max_payload = MAX_PAYLOAD_LIMIT + 1


def test_pending_garbage_keeps_the_boards_text():
    text = b"Traceback (most recent call last):\r\n  File \"<stdin>\", line 1\r\nValueError: invalid bits\r\n"
    dec = Decoder()
    assert dec.feed(b"x" * 1000 + encode(FrameType.HELLO, 0, b"{}") + text) == [Frame(FrameType.HELLO, 0, b"{}")]
    assert dec.pending_garbage() == (b"x" * 1000 + text)[-512:]
    assert dec.pending_garbage(clear=True).endswith(b"invalid bits\r\n") and dec.pending_garbage() == b""
    assert dec.skipped_bytes == 1000 + len(text) and dec.resyncs == 2


# -- corruption ----------------------------------------------------------------------------------------


def _flip(data: bytes, bit: int) -> bytes:
    b = bytearray(data)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _check_flip_detected(f: Frame, bit: int) -> None:
    """Flip `bit` of the payload or CRC of CRC frame `f`, followed by a good frame: the corrupted payload never
    comes out, the CRC error is counted, and the good frame is still found."""
    good = Frame(FrameType.SUMMARY, (f.seq + 1) % 256, b'{"reason":"end"}')
    bad = _flip(f.encode(), HEADER_SIZE * 8 + bit)
    dec = Decoder(MAXP)
    out = dec.feed(bad + good.encode()) + dec.flush()
    assert all(g.payload != bad[HEADER_SIZE:HEADER_SIZE + len(f.payload)] or g == good for g in out)
    assert dec.crc_errors >= 1
    if all(frame_at(bad, p, MAXP) is None for p in range(len(bad))):  # no frame hidden in the payload by chance
        assert out == [good]


@pytest.mark.parametrize("payload", [bytes(range(16)), b"\xa5\x5a\x84\x00\x00\x00\x7b\xa5\xff" + SYNC])
def test_every_single_bit_flip_in_a_crc_frame_is_detected(payload):
    f = Frame(FrameType.DATA, 5, payload, True)
    for bit in range((len(payload) + CRC_SIZE) * 8):  # payload and CRC trailer
        _check_flip_detected(f, bit)


@pytest.mark.slow
@SETTINGS
@given(frames().filter(lambda f: f.crc and f.payload), st.data())
def test_single_bit_flips_in_crc_frames_are_detected(f, data):
    _check_flip_detected(f, data.draw(st.integers(0, (len(f.payload) + CRC_SIZE) * 8 - 1)))


@pytest.mark.slow
@SETTINGS
@given(frames(), st.integers(0, HEADER_SIZE * 8 - 1))
def test_single_bit_flips_in_the_header_are_detected(f, bit):
    """hsum is a sum: a flip in type, seq or len changes it by a power of two, never 0 mod 256; a flip in hsum
    itself or in the sync is seen too. So the corrupted frame never decodes, with or without CRC, and the next
    frame is found -- unless the flip made up a new, valid frame from the header and payload bytes."""
    good = Frame(FrameType.DATA, (f.seq + 1) % 256, b"next", f.crc)
    bad = _flip(f.encode(), bit)
    assume(all(frame_at(bad + good.encode(), p, MAXP) is None for p in range(len(bad))))
    dec = Decoder(MAXP)
    assert dec.feed(bad + good.encode()) + dec.flush() == [good]
    assert dec.skipped_bytes == len(bad) and dec.resyncs == 1


def test_header_flips_exhaustively():
    f = Frame(FrameType.DATA, 0x33, bytes(range(40)), False)
    good = Frame(FrameType.DATA, 0x34, b"next", False)
    for bit in range(HEADER_SIZE * 8):
        dec = Decoder(MAXP)
        assert dec.feed(_flip(f.encode(), bit) + good.encode()) + dec.flush() == [good], bit


# -- bounded memory ------------------------------------------------------------------------------------


def _feed_all(dec: Decoder, data: bytes, chunk: int) -> list[Frame]:
    out = []
    for k in range(0, len(data), chunk):
        out += dec.feed(data[k:k + chunk])
        assert dec.buffered <= dec.max_buffer
        assert len(dec.pending_garbage()) <= 512
    return out + dec.flush()


def test_ten_megabytes_of_random_garbage():
    data = random.Random(7).randbytes(10_000_000)
    assert reference_free_of_frames(data, 4096)
    for chunk in (65536, len(data)):
        dec = Decoder()
        assert _feed_all(dec, data, chunk) == []
        assert dec.skipped_bytes == len(data) and dec.buffered == 0 and dec.max_buffer < 4096 + 11 + 100


def reference_free_of_frames(data: bytes, max_payload: int) -> bool:
    """No complete valid frame anywhere in `data` (checks only the sync positions, quickly)."""
    p = data.find(SYNC)
    while p >= 0:
        if frame_at(data, p, max_payload) is not None:
            return False
        p = data.find(SYNC, p + 1)
    return True


@pytest.mark.slow
def test_ten_megabytes_of_adversarial_headers():
    """Valid-looking headers claiming 0xFFFF bytes, back to back and interleaved with stray syncs."""
    rng = random.Random(3)
    unit = b"".join(header(rng.choice([4, 0x84, 1, 0x87]), rng.randrange(256), 0xFFFF)
                    + rng.choice([b"", b"\xa5", SYNC]) for _ in range(1000))
    data = unit * (10_000_000 // len(unit))
    dec = Decoder()
    assert _feed_all(dec, data, 1 << 20) == [] and dec.skipped_bytes == len(data) and dec.resyncs == 1
    # With the largest limit, CRC-flagged ones are candidates: each waits for its 64 KiB payload and fails.
    big = Decoder(max_payload=MAX_PAYLOAD_LIMIT)
    crc_unit = b"".join(header(0x84, k, 0xFFFF) + b"\xa5" for k in range(256))
    assert _feed_all(big, crc_unit * 50, 65536) == []
    assert big.crc_errors > 0 and big.buffered == 0 and big.max_buffer < MAX_PAYLOAD_LIMIT + 100


def test_crc_candidates_at_the_length_limit_stay_bounded():
    """Headers with the CRC flag and len == max_payload: each one is a candidate the decoder must wait for and
    check; the buffer still never holds more than one frame."""
    dec = Decoder(max_payload=1024)
    unit = header(0x84, 1, 1024) + b"\x00" * 9
    assert _feed_all(dec, unit * 20_000, 4000) == []
    assert dec.crc_errors > 0 and dec.skipped_bytes == len(unit) * 20_000


@SETTINGS
@given(st.lists(seqs, max_size=30))
def test_seq_gaps(seq_list):
    dec = Decoder(MAXP)
    dec.feed(b"".join(encode(FrameType.DATA, s, b"x") for s in seq_list))
    assert dec.seq_gaps == sum(1 for a, b in zip(seq_list, seq_list[1:]) if b != (a + 1) % 256)
    assert dec.frames == len(seq_list)


def test_seq_gap_from_a_dropped_crc_frame():
    enc = Encoder()
    a, b, c = (enc.frame(FrameType.DATA, b"abc") for _ in range(3))
    dec = Decoder()
    assert [f.seq for f in dec.feed(a + _flip(b, 80) + c)] == [0, 2]
    assert (dec.crc_errors, dec.seq_gaps, dec.resyncs) == (1, 1, 1)
    assert [f.seq for f in dec.feed(enc.frame(FrameType.DATA) * 2)] == [3, 3] and dec.seq_gaps == 2


# -- flow control and rates ----------------------------------------------------------------------------


@pytest.mark.slow
@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["grant", "spend"]), st.integers(-5, 5000)), max_size=40))
def test_credit_gate_never_overspends(ops):
    gate = CreditGate()
    granted = spent = 0
    assert gate.available == 0 and not gate.can_send(1) and gate.can_send(0)
    for op, n in ops:
        if n < 0:
            with pytest.raises(ValueError):
                getattr(gate, op)(n)
        elif op == "grant":
            gate.grant(n)
            granted += n
        elif gate.can_send(n):
            gate.spend(n)
            spent += n
        else:
            assert n > granted - spent
            with pytest.raises(CreditError):
                gate.spend(n)
        assert (gate.granted, gate.spent, gate.available) == (granted, spent, granted - spent)
        assert 0 <= gate.spent <= gate.granted


def test_stream_rate():
    assert stream_rate(48000, 16, 2, 1024) == pytest.approx(192000 * (1024 + 11) / 1024)
    assert stream_rate(48000, 32, 1, 1024, crc=False) == pytest.approx(192000 * (1024 + 7) / 1024)
    assert stream_rate(8000, 16, 1, 2) == pytest.approx(16000 * 13 / 2)
    for args in [(48000, 24, 2, 1020), (48000, 16, 2, 1022), (48000, 16, 3, 1200), (0, 16, 2, 1024), (48000, 16, 2, 0)]:
        with pytest.raises(ValueError):
            stream_rate(*args)
