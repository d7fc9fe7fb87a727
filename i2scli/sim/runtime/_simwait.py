# The port's wait loops, for the virtual board (MicroPython code, runs inside the unix port):
# machine.Timer callbacks and os.dupterm input.
#
# On a real port (esp32, rp2: ports/*/mphalport.c mp_hal_stdin_rx_chr), code blocked in a read
# of stdin loops in C: it takes a byte from its input ring (the UART's, USB CDC's), else one
# from the dupterm stream (extmod/os_dupterm.c: the interrupt character schedules a
# KeyboardInterrupt), else runs MICROPY_EVENT_POLL_HOOK (rp2: mp_event_wait_indefinite), whose
# mp_handle_pending() runs scheduled callbacks (a Timer's, which its ISR queued with
# mp_sched_schedule) and raises a pending KeyboardInterrupt. So a Timer callback runs while the
# main code waits for input, and a Ctrl-C from a dupterm stream breaks
# that wait. The unix port blocks in read() instead, where nothing runs until a byte comes.
#
# So one thread of ours stands in for those loops:
# - Timers: at each expiry it queues the callback with micropython.schedule (the main code runs
#   it between bytecodes, as on the port). If the main code has not run it within PICKUP_US, it
#   is parked in a blocking call (a stdin read, a sleep), where the port's wait loop would have
#   run it: the thread runs it then, while the main code waits. Each expiry runs once, at most
#   DEPTH wait (the port's schedule queue drops the rest).
# - dupterm: it reads the attached stream a byte at a time (None: nothing yet) and hands what it
#   gets to the board model as input, which turns the interrupt character into a
#   KeyboardInterrupt as it does for the link's (i2scli/sim/board.py, "dupterm_in").
# The loop allocates nothing (a board's heap figures must not move while it waits).
import sys
import micropython
import utime as _t
import _chan

PICKUP_US = 20000  # a queued callback the main code has not run by then: it is parked
STEP_MS = 2  # the loop's period (a Timer fires at most this late)
DEPTH = 8  # expiries waiting to run at most (esp32 MICROPY_SCHEDULER_DEPTH)

# Timer objects: esp32's by id (_simtimer.py), rp2's in its alarm pool's slots (_simalarm.py);
# fixed: the thread reads it
timers = [None] * 16
dupterm = [None]  # os.dupterm's stream (one slot: MICROPY_PY_OS_DUPTERM 1 on esp32 and rp2)
_started = False
_one = bytearray(1)


class Expiries:
    """What the thread keeps of a timer (esp32's machine.Timer, rp2's alarm): armed, when it is
    due and every how long, its callback, and its expiries fired, run and queued."""

    def _fresh(self):
        self._armed = False
        self._hard = False
        self._repeat = 1
        self._period = 0
        self._due = 0
        self._callback = None
        self._fired = 0
        self._ran = 0
        self._queued = 0


def period_us(period, tick_hz, freq):
    """A Timer's period in microseconds as init() takes it: `freq` Hz, else `period` ticks of `tick_hz`."""
    if freq is not None:
        return max(1, int(1000000 / freq))
    return max(1, period * 1000000 // tick_hz)


def start():
    global _started
    if not _started:
        import _thread

        _started = True
        _thread.start_new_thread(_loop, ())


# Small functions, a try block only where needed: MicroPython puts a call frame on the heap
# once its locals, stack and exception handlers pass 11 words.
def _run(tim):
    """The callback of the oldest expiry not yet run (from the main code's schedule or from
    the thread): each expiry runs once."""
    if tim._ran == tim._fired:
        return
    tim._ran += 1
    if tim._callback is not None:
        _call(tim)


def _call(tim):
    try:
        tim._callback(tim)
    except Exception:  # py/runtime_utils.c mp_call_function_1_protected prints it
        _report()


def _report():
    sys.print_exception(sys.exc_info()[1])


def _expire(tim, now):
    if tim._repeat:
        tim._due = _t.ticks_add(tim._due, tim._period)
    else:
        tim._armed = False
    if tim._hard:
        _hard(tim)
        return
    if tim._fired - tim._ran >= DEPTH:
        return  # the port's schedule queue is full: mp_sched_schedule drops this one
    if tim._ran == tim._fired:
        tim._queued = now
    tim._fired += 1
    try:
        micropython.schedule(_run, tim)
    except RuntimeError:  # the unix port's queue is full: the thread runs it below
        pass


def _hard(tim):
    """A hard callback (rp2) runs at the alarm; one that raises stops its timer (mpirq.c)."""
    tim._fired += 1
    tim._ran += 1
    if tim._callback is not None:
        try:
            tim._callback(tim)
        except Exception:
            sys.stdout.write("Uncaught exception in IRQ callback handler\n")
            _report()
            tim._armed = False


def _timers(now):
    for tim in timers:
        if tim is None:
            continue
        if tim._armed and _t.ticks_diff(now, tim._due) >= 0:
            _expire(tim, now)
        if tim._ran != tim._fired and _t.ticks_diff(now, tim._queued) >= PICKUP_US:
            while tim._ran != tim._fired:
                _run(tim)


def _dupterm():
    s = dupterm[0]
    try:
        n = s.readinto(_one)
    except Exception as e:
        dupterm[0] = None
        sys.stdout.write("dupterm: Exception in read() method, deactivating: ")
        sys.print_exception(e)
        return
    if n is None:
        return
    if n == 0:
        dupterm[0] = None
        sys.stdout.write("dupterm: EOF received, deactivating\n")
        return
    _chan.event("dupterm_in", byte=_one[0])


def _loop():
    while True:
        _timers(_t.ticks_us())
        if dupterm[0] is not None:
            _dupterm()
        _t.sleep_ms(STEP_MS)
