"""Getting the agent running: Ctrl-C and the raw REPL, the installed copy or an upload, HELLO;
and storing the agent on the board (`i2s install`)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable

import serial

from i2scli import protocol as proto
from i2scli.link import halt, schema
from i2scli.link.agent_code import (
    AGENT_MODULES,
    AGENT_NAME,
    CODER_NAME,
    CODER_PARTS,
    CORE_MODULES,
    UPLOAD_MARKER,
    agent_version,
    bootstrap,
    coder_chunks,
    coder_source,
    compile_agent,
    mode_modules,
    module_source,
    upload_chunks,
    upload_order,
)
from i2scli.link.baud import REPL_BAUD
from i2scli.link.baud import plan as baud_plan
from i2scli.link.baud import restore as baud_restore
from i2scli.link.baud import switch as baud_switch
from i2scli.link.early import EarlySwitch, loader_code
from i2scli.link.early import say as early_say
from i2scli.link.errors import BoardError, LinkError, board_error, first_line, frame_json, repl_error
from i2scli.link.port import Port, open_transport, patient
from i2scli.protocol import FrameType as T

REPL_TAIL = b"\x04>"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"


class Launcher:
    """Starts the agent on the board behind `port` and keeps what it said (HELLO); on a UART
    link it moves each agent run to the fastest rate the bridge takes (baud.py).

    An uploaded agent goes in parts: the core (framing, meters, one stream, main: enough for
    HELLO and the link probe) at the first launch, with the modules of the stream the caller
    `expect`s (a START-like dict: `mode`, `io`); any other mode's module before the START that
    needs it (`ready_for`), in the REPL's namespace, where it stays for the connection's later
    runs. An installed agent has them all."""

    def __init__(self, port: Port, baud: str | int = "off", warn: Callable[[str], None] | None = None,
                 expect: dict | None = None):
        self.port = port
        self.expect = mode_modules(expect) if expect else []
        self.installed = False  # the agent runs from the board's files (`i2s install`)
        self.uploaded: set[str] = set()  # the agent's modules in the REPL's namespace
        self.warn = warn
        self.coder_error: str | None = None  # why the wire coder could not be loaded
        self.propose, self.baud, note = baud_plan(port, baud)  # rate to propose; rate in use (None: no baud)
        if note and warn:
            warn(note)
        self.hello: dict = {}  # the running agent's HELLO; empty once it went back to the REPL
        self.identity: dict = {}  # the last HELLO: outlives the agent run
        self.hello_decoder: proto.Decoder | None = None
        self._relaunch: str | None = None
        self._prompt_ready = False
        self._fast_start = False  # this agent run started at the proposed rate (early switch)
        self._loader: EarlySwitch | None = None  # the loader the agent runs in (early.py), at the raised rate
        self._loader_until = 0.0  # ... and until when it surely waits for the next command

    def launch(self, timeout: float = 10.0, need: Iterable[str] = (), coder: list[str] | None = None) -> dict:
        """Run the agent: the installed copy when its version matches, else upload it (the
        core, what the caller expects, and the modules `need`); first the wire coder's chunks
        `coder`, if given (their error: `coder_error`)."""
        self._fast_start = False
        if self._relaunch and self._loader_waits():
            # the agent's last run ended in the loader, still at the raised rate: start it there
            self._start(need, self._relaunch, timeout, coder, resident=self._loader)
            return self.await_hello(timeout)
        self._release()
        t = self.port.transport
        for _ in range(3):
            try:
                # An agent left running by a host that died reads our Ctrl-C as data and
                # returns to the REPL only when its watchdog fires: so try again.
                with patient(t):
                    t.enter_raw_repl(soft_reset=False, timeout_overall=timeout / 3)
                break
            except halt.Interrupted:
                raise
            except Exception as e:
                error = e
        else:
            e = error
            raise LinkError(
                f"the board at {self.port.name} did not answer Ctrl-C and the raw REPL "
                f"({first_line(e)}); a program that ignores Ctrl-C may be running: reset the board"
            ) from None
        self._prompt_ready = True
        if self._relaunch:
            self._start(need, self._relaunch, timeout, coder)
            return self.await_hello(timeout)
        self.exec(bootstrap())
        hello = self.await_hello(timeout, allow_upload=True)
        if hello is None:
            self._relaunch = "main('uploaded')\n"
            self._start([*CORE_MODULES, *self.expect, *need], self._relaunch, timeout, coder)
            hello = self.await_hello(timeout)
        elif coder:  # the installed agent said HELLO before the coder ran: once more
            self._abort()
            self.installed = True
            self._relaunch = "_i2s_a.main('installed')\n"
            return self.launch(timeout, need, coder)
        else:
            self.installed = True
            self._relaunch = "_i2s_a.main('installed')\n"
        return hello

    def _missing(self, names: Iterable[str]) -> list[str]:
        """Of the agent's modules `names` (and what they import), those the board lacks."""
        return [] if self.installed else upload_order(names, have=self.uploaded)

    def _start(self, names: Iterable[str], code: str, timeout: float, coder: list[str] | None = None,
               resident: EarlySwitch | None = None) -> None:
        """Upload the modules `names` the board lacks (after the wire coder's `coder` chunks,
        whose error goes to `coder_error`), then run `code`: it starts the agent. On a link the
        host raises anyway the upload goes at the raised rate (early.py) and the agent starts
        there, inside the loader, which waits for the next run when the agent ends; when that
        switch fails, one warning, and all at the REPL's rate as before. `resident`: the loader
        that waits for the next run (launch saw it in time)."""
        missing = self._missing(names)
        early = resident
        chunks = None
        if early is None and (missing or coder) and self.propose:
            early = EarlySwitch(self.port, self.propose, REPL_BAUD)
            # the pieces are made while the loader travels at the REPL's rate
            made: list = []
            maker = threading.Thread(target=lambda: made.append(upload_chunks(missing)), daemon=True)
            maker.start()
            self.exec(loader_code(self.propose, REPL_BAUD))
            why = early.switch()
            maker.join()
            chunks = made[0]
            if why is not None:
                early = None
                early_say(self.warn, REPL_BAUD, why)
                self.propose = None  # the agent's BAUD proposal would fail the same way
                self.baud = REPL_BAUD
        if early is not None:
            self._loader = None  # busy until the agent has ended and the loader said so
            for chunk in coder or ():
                self.coder_error = early.run(chunk, timeout)
                if self.coder_error is not None:
                    break  # e.g. SyntaxError: invalid micropython decorator
            for chunk in upload_chunks(missing) if chunks is None else chunks:
                error = early.run(chunk, timeout)
                if error is not None:
                    early.quit()
                    raise BoardError(error)
            self.uploaded.update(missing)
            # the agent's Link starts at the raised rate and leaves it to the loader as it exits
            start = code.strip()
            assert start.endswith(")"), start
            early.go(f"{start[:-1]},{early.rate},0)\n")
            self._loader = early
            self.baud = early.rate
            self._fast_start = True
            return
        if coder:
            self.coder_error = self._run_chunks(coder, timeout)
        self._upload(names, timeout)
        self.exec(code)

    def _loader_waits(self) -> bool:
        """The loader is back from the agent's last run and surely still waiting (its watchdog)."""
        return self._loader is not None and not self.hello and time.monotonic() < self._loader_until

    def _release(self) -> None:
        """End a loader that waits for another agent run: the board back at its raw REPL at the
        REPL's rate, and the host too."""
        early, self._loader = self._loader, None
        if early is None:
            return
        self._prompt_ready = False
        if time.monotonic() < self._loader_until:
            early.quit()
        else:  # it may be timing out now: let its watchdog end it
            baud_restore(self.port)
            time.sleep(max(0.0, self._loader_until - time.monotonic() + early.KEEP_MARGIN_S))
            self.port.serial.reset_input_buffer()

    def _upload(self, names: Iterable[str], timeout: float) -> None:
        """Run the modules the board lacks in the raw REPL (the agent is not running)."""
        missing = self._missing(names)
        if missing:
            error = self._run_chunks(upload_chunks(missing), timeout)
            if error is not None:
                raise BoardError(error)
            self.uploaded.update(missing)

    def ready_for(self, cfg: dict, timeout: float = 10.0) -> None:
        """The agent running (HELLO) with what the START `cfg` needs: a waiting agent that lacks
        a module for its mode goes back to the REPL, gets it, and starts again."""
        need = mode_modules(cfg)
        if self.hello and not self._missing(need):
            return
        if self.hello:
            self._abort()
        self.launch(timeout, need)

    def _abort(self) -> None:
        """Send the agent waiting for START back to the REPL."""
        self.port.write(proto.Encoder(crc=bool(self.hello.get("crc"))).frame(T.ABORT))
        self.finish()

    def load_coder(self, part: str, timeout: float = 10.0, cfg: dict | None = None) -> bool:
        """Run the part of the wire coder a stream needs ("Decoder" to play, "Encoder" to record)
        in the board's REPL, beside the agent, and start the agent again with the modules of
        the stream `cfg` (a START-like dict; default: blocking play or record); only when a
        stream wants it (compiling viper code takes RAM a small board may need: a module the
        stream does not use must not take it too). False, with `coder_error`, when the board
        will not take it."""
        bit = CODER_PARTS[part]
        if (self.hello or self.identity).get("codec", 0) & bit:
            return True
        if self.coder_error is not None:
            return False
        if self.hello:  # the agent waits for START: send it back to the REPL first
            self._abort()
        # with the stream that codes: its module too, so that START need not wait again
        self.launch(timeout, mode_modules(cfg or {"mode": "tx" if part == "Decoder" else "rx"}),
                    coder=coder_chunks(part, arch=(self.hello or self.identity).get("native", 0)))
        if not self.hello.get("codec", 0) & bit and self.coder_error is None:
            self.coder_error = "the agent did not find it"
        return self.coder_error is None

    def _run_chunks(self, chunks: list[str], timeout: float) -> str | None:
        """Run pieces of code in the raw REPL one after the other; the board's error (None: all ran)."""
        for chunk in chunks:
            self.exec(chunk)
            raw = self.port.read_until(REPL_TAIL, timeout)
            if not raw.endswith(b"\x04\x04>"):
                return repl_error(raw)
        return None

    def exec(self, code: str) -> None:
        """Start code in the raw REPL without waiting for it to end."""
        if not self._prompt_ready:
            # The last exec's closing '>' was read with its output; Ctrl-A (raw REPL reset)
            # prints a fresh one, read byte by byte up to it so mpremote finds its prompt.
            # Whatever is still unread (a tail garbled by a baud change) would confuse it. A
            # Ctrl-A that reaches an agent still draining its input is eaten: ask again.
            self.port.serial.reset_input_buffer()
            t0 = time.monotonic()
            deadline = t0 + 6
            asked = 0
            while True:
                self.port.write(b"\x01")
                asked += 1
                got = self.port.transport.read_until(1, RAW_BANNER, timeout_overall=1.0)
                if got.endswith(RAW_BANNER) or time.monotonic() > deadline:
                    break
            if asked > 1 and got.endswith(RAW_BANNER):
                self._drain_banners(asked - 1, max(1.0, 2 * (time.monotonic() - t0)))
        self._prompt_ready = False
        try:
            with patient(self.port.transport):
                self.port.transport.exec_raw_no_follow(code)
        except halt.Interrupted:
            raise
        except Exception as e:
            raise LinkError(f"could not start code on the board: {first_line(e)}") from None

    def _drain_banners(self, extra: int, wait: float) -> None:
        """A board slower than a second to answer Ctrl-A (the firmware board's emulator on a
        loaded machine) got it again: each one it has not eaten brings its own banner, later.
        mpremote would read a late one as the answer to its raw-paste request (then send the
        code the old way, and read the board's real answer, `R\\x01`, as the code's: "could not
        exec command"). So read them here, each within twice the time the first took, stopping
        at the first that does not come (eaten)."""
        deadline = time.monotonic() + wait
        for _ in range(extra):
            left = deadline - time.monotonic()
            if left <= 0 or not self.port.transport.read_until(1, RAW_BANNER, timeout_overall=left).endswith(
                    RAW_BANNER):
                return

    def await_hello(self, timeout: float, allow_upload: bool = False) -> dict | None:
        """HELLO from the agent (None: it is not installed and wants uploading)."""
        dec = proto.Decoder(max_payload=4096)
        raw = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.port.read_some()
            if not data:
                continue
            for f in dec.feed(data):
                if f.type == T.HELLO:
                    self.hello = schema.check("HELLO", frame_json(f), self.port.name)
                    self.identity = dict(self.hello)
                    self.hello_decoder = dec
                    if self.hello.get("proto") != proto.PROTO_VERSION:
                        raise LinkError(
                            f"the agent on the board speaks protocol {self.hello.get('proto')}, "
                            f"this i2s speaks {proto.PROTO_VERSION}: run `i2s install` again")
                    self._speed_up()
                    return self.hello
                if f.type == T.ERROR:
                    raise board_error(f)
            raw += data
            del raw[:-65536]  # bounded, whatever the board sends
            if allow_upload and UPLOAD_MARKER in raw:
                self.port.read_until(REPL_TAIL, 5.0, raw)
                return None
            if raw.count(b"\x04") >= 2:  # the REPL finished the exec with an error
                if not re.search(rb"Traceback|Error", raw):
                    raise LinkError(f"the board at {self.port.name} answered with something that is not the i2s agent")
                raise BoardError(repl_error(bytes(raw)))
        raise LinkError(f"no answer from the agent on {self.port.name} within {timeout:.0f} s")

    def _speed_up(self) -> None:
        """The agent just said HELLO at the REPL's rate: move it to the proposed one."""
        if self._fast_start:
            # it started at that rate: the loader's last credits came before HELLO, not the stream's
            self.hello_decoder = proto.Decoder(max_payload=4096)
            return
        if not self.propose:
            return
        rate = baud_switch(self.port, self.hello, self.hello_decoder, self.propose, self.warn)
        if rate != self.propose:
            self.propose = None  # fell back: this connection stays at the REPL's rate
        self.baud = rate
        # garbage from a failed attempt is not the stream's: count from here
        self.hello_decoder = proto.Decoder(max_payload=4096)

    def finish(self, seen: bytes = b"") -> None:
        """After the agent's last frame: wait for the raw REPL to come back (its closing bytes
        may already have arrived with the last frame: `seen`). The agent put its UART back at
        the REPL's rate as it exited; so does the host."""
        if self._loader is not None:
            if self._loader.wait_back(seen, 3.0):
                # the agent ended inside the loader, which waits for another run (or the end)
                self._loader_until = time.monotonic() + self._loader.KEEP_S
                self.hello = {}
                return
            self._loader = None  # it did not come back: its exec ended, the board back at the REPL's rate
        switched = bool(self.baud and self.baud != REPL_BAUD)
        if switched:
            baud_restore(self.port)
        if REPL_TAIL in seen:
            pass
        elif switched:
            # the tail may have come at the REPL's rate before we switched back, and read as
            # garbage: the agent is back once the line has been quiet longer than its drain
            self._until_quiet(REPL_TAIL, quiet=0.15, limit=3.0)
        else:
            self.port.read_until(REPL_TAIL, 3.0, bytearray(seen))
        self.hello = {}

    def _until_quiet(self, marker: bytes, quiet: float, limit: float) -> None:
        buf = bytearray()
        end = time.monotonic() + limit
        last = time.monotonic()
        while marker not in buf and time.monotonic() < end and time.monotonic() - last < quiet:
            data = self.port.read_some()
            if data:
                buf += data
                last = time.monotonic()

    def stop(self) -> None:
        """Send a waiting agent back to the REPL, leave the raw REPL, close the port."""
        try:
            if self.hello:  # the agent is waiting for START: tell it to go back to the REPL
                self._abort()
        except (LinkError, OSError):
            pass
        try:
            self._release()
        except (LinkError, OSError):
            pass
        baud_restore(self.port)  # whatever happened, leave the port at the REPL's rate
        self.port.close()


