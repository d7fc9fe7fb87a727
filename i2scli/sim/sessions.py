"""The model's side of the board's I2S sessions: what TX clocked onto the wire (capture,
loopback), what RX hands the board code (source, loopback, bus state), and their counts."""

from __future__ import annotations

import collections
import math
import os
from dataclasses import dataclass, field

import numpy as np

from i2scli.sim.bus import Session
from i2scli.sim.loopback import TxRun
from i2scli.sim.pacing import BOARD_LAG_MAX_US, now_us
from i2scli.sim.wire import wire_dtype


@dataclass
class SessionState:
    """The model's half of one I2S session: ring contents and counters."""

    info: Session
    frame_bytes: int
    tx_ring: bytearray = field(default_factory=bytearray)
    rx_ring: collections.deque = field(default_factory=collections.deque)  # [src, clock, n]
    clocked: int = 0  # frames clocked on the wire so far
    wire_frames: int = 0  # TX: frames of ring data clocked out
    zero_frames: int = 0  # TX: silence clocked (before first write or underrun)
    read_frames: int = 0  # RX: frames handed to the board code
    dropped_frames: int = 0  # RX: frames lost to overflow
    padded_frames: int = 0  # RX: frames the board read that the model had not clocked (a model bug)
    bus: int = -1  # the I2S id
    run: TxRun | None = None  # TX on the loopback's TX bus: what it drove
    mismatched: set = field(default_factory=set)  # RX: TX runs reported as not lockable
    # TX on esp32: the DMA buffers' memory (no ring: _simesp32.py), and one buffer's bytes
    dma: bytearray | None = None
    dma_buf: int = 0

    def queued(self) -> int:
        """TX frames written and not yet clocked, in the order they clock next (esp32: the DMA
        circle from the frame playing, one turn; what is not written yet reads zeros)."""
        if self.dma is None:
            return len(self.tx_ring) // self.frame_bytes
        return len(self.dma) // self.frame_bytes - self.clocked % (self.dma_buf // self.frame_bytes)

    def ahead(self, a: int, b: int) -> bytes:
        """Bytes of frames a..b-1 of those queued()."""
        fb = self.frame_bytes
        if self.dma is None:
            return bytes(self.tx_ring[a * fb:b * fb])
        n = len(self.dma)
        at = (self.clocked + a) * fb % n
        k = (b - a) * fb  # at most one turn
        if at + k <= n:
            return bytes(self.dma[at:at + k])
        return bytes(self.dma[at:]) + bytes(self.dma[:at + k - n])


