"""record --max-file-time: a stream cut into files of exact frame counts (i2scli/splitfiles.py),
written through the real audio.Output into real files, read back with libsndfile."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from i2scli import audio
from i2scli.splitfiles import SplitOutput, file_name

BUS = audio.BusFormat(16000, 16, 2)


def _stream(frames: int) -> np.ndarray:
    k = np.arange(frames, dtype=np.int64)
    return np.stack([k % 32000 - 16000, -(k % 30011)], axis=1).astype(np.int16)


def _write_in_pieces(out: SplitOutput, x: np.ndarray) -> None:
    data = x.astype("<i2").tobytes()
    cuts = np.cumsum(np.random.default_rng(3).integers(1, 3000, 400))  # pieces that split frames too
    for a, b in zip([0, *cuts], [*cuts, len(data)]):
        if a < len(data):
            out.write(data[a:min(b, len(data))])


def test_files_of_exact_length_put_end_to_end_are_the_recording(tmp_path):
    x = _stream(40000)
    out = SplitOutput(str(tmp_path / "rec.wav"), BUS, 16000)
    _write_in_pieces(out, x)
    out.close()
    assert out.files == [str(tmp_path / f"rec-{i:02d}.wav") for i in (1, 2, 3)]  # arecord's names
    assert not (tmp_path / "rec.wav").exists()
    parts = [sf.read(f, dtype="int16", always_2d=True)[0] for f in out.files]
    assert [len(p) for p in parts] == [16000, 16000, 8000]
    np.testing.assert_array_equal(np.concatenate(parts), x)  # nothing lost, nothing repeated
    assert out.frames == 40000


def test_one_file_keeps_its_name(tmp_path):
    out = SplitOutput(str(tmp_path / "rec.wav"), BUS, 16000)
    _write_in_pieces(out, _stream(16000))
    out.close()
    assert out.files == [str(tmp_path / "rec.wav")] and len(sf.read(out.files[0])[0]) == 16000


def test_numbers_and_strftime_fields_name_the_files(tmp_path):
    assert file_name("a-{n}.wav", 3, False) == "a-03.wav"
    assert file_name("a-{n:04d}.wav", 3, False) == "a-0003.wav"
    when = 1700000000.0
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    assert file_name("%Y%m%d-%H%M%S_%v.wav", 2, True, when) == f"{stamp}_02.wav"
    out = SplitOutput(str(tmp_path / "%Y_{n}.raw"), BUS, 1000, raw=True, strftime=True, clock=lambda: when)
    out.write(_stream(2500).tobytes())
    out.close()
    year = time.strftime("%Y", time.localtime(when))
    assert out.files == [str(tmp_path / f"{year}_{i:02d}.raw") for i in (1, 2, 3)]
    assert [len(open(f, "rb").read()) for f in out.files] == [4000, 4000, 2000]


def test_a_pattern_that_names_a_file_again_does_not_overwrite_it(tmp_path):
    out = SplitOutput(str(tmp_path / "%Y.wav"), BUS, 100, strftime=True, clock=lambda: 1700000000.0)
    out.write(_stream(250).tobytes())
    out.close()
    assert len(set(out.files)) == 3
    assert sum(len(sf.read(f)[0]) for f in out.files) == 250


def test_nothing_recorded_leaves_no_file(tmp_path):
    out = SplitOutput(str(tmp_path / "rec.wav"), BUS, 100)
    out.abandon()
    assert out.files == [] and not list(tmp_path.iterdir())


def test_a_length_of_no_frames_is_refused(tmp_path):
    with pytest.raises(ValueError):
        SplitOutput(str(tmp_path / "rec.wav"), BUS, 0)
