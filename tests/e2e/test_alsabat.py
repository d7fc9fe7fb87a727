"""Cross-check with alsabat (alsa-utils' Basic Audio Tester): on the very recording `i2s test`
measured (--save-recording), alsabat finds the same frequency, within its own precision (one
bin of its FFT: rate / frames analysed). alsabat analyses a file without a sound card with
`--local --file=FILE` (alsa-utils 1.2.8 has no --readcapture). Skipped, saying why, where
alsabat is not installed (.ci/run installs alsa-utils)."""

import json
import re
import shutil
import subprocess

import pytest
import soundfile as sf
from conftest import i2s


@pytest.mark.slow
@pytest.mark.parametrize("freq,args", [(997, []), (440, ["-r", "16000", "-b", "16", "-c", "1"])])
def test_frequency_agrees_with_alsabat(tmp_path, freq, args):
    alsabat = shutil.which("alsabat")
    if alsabat is None:
        pytest.skip("alsabat is not installed (Debian: apt-get install alsa-utils)")
    wav = tmp_path / "rec.wav"
    for _ in range(3):  # a run with a counted xrun (a loaded machine: board.xruns, exit 7) runs again
        r = i2s("test", "-p", "sim://fast?loopback=0%3E1,delay=1ms,noise=-60", "--freq", freq, *args,
                "--save-recording", wav, "--json", check=None)
        if r.returncode == 0:
            break
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.splitlines()[0])
    rec, rate = sf.read(wav, dtype="int32" if res["bits"] == 32 else "int16", always_2d=True)
    assert rec.shape == (res["recorded_frames"], res["channels"]) and rate == res["rate"]
    assert sf.info(wav).subtype == ("PCM_32" if res["bits"] == 32 else "PCM_16")
    # alsabat wants the tone alone: the stimulus out of the same recording, where i2s found it
    sig, chans = res["signal"], res["measures"]["channels"]
    start = sig["stimulus_start"] + chans[0]["latency_total_samples"]
    tone = tmp_path / "tone.wav"
    sf.write(tone, rec[start:start + sig["stimulus_length"]], rate, subtype=sf.info(wav).subtype)
    out = subprocess.run([alsabat, "--local", f"--file={tone}", "-F", str(freq)], capture_output=True, text=True,
                         timeout=60)
    text = out.stdout + out.stderr
    assert "Return value is 0" in text, text
    frames = int(re.search(r"signal has (\d+) frames", text).group(1))
    peaks = [float(f) for f in re.findall(r"Detected peak at ([\d.]+) Hz", text)]
    assert len(peaks) == res["channels"], text  # one peak per channel, nothing else
    for c, peak in zip(chans, peaks):
        assert c["freq_hz"] == pytest.approx(freq, abs=0.01)
        assert abs(c["freq_hz"] - peak) <= rate / frames, (c["freq_hz"], peak, rate / frames)


def test_save_recording_needs_a_wav_name():
    r = i2s("test", "-p", "sim://fast", "--save-recording", "x.flac", check=2)
    assert "not a .wav" in r.stderr
