"""Clock matching for a live source: a slow PI loop from the reserve of source audio the host
holds (the fill) to the resampling ratio that keeps that reserve at its target.

The board paces the host: its agent takes a DATA frame only once its blocking I2S write has
found room in the ring, and grants credit for it then, so the host sends exactly as fast as
the board's I2S clock plays. What the source delivers beyond that piles up in the host's
reserve (what it has read from the source and not yet sent); what it delivers short of that
drains it. The reserve's slope is therefore the difference of the two clocks, measured with
the board's own clock (its credits) against the source's (its arrivals), and the ratio that
holds the reserve still is the drift itself.

The fill is sampled each time the stream takes a block, smoothed (a first-order filter of a
tenth of the loop's time), and fed to a PI controller with both poles at 1/loop_s (critically
damped); the integral is the drift estimate, bounded to ±max_ppm, as is the ratio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LiveParams:
    target_s: float = 0.1  # the reserve held ahead of the board's ring, in seconds of source
    max_ppm: float = 2000.0  # the correction's bound (a crystal is within ±100 ppm; a divider more)
    loop_s: float = 10.0  # the loop's time constant: slower is smoother, faster settles sooner


class DriftLoop:
    """fill (frames of source) in, ratio - 1 (output frames per input frame, less one) out."""

    def __init__(self, rate: int, params: LiveParams):
        self.rate = rate
        self.p = params
        wn = 1.0 / params.loop_s
        self.kp = 2.0 * wn  # ratio per second of fill error
        self.ki = wn * wn
        self.tf = params.loop_s / 10  # the fill's smoothing
        self.bound = params.max_ppm * 1e-6
        self.target = params.target_s * rate
        self.fill: float | None = None  # smoothed, frames
        self.t: float | None = None
        self.integral = 0.0  # the drift estimate (ratio - 1)
        self.u = 0.0  # the ratio applied, less one

    def update(self, fill: float, now: float, hold: bool = False, steer: bool = True) -> float:
        """A fill sample at `now` (s); `hold`: the sample says nothing of the clocks (the source
        paused, or it waits for the board): the ratio and the smoothed fill stay as they are."""
        if self.t is None:
            self.fill, self.t = float(fill), now
            return self.u
        dt = max(0.0, now - self.t)
        self.t = now
        if hold:  # not smoothed in either: a pause's empty reserve is not a level to return to
            return self.u
        self.fill += (fill - self.fill) * min(1.0, dt / self.tf)
        if not steer:  # `steer` False: the fill smoothed, the ratio left as it is
            return self.u
        e = (self.fill - self.target) / self.rate  # seconds too much in the reserve
        b = self.bound
        integral = min(b, max(-b, self.integral - self.ki * e * dt))
        # while the correction is at its bound, the integral does not wind up beyond it
        if abs(integral - self.kp * e) <= b or abs(integral) < abs(self.integral):
            self.integral = integral
        self.u = min(b, max(-b, self.integral - self.kp * e))
        return self.u

    def restart(self, fill: float, now: float) -> None:
        """The reserve was cut to its target (the start of a stream): the filter starts there."""
        self.fill, self.t = float(fill), now
