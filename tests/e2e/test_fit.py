"""--fit and refusals that name what fits: near-lossless on a link narrower
than the coded stream, checked on the bus (the virtual board's TX capture) and in the coders,
the board's own decoder in MicroPython included."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import soundfile as sf
from conftest import ENV, i2s
from test_wirecode import board

from i2scli import protocol
from i2scli.audio import BusFormat, fit
from i2scli.audio import wirecode as wc
from i2scli.loopback import analysis

RATE = 44100
ESP32_PAYLOAD = protocol.tx_payload(256, 4)  # 500 bytes: 125 stereo frames a DATA frame
LEVEL_DBFS = -18.0  # the song's RMS level
NOISE_DB = -46.0  # its own noise floor under that level: white noise


def song(seconds: float = 3.0, rate: int = RATE, seed: int = 1) -> np.ndarray:
    """The song (analysis.plucked_song) at LEVEL_DBFS with its noise NOISE_DB under it."""
    return analysis.plucked_song(rate, seconds, seed, LEVEL_DBFS, NOISE_DB)


def write_song(path, **kw) -> np.ndarray:
    x = song(**kw)
    sf.write(path, x, kw.get("rate", RATE), subtype="PCM_16")
    return x


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    return 10 * math.log10((ref ** 2).sum() / ((got - ref) ** 2).sum())


def sounding(x: np.ndarray) -> np.ndarray:
    """The frames that are not silence on both channels: drops the zeros the bus clocks before
    the first sample and after the last, and in a pause the load on the machine may make."""
    return x[x.any(axis=1)]


def on_the_bus(cap: np.ndarray, sent: np.ndarray) -> np.ndarray:
    """The TX capture, checked to hold exactly `sent` in order (pauses aside), as `sent`'s frames."""
    assert np.array_equal(sounding(cap), sounding(sent))
    out = np.zeros_like(sent)
    out[sent.any(axis=1)] = sounding(cap)
    return out


# ---- the quantiser ------------------------------------------------------------------------


def test_rounding_is_to_nearest_ties_to_even_and_clipped_below_full_scale():
    x = np.array([-32768, -17, -16, -15, -8, -7, 7, 8, 9, 23, 24, 25, 32767], np.int64)
    assert fit.quantise(x, 4, 16).tolist() == [-32768, -16, -16, -16, 0, 0, 0, 0, 16, 16, 32, 32, 32752]
    assert fit.quantise(x, 0, 16).tolist() == x.tolist()
    assert (fit.quantise(x, 5, 16) % 32 == 0).all()


def _quantised(x: np.ndarray, bus: BusFormat, block: int, feed: int = 3000):
    nl = fit.NearLossless(bus, block, keep=True)
    parts = [nl.feed(x[i:i + feed]) for i in range(0, len(x), feed)] + [nl.flush()]
    floors = np.concatenate([f for f, _ in nl.history])
    bits = np.concatenate([b for _, b in nl.history])
    return np.concatenate(parts), floors, bits, nl


