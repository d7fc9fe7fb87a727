# The board's REPL, a byte-for-byte imitation of MicroPython's
# shared/runtime/pyexec.c (blocking variant, as stm32/rp2/esp32/mimxrt use)
# and shared/readline/readline.c, over fd 0/1. MicroPython code.
#
# Input is read one byte at a time and never ahead: code run from the REPL
# reads the bytes that follow it itself.
import gc
import sys
import _chan
import _simcfg
import _simio
import _simmp

_rd = _simio._raw_in.readinto
_b = bytearray(1)
_w = _simio.write_raw
_wc = _simio.write_cooked
_real_kbd_intr = _simmp._real_kbd_intr

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
CTRL_F, CTRL_K, CTRL_N, CTRL_P, CTRL_U = 6, 11, 14, 16, 21

RAW = "raw"
FRIENDLY = "friendly"

# pyexec return flags
NORMAL_EXIT = 0
UNHANDLED_EXCEPTION = 1
FORCED_EXIT = 0x100

RAW_HEADER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_HEADER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
HIST_SIZE = 8  # MICROPY_READLINE_HISTORY_SIZE
AI_ENABLED = 1
AI_JUST_ADDED = 2


def _native_decorated(src):
    """A line of `src` that starts with a native decorator (the compiler's view; the same text
    inside a one-line string literal, as a module carries code for a later exec, is not one)."""
    if isinstance(src, (bytes, bytearray)):
        src = str(src, "utf-8")
    for line in src.split("\n"):
        line = line.lstrip()
        if line.startswith("@micropython.viper") or line.startswith("@micropython.native"):
            return True
    return False


class InputClosed(Exception):
    pass


def getc():
    """mp_hal_stdin_rx_chr: one byte from the link, blocking."""
    while True:
        try:
            n = _rd(_b, 1)
        except KeyboardInterrupt:
            # A SIGINT from the model that raced the end of an exec (the
            # interrupt character is -1 while the REPL waits): drop it.
            continue
        if not n:
            raise InputClosed()
        return _b[0]


def stdin_buffer_max():
    n = 256  # MICROPY_REPL_STDIN_BUFFER_MAX
    ib = _simcfg.profile.get("in_buffer")
    if isinstance(ib, int) and 2 <= ib < n:
        n = ib
    return n


def _ident(c):
    return c == "_" or c.isalpha() or c.isdigit()


def _startswith_word(s, head):
    return s.startswith(head) and (len(s) == len(head) or not _ident(s[len(head)]))


def continue_with_input(s):
    """py/repl.c mp_repl_continue_with_input."""
    if not s:
        return False
    compound = s[0] == "@"
    if not compound:
        for kw in ("if", "while", "for", "try", "with", "def", "class", "async"):
            if _startswith_word(s, kw):
                compound = True
                break
    n_paren = n_brack = n_brace = 0
    q = 0  # 0 none, 1 ', 2 ", 3 ''', 4 """
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "'" or c == '"':
            one = 1 if c == "'" else 2  # its quote states: one (1, 2) and three of it (3, 4)
            if (q == 0 or q == one + 2) and s[i + 1: i + 3] == c + c:
                i += 2
                q = one + 2 - q
            elif q == 0 or q == one:
                q = one - q
        elif c == "\\" and i + 1 < n and s[i + 1] in "'\"\\":
            if q != 0:
                i += 1
        elif q == 0:
            if c == "(":
                n_paren += 1
            elif c == ")":
                n_paren -= 1
            elif c == "[":
                n_brack += 1
            elif c == "]":
                n_brack -= 1
            elif c == "{":
                n_brace += 1
            elif c == "}":
                n_brace -= 1
        i += 1
    if q == 3 or q == 4:
        return True
    if (n_paren > 0 or n_brack > 0 or n_brace > 0) and q == 0:
        return True
    last = s[-1]
    if last == "\\":
        return True
    if compound and last != "\n":
        return True
    return False


def _move_back(pos):
    if pos <= 0:
        return
    if pos <= 4:
        _w(b"\b\b\b\b"[:pos])
    else:
        _w(b"\x1b[%dD" % pos)


