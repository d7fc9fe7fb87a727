# Board console output for the virtual board (MicroPython code).
#
# Real ports send print() and traceback text through
# mp_hal_stdout_tx_strn_cooked, which turns every "\n" into "\r\n"; the unix
# port does not. This module gives the cooked text path (print, repl print,
# tracebacks, sys.stdout/sys.stderr.write) while sys.stdout.buffer stays the
# raw FileIO on fd 1 (all 256 byte values unchanged, full speed).
import builtins
import io
import sys

_raw_out = sys.stdout.buffer
_raw_in = sys.stdin.buffer
_real_print_exception = sys.print_exception
_wr = _raw_out.write

_here = __file__
_i = _here.rfind("/")
PREFIX = _here[: _i + 1] if _i >= 0 else ""
_NAMES = ("_board.py", "_repl.py", "_simio.py", "_simos.py", "_simsys.py", "_simmp.py",
          "_simcfg.py", "_chan.py", "_simtime.py", "machine.py", "_simport.py", "_simpin.py",
          "_simi2s.py", "_simi2sargs.py", "_simloss.py", "_simnb.py", "_simshift.py", "_simdma.py", "_simuart.py",
          "_simtimer.py", "_simalarm.py", "_simwait.py", "pyb.py")


def write_raw(b):
    _wr(b)


def write_cooked(s):
    """Write text (str or bytes-like) with "\\n" -> "\\r\\n"; returns the byte count."""
    if isinstance(s, str):
        b = s.encode()
    else:
        b = bytes(s)
    if b"\n" in b:
        _wr(b.replace(b"\n", b"\r\n"))
    else:
        _wr(b)
    return len(b)


class CookedOut(io.IOBase):
    """Text console stream (sys.stdout / sys.stderr on the board)."""

    def __init__(self, fd):
        self.buffer = _raw_out
        self._fd = fd

    def write(self, s, *args):
        if args:
            off = args[0] if len(args) > 1 else 0
            n = args[-1]
            s = memoryview(s)[off: off + n]
        return write_cooked(s)

    def flush(self):
        pass

    def fileno(self):
        return 1

    def __repr__(self):
        return "<io.TextIOWrapper %d>" % self._fd


stdout = CookedOut(1)
stderr = CookedOut(2)


def _is_console(f):
    return f is None or f is stdout or f is stderr


def print(*args, sep=" ", end="\n", file=None):
    if sep is None:
        sep = " "
    if end is None:
        end = "\n"
    if len(args) == 1:
        s = str(args[0]) + end
    else:
        s = sep.join([str(a) for a in args]) + end
    if _is_console(file):
        write_cooked(s)
    else:
        file.write(s)


def repl_print(o):
    # builtins.__repl_print__: what compile(..., "single") calls for
    # expression statements (py/modbuiltins.c mp_builtin___repl_print__).
    if o is not None:
        write_cooked(repr(o) + "\n")
        builtins._ = o


def _runtime_frame(line):
    # '  File "NAME", line N, in F'
    if not line.startswith('  File "'):
        return False
    j = line.find('"', 8)
    if j < 0:
        return False
    name = line[8:j]
    if PREFIX:
        return name.startswith(PREFIX)
    return name in _NAMES


def format_exc(e):
    """Traceback text as the real port prints it: the frames of the
    simulator's own modules (C code on a real board) are left out."""
    s = io.BytesIO()  # bytes: a message may hold bytes that are not UTF-8 (a real port prints them raw)
    _real_print_exception(e, s)
    raw = s.getvalue()
    try:
        v = raw.decode()
    except UnicodeError:
        v = bytes(c if c < 128 else 63 for c in raw).decode()
    lines = v.split("\n")
    out = []
    frames = 0
    for ln in lines:
        if _runtime_frame(ln):
            continue
        if ln.startswith('  File "'):
            frames += 1
        out.append(ln)
    if frames == 0 and out and out[0] == "Traceback (most recent call last):":
        out.pop(0)
    return "\n".join(out)


def print_exception(e, file=None):
    t = format_exc(e)
    if _is_console(file):
        write_cooked(t)
    else:
        file.write(t)
