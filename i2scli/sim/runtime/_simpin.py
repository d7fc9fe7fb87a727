# The virtual board's machine.Pin (MicroPython code, runs inside the unix port): ids,
# constants and error texts of the profile's port (machine.py re-exports it).
import utime as _t
import _chan
import _simport as _port
from _simport import _get_int, _type_name  # noqa: F401

try:
    import umachine as _bm  # the built-in machine module of the unix port
except ImportError:  # pragma: no cover
    _bm = None
_PinRoot = _bm.PinBase if _bm is not None else object

_ticks_us = _port.now  # the board's clock (_simport.py)
_ticks_diff = _t.ticks_diff
_ticks_add = _t.ticks_add
_sleep_us = _t.sleep_us

_pin_str = {}  # name Pin() takes -> pin id (board names, then CPU names: pins.py)
_pin_int = {}  # number Pin() takes -> pin id
_pin_pad = {}  # pin id -> the pad's CPU name (Pin.name(), repr)
_pin_objs = {}  # pin id -> the Pin object Pin.board / Pin.cpu hand out

# ---------------------------------------------------------------------------
# Pin
# ---------------------------------------------------------------------------
# Internal pin modes: 0 in, 1 out, 2 open_drain, 3 alt. Pulls: 0 none, 1 up, 2 down.
_MODE_NAMES = ("in", "out", "open_drain", "alt")
_PULL_NAMES = (None, "up", "down")

_pidx = {}  # pin id (profile spelling) -> index
_pnames = []  # index -> pin id
_pval = []  # index -> output latch
_pmode = []  # index -> internal mode
_ppull = []  # index -> internal pull

# port constant -> internal code, set by _configure
_mode_map = {}
_pull_map = {}
_mode_rev = {}
_pull_rev = {}

# Pin constants per port family (the values of the real ports' machine.Pin).
_PIN_CONSTS = {
    # stm32 HAL: GPIO_MODE_INPUT/OUTPUT_PP/AF_PP, OPEN_DRAIN = GPIO_MODE_OUTPUT_OD (0x11)
    "stm32": {"IN": 0, "OUT": 1, "OPEN_DRAIN": 0x11, "ALT": 2, "ALT_OPEN_DRAIN": 0x12,
              "ANALOG": 3, "PULL_NONE": 0, "PULL_UP": 1, "PULL_DOWN": 2},
    "rp2": {"IN": 0, "OUT": 1, "OPEN_DRAIN": 2, "ALT": 3, "PULL_UP": 1, "PULL_DOWN": 2},
    # esp32: GPIO_MODE_INPUT / INPUT_OUTPUT / INPUT_OUTPUT_OD; no ALT
    "esp32": {"IN": 1, "OUT": 3, "OPEN_DRAIN": 7, "PULL_UP": 2, "PULL_DOWN": 1},
    "mimxrt": {"IN": 0, "OUT": 1, "OPEN_DRAIN": 2, "ALT": 3, "ALT_OPEN_DRAIN": 4,
               "PULL_UP": 1, "PULL_DOWN": 2},
}
_PIN_CONST_NAMES = ("IN", "OUT", "OPEN_DRAIN", "ALT", "ALT_OPEN_DRAIN", "ANALOG",
                    "PULL_NONE", "PULL_UP", "PULL_DOWN")


def _pin_find(x):
    """The id of pin x (a Pin, or a name or number the port takes), or the port's
    error. Names and numbers of one pad give one id (tables: i2scli/sim/pins.py).
    Errors: stm32 pin.c pin_find, rp2 and alif machine_pin_find, esp32
    machine_pin_find, mimxrt pin.c pin_find."""
    if isinstance(x, Pin):
        return x._id
    fam = _port.family
    if isinstance(x, str):
        pid = _pin_str.get(x)
        if pid is not None:
            return pid
        if fam == "stm32":
            raise ValueError("Pin(%s) doesn't exist" % x)
        if fam == "rp2" or fam == "alif":
            raise ValueError('unknown named pin "%s"' % x)
        if fam == "mimxrt":
            raise ValueError("Pin doesn't exist")
        raise ValueError("invalid pin")  # esp32: the generic boards name no pins
    if fam == "stm32":
        # pin_find() ends in mp_obj_str_get_str(user_obj)
        raise TypeError("can't convert '%s' object to str implicitly" % _type_name(x))
    if isinstance(x, int) and not isinstance(x, bool):
        pid = _pin_int.get(x)
        if pid is not None:
            return pid
    if fam == "mimxrt":
        raise ValueError("Pin doesn't exist")
    raise ValueError("invalid pin")


_quiet = False  # making a Pin for Pin.board / Pin.cpu: no event


class _PinNames:
    """Pin.board / Pin.cpu: the port's named pins as attributes. The Pin object of
    a pad is made on first use and kept, so Pin.board.X1 is Pin.cpu.A0."""

    def __init__(self, kind, names):
        self._kind = kind
        self._names = names  # name -> pin id

    def __getattr__(self, name):
        global _quiet
        pid = self._names.get(name)
        if pid is None:
            raise AttributeError("type object '%s' has no attribute '%s'" % (self._kind, name))
        p = _pin_objs.get(pid)
        if p is None:
            _quiet = True
            try:
                p = Pin(pid)
            finally:
                _quiet = False
            _pin_objs[pid] = p
        return p


def _pin_index(pid):
    i = _pidx.get(pid)
    if i is None:
        i = len(_pnames)
        _pidx[pid] = i
        _pnames.append(pid)
        _pval.append(0)
        _pmode.append(0)
        _ppull.append(0)
    return i


def _pin_event(i):
    _chan.event("pin", idx=i, name=_pnames[i], mode=_MODE_NAMES[_pmode[i]],
                pull=_PULL_NAMES[_ppull[i]], value=_pval[i])


