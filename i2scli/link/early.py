"""A UART link raised before the upload (docs/protocol.md, "Early switch").

The agent is tens of kB; at the REPL's 115200 baud its upload is most of a cold start. So on a
link that `--baud` would raise anyway, the host first runs a small loader in the raw REPL (a
few hundred bytes at 115200). The loader says so, re-times the REPL UART, and answers the
host's probe at the new rate (both directions checked); then it takes the agent's pieces at
that rate in windows the board's input ring holds, runs each in the REPL's namespace, and
finally starts the agent, already fast. Its own reads have a deadline: a host that goes away
at any moment leaves a loader that times out, puts the REPL UART back at 115200 and ends its
exec, so the raw REPL (and mpremote) find the board as usual.

Board-to-host bytes while the loader runs: `I2S:UP` (at the old rate, just before the
switch), `A5 21` (the probe's answer), `01` (a credit: a piece was taken out of the ring),
`06` (a piece of code ran), `15 <traceback> 04` (it raised).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from i2scli.errors import Worded
from i2scli.link.errors import LinkError
from i2scli.link.port import Port

REPL_TAIL = b"\x04>"
WATCH_MS = 1000  # the loader's watchdog: longest wait for the host's next byte once confirmed
AFTER_MS = 700  # ... and for the next command after an agent run (the host is there, or gone)
CONFIRM_MS = 500  # the window for the host's first probe at the new rate
PIECE = 120  # bytes the board takes out of its ring per credit
WINDOW = 2  # pieces in flight: 240 bytes plus a 5-byte header fit the ESP32's 260-byte ring
SETTLE_S = 0.01  # after `I2S:UP`: the board's UART re-times (it waits for its TX FIFO first)
PROBE_EVERY_S = 0.05  # the probe goes again until answered (the first may meet the old rate)
BACK_MS = 40  # the loader's wait before it goes back to the old rate: the host's own switch comes first
HOST_DRAIN_S = 0.01  # the host's wait after its last write before it changes its rate
SYNC = 0xA5
UP, ANSWER, BACK, CREDIT, RAN, RAISED, END = b"I2S:UP", b"\xa5!", b"\xa5L", 1, 6, 0x15, 4
ANSWER_DEFLATE = b"\xa5z"  # the probe's answer from a firmware with the `deflate` module
# Code pieces go zlib-compressed to a loader that can inflate them (about a third of the bytes:
# most of a cold start on a UART). A 1 KiB window: the most the board allocates to inflate.
DEFLATE_WBITS = 10
NO = b"I2S:NO "

# The loader, as it goes to the board (kept small: it travels at the old rate). `n` the new
# rate, `o` the old one, `w` the watchdog, `z` the piece size. The REPL's interrupt character
# is off while it runs: a length byte, or noise at the switch, may be 0x03.
LOADER = """\
def _i2s_up(n,o,w,z,a):
 import sys,time,select,micropython as M,gc
 x=sys.stdout.buffer.write
 if sys.platform!='esp32':
  x(b'I2S:NO the REPL of this port is not a UART\\r\\n');return
 from machine import UART as U
 try:
  import deflate as D,io
 except ImportError:
  D=None
 i=sys.stdin.buffer;q=select.poll();q.register(i,1);b=bytearray(1);r=o;t={confirm};ok=0
 def g():
  for _ in q.ipoll(t):
   i.readinto(b,1);return b[0]
  return -1
 M.kbd_intr(-1)
 try:
  x(b'I2S:UP\\r\\n');time.sleep_ms(3);U(0,baudrate=n);r=n
  while 1:
   c=g()
   if c<0:return
   if c!=165:continue
   k=g()
   if k==63:
    x(b'\\xa5z' if D else b'\\xa5!');ok=t=w;continue
   if not ok or k not in(71,81,88,90):continue
   if k==81:return
   t=w
   h=[g(),g(),g()]
   if min(h)<0:return
   if h[2]!=~(k+h[0]+h[1])&255:continue
   m=h[0]|h[1]<<8;s=None;gc.collect();s=bytearray(m);v=memoryview(s);j=0
   while j<m:
    if not q.poll(t):return
    e=min(z,m-j);i.readinto(v[j:j+e]);j+=e;x(b'\\x01')
   v=None
   try:
    if k==90:
     s=D.DeflateIO(io.BytesIO(s),D.ZLIB).read()
    exec(s,globals())
   except Exception as e:
    if k==71:raise
    x(b'\\x15');sys.print_exception(e);x(b'\\x04');continue
   if k==71:
    M.kbd_intr(-1);x(b'\\xa5L');t=a
   else:
    x(b'\\x06')
 finally:
  if r!=o:
   time.sleep_ms(1280000//r+{back});U(0,baudrate=o)
  M.kbd_intr(3)
_i2s_up({rate},{old},{watch},{piece},{after})
"""


def loader_code(rate: int, old: int) -> str:
    return LOADER.format(rate=int(rate), old=int(old), watch=WATCH_MS, piece=PIECE, confirm=CONFIRM_MS,
                         back=BACK_MS, after=AFTER_MS)


def header(kind: bytes, n: int) -> bytes:
    k, lo, hi = kind[0], n & 0xFF, n >> 8
    return bytes((SYNC, k, lo, hi, ~(k + lo + hi) & 0xFF))


class EarlySwitch:
    """The host's half of the loader, on a port whose raw REPL has just started it."""

    # After an agent run the loader waits AFTER_MS for the next command; the host uses it
    # again only within KEEP_S of hearing it is back (the rest is margin for a slow host),
    # and past that waits KEEP_MARGIN_S beyond it for the loader's watchdog to end it.
    KEEP_S = AFTER_MS / 1000 / 2
    KEEP_MARGIN_S = AFTER_MS / 1000 / 2 + 0.2

    def __init__(self, port: Port, rate: int, old: int):
        self.port = port
        self.rate = rate
        self.old = old
        self._seen = bytearray()  # board bytes read past what a step needed
        self.deflate = False  # the loader inflates code sent compressed (its probe answer said so)

    def switch(self) -> str | Worded | None:
        """Both sides at the new rate, confirmed both ways (None); or why not, with the board
        back at its raw REPL at the old rate and the host too."""
        port = self.port
        raw = port.read_until(UP, 2.0)
        if UP not in raw:
            port.read_until(REPL_TAIL, 2.0, bytearray(raw))
            if NO in raw:
                why = raw.split(NO, 1)[1].split(b"\r", 1)[0].decode(errors="replace")
                return f"the board cannot change its REPL rate ({why})"
            return "the board did not run the rate switch"
        try:
            port.serial.baudrate = self.rate
        except (OSError, ValueError) as e:
            self._back()
            return f"the port refused {self.rate} ({e})"
        time.sleep(SETTLE_S)
        port.serial.reset_input_buffer()
        seen = bytearray()
        deadline = time.monotonic() + CONFIRM_MS / 1000
        while time.monotonic() < deadline:
            port.write(bytes((SYNC, ord("?"))))
            step = time.monotonic() + PROBE_EVERY_S
            while time.monotonic() < step:
                seen += port.read_some()
                for answer in (ANSWER, ANSWER_DEFLATE):
                    if answer in seen:
                        self.deflate = answer == ANSWER_DEFLATE
                        self._seen = seen[seen.index(answer) + len(answer):]
                        return None
        self._back()
        return Worded(f"no answer from the board at {self.rate} baud (the USB-serial bridge or the board "
                      "cannot run that fast; ", ("baud_n", None), " picks a rate)")

    def run(self, code: str, timeout: float) -> str | None:
        """Run a piece of code in the board's REPL namespace; None, or the board's error line."""
        if self.deflate:
            z = zlib.compressobj(9, zlib.DEFLATED, DEFLATE_WBITS)
            self._send(b"Z", z.compress(code.encode()) + z.flush())
        else:
            self._send(b"X", code.encode())
        deadline = time.monotonic() + timeout
        err: bytearray | None = None
        buf, self._seen = self._seen, bytearray()
        while True:
            for i, b in enumerate(buf):
                if err is not None:
                    if b == END:
                        self._seen = buf[i + 1:]
                        lines = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()]
                        return lines[-1].strip() if lines else "the board reported an error"
                    err.append(b)
                elif b == RAN:
                    self._seen = buf[i + 1:]
                    return None
                elif b == RAISED:
                    err = bytearray()
            if time.monotonic() > deadline:
                raise LinkError(f"no answer from the board at {self.port.name} while uploading the agent")
            buf = bytearray(self.port.read_some())

    def go(self, code: str) -> None:
        """Run `code`, which starts the agent (it answers for itself); when the agent ends, the
        loader says so (`A5 4C`) and waits for the next command."""
        self._send(b"G", code.encode())

    def wait_back(self, seen: bytes, limit: float) -> bool:
        """After the agent's last frame (and `seen`, what came with it): the loader is back."""
        buf = bytearray(seen)
        end = time.monotonic() + limit
        while BACK not in buf:
            if time.monotonic() > end:
                return False
            buf += self.port.read_some()
        self._seen = buf[buf.index(BACK) + len(BACK):]
        return True

    def quit(self) -> None:
        """End the loader: the board goes back to the old rate and its REPL; so does the host."""
        self.port.write(bytes((SYNC, ord("Q"))))
        self._back()

    def _send(self, kind: bytes, body: bytes) -> None:
        """A header, then the body in pieces, never more in flight than the ring holds."""
        port = self.port
        port.write(header(kind, len(body)))
        pieces = [body[i:i + PIECE] for i in range(0, len(body), PIECE)]
        credits = WINDOW
        deadline = time.monotonic() + WATCH_MS / 1000 * 4
        k = 0
        while k < len(pieces):
            if credits > 0:
                # as much as the window allows in one write (one syscall: a host killed now
                # leaves whole pieces or none)
                n = min(credits, len(pieces) - k)
                port.write(b"".join(pieces[k:k + n]))
                k += n
                credits -= n
                deadline = time.monotonic() + WATCH_MS / 1000 * 4
                continue
            got = self._seen or port.read_some()
            self._seen = bytearray()
            credits += got.count(CREDIT)
            if time.monotonic() > deadline:
                raise LinkError(f"the board at {self.port.name} stopped taking the agent's upload")
        # credits for the last pieces arrive before the board's answer: run() skips them

    def _back(self) -> None:
        """After a failed or ended loader: the host at the old rate, the raw REPL's prompt read
        (the loader's watchdog closes its window within WATCH_MS)."""
        port = self.port
        try:
            port.serial.flush()
            time.sleep(HOST_DRAIN_S)  # what we wrote last leaves the bridge at the rate it was meant for
            port.serial.baudrate = self.old
        except (OSError, ValueError):
            pass
        buf = bytearray()
        end = time.monotonic() + (CONFIRM_MS + WATCH_MS) / 1000 + 1.5
        while not buf.endswith(REPL_TAIL) and time.monotonic() < end:
            buf += port.read_some()
            del buf[:-16]


def say(warn: Callable[[str | Worded], None] | None, old: int, why: str | Worded) -> None:
    if warn is not None:
        warn(Worded(f"staying at {old} baud: ", *why.parts) if isinstance(why, Worded)
             else f"staying at {old} baud: {why}")
