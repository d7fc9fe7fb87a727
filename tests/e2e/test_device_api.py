"""i2scli.open(): the board as an in-process audio device, numpy arrays in and out."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import i2scli
from i2scli import device

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine


def _noise(frames, channels, seed=1, amp=20000):
    return np.random.default_rng(seed).integers(-amp, amp, (frames, channels)).astype(np.int16)


def _sounding(x):
    return x[x.any(axis=1)]


def test_play_sends_an_int16_array_bit_exact_and_twice_on_one_connection(tmp_path):
    cap = tmp_path / "tx.wav"
    x = _noise(4800, 2)
    with i2scli.open(f"sim://rp2?tx_capture={cap}") as board:
        first = board.play(x, 16000)
        second = board.play(x[::-1].copy(), 16000)
    assert first["frames"] == second["frames"] == 4800 and first["underruns"] == second["underruns"] == 0
    got, rate = sf.read(cap, dtype="int16", always_2d=True)
    assert rate == 16000 and np.array_equal(_sounding(got), np.concatenate([x, x[::-1]]))


def test_float_audio_is_scaled_to_the_bus_as_a_float_file_plays(tmp_path):
    cap = tmp_path / "tx.wav"
    x = np.array([0.0, 0.5, -0.5, 0.999, -1.0, 2.0], dtype=np.float32)
    with i2scli.open(f"sim://rp2?tx_capture={cap}") as board:
        board.play(x, 16000)
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    played = got[np.flatnonzero(got.any(axis=1))[0] - 1:][:6, 0]  # the leading zero is the first sample
    assert played.tolist() == [0, 16384, -16384, 32735, -32768, 32767]  # 2.0 clipped


def test_rec_returns_exactly_the_frames_asked_for():
    with i2scli.open("sim://rp2?rx_source=ramp") as board:
        y = board.rec(12000, 16000, channels=2, bits=32)
    assert y.shape == (12000, 2) and y.dtype == np.int32
    steps = np.diff(y[:, 0].astype(np.int64))
    assert np.all(steps == steps[0])  # the counting source: nothing lost or repeated
    assert board.last["overruns"] == 0 and board.last["frames"] == 12000


def test_playrec_returns_the_played_array_delayed_by_the_wire():
    x = _noise(9600, 1, seed=2)
    with i2scli.open("sim://rp2?loopback=0>1") as board:
        for _ in range(3):  # a loaded host can starve the stream: the board counts it, then it is run again
            y = board.playrec(x, 48000)
            if not (board.last.get("underruns") or board.last.get("overruns")):
                break
    assert board.last["underruns"] == 0 and board.last["overruns"] == 0
    assert y.shape == x.shape and np.array_equal(y, x)  # the virtual wire has no delay


def test_the_loopback_test_is_a_typed_result_a_failed_check_included():
    with i2scli.open("sim://rp2?loopback=0>1") as board:
        good = board.test(rate=16000, duration=0.5)
        strict = board.test(rate=16000, duration=0.5, min_snr=500)
    assert good.passed and not good.failed and good.rate == 16000 and len(good.recorded) > 0
    assert not strict.passed
    assert [line.split(" is ")[0] for line in strict.failed] == [f"ch{i}.snr" for i in range(good.channels)]
    assert all("below the minimum 500 dB" in line for line in strict.failed)


def test_errors_are_the_command_lines_classes_with_its_exit_codes(tmp_path):
    with pytest.raises(device.NoDevice) as e:
        i2scli.open(str(tmp_path / "no-such-port"))
    assert device.exit_code(e.value) == 3
    with i2scli.open("sim://rp2") as board:
        with pytest.raises(device.TooFast) as e:  # noise does not compress; 48 kHz stereo needs 196 kB/s
            board.play(_noise(48000, 2), 48000)
        assert device.exit_code(e.value) == 4 and "kB/s" in str(e.value)
        with pytest.raises(ValueError, match="shape"):
            board.play(np.zeros((10, 3), np.int16), 16000)
        with pytest.raises(ValueError, match="NaN"):
            board.play(np.array([0.0, np.nan]), 16000)
        with pytest.raises(TypeError, match="unknown option 'pin'"):
            board.playrec(_noise(10, 1), 16000, tx={"pin": 3})


def test_a_tx_stream_plays_what_is_written_in_any_block_sizes_bit_exact(tmp_path):
    cap = tmp_path / "tx.wav"
    x = _noise(9000, 2, seed=3)
    with i2scli.open(f"sim://rp2?tx_capture={cap}") as board:
        with board.stream("tx", 16000, channels=2) as s:
            for a, b in ((0, 1), (1, 1000), (1000, 1001), (1001, 5555), (5555, 9000)):
                s.write(x[a:b])
        summary = s.summary
    assert summary["frames"] == 9000 and summary["underruns"] == 0
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    assert np.array_equal(_sounding(got), x)


def test_a_tx_stream_callback_fills_blocks_until_it_stops(tmp_path):
    cap = tmp_path / "tx.wav"
    blocks = []

    def fill(out):
        if len(blocks) == 12:
            raise i2scli.CallbackStop
        out[:] = _noise(len(out), 1, seed=len(blocks) + 10)
        blocks.append(out.copy())

    with i2scli.open(f"sim://rp2?tx_capture={cap}") as board:
        with board.stream("tx", 16000, channels=1, callback=fill, blocksize=160) as s:
            assert s.wait(30)  # the callback ends the stream itself
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    # the block in hand when CallbackStop came is sent as it stands: silence
    assert s.summary["frames"] == 13 * 160
    assert np.array_equal(_sounding(got)[:, :1], np.concatenate(blocks))  # mono: on both slots of the bus


def test_an_rx_stream_reads_contiguous_frames_and_counts_what_a_late_reader_lost():
    with i2scli.open("sim://rp2?rx_source=ramp") as board:
        with board.stream("rx", 16000, channels=1, bits=32, max_backlog=0.1) as s:
            first, lost_before = s.read(1600)
            b = s._backlog
            with b.cond:  # stop reading until the stream has had to drop blocks (board time, not a sleep)
                assert b.cond.wait_for(lambda: b.lost_frames > 0, timeout=30)
            rest, overflowed = s.read(4000)
        tail, _ = s.read(10**6)  # what was left when it stopped
    assert len(first) == 1600 and len(rest) == 4000 and not lost_before and overflowed
    y = np.concatenate([first, rest, tail])[:, 0].astype(np.int64)
    steps = np.diff(y)
    step = steps[0]
    missing = int(sum(steps[steps != step] // step - 1))
    lost = s.summary["lost_frames"]
    # every frame the board sent is read or counted lost; the ramp skips exactly the lost ones
    assert lost == b.lost_frames > 0 and s.summary["overruns"] >= 1
    assert missing == lost and len(y) + lost == s.summary["frames"]


def test_an_open_pyserial_port_is_used_and_handed_back_open_as_it_came(tmp_path):
    import serial

    import i2scli.sim  # noqa: F401  (registers sim:// with pyserial)

    cap = tmp_path / "tx.wav"
    x = _noise(1600, 2, seed=4)
    ser = serial.serial_for_url(f"sim://rp2?tx_capture={cap}", baudrate=115200, timeout=0.7)
    try:
        for _ in range(2):  # handed back at the REPL, it can be handed over again
            with i2scli.open(ser) as board:
                assert board.play(x, 16000)["underruns"] == 0 and board.port == "sim://rp2?tx_capture=" + str(cap)
            assert ser.is_open and ser.timeout == 0.7 and ser.baudrate == 115200
        ser.write(b"print(6*7)\r")  # its owner goes on: the board's REPL answers
        seen = b""
        for _ in range(30):
            seen += ser.read(256)
            if b"42\r\n" in seen:
                break
        assert b"42\r\n" in seen
    finally:
        ser.close()
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    assert np.array_equal(_sounding(got), np.concatenate([x, x]))


@pytest.mark.slow
def test_playrec_on_an_esp32_without_the_port_clock_finds_the_played_frames_from_its_dma_buffers():
    """No clock report (as on a real board): where the first frame went out comes from the esp32's
    DMA buffer rules (max(256·N, the next buffer boundary after the write)), good to the init
    calls' time; from the write's own time it would be the whole circle off (4096 frames here)."""
    x = _noise(4000, 1, seed=3)
    with i2scli.open("sim://esp32?loopback=0>1&sim_stats=no") as board:
        y = board.playrec(x, 8000)
    assert board.last["sync"]["clock"] == "ticks"
    n = len(x) - 3
    assert any(np.array_equal(y[3 + k:3 + k + n - 3], x[3:n]) for k in range(-3, 4)), "not x within 3 frames"
