"""Audio-path measurements for `i2s test`, gathered under one name: test signals (`signals`),
one function per measured quantity (`measures`), every measure of a recording (`recording`),
pass/fail limits (`limits`), and verdicts with their JUnit report (`checks`). numpy only; the
methods and their references are in docs/test.md.

Conventions:

* Samples are integer arrays of shape ``(frames, channels)`` (a 1-D array is one channel),
  int16 for a 16-bit bus and int32 for a 32-bit bus, as on the I2S wire; full scale is
  ``2**(bits - 1)``.
* Levels are dBFS as AES17 defines them: a sine whose peak reaches full scale is 0 dBFS, so
  the level of any signal is ``20*log10(rms * sqrt(2) / full_scale)`` and a -6 dBFS sine
  peaks at about half of full scale.
* Ratios (SNR, THD, THD+N) are in dB relative to the fundamental.

Typical use::

    samples, info = test_signal("sine", rate=48000, bits=32, channels=2)
    recorded = ...  # play `samples` and record the loopback at the same time
    measures = analyse(samples, recorded, 48000, 32, info)
    checks = check(measures, load_limits("limits.toml"))
    junit_xml({"esp32": checks}, "report.xml")
"""

import importlib

# each module of the loopback test and the names it gives to this one
_FROM = {
    "checks": ("Check", "check", "junit_xml"),
    "limits": ("LIMITS_MAX_BYTES", "Limits", "load_limits"),
    "measures": ("OCTAVES", "AnalysisError", "Glitch", "MarkerMatch", "SineFit", "correlate", "dc_offset",
                 "detect_frequency", "find_glitches", "find_hum", "find_marker", "fit_sine", "fit_tones",
                 "frequency_response", "glitch_period", "level_dbfs", "match_buffers", "significant_bits",
                 "window_snr"),
    "recording": ("IGNORE_START_S", "WINDOW_S", "analyse"),
    "signals": ("SignalInfo", "full_scale", "log_sweep", "marker", "multitone", "plucked_song", "sine",
                "test_signal", "to_float"),
}
for _module, _names in _FROM.items():
    _m = importlib.import_module(f"i2scli.loopback.{_module}")
    globals().update({n: getattr(_m, n) for n in _names})
del _module, _names, _m

__all__ = sorted(n for names in _FROM.values() for n in names)
