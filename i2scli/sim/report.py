"""What a virtual board reports: its counters, its event log, the VCD, and the summary."""

from __future__ import annotations

import json
from dataclasses import dataclass

from i2scli.sim.pacing import now_us


@dataclass
class Stats:
    in_bytes: int = 0
    in_dropped: int = 0
    host_stall_us: int = 0  # the input waited while this machine kept the board off its CPUs
    out_bytes: int = 0
    out_dropped: int = 0
    ctrl_c: int = 0
    soft_resets: int = 0
    hard_resets: int = 0
    crashes: int = 0
    tx_frames: int = 0
    rx_frames: int = 0
    underruns: int = 0
    underrun_frames: int = 0
    overruns: int = 0
    overrun_frames: int = 0
    # RX frames the model handed over as zeros because it had not clocked them: a model bug,
    # counted so that a gap in a recording can be told from the product's (docs/sim-internals.md)
    rx_padded_frames: int = 0


def wind_up(board) -> dict:
    """The end of a virtual board's stop(), its threads done: the port closed, the outputs
    written, its files closed; the summary."""
    board._close_port()
    board._write_outputs()
    if getattr(board, "_log", None):
        board._log.close()
    board.source.close()
    summary = board.summary()
    board._tmp.cleanup()
    return summary


class Report:
    """VirtualBoard's events and outputs."""

    def _event(self, e: dict, t: int) -> None:
        e = dict(e)
        e["t"] = round((t - self.t_origin) / 1e6, 6)
        e["t_us"] = t
        self.events.append(e)

    def conflicts(self) -> list[tuple[int, int]]:
        return self.bus.conflicts(self.t_end or now_us())

    def _write_outputs(self) -> None:
        if self.capture:
            self.capture.close()
        t_end = self.t_end or now_us()
        if self.events_path:
            derived = [{"ev": "bus_conflict", "start_us": a, "end_us": b, "t_us": a}
                       for a, b in self.bus.conflicts(t_end)]
            derived += [{"ev": "clock_gap", "start_us": a, "end_us": b, "gap_us": b - a, "t_us": a}
                        for a, b in self.bus.clock_gaps()]
            for d in derived:
                d["t"] = round((d["t_us"] - self.t_origin) / 1e6, 6)
            with open(self.events_path, "w") as f:
                for e in sorted(self.events + derived, key=lambda e: e["t_us"]):
                    f.write(json.dumps(e) + "\n")
        if self.vcd_path:
            self.bus.write_vcd(self.vcd_path, self.t_origin, t_end)

    def summary(self) -> dict:
        t_end = self.t_end or now_us()
        st = self.stats
        return {
            "profile": self.profile.name,
            "path": self.path,
            "seconds": round((t_end - self.t_origin) / 1e6, 3),
            **st.__dict__,
            "conflicts": len(self.bus.conflicts(t_end)),
            "clock_gaps": [b - a for a, b in self.bus.clock_gaps()],
            "faults": [str(f) for f in self.faults if f.fired],
            "gone": self.gone_reason,
        }

    def summary_line(self) -> str:
        s = self.summary()
        gaps = s["clock_gaps"]
        line = (
            f"sim: {s['profile']} board ran {s['seconds']:.1f} s; "
            f"in {s['in_bytes']} B ({s['in_dropped']} dropped), out {s['out_bytes']} B "
            f"({s['out_dropped']} dropped); TX {s['tx_frames']} frames "
            f"({s['underruns']} underruns), RX {s['rx_frames']} frames ({s['overruns']} overruns); "
            f"{s['conflicts']} bus conflicts, {len(gaps)} clock gaps"
        )
        if gaps:
            line += f" (longest {max(gaps) / 1000:.2f} ms)"
        if s["rx_padded_frames"]:
            line += f"; MODEL BUG: {s['rx_padded_frames']} RX frames read that were never clocked"
        if s["gone"]:
            line += f"; {s['gone']}"
        return line
