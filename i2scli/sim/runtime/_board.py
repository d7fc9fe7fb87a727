# Entry point of the virtual board (MicroPython unix port):
#   micropython -X heapsize=N _board.py CONFIG.json
# See docs/sim-internals.md. MicroPython code.
import sys
import json

_sys = sys


def _log(msg):
    try:
        _sys.stderr.write("board: %s\n" % msg)
    except Exception:
        pass


def _here():
    f = __file__
    i = f.rfind("/")
    return f[:i] if i >= 0 else "."


def _exists(path):
    import os

    try:
        os.stat(path)
        return True
    except OSError:
        return False


def main():
    with open(_sys.argv[1]) as f:
        cfg = json.load(f)
    prof = cfg["profile"]
    start = cfg.get("start", "power")
    mode = cfg.get("mode", "friendly")

    # Channel first: the board filesystem mounted at '/' hides /dev.
    import _chan

    if cfg.get("channel", True):
        _chan.open_channel()
    else:
        _chan.open_null()
    _chan.event("boot", start=start, mode=mode, profile=prof.get("name"))

    import _simcfg

    _simcfg.profile = prof
    _simcfg.cfg = cfg

    # Wrapper modules, installed before any user code runs. Everything the
    # runtime needs is imported now: after the mount the runtime directory
    # is no longer reachable.
    import _simio
    import _simos
    import _simsys
    import _simmp

    mods = _sys.modules
    mods["os"] = _simos
    mods["sys"] = _simsys
    mods["micropython"] = _simmp

    here = _here()
    for file, name in (("_simtime", "time"), ("machine", "machine")):
        if _exists(here + "/" + file + ".py"):
            try:
                mods[name] = __import__(file)
            except Exception as e:
                _log(file + " failed")
                _sys.print_exception(e, _sys.stderr)
    if _exists(here + "/pyb.py"):
        pyb = None
        if prof.get("vcp"):
            try:
                import pyb

                mods["pyb"] = pyb
            except Exception as e:
                _log("pyb failed")
                _sys.print_exception(e, _sys.stderr)
        if pyb is None and "pyb" in mods:
            del mods["pyb"]

    # Board modules are built in on a real board: repr(os) is <module 'os'>,
    # not "<module 'os' from '/…/runtime/_simos.py'>".
    for name in ("os", "sys", "micropython", "time", "machine", "pyb"):
        m = mods.get(name)
        if m is not None:
            try:
                m.__dict__.pop("__file__", None)
                m.__dict__["__name__"] = name
            except Exception:
                pass

    import _repl
    import builtins

    builtins.print = _simio.print
    builtins.__repl_print__ = _simio.repl_print

    # Board filesystem.
    import os

    os.mount(os.VfsPosix(cfg["fs"]), "/")
    os.chdir("/")
    path = _sys.path
    path.clear()
    path.extend(["", ".frozen", "/lib"])
    _sys.argv.clear()

    # The simulator's own modules live in this heap, where a real board keeps machine, the
    # REPL and friends in flash. The model gives the interpreter room for them; ballast takes
    # the rest, so board code sees the imitated board's free memory.
    import gc

    gc.collect()
    # What board code gets is one contiguous region of the profile's size, like a fresh
    # board's heap: that region is taken first (first-fit puts it in the largest free span,
    # above the runtime), then every hole the runtime left is filled, down to 16-byte pieces,
    # then the region is given back. (Counting free bytes alone left holes between the
    # runtime's objects in "free": a board with 95 kB free could not allocate 17 kB.)
    ballast = None  # a chain of (piece, rest): no list to grow while the heap fills
    target = prof.get("heap", 0)
    region = None
    try:
        region = bytearray(target)
    except MemoryError:
        pass
    for size in (2000, 500, 100, 16):
        try:
            while True:
                ballast = (bytearray(size), ballast)
        except MemoryError:
            pass
    region = None
    gc.collect()
    g = {"__name__": "__main__"}
    repl = _repl.Repl(g, mode)
    try:
        if start == "soft":
            _simio.write_raw(b"MPY: soft reboot\r\n")
        ret = repl.exec_file("boot.py")
        if not (ret & _repl.FORCED_EXIT) and mode == _repl.FRIENDLY:
            ret = repl.exec_file("main.py")
        if not (ret & _repl.FORCED_EXIT):
            repl.run()
    except _repl.InputClosed:
        # The model closed the link: nothing left to do.
        return
    _chan.event("soft_reset", mode=repl.mode)


main()