class Readline:
    """shared/readline/readline.c with auto-indent, emacs keys, history and
    tab completion (the features the big ports enable)."""

    def __init__(self, repl):
        self.repl = repl
        self.hist = []
        self.ai = 0
        self.line = bytearray()
        self.orig = 0
        self.cursor = 0
        self.esc = 0
        self.escbuf = 0
        self.hist_cur = -1
        self.prompt = b""

    def init(self, line, prompt):
        self.line = line
        self.orig = len(line)
        self.esc = 0
        self.escbuf = 0
        self.hist_cur = -1
        self.cursor = self.orig
        self.prompt = prompt
        _w(prompt)
        if len(line) == 0:
            self.ai = AI_ENABLED
        self._auto_indent()

    def readline(self, line, prompt):
        self.init(line, prompt)
        while True:
            r = self.process(getc())
            if r >= 0:
                return r

    def _auto_indent(self):
        if not (self.ai & AI_ENABLED):
            return
        line = self.line
        ln = len(line)
        if ln > 1 and line[ln - 1] == 10:
            i = ln - 1
            while i > 0:
                if line[i - 1] == 10:
                    break
                i -= 1
            j = i
            while j < ln:
                if line[j] != 32:
                    break
                j += 1
            if i > 0 and j + 1 == ln:
                k = i - 1
                while k > 0:
                    if line[k - 1] == 10:
                        return
                    elif line[k - 1] != 32:
                        break
                    k -= 1
            n = (j - i) // 4
            if line[ln - 2] == 58:  # ':'
                n += 1
            while n > 0:
                n -= 1
                line.extend(b"    ")
                _w(b"    ")
                self.cursor += 4
                self.ai |= AI_JUST_ADDED

    def push_history(self, s):
        if s and (not self.hist or self.hist[0] != s):
            self.hist.insert(0, s)
            if len(self.hist) > HIST_SIZE:
                self.hist.pop()

    def _complete(self):
        """py/repl.c mp_repl_autocomplete (names from dir(), sorted)."""
        line = self.line
        cur = bytes(line[self.orig: self.cursor]).decode()
        k = len(cur)
        while k > 0 and (_ident(cur[k - 1]) or cur[k - 1] == "."):
            k -= 1
        word = cur[k:]
        parts = word.split(".")
        g = self.repl.g
        obj = None
        for p in parts[:-1]:
            try:
                if obj is None:
                    if p in g:
                        obj = g[p]
                    else:
                        import builtins

                        obj = getattr(builtins, p)
                else:
                    obj = getattr(obj, p)
            except Exception:
                return 0, None
        part = parts[-1]
        if obj is None:
            import builtins

            names = list(g.keys()) + dir(builtins)
        else:
            try:
                names = dir(obj)
            except Exception:
                return 0, None
        matches = sorted(set(n for n in names if isinstance(n, str) and n.startswith(part)))
        if not matches:
            if k == 0 and "import ".startswith(part) and len(part) < 7:
                return 7 - len(part), "import "[len(part):]
            return 0, None
        if len(matches) == 1:
            return len(matches[0]) - len(part), matches[0][len(part):]
        common = matches[0]
        for m in matches[1:]:
            j = 0
            while j < len(common) and j < len(m) and common[j] == m[j]:
                j += 1
            common = common[:j]
        if len(common) > len(part):
            return len(common) - len(part), common[len(part):]
        # many matches: print them in 16-column slots, 64 per line
        out = []
        line_len = 64
        for m in matches:
            gap = (line_len + 15) // 16 * 16 - line_len
            if gap < 2:
                gap += 16
            if line_len + gap + len(m) <= 64:
                out.append(" " * gap + m)
                line_len += gap + len(m)
            else:
                out.append("\n" + m)
                line_len = len(m)
        out.append("\n")
        _wc("".join(out))
        return -1, None

    def process(self, c):
        line = self.line
        last_len = len(line)
        step_back = 0
        from_cursor = False
        step_fwd = 0
        esc = self.esc
        if esc == 0:
            if CTRL_A <= c <= CTRL_E and len(line) == self.orig:
                return c
            elif c == CTRL_A:
                step_back = self.cursor - self.orig  # home
            elif c == CTRL_B:
                if self.cursor > self.orig:
                    step_back = 1
            elif c == CTRL_C:
                return c
            elif c == CTRL_D:
                if self.cursor < len(line):
                    line[self.cursor:self.cursor + 1] = b""
                    from_cursor = True
            elif c == CTRL_E:
                step_fwd = len(line) - self.cursor
            elif c == CTRL_F:
                if self.cursor < len(line):
                    step_fwd = 1
            elif c == CTRL_K:
                line[self.cursor:] = b""
                from_cursor = True
            elif c == CTRL_N:
                step_back, from_cursor, step_fwd = self._hist_down()
            elif c == CTRL_P:
                step_back, from_cursor, step_fwd = self._hist_up()
            elif c == CTRL_U:
                line[self.orig: self.cursor] = b""
                step_back = self.cursor - self.orig
                from_cursor = True
            elif c == 13:
                _w(b"\r\n")
                self.push_history(bytes(line[self.orig:]).decode())
                return 0
            elif c == 27:
                self.esc = 1
            elif c == 8 or c == 127:
                if self.cursor > self.orig:
                    nspace = 0
                    for i in range(self.orig, self.cursor):
                        if line[i] != 32:
                            nspace = 0
                            break
                        nspace += 1
                    nspace = 1 if nspace < 4 else 4
                    line[self.cursor - nspace: self.cursor] = b""
                    step_back = nspace
                    from_cursor = True
            elif (self.ai & AI_JUST_ADDED) and (c == 9 or c == 32):
                self.ai = 0
                if c == 32:
                    step_back = 3
                    line[len(line) - 3:] = b""
            elif c == 9:
                if len(line) != 0 and line[self.cursor - 1] in b" \t\n\r\x0b\x0c":
                    n, s = 4, "    "
                else:
                    n, s = self._complete()
                if n == 0:
                    pass
                elif n < 0:
                    _w(self.prompt)
                    _w(line[self.orig: self.cursor])
                    from_cursor = True
                else:
                    line[self.cursor: self.cursor] = s.encode()
                    from_cursor = True
                    step_fwd = n
            elif 32 <= c <= 126:
                line[self.cursor: self.cursor] = bytes((c,))
                from_cursor = True
                step_fwd = 1
        elif esc == 1:
            if c == 91:  # '['
                self.esc = 2
            elif c == 79:  # 'O'
                self.esc = 4
            else:
                self.esc = 0
        elif esc == 2:
            if 48 <= c <= 57:
                self.esc = 3
                self.escbuf = c
            else:
                self.esc = 0
                if c == 65:  # A up
                    step_back, from_cursor, step_fwd = self._hist_up()
                elif c == 66:  # B down
                    step_back, from_cursor, step_fwd = self._hist_down()
                elif c == 67:  # C right
                    if self.cursor < len(line):
                        step_fwd = 1
                elif c == 68:  # D left
                    if self.cursor > self.orig:
                        step_back = 1
                elif c == 72:  # H home
                    step_back = self.cursor - self.orig
                elif c == 70:  # F end
                    step_fwd = len(line) - self.cursor
        elif esc == 3:
            if c == 126:  # '~'
                e = self.escbuf
                if e == 49 or e == 55:
                    step_back = self.cursor - self.orig
                elif e == 52 or e == 56:
                    step_fwd = len(line) - self.cursor
                elif e == 51:
                    if self.cursor < len(line):
                        line[self.cursor:self.cursor + 1] = b""
                        from_cursor = True
            self.esc = 0
        elif esc == 4:
            if c == 72:
                step_back = self.cursor - self.orig
            elif c == 70:
                step_fwd = len(line) - self.cursor
            else:
                self.esc = 0
        else:
            self.esc = 0

        if step_back > 0:
            _move_back(step_back)
            self.cursor -= step_back
        if from_cursor:
            if len(line) < last_len:
                _w(b"\x1b[K")
            _w(line[self.cursor:])
            _move_back(len(line) - (self.cursor + step_fwd))
            self.cursor += step_fwd
        elif step_fwd > 0:
            _w(line[self.cursor: self.cursor + step_fwd])
            self.cursor += step_fwd
        self.ai &= ~AI_JUST_ADDED
        return -1

    def _hist_up(self):
        if self.hist_cur + 1 < HIST_SIZE and self.hist_cur + 1 < len(self.hist):
            self.hist_cur += 1
            line = self.line
            line[self.orig:] = b""
            line.extend(self.hist[self.hist_cur].encode())
            return self.cursor - self.orig, True, len(line) - self.orig
        return 0, False, 0

    def _hist_down(self):
        if self.hist_cur >= 0:
            self.hist_cur -= 1
            line = self.line
            line[self.orig:] = b""
            if self.hist_cur >= 0:
                line.extend(self.hist[self.hist_cur].encode())
            return self.cursor - self.orig, True, len(line) - self.orig
        return 0, False, 0


