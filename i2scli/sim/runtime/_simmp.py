# micropython for the virtual board: the unix port's module, with kbd_intr
# reporting the interrupt character to the board model (MicroPython code).
from micropython import *  # noqa: F401,F403
import micropython as _mp
import _chan

__name__ = "micropython"

_real_kbd_intr = _mp.kbd_intr


def kbd_intr(c):
    # The model turns host 0x03 bytes into SIGINT only while the reported
    # character is 3; otherwise 0x03 reaches sys.stdin as data. The real
    # SIGINT handler is kept installed either way (real kbd_intr(3)): on the
    # unix port kbd_intr(-1) would restore SIG_DFL, and a SIGINT already in
    # flight from the model would then kill the board instead of raising.
    _chan.intr(c)
    _real_kbd_intr(3)