@pytest.mark.slow
@pytest.mark.parametrize("block", [29, 1024])  # an ESP32's DATA payload (116 bytes), a Pico 2's (4096)
def test_added_noise_stays_under_each_blocks_floor_by_the_margin(block):
    x = song(2.0).astype(np.int64)
    bus = BusFormat(RATE, 16, 2)
    y, floors, bits, nl = _quantised(x, bus, block)
    n = -(-len(x) // block)
    assert y.shape == x.shape and floors.shape == bits.shape == (n, 2)
    limit = floors * 10 ** (-fit.MARGIN_DB / 10)
    for k in range(n):
        xb, yb = x[k * block:(k + 1) * block], y[k * block:(k + 1) * block]
        added = ((yb - xb).astype(np.float64) ** 2).mean(axis=0)
        assert (added <= limit[k]).all(), (k, added, limit[k])
        assert (yb % (1 << bits[k]) == 0).all()  # the wasted bits the coder's shift drops
        # and each count is the most the rule allows: one more bit would add too much
        more = fit.quantise(xb, bits[k] + 1, 16)
        assert (((more - xb).astype(np.float64) ** 2).mean(axis=0) > limit[k]).all(), k
    assert 4.5 <= bits.mean() <= 6.0 and nl.summary() == {"mean": round(bits.mean(), 3), "max": int(bits.max())}
    # the song's own noise floor, which the estimate finds between the notes' harmonics; the
    # lowest of more windows (a longer block) reads it lower
    noise = (32768 * 10 ** ((LEVEL_DBFS + NOISE_DB) / 20)) ** 2
    lo, hi = {29: (-3.0, 0.5), 1024: (-6.5, -2.0)}[block]
    assert lo <= 10 * math.log10(np.median(floors) / noise) <= hi


def test_the_floor_of_white_noise_is_its_level():
    # calibrated per window: white noise of variance s² reads s² in the median; a block's floor
    # is the lowest window around it, so a little under
    bus = BusFormat(RATE, 16, 1)
    x = np.round(np.random.default_rng(4).normal(0, 300, (RATE * 2, 1))).astype(np.int64)
    _, floors, bits, _ = _quantised(x, bus, 29)
    rel = 10 * np.log10(floors / x.var())
    assert -2.5 <= np.median(rel) <= 0.0 and np.percentile(rel, 99) <= 1.5
    assert np.median(bits) == 9  # 2**9 / sqrt(12) = 148, 6 dB under the noise's 300


def test_digital_silence_and_a_pure_tone_keep_their_bits():
    # a 16-bit sine's floor is its own rounding: nothing lies under it
    bus = BusFormat(RATE, 16, 1)
    t = np.arange(RATE) / RATE
    for x in (np.zeros(RATE, np.int64), np.round(16000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int64)):
        y, _, bits, _ = _quantised(x[:, None], bus, 29)
        assert bits.max() == 0 and np.array_equal(y[:, 0], x)


@pytest.mark.slow
def test_streaming_in_any_pieces_gives_the_same_audio():
    x = song(1.0)
    src = BusFormat(RATE, 16, 2)
    outs = []
    for piece in (4 * 29, 4 * 1000, len(x) * 4):
        f = fit.Fitter(src, src, 29)
        data = x.tobytes()
        outs.append(b"".join(f.feed(data[i:i + piece]) for i in range(0, len(data), piece)) + f.finish())
    assert outs[0] == outs[1] == outs[2] and len(outs[0]) == x.nbytes


@pytest.mark.slow
def test_what_the_fitter_holds_does_not_grow_with_the_stream():
    piece = song(0.5).tobytes()
    src = BusFormat(RATE, 16, 2)
    for dst in (src, BusFormat(22050, 16, 1)):
        f = fit.Fitter(src, dst, 29)
        held = []
        for _ in range(120):  # a minute
            f.feed(piece)
            held.append((len(f.near.buf), sum(map(len, f.meter.queue))))
        # the look-ahead each side of a block (about a long window) and the resamplers' delays, in frames
        assert max(b for b, _ in held) <= 2 * f.near.ctx + 29
        assert max(q for _, q in held) <= 8192


@pytest.mark.slow
def test_coded_frames_decode_to_the_quantised_audio_on_the_host_and_on_the_board():
    x = song(1.0)
    bus = BusFormat(RATE, 16, 2)
    payload = 116  # an ESP32's DATA payload: 29 stereo frames
    f = fit.Fitter(bus, bus, payload // bus.frame_bytes)
    sent = f.feed(x.tobytes()) + f.finish()
    y = np.frombuffer(sent, "<i2").reshape(-1, 2)
    assert 45 <= snr_db(x, y) == pytest.approx(f.summary()["snr_db"], abs=0.01)
    coded = wc.encode_many(sent, payload, 16, 2)
    assert all(c[0] == wc.CODED for c in coded)
    pieces = [sent[i:i + payload] for i in range(0, len(sent), payload)]
    assert [wc.decode(c, 16, 2) for c in coded] == pieces  # bit-exact
    # the wasted-bits shift carries the removed bits: header byte 7 + 2c = order | shift << 2
    nl = fit.NearLossless(bus, 29, keep=True)
    np.concatenate([nl.feed(x), nl.flush()])
    bits = np.concatenate([b for _, b in nl.history])
    shifts = np.array([[c[wc.HEADER + 2 * ch] >> 2 for ch in (0, 1)] for c in coded])
    assert (shifts >= bits).all() and (shifts == bits).mean() > 0.9
    lossless = sum(map(len, wc.encode_many(x.tobytes(), payload, 16, 2)))
    assert lossless / sum(map(len, coded)) >= 1.8  # what makes it fit
    # the board's viper decoder, in real MicroPython, restores the same samples
    res = board([("D", 16, 2, c) for c in coded[:300]])
    assert [(code, out) for code, out in res] == [(len(p), p) for p in pieces[:300]]


def test_snr_of_a_lower_rate_and_of_one_channel_counts_what_they_take_away():
    t = np.arange(RATE) / RATE
    low, high = 8000 * np.sin(2 * np.pi * 440 * t), 800 * np.sin(2 * np.pi * 12000 * t)
    x = np.round(np.stack([low + high, low - high], axis=1)).astype(np.int16)
    src = BusFormat(RATE, 16, 2)
    # 32 kHz keeps both tones (soxr's HQ passband reaches 14.6 kHz there)
    e32 = fit.estimate(src, BusFormat(32000, 16, 2), x.tobytes(), 116, near_lossless=False, coded=False)
    # 22.05 kHz loses the 12 kHz tone: 20 dB under the 440 Hz one
    e22 = fit.estimate(src, BusFormat(22050, 16, 2), x.tobytes(), 116, near_lossless=False, coded=False)
    # one channel, the mean: loses the (opposite) 12 kHz tone too
    mono = fit.estimate(src, BusFormat(RATE, 16, 1), x.tobytes(), 116, near_lossless=False, coded=False)
    assert e32.snr_db > 60
    assert e22.snr_db == pytest.approx(20.0, abs=0.3) and mono.snr_db == pytest.approx(20.0, abs=0.1)
    assert (e32.method, e22.method, mono.method) == ("resample", "resample", "mono")


# ---- on the virtual ESP32 (CP2102 bridge, 921600 baud: ~86 kB/s) ----------------------------


@pytest.mark.slow
def test_song_plays_with_fit_at_its_rate_on_an_esp32(tmp_path):
    # 44.1 kHz: coded losslessly in the ESP32's 500-byte frames it needs ~98 kB/s, more than the
    # link's ~90; near-lossless ~44 kB/s, which fits with room to spare even when other work on
    # the machine slows the link probe down.
    rate = RATE
    x = write_song(tmp_path / "song.wav", rate=rate)
    cap = tmp_path / "tx.wav"
    for _ in range(3):  # the sim on a busy 2-core machine can starve the stream (counted): run again
        r = i2s("play", "--fit", "--json", "-p", f"sim://esp32?tx_capture={cap}", tmp_path / "song.wav", check=0,
                timeout=120)
        s = json.loads(r.stdout)
        if not s["underruns"]:
            break
    assert (s["rate"], s["channels"], s["bits"]) == (rate, 2, 16)
    assert s["underruns"] == 0 and s["crc_errors"] == 0 and s["frames"] == len(x)
    f = s["fit"]
    assert f["method"] == "near-lossless" and (f["rate"], f["channels"]) == (rate, 2)
    assert 4.5 <= f["bits_removed"]["mean"] <= 6.0 and f["bits_removed"]["max"] <= 8
    # the bus carries exactly what the quantiser makes of the file in the ESP32's 125-frame blocks
    bus = BusFormat(rate, 16, 2)
    fitter = fit.Fitter(bus, bus, ESP32_PAYLOAD // bus.frame_bytes)
    sent = np.frombuffer(fitter.feed(x.tobytes()) + fitter.finish(), "<i2").reshape(-1, 2)
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    measured = snr_db(x, on_the_bus(got, sent))
    assert f["snr_db"] >= 45 and abs(f["snr_db"] - measured) <= 1.0, (f["snr_db"], measured)
    assert s["compression"]["ratio"] >= 2.5
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("--fit:")]
    assert len(line) == 1 and "near-lossless" in line[0] and "dB SNR" in line[0]


def _near_lossless_need(x: np.ndarray, rate: int) -> float:
    """What the host estimates near-lossless 16-bit stereo needs on an ESP32 (500-byte payloads)."""
    src = BusFormat(rate, 16, 2)
    return fit.estimate(src, src, x[: 2 * rate].tobytes(), ESP32_PAYLOAD, near_lossless=True, coded=True).need


@pytest.mark.slow
def test_a_cd_song_takes_the_least_change_the_measured_link_allows(tmp_path):
    x = write_song(tmp_path / "song.wav", seconds=2.0)
    need = _near_lossless_need(x, RATE)
    assert 40000 <= need <= 48000  # of the ~90 kB/s a CP2102 at 921600 baud carries
    r = i2s("play", "--fit", "--json", "-p", "sim://esp32", tmp_path / "song.wav", check=0, timeout=120)
    s = json.loads(r.stdout)
    if need <= s["link_rate"] * 0.9:  # as on a quiet machine (bench/README.md, figure 11)
        assert (s["fit"]["method"], s["rate"]) == ("near-lossless", RATE)
    else:  # a loaded machine slows the probe: then the next rate down, still near-lossless
        assert (s["fit"]["method"], s["rate"]) == ("resample+near-lossless", 32000)
    assert s["channels"] == 2 and s["fit"]["snr_db"] >= 45


@pytest.mark.slow
def test_without_fit_the_song_is_refused_saying_what_fit_would_cost(tmp_path):
    write_song(tmp_path / "song.wav")  # 44.1 kHz: ~98 kB/s coded losslessly
    r = i2s("play", "-p", "sim://esp32", tmp_path / "song.wav", check=4, timeout=120)
    line = r.stderr.strip().splitlines()[-1]
    m = re.search(r", or --fit \(near-lossless, about (\d+) dB SNR\)$", line)
    assert m and 45 <= int(m.group(1)) <= 60, line
    assert "-b 16" not in line and re.search(r"fits: -r \d+ \(coded about [\d.]+:1\), -c 1", line)


@pytest.mark.slow
def test_fit_on_a_stream_that_fits_changes_nothing(tmp_path, monkeypatch):
    x = write_song(tmp_path / "song.wav", rate=16000, seconds=1.0)
    cap = tmp_path / "tx.wav"
    monkeypatch.setitem(ENV, "I2S_FIT", "1")  # the environment's way of saying --fit
    r = i2s("play", "--json", "-p", f"sim://esp32?tx_capture={cap}", tmp_path / "song.wav", check=0, timeout=120)
    s = json.loads(r.stdout)
    assert s["fit"] == {"method": "lossless", "bits_removed": {"mean": 0.0, "max": 0}, "rate": 16000,
                        "channels": 2, "snr_db": None}
    got, _ = sf.read(cap, dtype="int16", always_2d=True)
    assert np.array_equal(on_the_bus(got, x), x)  # bit-exact
    assert "fits as it is" in r.stderr


def notched_noise(seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    """Loud white noise with no energy between 1 and 2 kHz: nothing under its floor (there
    is none) and nothing to predict."""
    n = int(rate * seconds)
    spec = np.fft.rfft(np.random.default_rng(5).normal(0, 8000, (n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / rate)
    spec[(f > 1000) & (f < 2000)] = 0
    return np.clip(np.round(np.fft.irfft(spec, n, axis=0)), -32768, 32767).astype(np.int16)


@pytest.mark.slow
def test_what_cannot_fit_even_at_8_khz_mono_is_refused(tmp_path):
    sf.write(tmp_path / "n.wav", notched_noise(), RATE, subtype="PCM_16")
    # the ESP32's REPL UART left at 115200 baud: about 11 kB/s, less than 8 kHz 16-bit mono raw
    r = i2s("play", "--fit", "--baud", "off", "-p", "sim://esp32", tmp_path / "n.wav", check=4, timeout=180)
    line = r.stderr.strip().splitlines()[-1]
    assert "--fit cannot make 44100 Hz 16-bit stereo fit" in line and "not even at 8000 Hz mono" in line


# ---- refusals name what fits ----------------------------------------------------------------


@pytest.mark.slow
def test_white_noise_on_a_pico_is_refused_naming_what_fits(tmp_path):
    x = np.random.default_rng(2).integers(-32768, 32768, (RATE * 2, 2)).astype(np.int16)
    sf.write(tmp_path / "noise.wav", x, RATE, subtype="PCM_16")
    r = i2s("play", "-p", "sim://rp2", tmp_path / "noise.wav", check=4, timeout=90)
    line = r.stderr.strip().splitlines()[-1]
    assert "compression cannot help" in line and "-b 16" not in line
    fits = re.search(r"fits: (-r \d+)", line)
    assert fits, line
    # what it names really plays (once more after an underrun, which is counted and drops the
    # probe: a loaded 2-core test machine can starve the board's process for longer than its buffer)
    for _ in range(2):
        s = json.loads(i2s("play", "--json", *fits.group(1).split(), "-p", "sim://rp2", tmp_path / "noise.wav",
                           check=0, timeout=90).stdout)
        if s["underruns"] == 0:
            break
    assert s["underruns"] == 0 and s["rate"] == int(fits.group(1).split()[1])


@pytest.mark.slow
def test_a_16_bit_streams_refusal_never_proposes_16_bits(tmp_path):
    out = tmp_path / "rec.wav"
    r = i2s("record", "-r", "48000", "-b", "16", "-c", "2", "-d", "1s", "-p", "sim://esp32", out, check=4,
            timeout=90)
    line = r.stderr.strip().splitlines()[-1]
    assert "-b 16" not in line and re.search(r"fits: -r \d+", line)
    # a 32-bit one may: at 16 kHz stereo only fewer bits (or fewer channels) fits
    r = i2s("record", "-r", "16000", "-b", "32", "-c", "2", "-d", "1s", "-p", "sim://esp32", out, check=4,
            timeout=90)
    assert "-b 16" in r.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_what_fits_is_never_an_option_in_effect(tmp_path):
    # mono 16-bit at 48 kHz from an ESP32: only a lower rate can help
    r = i2s("record", "-r", "48000", "-b", "16", "-c", "1", "-d", "1s", "-p", "sim://esp32", tmp_path / "r.wav",
            check=4,
            timeout=90)
    line = r.stderr.strip().splitlines()[-1]
    assert "-c 1" not in line.split("fits:")[1] and "-b 16" not in line
    rate = int(re.search(r"fits: -r (\d+)$", line).group(1))
    have = float(re.search(r"carries ([\d.]+) kB/s", line).group(1)) * 1000
    payload = 4096 // 2 * 2
    assert protocol.stream_rate(rate, 16, 1, payload) <= have * 0.9  # the highest standard rate that does
    higher = fit.STANDARD_RATES[fit.STANDARD_RATES.index(rate) - 1]
    assert protocol.stream_rate(higher, 16, 1, payload) > have * 0.9


# ---- duplex: its streams are never coded, so --fit changes the rate or the channels --------


@pytest.mark.slow
def test_duplex_fit_lowers_the_shared_bus_and_says_so(tmp_path):
    write_song(tmp_path / "song.wav", seconds=1.0)
    r = i2s("duplex", "-p", "sim://esp32", tmp_path / "song.wav", "-o", tmp_path / "rec.wav", "-d", "0.5s",
            check=4, timeout=120)
    line = r.stderr.strip().splitlines()[-1]
    assert "each way" in line and "fits: -r 8000" in line and re.search(r"--fit \(8000 Hz 32-bit stereo", line)
    r = i2s("duplex", "--fit", "--json", "-p", "sim://esp32", tmp_path / "song.wav", "-o", tmp_path / "rec.wav",
            "-d", "0.5s", check=0, timeout=120)
    s = json.loads(r.stdout)
    assert s["fit"]["method"] == "resample" and (s["rate"], s["fit"]["rate"]) == (8000, 8000)
    assert s["fit"]["snr_db"] > 30  # the chords lie under 4 kHz, most of the noise above it
    assert s["played_frames"] == 8000 and s["recorded_frames"] == 4000  # -d 0.5s at the new rate
    assert sf.info(tmp_path / "rec.wav").samplerate == 8000
    r = i2s("duplex", "--fit", "-p", "sim://esp32", "-o", tmp_path / "rec.wav", "-d", "0.5s", check=2)
    assert "--fit" in r.stderr and "echo" in r.stderr
