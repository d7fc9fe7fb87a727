"""What a stream says of itself: live state for the progress display, and the summary's parts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from i2scli import audio
from i2scli.link import Agent
from i2scli.session.config import buffer_time


@dataclass
class Watch:
    """Live state for the progress display."""

    frames: int = 0
    levels: audio.Levels | None = None
    link_rate: float | None = None
    started: float = field(default_factory=time.monotonic)
    first_audio: float | None = None


def settings(port: str, agent: Agent, cfg: dict, mode: str = "tx") -> dict:
    return {"port": port, "board": agent.describe(), "agent": agent.identity.get("agent"),
            "agent_source": agent.identity.get("source"),
            **{k: cfg[k] for k in ("id", "sck", "ws", "sd", "mck", "bits", "format", "rate", "ibuf", "io")},
            "buffer_time": round(buffer_time(cfg, agent, mode), 6), "ring_from": cfg.get("_ring")}


def board_counts(s: dict) -> dict:
    # the agent's estimate from its clock; where the port counts xruns itself (the virtual
    # board), the larger of the two
    port = s.get("port_xruns") or {}
    return {
        "underruns": max(s.get("underruns", 0), port.get("underruns", 0)),
        "overruns": max(s.get("overruns", 0), port.get("overruns", 0)),
        "lost_frames": max(s.get("lost_frames", 0), port.get("underrun_frames", 0) + port.get("overrun_frames", 0)),
        "crc_errors": s.get("crc_errors", 0) + s.get("host_crc_errors", 0),
        "resyncs": s.get("resyncs", 0) + s.get("host_resyncs", 0),
        "seq_gaps": s.get("seq_gaps", 0) + s.get("host_seq_gaps", 0),
        "heap_alloc": s.get("heap_alloc"), "board_reason": s.get("reason"),
    }


def probe_kind(agent: Agent) -> str | None:
    """How the link rate was known: 'measured' now, 'remembered' from a recent run, or None."""
    if agent.rates is None:
        return None
    return "remembered" if agent.rates.get("cached") else "measured"


def compression(s: dict, bus: audio.BusFormat) -> dict | None:
    """What the wire coder did: the host's counts, and the board's coder time per audio second."""
    host, on_board = s.get("host_code"), s.get("code")
    if host is None:
        return None
    out = {k: host[k] for k in ("ratio", "frames_compressed", "frames_raw")}
    seconds = s.get("frames", 0) / bus.rate
    out["board_us_per_audio_s"] = round(on_board["us"] / seconds) if on_board and seconds else None
    return out


def xruns_drop_probe(agent: Agent, s: dict) -> None:
    """A stream that under- or overran says the remembered link rate may be wrong."""
    if s.get("underruns") or s.get("overruns"):
        agent.forget_rates()


def levels(lv: dict) -> dict:
    chans = lv.get("channels", [])
    return {"peak_dbfs": [c["peak_dbfs"] for c in chans], "rms_dbfs": [c["rms_dbfs"] for c in chans]}
