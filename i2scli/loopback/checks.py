"""Verdicts of `i2s test`: one check per limit given, per channel, and the JUnit report of them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from i2scli.loopback.limits import Limits
from i2scli.loopback.recording import _MARKER_MIN_CORRELATION


@dataclass(frozen=True)
class Check:
    """One verdict: `name` (``ch0.snr``), measured `value`, the `limit`, `passed`, and a one-line `message`."""

    name: str
    value: Any
    limit: Any
    passed: bool
    message: str


def _threshold(name: str, value: float | None, limit: float, *, minimum: bool, unit: str, note: str = "") -> Check:
    if value is None:
        return Check(name, None, limit, False, f"{name}: not measured")
    ok = value >= limit if minimum else value <= limit
    word = ("at least" if minimum else "at most") if ok else ("below the minimum" if minimum else "above the maximum")
    return Check(name, value, limit, ok, f"{name} is {value:g}{unit}, {word} {limit:g}{unit}{note}")


def _period_note(c: dict[str, Any]) -> str:
    """``; every N frames (M ms) in the recording: ...`` when the glitches recur, else nothing."""
    if c.get("glitch_period_frames") is None:
        return ""
    note = (f"; {c['glitch_period_count']} of them every {c['glitch_period_frames']:g} frames"
            f" ({c['glitch_period_ms']:g} ms) in the recording")
    matches = c.get("glitch_period_matches")
    if matches:
        return note + ": " + ", ".join(
            (f"{m['multiple']} x " if m["multiple"] > 1 else "") + f"the {m['buffer']} ({m['frames']} frames)"
            for m in matches
        )
    return note + ("" if matches is None else ": no buffer of the session is that long")


def _where(c: dict[str, Any], prefix: str = "min_window_snr") -> str:
    if c.get(f"{prefix}_frame") is None:
        return ""
    held = ", a glitch in it" if c.get(f"{prefix}_glitch") else ""
    return f", at {c[f'{prefix}_s']:g} s (the window from frame {c[f'{prefix}_frame']}{held})"


def _start_check(p: str, c: dict[str, Any], limits: Limits) -> Check:
    """What the first ignore_start of the stimulus holds, judged by max_start_glitches if given."""
    st = c["start"]
    n, limit = st.get("glitch_count"), limits.max_start_glitches
    head = f"{p}.start: the first {st['ms']:g} ms hold"
    if n is None:
        what = " no glitch measure (not a sine)"
    else:
        what = f" {n} glitch{'es' if n != 1 else ''}"
        if st["glitches"]:
            g = st["glitches"][0]
            what += f" (the first a {g['kind']} at frame {g['position']})"
    if st.get("min_window_snr_db") is not None:
        what += f", least window SNR {st['min_window_snr_db']:g} dB"
    if limit is None or n is None:
        return Check(f"{p}.start", n, None, True, head + what + "; not judged (max_start_glitches)")
    ok = n <= limit
    word = ", at most " if ok else ", above the maximum "
    return Check(f"{p}.start", n, limit, ok, f"{head}{what}{word}{limit}")


def _channel_checks(c: dict[str, Any], target: float | None, limits: Limits) -> list[Check]:
    p = f"ch{c['channel']}"
    out = []
    if limits.freq_tolerance is not None and target is not None and "freq_hz" in c:
        f, tol = c["freq_hz"], limits.freq_tolerance
        ok = abs(f - target) <= tol * target
        word = "within" if ok else "outside"
        out.append(
            Check(
                f"{p}.frequency",
                f,
                f"{target:g} Hz +-{tol:.3%}",
                ok,
                f"{p}.frequency is {f:g} Hz, {word} {target:g} Hz +-{tol:.3%}",
            )
        )
    notes = {"glitches": _period_note(c), "window_snr": _where(c),
             "latency": "" if c.get("latency_uncertainty_ms") is None
             else f" (measured to +-{c['latency_uncertainty_ms']:g} ms)"}
    for name, spec in Limits.specs().items():
        limit = getattr(limits, name)
        if spec.measure is None or limit is None:
            continue
        value = c.get(spec.measure)
        if value is not None:
            value = abs(value) if spec.magnitude else value
            value = value / spec.per if spec.per != 1 else value  # (a count stays an int)
        elif not (spec.missing_fails == "always" or spec.missing_fails == "sine" and c.get("kind") == "sine"):
            continue
        out.append(_threshold(f"{p}.{spec.case}", value, limit, minimum=spec.minimum, unit=spec.unit,
                              note=notes.get(spec.case, "")))
    if "start" in c and c.get("kind") == "sine":
        out.append(_start_check(p, c, limits))
    problems = []
    if c.get("source") != c["channel"] and not limits.allow_swap:
        problems.append(f"carries played channel {c.get('source')}")
    if c.get("inverted") and not limits.allow_inversion:
        problems.append("has its polarity inverted")
    msg = f"{p} " + (" and ".join(problems) if problems else f"comes from played channel {c.get('source')}")
    out.append(Check(f"{p}.wiring", c.get("source"), c["channel"], not problems, msg))
    return out


def _failed_channel_checks(c: dict[str, Any], limits: Limits, start: bool) -> list[Check]:
    """The same check names as a measured channel, all failed: CI dashboards keep their history.
    `start`: a measured channel would have a ``start`` check."""
    cases = [(s.case, getattr(limits, name)) for name, s in Limits.specs().items()
             if s.case is not None and (s.case != "start" or start)]
    p = f"ch{c['channel']}"
    return [
        Check(f"{p}.{n}", None, v, False, f"{p}.{n} not measured: {c['error']}")
        for n, v in cases
        if v is not None or n == "start"
    ]


def check(measures: dict[str, Any], limits: Limits) -> list[Check]:
    """Verdicts of `analyse`'s `measures` against `limits`: for each channel a ``signal`` check
    (fails with the reason when the channel could not be measured, e.g. "the loopback carries
    nothing"), one check per limit given, a ``start`` check for a sine when the start of the
    stimulus was set apart (`ignore_start`), and a ``wiring`` check (swap, polarity)."""
    target = measures["freqs"][0] if measures.get("kind") == "sine" and measures.get("freqs") else None
    out = []
    for c in measures["channels"]:
        p = f"ch{c['channel']}"
        if c.get("error"):
            out.append(Check(f"{p}.signal", None, None, False, c["error"]))
            out += _failed_channel_checks(c, limits, measures.get("kind") == "sine"
                                          and bool(measures.get("ignore_start_ms")))
            continue
        out.append(
            Check(
                f"{p}.signal",
                c.get("marker_correlation"),
                _MARKER_MIN_CORRELATION,
                True,
                f"{p} carries the test signal",
            )
        )
        out += _channel_checks({**c, "kind": measures.get("kind")}, target, limits)
    return out


# --------------------------------------------------------------------------- JUnit


def junit_xml(results: dict[str, list[Check]], path: str | Path) -> Path:
    """Write a JUnit XML report: one ``<testsuite>`` per board, one ``<testcase>`` per check,
    a ``<failure>`` with the check's message for each failed one. Returns the path."""
    root = ET.Element("testsuites", name="i2s test")
    total = failed = 0
    for board, checks in results.items():
        n_fail = sum(not c.passed for c in checks)
        suite = ET.SubElement(root, "testsuite", name=board, tests=str(len(checks)), failures=str(n_fail), errors="0")
        for c in checks:
            case = ET.SubElement(suite, "testcase", classname=f"i2s.test.{board}", name=c.name)
            if not c.passed:
                ET.SubElement(
                    case, "failure", message=c.message, type="limit"
                ).text = f"{c.message}\nvalue: {c.value}\nlimit: {c.limit}"
            else:
                ET.SubElement(case, "system-out").text = c.message
        total += len(checks)
        failed += n_fail
    root.set("tests", str(total))
    root.set("failures", str(failed))
    path = Path(path)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path
