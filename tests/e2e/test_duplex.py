"""i2s duplex on the virtual board, checked against the board's own bus record."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from i2scli.sim.wire import ramp_samples

pytestmark = pytest.mark.slow  # every test here takes 1 s or more on a loaded 2-core machine

RATE = 8000  # 8 kHz 32-bit stereo: 64 kB/s, inside what every virtual USB link carries


def run(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "i2scli", *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    if check:
        assert r.returncode == 0, r.stderr
    return r


def events(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def rx_starts(evs: list[dict]) -> list[int]:
    """Where in the ramp each RX session began: the microphone runs on while RX clocks."""
    sids = {e["sid"] for e in evs if e["ev"] == "i2s_init" and e["mode"] == "rx"}
    starts, pos = [], 0
    for e in evs:
        if e["ev"] == "i2s_deinit" and e["sid"] in sids:
            starts.append(pos)
            pos += e["frames"]
    return starts


def play_file(tmp_path, frames=4000, channels=2) -> np.ndarray:
    x = ((np.arange(1, frames * channels + 1, dtype=np.int64) * 977) % (1 << 23) + 1) << 8
    x = x.astype(np.int32).reshape(-1, channels)
    sf.write(tmp_path / "play.wav", x, RATE, subtype="PCM_32")
    return x


def played_runs(capture) -> list[np.ndarray]:
    """The TX capture split at silence: the lead-ins and gaps are zeros, the audio never is."""
    data = sf.read(capture, dtype="int32")[0]
    nonzero = np.flatnonzero(data.any(axis=1))
    runs = np.split(nonzero, np.flatnonzero(np.diff(nonzero) != 1) + 1)
    return [data[r[0]: r[-1] + 1] for r in runs if len(r)]


def url(profile, tmp_path, **opts):
    o = {"rx_source": "ramp", "codec_release": "500us", "codec_drive": "100us",
         "tx_capture": str(tmp_path / "tx.wav"), "events": str(tmp_path / "ev.jsonl"), **opts}
    return f"sim://{profile}?" + "&".join(f"{k}={v}" for k, v in o.items())


def _switch(tmp_path, delay: str) -> tuple[list[dict], int, list[dict]]:
    """One record-play run; returns the events, the µs from DIR change to TX driving SD,
    and the conflicts the bus recorded."""
    run("duplex", "-p", url("rp2", tmp_path), str(tmp_path / "play.wav"), "-o", str(tmp_path / "rec.wav"),
        "-d", "0.2s", "-c", "2", "--switch-delay", delay)
    evs = events(tmp_path / "ev.jsonl")
    rx_sid = next(e["sid"] for e in evs if e["ev"] == "i2s_init" and e["mode"] == "rx")
    t_rx_stop = next(e["t_us"] for e in evs if e["ev"] == "i2s_deinit" and e["sid"] == rx_sid)
    t_release = next(e["t_us"] for e in evs if e["ev"] == "pin" and e["name"] == 18 and e["mode"] == "in"
                     and e["t_us"] >= t_rx_stop)
    t_dir = next(e["t_us"] for e in evs if e["ev"] == "pin_value" and e["name"] == 15 and e["value"] == 1
                 and e["t_us"] >= t_rx_stop)
    t_tx = next(e["t_us"] for e in evs if e["ev"] == "i2s_init" and e["mode"] == "tx")
    # the safe order, as the board did it: RX stops, SD released, DIR to TX, TX starts
    assert t_rx_stop <= t_release <= t_dir <= t_tx
    return evs, t_tx - t_dir, [e for e in evs if e["ev"] == "bus_conflict"]


def test_no_switch_delay_fights_a_slow_codec(tmp_path):
    """A codec releasing SD 500 us after DIR: with no delay the board drives SD while the
    codec still does. The bus records a conflict exactly when the board's own steps took less
    than the 500 us (a descheduled board is slow enough by itself): tried until that happens."""
    play_file(tmp_path)
    for _ in range(5):
        _, dir_to_tx, found = _switch(tmp_path, "0")
        assert bool(found) == (dir_to_tx < 500), (dir_to_tx, found)
        if found:
            assert all(0 < e["end_us"] - e["start_us"] <= 500 for e in found)
            return
    pytest.fail("the board never switched within 500 us in 5 tries (machine too loaded?)")


def test_a_switch_delay_avoids_the_fight(tmp_path):
    play_file(tmp_path)
    _, dir_to_tx, found = _switch(tmp_path, "1ms")
    assert dir_to_tx >= 1000 and found == []


@pytest.mark.parametrize("profile,channels", [("rp2", 1), ("openmv", 2), ("mimxrt", 2)])
def test_recording_and_playback_are_bit_exact(tmp_path, profile, channels):
    x = play_file(tmp_path, channels=channels)
    r = run("duplex", "-p", url(profile, tmp_path), str(tmp_path / "play.wav"), "-o", str(tmp_path / "rec.wav"),
            "-d", "0.5s", "--rx-discard", "2ms", "--lead-in", "5ms", "--json", "-q")
    summary = json.loads(r.stdout)
    rec = sf.read(tmp_path / "rec.wav", dtype="int32", always_2d=True)[0]
    discard = summary["settings"]["discard_frames"]
    assert len(rec) == 4000 and discard == 16
    start = rx_starts(events(tmp_path / "ev.jsonl"))[0]
    assert np.array_equal(rec, ramp_samples(start + discard, 4000, 32, channels))
    (played,) = played_runs(tmp_path / "tx.wav")
    assert np.array_equal(played, x if channels == 2 else np.repeat(x, 2, axis=1))
    if profile == "openmv":  # two pads tied together: TX on P0, RX on P1
        assert (summary["settings"]["tx"]["sd"], summary["settings"]["rx"]["sd"]) == ("P0", "P1")
    if profile == "mimxrt":  # the teensy41 preset, by the names the firmware takes: two buses, DIR on D6
        tx, rx = summary["settings"]["tx"], summary["settings"]["rx"]
        assert (tx["id"], tx["sck"], tx["ws"], tx["sd"]) == (2, "D4", "D3", "D2")
        assert (rx["id"], rx["sck"], rx["ws"], rx["sd"]) == (1, "D21", "D20", "D8")
        assert {e["name"] for e in events(tmp_path / "ev.jsonl") if e["ev"] == "pin" and e["mode"] == "out"} \
            == {"D6"}


def test_reported_clock_gap_matches_the_bus(tmp_path):
    play_file(tmp_path)
    r = run("duplex", "-p", url("rp2", tmp_path), str(tmp_path / "play.wav"), "-o", str(tmp_path / "rec.wav"),
            "-d", "0.2s", "-c", "2", "--switch-delay", "2ms", "--json", "-q", "--timeline", str(tmp_path / "t.vcd"))
    reported = json.loads(r.stdout)["clock_gaps_us"]
    bus = [e["gap_us"] for e in events(tmp_path / "ev.jsonl") if e["ev"] == "clock_gap"]
    assert len(reported) == len(bus) == 1
    assert abs(reported[0] - bus[0]) <= 1000 and bus[0] >= 2000
    vcdvcd = pytest.importorskip("vcdvcd")
    vcd = vcdvcd.VCDVCD(str(tmp_path / "t.vcd"))
    assert [v for _, v in vcd["board.tx_clock"].tv] == ["0", "1", "0"]


def test_echo_mode_and_cycles(tmp_path):
    r = run("duplex", "-p", url("rp2", tmp_path), "-o", str(tmp_path / "take-{n}.wav"), "-d", "0.2s", "-c", "1",
            "-r", "8000", "--cycles", "3", "--json", "-q")
    summary = json.loads(r.stdout)
    assert len(summary["cycles"]) == 3
    starts = rx_starts(events(tmp_path / "ev.jsonl"))
    runs = played_runs(tmp_path / "tx.wav")
    assert len(starts) == 3 and len(runs) == 3
    for n in range(3):
        rec = sf.read(tmp_path / f"take-{n + 1}.wav", dtype="int32", always_2d=True)[0]
        discard = summary["cycles"][n]["settings"]["discard_frames"]
        assert np.array_equal(rec, ramp_samples(starts[n] + discard, 1600, 32, 1))
        # MONO TX appears on both slots of the capture
        assert np.array_equal(runs[n], np.repeat(rec, 2, axis=1))


def test_sixteen_bits_warns_about_the_clock(tmp_path):
    play_file(tmp_path)
    r = run("duplex", "-p", url("rp2", tmp_path), "-o", str(tmp_path / "rec.wav"), "-d", "0.05s", "-b", "16",
            "-q")
    assert "-b 32" in r.stderr


# -- coded on the wire ----------------------------------------------------------------------------

def test_duplex_at_48k_16_bit_stereo_on_a_pico_is_coded_and_exact(tmp_path):
    """200 kB/s each way does not fit the Pico's 180 kB/s stdin raw: both halves go coded,
    0 xruns; the play half bit-exact on the bus, the record half an exact run of the ramp."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from test_compress import music

    src = music(tmp_path / "play.wav", seconds=1.0)
    for _ in range(3):  # 65 % of the link: a loaded host can starve it, and that is counted: run again
        r = run("duplex", "-p", url("rp2", tmp_path), str(tmp_path / "play.wav"), "-o", str(tmp_path / "rec.wav"),
                "-d", "0.5s", "-b", "16", "--json")
        s = json.loads(r.stdout)
        if not (s["underruns"] or s["overruns"]):
            break
    assert s["underruns"] == 0 and s["overruns"] == 0 and s["crc_errors"] == 0 and s["lost_frames"] == 0
    assert s["compression"]["frames_compressed"] > 0 and s["board"]["code"]["frames_coded"] > 0
    assert s["played_frames"] == len(src)
    runs = played_runs(tmp_path / "tx.wav")
    assert len(runs) == 1  # no gap: not one frame lost or late
    assert np.array_equal(runs[0].astype(np.int64), src.astype(np.int64) << 16)  # 16-bit in the int32 read
    rec, _ = sf.read(tmp_path / "rec.wav", dtype="int16")
    assert rec.shape == (24000, 2)
    k = int(rec[0, 0]) // 2  # where the kept recording starts in the ramp (after the discard)
    assert np.array_equal(rec, ramp_samples(k, len(rec), 16, 2))  # an exact run: nothing lost or repeated


def test_an_esp32_underrun_in_the_play_half_loses_no_audio_and_is_counted_as_the_pins_show(tmp_path):
    """A 600 ms stall of the link in the play half empties the esp32's DMA buffers: the agent
    finishes the buffer it was left in with zeros before the next audio (else the port puts up
    to 255 frames of it a circle later, or writes over them: docs/sim.md, the esp32 rules), so
    every frame plays in order, and its count of the gap is the zeros the pins show."""
    x = play_file(tmp_path, frames=3 * RATE)
    r = run("duplex", "-p", url("esp32", tmp_path, fault="stall:at=2s,for=600ms"), str(tmp_path / "play.wav"),
            "-o", str(tmp_path / "rec.wav"), "-d", "0.3s", "-b", "32", "--json", "-q")
    s = json.loads(r.stdout)
    w = sf.read(tmp_path / "tx.wav", dtype="int32")[0]
    audio = np.any(w != 0, axis=1)
    assert np.array_equal(w[audio], x)
    at = np.flatnonzero(audio)
    # (a loaded machine may starve the link once more, or end the stall with the ring fuller)
    assert s["underruns"] >= 1 and s["lost_frames"] == at[-1] + 1 - at[0] - len(x) >= 256
