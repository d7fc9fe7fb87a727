"""The virtual board's loopback (`i2s sim --loopback`): TX of I2S(0) wired to RX of I2S(1)
through the analog-path model, checked from real MicroPython board code running both buses at
once. The truth for every check is what TX drove on SD (the TX capture) and the sessions'
start times (the events): RX frame j reads TX frame floor((t0_rx - t0_tx)·rate/10⁶) + j - D."""

import math

import numpy as np
import pytest
import serial
import soundfile as sf
from conftest import i2s

from i2scli.sim.loopback import parse_loopback, thd_coefficient

RATE = 48000
FS = 2**31 - 1  # full scale of a 32-bit slot: the peak of a 0 dBFS sine

OPEN = ("from machine import I2S, Pin\n"
        "import array, math, time\n"
        "rx = I2S(1, sck=Pin(20), ws=Pin(21), sd=Pin(19), mode=I2S.RX, bits=32,\n"
        "         format=I2S.STEREO, rate=48000, ibuf=400000)\n"
        "tx = I2S(0, sck=Pin(16), ws=Pin(17), sd=Pin(18), mode=I2S.TX, bits=32,\n"
        "         format=I2S.STEREO, rate=48000, ibuf=16384)\n")  # 2048 frames, 43 ms

# frame k: two unrelated full-range 32-bit words (Knuth's multiplicative hash)
NOISE_SIG = ("def word(v):\n"
             "    v &= 0xFFFFFFFF\n"
             "    return v - (1 << 32) if v >= 1 << 31 else v\n"
             "sig = array.array('i', [word((k // 2 + 1) * (2654435761 if k % 2 else 40503) + k)\n"
             "                        for k in range(2 * N)])\n")
SINE_SIG = ("A = int(0.5011872336272722 * 2147483647)\n"  # -6 dBFS
            "sig = array.array('i', [0] * (2 * N))\n"
            "for k in range(N):\n"
            "    sig[2 * k] = sig[2 * k + 1] = int(A * math.sin(2 * math.pi * 1000 * k / 48000))\n")


def run(sim, transport, spec, sig=NOISE_SIG, n=9600):
    """Board code: RX on I2S(1) and TX on I2S(0) at once; TX writes n frames of `sig`, waits
    past its ring (the ring drains, then underruns), writes a short burst, stops; RX reads
    everything its clock took in, partly while TX is still running. Returns (rx frames,
    the expected RX frames before the path's transform, events)."""
    board = sim("fast", "--loopback", spec)
    t = transport(board.path)
    t.enter_raw_repl()
    out = t.exec(OPEN + f"N = {n}\n" + sig +
                 "tx.write(sig)\n"
                 "time.sleep_ms(60)\n"  # the ring (43 ms) runs dry: RX reads what TX will clock
                 "k1 = rx._sim_stats()['frames']\n"
                 "b1 = bytearray(8 * k1)\n"
                 "rx.readinto(b1)\n"  # while TX runs: its last frames are still in its ring
                 "tx.write(sig, 0, 8 * 1000)\n"
                 "tx.deinit()\n"  # what is left in the ring never reaches the wire
                 "time.sleep_ms(30)\n"
                 "k2 = rx._sim_stats()['frames'] - k1\n"
                 "b2 = bytearray(8 * k2)\n"
                 "rx.readinto(b2)\n"
                 "rx.deinit()\n"
                 "for b in (b1, b2):\n"
                 "    for i in range(0, len(b), 8192):\n"
                 "        print(b[i:i + 8192].hex(), end='')\n")
    board.stop()
    rx = np.frombuffer(bytes.fromhex(out.decode().strip()), "<i4").reshape(-1, 2).astype(np.int64)
    events = board.events()
    return rx, expected(board, events, len(rx) + 5000), events


