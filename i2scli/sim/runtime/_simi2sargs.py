# The virtual board's I2S argument checks (MicroPython code, runs inside the unix port): ids
# and pins checked as each port checks them, in its order and words.
import _simport as _port
from _simport import _get_int
from _simpin import Pin, _pin_find


_PIN_ARGS = (("sck", "SCK"), ("ws", "WS"), ("sd", "SD"))


def _map_find(pmap, pad, fn, i2s_id):
    """mimxrt lookup_gpio(): the first entry of the board's pad table (I2SRules.pin_map)
    with this pad, function and bus id; None if there is none."""
    for e in pmap:
        if e[3] == pad and e[1] == fn and e[0] == i2s_id:
            return e
    return None


def _af_type(pmap, pad, i2s_id):
    """stm32 pin_find_af(pin, AF_FN_I2S, id): the type of the pad's first I2S alternate
    function on this bus; None where the pad has none (the port then reads its type through
    a NULL pointer, which never matches)."""
    for e in pmap:
        if e[3] == pad and e[0] == i2s_id:
            return e[1]
    return None


def check_pins(vals, i2s_id, tx):
    """The pins of I2S(i2s_id, sck=, ws=, sd=[, mck=]) checked as the port checks them, in
    its order and words: (sck, ws, sd, mck) pad ids. Sources: i2scli/sim/i2s_pins.py."""
    rules = _port.rules
    fam = _port.family
    pmap = rules.get("pin_map")
    got = []
    if fam == "stm32":
        # ports/stm32/machine_i2s.c: Pin objects only; each pad's first I2S AF on the bus
        for n, label in _PIN_ARGS:
            p = vals[n]
            if not isinstance(p, Pin):
                raise ValueError("%s not a Pin type" % label)
            if pmap is not None and _af_type(pmap, p._id, i2s_id) != n:
                raise ValueError("invalid %s pin" % label)
            got.append(p._id)
        got.append(None)
        return got
    if fam == "mimxrt" and pmap is not None:
        # ports/mimxrt/machine_i2s.c: pin_find() then lookup_gpio() per pin; the entry's
        # mode matters for SD only (for SCK it picks the SAI's sync mode)
        for n, label in _PIN_ARGS:
            p = _pin_find(vals[n])
            e = _map_find(pmap, p, n, i2s_id)
            if e is None or (n == "sd" and e[2] != ("tx" if tx else "rx")):
                raise ValueError("invalid %s pin" % label)
            got.append(p)
        m = vals.get("mck")
        if m is not None:
            m = _pin_find(m)
            if _map_find(pmap, m, "mck", i2s_id) is None:
                raise ValueError("invalid MCK pin")
        got.append(m)
        return got
    # rp2, esp32: any pin the port's Pin takes
    for n, _ in _PIN_ARGS:
        got.append(_pin_find(vals[n]))
    if rules.get("ws_is_sck_plus_1"):
        # rp2: SCK and WS are PIO side-set pins, which must be consecutive
        sck = got[0]
        ws = got[1]
        if not (isinstance(sck, int) and isinstance(ws, int) and ws == sck + 1):
            raise ValueError("invalid ws (must be sck+1)")
    m = vals.get("mck")
    got.append(None if m is None else _pin_find(m))
    return got


def check_id(i2s_id):
    if i2s_id not in _port.rules["ids"]:
        if _port.family == "mimxrt":
            raise ValueError("I2S(%d) does not exist" % i2s_id)
        raise ValueError("invalid id")


def parse(pos, kw, cls, i2s_id):
    """I2S(i2s_id, ...).init's arguments (class `cls` holds the port's constants), checked:
    (mode, bits, format, rate, ibuf, sck, ws, sd, mck), pins as pad ids."""
    rules = _port.rules
    has_mck = rules.get("mck")
    names = ("sck", "ws", "sd", "mck", "mode", "bits", "format", "rate", "ibuf")
    if pos:
        raise TypeError("extra positional arguments given")
    vals = {}
    found = 0
    for n in names:
        if n == "mck" and not has_mck:
            continue
        if n in kw:
            found += 1
            v = kw[n]
            if n in ("mode", "bits", "format", "rate", "ibuf"):
                v = _get_int(v)
            vals[n] = v
        elif n == "mck":
            vals[n] = None
        else:
            raise TypeError("'%s' argument required" % n)
    if found < len(kw):
        raise TypeError("extra keyword arguments given")

    RX = cls.RX
    TX = cls.TX
    mode = vals["mode"]
    bits = vals["bits"]
    fmt = vals["format"]
    rate = vals["rate"]
    ibuf = vals["ibuf"]
    fam = _port.family

    def check_mode():
        if mode != RX and mode != TX:
            raise ValueError("invalid mode")

    if fam == "mimxrt":
        check_mode()  # the mimxrt port checks the mode before the pins
    sck, ws, sd, mck = check_pins(vals, i2s_id, mode == TX)
    if fam != "mimxrt":
        check_mode()
    if bits != 16 and bits != 32:
        raise ValueError("invalid bits")
    if fmt != cls.MONO and fmt != cls.STEREO:
        raise ValueError("invalid format")
    rates = rules.get("rates")
    if rates and rate not in rates:
        raise ValueError("invalid rate")
    if fam == "esp32":
        # esp32 checks neither; ESP-IDF refuses a channel it cannot build
        if ibuf <= 0 or rate <= 0:
            raise OSError(-258, "ESP_ERR_INVALID_ARG")
    elif ibuf <= 0:
        raise ValueError("invalid ibuf")
    if rate <= 0:
        # the ports do not check; a clock of 0 Hz would never move (sim guard)
        raise ValueError("invalid rate")
    return mode, bits, fmt, rate, ibuf, sck, ws, sd, mck