class Pin(_PinRoot):
    # constants are set per port by _configure()
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        pid = _pin_find(id)
        self._id = pid
        self._i = _pin_index(pid)
        if mode == -1 and pull == -1 and value is None:
            # Pin(id): no reconfiguration; tell the model the index only
            if not _quiet:
                _pin_event(self._i)
        else:
            self.init(mode, pull, value=value, drive=drive, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        if _port.npend:
            _port.service(_ticks_us())
        i = self._i
        if mode != -1 and mode is not None:
            m = _mode_map.get(mode)
            if m is None:
                raise ValueError("invalid pin mode: %s" % mode)
        else:
            m = -1
        if pull != -1:
            if pull is None:
                p = 0
            else:
                p = _pull_map.get(pull)
                if p is None:
                    raise ValueError("invalid pull: %s" % pull)
        elif m != -1:
            p = 0  # a mode given without pull: no pull
        else:
            p = -1
        if value is not None:
            _pval[i] = 1 if value else 0
        if m != -1:
            _pmode[i] = m
        if p != -1:
            _ppull[i] = p
        _pin_event(i)
        return None

    def value(self, v=None):
        if _port.npend:
            _port.service(_ticks_us())
        i = self._i
        if v is None:
            m = _pmode[i]
            if m == 1 or m == 2:
                return _pval[i]
            if m == 0:
                return 1 if _ppull[i] == 1 else 0
            return 0
        v = 1 if v else 0
        if _pval[i] != v:
            _pval[i] = v
            m = _pmode[i]
            if m == 1 or m == 2:
                _chan.pin(i, v, _ticks_us())
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def high(self):
        self.value(1)

    def low(self):
        self.value(0)

    def toggle(self):
        self.value(0 if _pval[self._i] else 1)

    def mode(self, m=None):
        if m is None:
            return _mode_rev.get(_pmode[self._i], 0)
        self.init(m, _pull_rev.get(_ppull[self._i]))

    def pull(self, p=None):
        if p is None:
            return _pull_rev.get(_ppull[self._i])
        self.init(pull=p)

    def irq(self, handler=None, trigger=3, hard=False):
        return None  # no input edges in the simulation

    def name(self):
        # the pad's CPU name (stm32 "A0", rp2 "GPIO18", mimxrt "GPIO_EMC_04")
        return _pin_pad.get(self._id) or str(self._id)

    def names(self):
        # stm32: the CPU name, then the board names of the pad
        pid = self._id
        return [self.name()] + [n for n in _board_names if _pin_str.get(n) == pid]

    def id(self):
        return self._id

    def __repr__(self):
        i = self._i
        mq = ("IN", "OUT", "OPEN_DRAIN", "ALT")[_pmode[i]]
        pq = ("", "PULL_UP", "PULL_DOWN")[_ppull[i]]
        fam = _port.family
        if fam == "stm32" or fam == "alif":
            s = "Pin(Pin.cpu.%s, mode=Pin.%s" % (self.name(), mq)
            if pq:
                s += ", pull=Pin.%s" % pq
            return s + ")"
        if fam == "rp2":
            s = "Pin(%s, mode=%s" % (self.name(), mq)
            if pq:
                s += ", pull=%s" % pq
            return s + ")"
        if fam == "mimxrt":
            return "Pin(%s)" % self.name()  # mimxrt machine_pin.c: the pad's CPU name
        return "Pin(%s)" % (self._id,)

    __str__ = __repr__


_board_names = []  # the names in Pin.board, in file order


def _configure_pins(t):
    """Build the name and number tables once, from Profile.pins (pins.py board_dict)."""
    _pin_str.clear()
    _pin_int.clear()
    _pin_pad.clear()
    _pin_objs.clear()
    del _board_names[:]
    board = {}
    cpu = {}
    for n, pid in t.get("board") or ():
        board[n] = pid
        _board_names.append(n)
        _pin_str[n] = pid
    for n, pid in t.get("cpu") or ():
        cpu[n] = pid
        if n not in _pin_str:  # pin_find looks in the board names first
            _pin_str[n] = pid
    for n, pid in t.get("ints") or ():
        _pin_int[n] = pid
    for pid, pad in t.get("pads") or ():
        _pin_pad[pid] = pad
    # Pin.board on every port; Pin.cpu where the port has one (not esp32)
    Pin.board = _PinNames("board", board)
    if _port.family == "esp32":
        try:
            delattr(Pin, "cpu")
        except AttributeError:
            pass
    else:
        Pin.cpu = _PinNames("cpu", cpu)


def configure(profile):
    """Pin names, numbers and constants of the profile's port."""
    _configure_pins(profile.get("pins") or {})
    # Pin constants
    consts = _PIN_CONSTS.get("stm32" if _port.family == "alif" else _port.family)
    for n in _PIN_CONST_NAMES:
        if n in consts:
            setattr(Pin, n, consts[n])
        else:
            try:
                delattr(Pin, n)
            except AttributeError:
                pass
    _mode_map.clear()
    _pull_map.clear()
    _mode_rev.clear()
    _pull_rev.clear()
    for n, code in (("IN", 0), ("OUT", 1), ("OPEN_DRAIN", 2), ("ALT", 3),
                    ("ALT_OPEN_DRAIN", 3), ("ANALOG", 0)):
        if n in consts:
            _mode_map[consts[n]] = code
            if n != "ALT_OPEN_DRAIN" and n != "ANALOG":
                _mode_rev[code] = consts[n]
    for n, code in (("PULL_NONE", 0), ("PULL_UP", 1), ("PULL_DOWN", 2)):
        if n in consts:
            _pull_map[consts[n]] = code
            _pull_rev[code] = consts[n]
    _pull_rev.setdefault(0, None)