def expected(board, events, m):
    """What RX frames 0..m-1 read on a clean path: TX delayed by D frames exactly."""
    init = {e["id"]: e for e in events if e["ev"] == "i2s_init"}
    (lb,) = [e for e in events if e["ev"] == "loopback_rx"]
    tx, _ = sf.read(board.files["tx"], dtype="int32", always_2d=True)
    off = (init[1]["t_us"] - init[0]["t_us"]) * RATE // 1_000_000
    k = off + np.arange(m) - lb["delay_frames"]
    ok = (k >= 0) & (k < len(tx))
    ideal = np.zeros((m, 2), np.int64)
    ideal[ok] = tx[k[ok]]
    return ideal


@pytest.mark.slow
def test_two_buses_run_at_once_and_clean_loopback_is_tx_delayed_bit_exact(sim, transport):
    rx, ideal, events = run(sim, transport, "0>1,delay=1ms")
    (lb,) = [e for e in events if e["ev"] == "loopback"]
    assert lb["exact"] and lb["delay_s"] == 0.001 and lb["tx"] == 0 and lb["rx"] == 1
    (lrx,) = [e for e in events if e["ev"] == "loopback_rx"]
    assert lrx["delay_frames"] == 48
    np.testing.assert_array_equal(rx, ideal[:len(rx)])
    # the signal is there, 48 frames after the TX pin had it; silence before and after
    assert rx.any() and not rx[:48].any() and not rx[-1000:].any()
    init = {e["id"]: e for e in events if e["ev"] == "i2s_init"}
    assert init[0]["mode"] == "tx" and init[1]["mode"] == "rx"
    done = {e["sid"]: e for e in events if e["ev"] == "i2s_deinit"}
    assert done[init[0]["sid"]]["underruns"] == 1  # TX really ran dry while RX was reading
    assert done[init[1]["sid"]]["overruns"] == 0


@pytest.mark.slow
def test_delay_in_samples_swap_and_invert_are_exact(sim, transport):
    rx, ideal, events = run(sim, transport, "0>1,delay=37smp,swap,invert")
    (lrx,) = [e for e in events if e["ev"] == "loopback_rx"]
    assert lrx["delay_frames"] == 37
    want = np.clip(-ideal[:len(rx), ::-1], -2**31, 2**31 - 1)
    np.testing.assert_array_equal(rx, want)
    assert rx.any()


@pytest.mark.slow
def test_drop_loses_exactly_n_frames_at_that_frame(sim, transport):
    frame, lost = 5000, 64
    rx, ideal, events = run(sim, transport, f"0>1,delay=1ms,drop={frame}:{lost}")
    np.testing.assert_array_equal(rx[:frame], ideal[:frame])
    np.testing.assert_array_equal(rx[frame:], ideal[frame + lost:frame + lost + len(rx) - frame])
    assert ideal[frame - 200:frame + 200].any()  # the gap is inside the signal
    rx_sid = [e for e in events if e["ev"] == "i2s_init" and e["id"] == 1][0]["sid"]
    (done,) = [e for e in events if e["ev"] == "i2s_deinit" and e["sid"] == rx_sid]
    assert (done["overruns"], done["overrun_frames"]) == (1, lost)


@pytest.mark.slow
@pytest.mark.parametrize("every,period", [("1000smp", 1000), ("10ms", 480)])
def test_drop_every_loses_n_frames_each_period_from_that_frame(sim, transport, every, period):
    frame, lost = 2000, 64
    rx, ideal, events = run(sim, transport, f"0>1,delay=1ms,drop={frame}:{lost},drop_every={every}")
    j = np.arange(len(ideal))
    kept = ideal[(j < frame) | ((j - frame) % period >= lost)]
    np.testing.assert_array_equal(rx, kept[:len(rx)])
    # RX had clocked c frames when the last read was taken: len(rx) kept, the rest lost
    lost_mask = (j >= frame) & ((j - frame) % period < lost)
    c = int(np.flatnonzero(~lost_mask)[len(rx) - 1]) + 1
    assert c > frame + 9 * period  # ten losses and more, well inside what RX read
    rx_sid = [e for e in events if e["ev"] == "i2s_init" and e["id"] == 1][0]["sid"]
    (done,) = [e for e in events if e["ev"] == "i2s_deinit" and e["sid"] == rx_sid]
    begun = len(range(frame, c, period))  # (RX clocks on a little until deinit: one more at most)
    assert begun <= done["overruns"] <= begun + 1
    assert int(lost_mask[:c].sum()) <= done["overrun_frames"] <= int(lost_mask[:c].sum()) + lost


