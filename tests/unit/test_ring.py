"""The ring a stream gets by default (i2scli/session/ring.py, docs/protocol.md *The ring*): a time of the
stream as the port holds it, capped by the board's RAM and by the stream itself."""

from __future__ import annotations

import pytest

from i2scli.audio.busformat import BusFormat
from i2scli.session import ring

CD = BusFormat(44100, 16, 2)
CUE = BusFormat(16000, 16, 1)


def test_the_default_is_200_ms_of_the_stream_in_whole_dma_halves():
    b, why = ring.choose(CD, "rp2", ("tx",))
    assert why == "time" and b % 128 == 0
    assert 0.2 <= ring.ring_seconds(b, CD, "rp2") < 0.2 + 128 / CD.bytes_per_second
    # the same time for a slow stream: fewer bytes than the old fixed 16 KiB
    b, _ = ring.choose(CUE, "rp2", ("tx",))
    assert b == 6528 and 0.2 <= ring.ring_seconds(b, CUE, "rp2") < 0.205
    # a recording's ring: never less than the old 16 KiB (it costs no time)
    b, _ = ring.choose(CUE, "rp2", ("rx",), stream_seconds=0.1)
    assert b == ring.RAM_FLOOR


def test_a_link_that_stalls_gets_four_times_its_stall_at_most_half_a_second():
    assert ring.default_seconds(None) == ring.default_seconds(0.01) == 0.2
    assert ring.default_seconds(0.075) == pytest.approx(0.3)
    assert ring.default_seconds(2.0) == 0.5
    b, _ = ring.choose(CUE, "rp2", ("tx",), stall=0.075)
    assert ring.ring_seconds(b, CUE, "rp2") == pytest.approx(0.3, abs=0.005)


def test_rx_rings_hold_8_byte_frames_and_duplex_takes_the_larger():
    tx = ring.ring_bytes(0.1, CUE, "rp2", ("tx",))
    rx = ring.ring_bytes(0.1, CUE, "rp2", ("rx",))
    assert rx > 3 * tx and ring.ring_seconds(rx, CUE, "rp2", "rx") >= 0.1
    assert ring.ring_bytes(0.1, CUE, "rp2", ("tx", "rx")) == rx


def test_esp32_rings_are_whole_dma_buffers_of_256_frames_at_least_two():
    b = ring.ring_bytes(0.1, CUE, "esp32")
    assert b == 7 * 256 * 2  # 1600 frames: 7 buffers
    assert ring.ring_bytes(0.001, CUE, "esp32") == 2 * 256 * 2
    assert ring.ring_seconds(b, CUE, "esp32") == 7 * 256 / 16000


def test_never_more_than_the_stream_nor_a_quarter_of_the_ram():
    b, why = ring.choose(CD, "rp2", ("tx",), stream_seconds=0.05)
    assert why == "stream" and 0.05 <= ring.ring_seconds(b, CD, "rp2") < 0.052
    big = BusFormat(48000, 32, 2)
    b, why = ring.choose(big, "pyboard", ("tx",), stall=0.1, mem_free=80_000)
    assert (b, why) == (19968, "ram")  # 80000 // 4, in whole halves
    b, why = ring.choose(big, "pyboard", ("tx",), stall=0.1, mem_free=20_000)
    assert (b, why) == (16384, "ram")  # never below the ring every board took before
    b, why = ring.choose(CUE, "rp2", ("tx",), stream_seconds=1 / 16000)
    assert (b, why) == (ring.MIN_BYTES, "stream")  # room for the DMA's halves and a payload


def test_what_the_user_gives_is_taken_as_given():
    assert ring.choose(CD, "rp2", ("tx",), ibuf=777, stream_seconds=0.01) == (777, "ibuf")
    b, why = ring.choose(CD, "rp2", ("tx",), buffer_time=2.0, mem_free=10_000, stream_seconds=0.01)
    assert why == "buffer-time" and ring.ring_seconds(b, CD, "rp2") >= 2.0


def test_a_latency_is_the_ring_behind_the_reserve():
    # 150 ms in all, 100 ms of it the live reserve on the host: a ring of 50 ms, whatever the stream's length
    b, why = ring.choose(CD, "rp2", ("tx",), latency=0.15, reserve=0.1, stall=0.01, stream_seconds=0.01)
    assert why == "latency" and 0.05 <= ring.ring_seconds(b, CD, "rp2") < 0.05 + 128 / CD.bytes_per_second
    b, _ = ring.choose(CD, "rp2", ("tx",), latency=0.15)  # a file: the latency is the ring
    assert 0.15 <= ring.ring_seconds(b, CD, "rp2") < 0.152


def test_a_latency_the_link_or_the_ram_cannot_hold_is_refused_with_the_numbers():
    with pytest.raises(ring.LatencyRefused) as e:  # 4 x a 20 ms stall is 80 ms of ring, and 100 ms reserve
        ring.choose(CD, "rp2", ("tx",), latency=0.15, reserve=0.1, stall=0.02)
    assert str(e.value) == ("a latency of 150 ms leaves the I2S ring 50 ms after the 100 ms reserve, less than "
                            "this link needs: 4 x the longest stall the link probe saw (20 ms) = 80 ms; the least "
                            "latency is 180 ms")
    with pytest.raises(ring.LatencyRefused) as e:
        ring.choose(BusFormat(48000, 32, 2), "rp2", ("tx",), latency=2.0, mem_free=160_000)
    assert str(e.value) == ("a latency of 2000 ms needs an I2S ring of 768128 bytes, more than a quarter of the "
                            "160000 bytes the board has free; the most is 104 ms")
    assert isinstance(e.value, ring.BoardError)  # the board cannot do it: exit 4