class I2SSessions:
    """VirtualBoard's I2S sessions, fed by the board process's records."""

    def _on_i2s_init(self, e: dict, t: int) -> None:
        channels = 2 if e["format"] == "stereo" else 1
        info = Session(e["sid"], e["mode"], e["sd"], e["rate"], e["bits"], channels, t)
        s = self.sessions[e["sid"]] = SessionState(info, e["bits"] // 8 * channels, bus=e.get("id", -1))
        if e.get("dma_bufs"):
            s.dma = bytearray(e["dma_bufs"] * e["dma_buf_bytes"])
            s.dma_buf = e["dma_buf_bytes"]
        self.bus.i2s_init(info)
        lb = self.loopback
        if lb is not None and s.bus == lb.tx and e["mode"] == "tx":
            s.run = TxRun(e["sid"], t, e["rate"], e["bits"], channels)
            s.run.live = s
            self._tx_runs.append(s.run)
        elif lb is not None and s.bus == lb.rx and e["mode"] == "rx":
            self._event({"ev": "loopback_rx", "sid": e["sid"], "rate": e["rate"], "bits": e["bits"],
                         "delay_frames": lb.delay_frames(e["rate"])}, t)

    def _on_clock(self, sid: int, ring_frames: int, zero_frames: int) -> None:
        s = self.sessions.get(sid)
        if s is None:
            return
        n = ring_frames * s.frame_bytes
        data, s.tx_ring[:n] = bytes(s.tx_ring[:n]), b""
        self._clocked(s, data, zero_frames)

    def _on_dma_play(self, sid: int, at: int, frames: int) -> None:
        s = self.sessions.get(sid)
        if s is None or s.dma is None:
            return
        n = frames * s.frame_bytes
        data, s.dma[at:at + n] = bytes(s.dma[at:at + n]), bytes(n)  # played, then cleared
        self._clocked(s, data, 0)

    def _clocked(self, s: SessionState, data: bytes, zero_frames: int) -> None:
        """TX session s put `data` then `zero_frames` of silence on SD."""
        info = s.info
        ring_frames = len(data) // s.frame_bytes
        if self.capture and data:
            self.capture.write(data, info.bits, info.channels, info.rate)
        if self.capture and zero_frames:
            self.capture.zeros(zero_frames, info.bits, info.rate)
        if s.run is not None:
            s.run.clocked(data, zero_frames)
        s.wire_frames += ring_frames
        s.zero_frames += zero_frames
        s.clocked += ring_frames + zero_frames

    def _on_rx(self, sid: int, fill: int, drop: int, nbytes: int) -> None:
        s = self.sessions.get(sid)
        if s is not None:
            if fill:
                s.rx_ring.append([self._src_pos, s.clocked, fill])
                self._src_pos += fill
                s.clocked += fill
            if drop:
                self._src_pos += drop
                s.clocked += drop
                s.dropped_frames += drop
        out = self._render_rx(s, nbytes // s.frame_bytes if s else 0) if s else b""
        if len(out) < nbytes:
            short = (nbytes - len(out)) // s.frame_bytes if s else 0
            if s is not None:
                s.padded_frames += short
            self.stats.rx_padded_frames += short
            self._event({"ev": "rx_padded", "sid": sid, "frames": short}, now_us())
            out = out.ljust(nbytes, b"\0")
        view = memoryview(out)
        while view:
            view = view[os.write(self._rx_w, view):]

    _src_pos = 0  # the microphone's position: one frame per RX frame clocked, ever

    def _render_rx(self, s: SessionState, frames: int) -> bytes:
        info, parts = s.info, []
        while frames > 0 and s.rx_ring:
            seg = s.rx_ring[0]
            n = min(frames, seg[2])
            if self.loopback is not None and s.bus == self.loopback.rx:
                samples = self._loopback_frames(s, seg[0], seg[1], n)
            else:
                samples = self.source.frames(seg[0], n, info.rate, info.bits, info.channels)
            times = info.t0 + (seg[1] + np.arange(n, dtype=np.int64)) * 1_000_000 // info.rate
            state = self.bus.rx_states(times)
            if state.any():
                samples = samples.copy()
                samples[state == 1] = 0  # nobody drives SD: it reads low
                samples[state == 2] = -1  # two drivers fight: garbage
            parts.append(np.ascontiguousarray(samples, wire_dtype(info.bits)).tobytes())
            seg[0] += n
            seg[1] += n
            seg[2] -= n
            if not seg[2]:
                s.rx_ring.popleft()
            frames -= n
            s.read_frames += n
        if self.loopback is not None and s.bus == self.loopback.rx:
            self._trim_runs()
        return b"".join(parts)

    def _loopback_frames(self, s: SessionState, pos: int, clock: int, n: int) -> np.ndarray:
        """RX frames clock..clock+n-1 of session s (RX stream position pos) on the loopback:
        frame j reads TX frame floor((t0_rx - t0_tx)·rate/10⁶) + j - D of the TX session that
        was clocking then, transformed by the analog path."""
        lb, info = self.loopback, s.info
        rate = info.rate
        d = lb.delay_frames(rate)
        x = np.zeros((n, 2), np.int64)
        for run in self._tx_runs:
            if run.rate == rate and run.bits == info.bits:
                run.fill(x, (info.t0 - run.t0) * rate // 1_000_000 + clock - d)
                continue
            # Another rate or slot width: the receiver cannot lock to it and reads silence.
            a = info.t0 + (clock - d) * 1e6 / rate
            b = info.t0 + (clock + n - d) * 1e6 / rate
            end = math.inf if run.live is not None else run.t0 + run.total * 1e6 / run.rate
            if run not in s.mismatched and b > run.t0 and a < end:
                s.mismatched.add(run)
                self._event({"ev": "loopback_mismatch", "rx_sid": info.sid, "tx_sid": run.sid,
                             "rx_rate": rate, "tx_rate": run.rate, "rx_bits": info.bits,
                             "tx_bits": run.bits}, max(int(a), run.t0))
        times = info.t0 + (clock + np.arange(n, dtype=np.float64)) * (1e6 / rate)
        y = lb.transform(x, info.bits, pos, times)
        return y[:, :info.channels].astype(wire_dtype(info.bits))

    def _trim_runs(self) -> None:
        """Forget TX frames no RX frame can read any more: before the oldest RX frame not yet
        handed to board code (or now, for sessions still to come), less the delay."""
        lb = self.loopback
        keep = now_us()
        for s in self.sessions.values():
            if s.bus == lb.rx and s.info.mode == "rx":
                j = s.rx_ring[0][1] if s.rx_ring else s.clocked
                keep = min(keep, s.info.t0 + j * 1_000_000 // s.info.rate)
        # margin for the instants' rounding, and for the board's clock, which trails ours by up
        # to LAG_MAX µs after a wake-up this host delayed (runtime/_simport.py)
        keep -= 1000 + BOARD_LAG_MAX_US
        for run in list(self._tx_runs):
            run.trim((keep - run.t0) * run.rate // 1_000_000 - lb.delay_frames(run.rate) - 2)
            if run.live is None and not run.chunks:
                self._tx_runs.remove(run)

    def _end_session(self, sid: int, t: int, report: dict | None = None) -> None:
        s = self.sessions.pop(sid, None)
        if s is None:
            return
        self.bus.i2s_deinit(sid, t)
        if s.run is not None:
            s.run.live = None  # what was left in the ring never reached the wire
        st = self.stats
        if s.info.mode == "tx":
            st.tx_frames += s.wire_frames
        else:
            st.rx_frames += s.read_frames
        if report:
            st.underruns += report.get("underruns", 0)
            st.underrun_frames += report.get("underrun_frames", 0)
            st.overruns += report.get("overruns", 0)
            st.overrun_frames += report.get("overrun_frames", 0)

    def _end_sessions(self, t: int) -> None:
        for sid in list(self.sessions):
            self._end_session(sid, t)
