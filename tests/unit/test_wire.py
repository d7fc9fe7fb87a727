import numpy as np
import soundfile as sf

from i2scli.sim.wire import Capture, FileSource, Sine, ramp_samples


def test_ramp_counts_slots():
    r = ramp_samples(10, 3, 16, 2)
    assert r.tolist() == [[20, 21], [22, 23], [24, 25]]
    assert ramp_samples(10, 2, 32, 1).tolist() == [[20 << 8], [22 << 8]]
    assert ramp_samples(0x7FFF, 1, 16, 2).dtype == np.int16


def test_capture_mono_appears_on_both_slots(tmp_path):
    cap = Capture(str(tmp_path / "c.wav"))
    cap.write(np.array([1, -2, 3], "<i2").tobytes(), 16, 1, 8000)
    cap.zeros(2, 16, 8000)
    cap.close()
    data, rate = sf.read(tmp_path / "c.wav", dtype="int16")
    assert rate == 8000 and sf.info(tmp_path / "c.wav").subtype == "PCM_16"
    assert data.tolist() == [[1, 1], [-2, -2], [3, 3], [0, 0], [0, 0]]


def test_file_source_is_bit_exact(tmp_path):
    x = (np.arange(100, dtype=np.int32) * 65536 * 7).reshape(50, 2)
    sf.write(tmp_path / "s.wav", x, 16000, subtype="PCM_32")
    src = FileSource(str(tmp_path / "s.wav"))
    assert (src.frames(10, 45, 16000, 32, 2) == np.vstack([x[10:], np.zeros((5, 2), np.int32)])).all()
    assert (src.frames(0, 5, 16000, 16, 1)[:, 0] == (x[:5, 0] >> 16)).all()


def test_sine_level():
    s = Sine(1000, -6).frames(0, 48000, 48000, 16, 2)
    assert abs(int(np.abs(s).max()) - round(32767 * 10 ** (-6 / 20))) <= 1