def sine_part(rx, ideal, n=4800):
    """n frames (100 periods of 1 kHz) where RX reads the steady sine."""
    nz = np.flatnonzero(ideal[:len(rx), 0])
    a = nz[0] + 100
    assert a + n <= len(rx)
    return rx[a:a + n, 0].astype(float), ideal[a:a + n, 0].astype(float)


@pytest.mark.slow
def test_gain_scales_by_the_decibels(sim, transport):
    rx, ideal, _ = run(sim, transport, "0>1,delay=1ms,gain=-6", sig=SINE_SIG)
    y, x = sine_part(rx, ideal)
    ratio = (y @ x) / (x @ x)
    assert ratio == pytest.approx(0.501, abs=0.001)
    np.testing.assert_allclose(y, np.round(x * 10 ** (-6 / 20)), atol=1)


@pytest.mark.slow
def test_noise_level_is_rms_against_a_full_scale_sine(sim, transport):
    rx, ideal, events = run(sim, transport, "0>1,delay=1ms,noise=-60")
    err = (rx - ideal[:len(rx)]).astype(float)
    dbfs = 20 * math.log10(np.sqrt(np.mean(err ** 2)) / (FS / math.sqrt(2)))
    assert dbfs == pytest.approx(-60, abs=0.5)
    assert abs(np.corrcoef(err[:, 0], err[:, 1])[0, 1]) < 0.05  # independent channels
    (lb,) = [e for e in events if e["ev"] == "loopback"]
    assert lb["noise_dbfs"] == -60 and not lb["exact"]


@pytest.mark.slow
def test_thd_of_a_minus_6_dbfs_sine(sim, transport):
    rx, ideal, _ = run(sim, transport, "0>1,delay=1ms,thd=-40", sig=SINE_SIG)
    y, _ = sine_part(rx, ideal)
    spec = np.abs(np.fft.rfft(y))
    fundamental = spec[100]  # 1 kHz in a 4800-frame window at 48 kHz
    harmonics = spec[[100 * h for h in range(2, 11)]]
    thd = 20 * math.log10(np.sqrt(np.sum(harmonics ** 2)) / fundamental)
    assert thd == pytest.approx(-40, abs=1)


@pytest.mark.slow
def test_rx_at_another_rate_reads_silence_and_says_why(sim, transport):
    board = sim("fast", "--loopback", "0>1")
    t = transport(board.path)
    t.enter_raw_repl()
    out = t.exec(OPEN.replace("rate=48000, ibuf=400000", "rate=44100, ibuf=400000") +
                 "tx.write(array.array('i', [1 << 30] * 4000))\n"
                 "b = bytearray(8 * 1000)\n"
                 "rx.readinto(b)\n"
                 "print(b.hex())\n")
    board.stop()
    assert not any(bytes.fromhex(out.decode().strip()))
    (e,) = [e for e in board.events() if e["ev"] == "loopback_mismatch"]
    assert (e["rx_rate"], e["tx_rate"]) == (44100, 48000)


# -- the SPEC --------------------------------------------------------------------------------

