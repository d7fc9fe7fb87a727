"""`-p labgrid://PLACE[?coordinator=HOST:PORT]`: a board shared through a labgrid coordinator.

The place is acquired unless this user already holds it, its NetworkSerialPort (which the
exporter serves with ser2net, on a new port each time the place is acquired) becomes an
`rfc2217://` URL, and what i2s acquired is released when the process ends: normally, by an
error, or by SIGINT/SIGTERM/SIGHUP (those end i2s through SystemExit, so atexit runs). A place
that someone else holds is refused in one line naming the holder (exit 3, "no device: busy").

labgrid is the optional extra `i2scli[labgrid]`, imported only here.
"""

from __future__ import annotations

import argparse
import atexit
import os
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from i2scli.link.errors import NoDevice

SCHEME = "labgrid://"
DEFAULT_COORDINATOR = "127.0.0.1:20408"


@dataclass
class PlaceURL:
    place: str
    coordinator: str


def parse(url: str, environ=os.environ) -> PlaceURL:
    """labgrid://PLACE?coordinator=HOST:PORT; LG_PLACE and LG_COORDINATOR are the defaults."""
    parts = urlsplit(url)
    if parts.scheme != "labgrid":
        raise NoDevice(f"not a labgrid URL: {url}")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"coordinator"})
    if unknown:
        raise NoDevice(f"{url}: unknown option {unknown[0]} (labgrid://PLACE?coordinator=HOST:PORT)")
    place = (parts.netloc + parts.path).strip("/") or environ.get("LG_PLACE", "")
    if not place:
        raise NoDevice("labgrid:// names no place, and LG_PLACE is not set (labgrid://PLACE)")
    coordinator = (query.get("coordinator") or [""])[-1] or environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR
    return PlaceURL(place, coordinator)


class Place:
    """One labgrid place, acquired (if it was not ours already) until release()."""

    def __init__(self, url: PlaceURL):
        try:
            from labgrid.remote.client import start_session
        except ImportError:
            raise NoDevice("labgrid:// ports need labgrid: pip install 'i2scli[labgrid]'") from None
        self.url = url
        self.acquired_here = False
        import logging

        if not logging.getLogger().handlers:  # labgrid logs its errors on root: i2s says them in one line
            logging.getLogger().addHandler(logging.NullHandler())
        try:
            self.session = start_session(url.coordinator, extra={
                "args": argparse.Namespace(place=url.place, allow_unmatched=False, kick=False, state=None)})
        except Exception as e:  # noqa: BLE001 - grpc's errors: one line
            raise NoDevice(f"cannot reach the labgrid coordinator at {url.coordinator}: {_line(e)}") from None

    def _run(self, coro):
        return self.session.loop.run_until_complete(coro)

    def _place(self):
        try:
            return self.session.get_place(self.url.place)
        except Exception as e:  # noqa: BLE001 - labgrid's UserError
            raise NoDevice(f"labgrid place {self.url.place}: {_line(e)}") from None

    def me(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def acquire(self) -> None:
        place = self._place()
        if place.acquired == self.me():
            return  # ours already (labgrid-client acquire, a CI job's step): leave it acquired
        if place.acquired:
            raise NoDevice(f"labgrid place {place.name} is busy: acquired by {place.acquired}")
        try:
            self._run(self.session._acquire_place(place.name))
        except Exception as e:  # noqa: BLE001
            # lost a race: say who won
            now = self._place().acquired
            raise NoDevice(f"labgrid place {place.name} is busy: acquired by {now}" if now and now != self.me()
                           else f"cannot acquire labgrid place {place.name}: {_line(e)}") from None
        self.acquired_here = True

    def serial_url(self, timeout: float = 10.0) -> str:
        """The rfc2217:// URL of the place's NetworkSerialPort, once the exporter serves it."""
        deadline = time.monotonic() + timeout
        while True:
            self._run(self.session.sync_with_coordinator())
            place = self._place()
            ports = [r for (name, cls), r in self.session.get_target_resources(place).items()
                     if cls == "NetworkSerialPort"]
            if not ports:
                raise NoDevice(f"labgrid place {place.name} has no NetworkSerialPort "
                               f"(labgrid-client -p {place.name} add-match EXPORTER/GROUP/NetworkSerialPort)")
            res = ports[0]
            args = res.args
            if res.avail and args.get("port"):
                host, port = args["host"], args["port"]
                if os.environ.get("LG_PROXY") or (getattr(res, "extra", None) or {}).get("proxy"):
                    # through the SSH proxy labgrid would use (LG_PROXY, or the exporter's own)
                    from labgrid.resource import NetworkSerialPort
                    from labgrid.util.proxy import proxymanager

                    nsp = NetworkSerialPort(None, None, host=host, port=port)
                    nsp.extra = getattr(res, "extra", None) or {}
                    host, port = proxymanager.get_host_and_port(nsp)
                protocol = args.get("protocol", "rfc2217")
                scheme = "rfc2217" if protocol == "rfc2217" else "socket"
                return f"{scheme}://{host}:{port}"
            if time.monotonic() > deadline:
                raise NoDevice(f"labgrid place {place.name}: its serial port is not available")
            time.sleep(0.1)

    def release(self) -> None:
        if not self.acquired_here:
            return
        try:
            self._run(self.session._release_place(self.url.place))
        except Exception:  # noqa: BLE001 - released by someone else, or the coordinator gone
            pass
        self.acquired_here = False

    def close(self) -> None:
        try:
            self._run(self.session.stop())
            self._run(self.session.close())
        except Exception:  # noqa: BLE001
            pass


_open: dict[str, Place] = {}


def resolve(url: str) -> str:
    """labgrid://... -> rfc2217://host:port, the place acquired (and released at exit) as needed.
    Called again (after a board reset moves the port), it asks the coordinator anew."""
    parsed = parse(url)
    key = f"{parsed.coordinator}/{parsed.place}"
    place = _open.get(key)
    if place is None:
        place = Place(parsed)
        place.acquire()
        _open[key] = place
        atexit.register(_release, key)
    try:
        return place.serial_url()
    except NoDevice:
        raise
    except Exception as e:  # noqa: BLE001 - labgrid's errors (an exporter gone, ...): one line
        raise NoDevice(f"labgrid place {parsed.place}: {_line(e)}") from None


def _release(key: str) -> None:
    place = _open.pop(key, None)
    if place is not None:
        place.release()
        place.close()


def _line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