def install(port: str, remove: bool = False) -> str:
    """Store the agent's modules on the board's filesystem, compiled to .mpy for the board's
    bytecode when mpy-cross can (the board then skips compiling them on every run), else as
    source; or take them away. Returns what was done."""
    p = Port(open_transport(port), port)
    t = p.transport
    try:
        t.serial.timeout = 1.0
        t.enter_raw_repl(soft_reset=False)
        others = [n for n in AGENT_MODULES if n != AGENT_NAME]
        files = [f"/{n}.{ext}" for n in (AGENT_NAME, *others) for ext in ("mpy", "py")] + [f"/{CODER_NAME}.mpy"]
        present = [path for path in files if t.fs_exists(path)]
        if remove:
            for path in present:
                t.fs_rmfile(path)
            agent = [path for path in present if not path.startswith(f"/{CODER_NAME}")]
            return f"removed {', '.join(agent)}" if agent else f"no agent installed at /{AGENT_NAME}.py"
        mpy = int(t.eval("getattr(__import__('sys').implementation, '_mpy', 0)") or 0)
        compiled = {}
        for name in AGENT_MODULES:
            data, how = compile_agent(mpy, module_source(name), name)
            if data is None:
                compiled = None  # all as source, then: one kind of file for one agent
                break
            compiled[name] = data
        kind = "mpy" if compiled is not None else "py"
        # the main module goes first and comes back last: a board that lost the link halfway
        # has no main module, so the next run uploads the agent instead of importing half of it
        main = f"/{AGENT_NAME}.{kind}"
        for path in present:  # MicroPython imports a .py before a .mpy: never leave both
            if path.startswith(f"/{AGENT_NAME}."):
                t.fs_rmfile(path)
        for name in (*others, AGENT_NAME):
            path = f"/{name}.{kind}"
            t.fs_writefile(path, compiled[name] if compiled is not None else module_source(name).encode())
            other = f"/{name}.{'py' if kind == 'mpy' else 'mpy'}"
            if other in present and name != AGENT_NAME:
                t.fs_rmfile(other)
        what = f"compiled, {how}" if compiled is not None else f"source: {how}"
        said = f"installed agent {agent_version()} at {main} ({what}) with {len(others)} modules beside it"
        # the wire coder beside it: viper, so only as a .mpy for the board's architecture
        coder, _ = compile_agent(mpy, coder_source(mpy >> 10), CODER_NAME) if mpy >> 10 else (None, "")
        if coder is not None:
            t.fs_writefile(f"/{CODER_NAME}.mpy", coder)
            said += f", wire coder at /{CODER_NAME}.mpy"
        elif t.fs_exists(f"/{CODER_NAME}.mpy"):
            t.fs_rmfile(f"/{CODER_NAME}.mpy")
        return said
    except (OSError, serial.SerialException) as e:
        raise LinkError(f"lost the board at {port}: {first_line(e)}") from None
    finally:
        p.close()