def test_spec_parses_and_rounds_the_delay_to_frames():
    lb = parse_loopback("0>1,delay=1ms,gain=-3,noise=-80,thd=-60,hum=50:-70,drop=10:2,swap,invert,seed=3")
    assert (lb.tx, lb.rx, lb.gain_db, lb.noise_dbfs, lb.thd_db) == (0, 1, -3, -80, -60)
    assert (lb.hum_hz, lb.hum_dbfs, lb.drop_frame, lb.drop_frames, lb.seed) == (50, -70, 10, 2, 3)
    assert lb.drop_period(48000) is None
    assert parse_loopback("0>1,drop=10:64,drop_every=100ms").drop_period(44100) == 4410
    assert parse_loopback("0>1,drop=10:64,drop_every=1ms").drop_period(8000) == 65  # at least N + 1
    assert lb.swap and lb.invert and not lb.exact
    assert [lb.delay_frames(r) for r in (48000, 44100, 8000)] == [48, 44, 8]
    assert parse_loopback("2>1,delay=10.5us").delay_frames(48000) == 1  # 0.504 frames -> 1
    assert parse_loopback("2>1,delay=10.4us").delay_frames(48000) == 0
    assert parse_loopback("0>1,delay=37smp").delay_frames(8000) == 37
    assert parse_loopback("0>1,invert").exact


def test_thd_coefficient_gives_that_thd():
    k = thd_coefficient(-40)
    a = 10 ** (-6 / 20)
    theta = 2 * np.pi * np.arange(4800) / 48
    u = a * np.sin(theta)
    spec = np.abs(np.fft.rfft(u - k * u ** 3))
    assert 20 * math.log10(spec[300] / spec[100]) == pytest.approx(-40, abs=1e-9)


@pytest.mark.parametrize("spec, words", [
    ("0-1", "expected TXID>RXID"),
    ("0>0", "two buses"),
    ("0>1,gain=loud", "gain='loud' is not a number"),
    ("0>1,delay=1 fortnight", "not a duration"),
    ("0>1,wobble=3", "unknown loopback option 'wobble'"),
    ("0>1,drop=5", "drop=FRAME:N"),
    ("0>1,drop_every=10ms", "drop_every needs drop=FRAME:N"),
    ("0>1,drop=5:64,drop_every=64smp", "longer than the 64 frames"),
    ("0>1,drop=5:64,drop_every=soon", "drop_every='soon' is not a duration"),
    ("0>1,hum=50", "hum=FREQ:DBFS"),
])
def test_bad_spec_is_one_clear_line(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_loopback(spec)


@pytest.mark.slow
def test_bad_spec_on_the_command_line_exits_2(tmp_path):
    r = i2s("sim", "--profile", "fast", "--loopback", "0>1,gain=loud", check=2)
    assert "--loopback" in r.stderr and "gain='loud' is not a number" in r.stderr
    r = i2s("sim", "--profile", "openmv", "--loopback", "0>1", check=2)
    assert "has no I2S(0) for TX" in r.stderr


def test_bad_spec_in_a_url_is_a_serial_exception():
    import i2scli.sim  # noqa: F401  (sim:// URLs)

    with pytest.raises(serial.SerialException, match="unknown loopback option 'wobble'"):
        serial.serial_for_url("sim://fast?loopback=0>1,wobble=3")
    with pytest.raises(serial.SerialException, match="no I2S"):
        serial.serial_for_url("sim://no-i2s?loopback=0>1")


def test_hum_level_and_noise_do_not_depend_on_how_rx_is_read():
    lb = parse_loopback("0>1,hum=50:-20,noise=-90,seed=5")
    n = 48000
    times = np.arange(n) * (1e6 / RATE)
    y = lb.transform(np.zeros((n, 2), np.int64), 32, 1000, times).astype(float)
    dbfs = 20 * math.log10(np.sqrt(np.mean(y[:, 0] ** 2)) / (FS / math.sqrt(2)))
    assert dbfs == pytest.approx(-20, abs=0.01)  # a -20 dBFS sine: peak 0.1 of full scale
    # the same frames read in other pieces get the same noise
    whole = lb.noise(1000, 9000)
    pieces = np.concatenate([lb.noise(1000, 10), lb.noise(1010, 4100), lb.noise(5110, 4890)])
    np.testing.assert_array_equal(whole, pieces)
    assert not np.array_equal(whole, parse_loopback("0>1,noise=-90,seed=6").noise(1000, 9000))