class Repl:
    def __init__(self, g, mode):
        self.g = g
        self.mode = mode
        self.rl = Readline(self)

    # -- execution (pyexec.c parse_compile_execute) --

    def _begin(self):
        _chan.event("exec", state="start")
        _real_kbd_intr(3)
        _chan.intr(3)

    def _end(self):
        _real_kbd_intr(3)  # keep the SIGINT handler (see _simmp.py)
        _chan.intr(-1)
        _chan.event("exec", state="end")

    def execute(self, src, filename, kind, print_eof=False, exc=None):
        g = self.g
        ret = NORMAL_EXIT
        try:
            if exc is not None:
                raise exc
            if kind == "exec":
                g["__file__"] = filename
            code = None
            if src is not None and not _simcfg.profile.get("native", True) and _native_decorated(src):
                # the compiler of a build without MICROPY_EMIT_NATIVE (py/compile.c)
                raise SyntaxError("invalid micropython decorator")
            if kind == "paste":
                # file input compiled as REPL input: a single statement gets
                # its expression values printed, as on the real REPL
                try:
                    code = compile(src, filename, "single")
                except SyntaxError:
                    code = None
                if code is None:
                    code = compile(src, filename, "exec")
            else:
                code = compile(src, filename, kind)
            self._begin()
            try:
                exec(code, g)
            finally:
                self._end()
            if print_eof:
                _w(b"\x04")
        except SystemExit:
            if print_eof:
                _w(b"\x04")
            ret = FORCED_EXIT
        except BaseException as e:  # noqa: B036 - the REPL reports everything
            if print_eof:
                _w(b"\x04")
            _wc(_simio.format_exc(e))
            ret = UNHANDLED_EXCEPTION
        if print_eof:
            _w(b"\x04")
        return ret

    def exec_file(self, name):
        """pyexec_file_if_exists (boot.py, main.py)."""
        import os

        try:
            st = os.stat(name)
        except OSError:
            return NORMAL_EXIT
        if st[0] & 0o170000 != 0o100000:
            return NORMAL_EXIT
        try:
            with open(name, "rb") as f:
                src = f.read()
        except Exception as e:
            return self.execute(None, name, "exec", exc=e)
        return self.execute(src, name, "exec")

    # -- the REPL loop (pyexec_raw_repl / pyexec_friendly_repl) --

    def run(self):
        """Runs until a soft reset; returns the mode for the next start."""
        while True:
            try:
                if self.mode == RAW:
                    ret = self.raw_repl()
                else:
                    ret = self.friendly_repl()
            except InputClosed:
                raise
            except KeyboardInterrupt:
                # stray SIGINT that raced the end of an exec (see getc)
                continue
            except Exception as e:
                # A bug in this REPL must not take the board down: log it to
                # the model (fd 2) and start the current mode's REPL again.
                try:
                    sys.stderr.write("board: REPL error\n")
                    _simio._real_print_exception(e, sys.stderr)
                except Exception:
                    pass
                continue
            if ret != 0:
                return self.mode

    def raw_repl(self):
        reset = True
        while True:
            if reset:
                _w(RAW_HEADER)
                reset = False
            line = bytearray()
            _w(b">")
            while True:
                c = getc()
                if c == CTRL_A:
                    if len(line) == 2 and line[0] == CTRL_E:
                        ret = self.reader_stdin(line[1])
                        if ret & FORCED_EXIT:
                            return ret
                        line = bytearray()
                        _w(b">")
                        continue
                    reset = True
                    break
                elif c == CTRL_B:
                    _w(b"\r\n")
                    self.mode = FRIENDLY
                    return 0
                elif c == CTRL_C:
                    line = bytearray()
                elif c == CTRL_D:
                    break
                else:
                    line.append(c)
            if reset:
                continue
            _w(b"OK")
            if len(line) == 0:
                _w(b"\r\n")
                return FORCED_EXIT
            ret = self.execute(bytes(line), "<stdin>", "exec", print_eof=True)
            line = None
            if ret & FORCED_EXIT:
                return ret

    def reader_stdin(self, c):
        """Raw-paste mode (pyexec.c do_reader_stdin + mp_reader_stdin)."""
        if c != 65:  # 'A'
            _w(b"R\x00")
            return 0
        _w(b"R\x01")
        window = stdin_buffer_max() // 2
        _w(bytes((window & 0xFF, window >> 8, 0x01)))
        remain = window
        # Chunks, not one growing buffer: the real pyexec compiles as it reads and never
        # holds the source, so a board-sized heap must not need several copies of it here.
        chunks = []
        data = bytearray()
        err = None
        while True:
            c = getc()
            if c == CTRL_C or c == CTRL_D:
                _w(b"\x04")
                if c == CTRL_C:
                    chunks = data = None
                    return self.execute(None, "<stdin>", "exec", print_eof=True,
                                        exc=KeyboardInterrupt())
                break
            if err is None:
                try:
                    data.append(c)
                    if len(data) >= 1024:
                        chunks.append(bytes(data))
                        data = bytearray()
                except MemoryError as e:
                    err = e
                    chunks = data = None
            remain -= 1
            if remain == 0:
                _w(b"\x01")
                remain = window
        if err is not None:
            return self.execute(None, "<stdin>", "exec", print_eof=True, exc=err)
        chunks.append(bytes(data))
        data = None
        try:
            src = b"".join(chunks)
        except MemoryError as e:
            chunks = None
            return self.execute(None, "<stdin>", "exec", print_eof=True, exc=e)
        chunks = None
        gc.collect()
        return self.execute(src, "<stdin>", "exec", print_eof=True)

    def banner(self):
        _w(_simcfg.banner().encode() + b"\r\n")
        _w(b'Type "help()" for more information.\r\n')

    def _ps(self, n):
        try:
            import sys as s

            v = s.ps1 if n == 1 else s.ps2
            return v.encode() if isinstance(v, str) else bytes(v)
        except Exception:
            return b">>> " if n == 1 else b"... "

    def friendly_repl(self):
        self.banner()
        rl = self.rl
        while True:
            line = bytearray()
            ret = rl.readline(line, self._ps(1))
            kind = "single"
            if ret == CTRL_A:
                _w(b"\r\n")
                self.mode = RAW
                return 0
            elif ret == CTRL_B:
                _w(b"\r\n")
                self.banner()
                continue
            elif ret == CTRL_C:
                _w(b"\r\n")
                continue
            elif ret == CTRL_D:
                _w(b"\r\n")
                return FORCED_EXIT
            elif ret == CTRL_E:
                _w(PASTE_HEADER)
                line = bytearray()
                cancel = False
                while True:
                    c = getc()
                    if c == CTRL_C:
                        _w(b"\r\n")
                        cancel = True
                        break
                    elif c == CTRL_D:
                        _w(b"\r\n")
                        break
                    line.append(c)
                    if c == 13:
                        _w(b"\r\n=== ")
                    else:
                        _w(bytes((c,)))
                if cancel:
                    continue
                kind = "paste"
            elif len(line) == 0:
                continue
            else:
                cancel = False
                while continue_with_input(bytes(line).decode()):
                    line.append(10)
                    ret = rl.readline(line, self._ps(2))
                    if ret == CTRL_C:
                        _w(b"\r\n")
                        cancel = True
                        break
                    elif ret == CTRL_D:
                        break
                if cancel:
                    continue
            ret = self.execute(bytes(line), "<stdin>", kind)
            line = None
            if ret & FORCED_EXIT:
                return ret
