"""The simulator's HTTP side: a threaded HTTP/1.1 server that writes `Simulator` responses.

It applies the fault directives (slow, truncated bodies) and nothing else; `main(args)` is
`clever-elt demo-server`.
"""

from __future__ import annotations

import argparse
import email.utils
import logging
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from clever_elt.simulator.core import Faults, Response, Simulator

log = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection gives its thread back after this many seconds.
    timeout = 120
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as separate writes; without this, Nagle plus the client's
        # delayed ACK would add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header tells the simulated clock, as a real server tells its own."""
        return email.utils.formatdate(self.server.simulator.now.timestamp(), usegmt=True)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        sim = self.server.simulator
        if self.path.startswith("/_sim/"):
            response = sim.admin(method, self.path)
        else:
            response = sim.respond(method, self.path, self.headers.get("Authorization"))
        if response.slow_seconds:
            time.sleep(response.slow_seconds)
        self._write(response)

    def _write(self, response: Response) -> None:
        length = response.length
        parts = response.parts
        cut = None
        if response.truncate is not None:
            variant, cut = response.truncate
            if variant == "short":
                length = cut
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if cut is None:
            for part in parts:
                self.wfile.write(part)
            return
        self.wfile.write(response.body()[:cut])
        if length != cut:
            # The announced body never completes: the client sees the connection drop mid-JSON.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], simulator: Simulator):
        self.simulator = simulator
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        # A client that hangs up mid-answer (a timeout, a killed sync) is the client's business;
        # socketserver would print a traceback for it.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("%s hung up before the answer was sent", client_address[0])
            return
        super().handle_error(request, client_address)


class Server:
    """A running simulator server (background thread); `close()` or leave the `with` block."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        self.simulator = simulator
        self._httpd = _HTTPServer((host, port), simulator)
        self.host = host
        self.port = self._httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self.base_url = f"{self.url}/v3.1"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"clever-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def main(args: argparse.Namespace) -> int:
    """`clever-elt demo-server`: print the base URL and token, serve until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        faults = Faults(
            rate_429=args.fault_429,
            rate_5xx=args.fault_5xx,
            rate_slow=args.fault_slow,
            slow_seconds=args.fault_slow_seconds,
            rate_truncated=args.fault_truncated,
            seed=args.fault_seed,
            rate_504_large_page=args.fault_504_large_page,
        )
        log.info("generating the simulated district (seed %s, scale %s)", args.seed, args.scale)
        started = time.perf_counter()
        simulator = Simulator(
            seed=args.seed,
            scale=args.scale,
            token=args.token,
            faults=faults,
            previous_attributes_at=args.previous_attributes_at,
            rate_limit=args.rate_limit,
        )
    except ValueError as exc:
        log.error("demo-server: %s", exc)
        return 2
    log.info(
        "%d events generated in %.1fs; now=%s",
        len(simulator.timeline),
        time.perf_counter() - started,
        simulator.now.isoformat(),
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with simulator.serve(args.host, args.port) as server:
            sys.stdout.write(
                f"CLEVER_API_BASE_URL={server.base_url}\nCLEVER_API_TOKEN={simulator.token}\n"
            )
            sys.stdout.flush()
            while not stop.wait(0.2):
                pass
            log.info("stopping the simulator")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
