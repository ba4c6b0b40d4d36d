"""A fake HydroVu public API for the tests and the benchmark: a threaded http.server on
127.0.0.1 (port 0) with the vendor's endpoints, paging by header and fault injection.

- `POST /public-api/oauth/token`: client credentials by HTTP Basic; 401 otherwise.
- `GET /public-api/v1/sispec/friendlynames`: parameter and unit names.
- `GET /public-api/v1/locations/{id}/data?startTime=S`: the device's readings with
  timestamp >= S, `page_size` readings a page (in (timestamp, parameter) order, so a page
  may end inside one timestamp's parameters); `x-isi-next-page` names the next page, asked
  for with request header `x-isi-start-page`.
- Faults (`fail`, `bad_json`, `hang`): an answer replaced for requests whose path contains
  a text, a given number of times. Every request is recorded (`requests`).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CLIENT_ID = "fake-hydrovu-client-id"
CLIENT_SECRET = "fake-hydrovu-secret-Zq8v"
PARAMETERS = {"1": "Temperature", "2": "Pressure", "4": "Conductivity", "5": "pH"}
UNITS = {"17": "C", "35": "psi", "241": "uScm", "1": "pH"}
PARAM_UNIT = {"1": "17", "2": "35", "4": "241", "5": "1"}


@dataclass
class Fault:
    path_part: str
    status: int = 500
    times: int = 1  # how many matching requests it answers (then it is spent)
    retry_after: str | None = None
    body: bytes = b'{"error": "injected"}'
    kind: str = "status"  # status | bad_json | hang


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived


@dataclass
class FakeHydroVu:
    page_size: int = 4
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    # device id -> sorted [(timestamp, parameter id, value)]
    readings: dict[int, list[tuple[int, str, float]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    arrived: threading.Event = field(default_factory=threading.Event)  # a hang was reached
    release: threading.Event = field(default_factory=threading.Event)  # ends every hang
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""
    # prepared bodies, for the benchmark: (device, start, page) -> (body, next page)
    cache_pages: bool = False
    loop_pages: bool = False  # every page names page 1 as the next: a server in circles
    _pages: dict[tuple[int, int, int], tuple[bytes, str | None]] = field(default_factory=dict)

    # -- data --------------------------------------------------------------------------------
    def add(self, device: int, timestamps: list[int], params: tuple[str, ...] = ("1", "2")) -> None:
        """A reading of each parameter at each timestamp (values derived from both)."""
        rows = self.readings.setdefault(device, [])
        rows.extend((t, p, round(t % 1000 / 10 + int(p), 2)) for t in timestamps for p in params)
        rows.sort(key=lambda r: (r[0], r[1]))
        self._pages.clear()

    def fail(self, path_part: str, status: int = 500, times: int = 1, **kw: Any) -> None:
        self.faults.append(Fault(path_part, status, times, **kw))

    def data_requests(self, device: int) -> list[Request]:
        return [r for r in self.requests if r.path.endswith(f"/locations/{device}/data")]

    # -- serving -----------------------------------------------------------------------------
    def _fault(self, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times > 0 and f.path_part in path:
                    f.times -= 1
                    return f
        return None

    def page(self, device: int, start: int, page: int) -> tuple[bytes, str | None]:
        key = (device, start, page)
        if self.cache_pages and key in self._pages:
            return self._pages[key]
        rows = [r for r in self.readings.get(device, []) if r[0] >= start]
        chunk = rows[page * self.page_size : (page + 1) * self.page_size]
        by_param: dict[str, list[dict[str, Any]]] = {}
        for t, p, v in chunk:
            by_param.setdefault(p, []).append({"timestamp": t, "value": v})
        body = {
            "locationId": device,
            "parameters": [
                {
                    "customParameter": False,
                    "parameterId": p,
                    "unitId": PARAM_UNIT[p],
                    "readings": rs,
                }
                for p, rs in by_param.items()
            ],
        }
        more = (page + 1) * self.page_size < len(rows)
        nxt = "p1" if self.loop_pages else f"p{page + 1}"
        out = (json.dumps(body).encode(), nxt if more or self.loop_pages else None)
        if self.cache_pages:
            self._pages[key] = out
        return out

    @contextmanager
    def serve(self) -> Iterator[FakeHydroVu]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once (no 40 ms stall)

            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _record(self) -> tuple[str, dict[str, str]]:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake.lock:
                    fake.requests.append(
                        Request(self.command, parts.path, query, headers, time.monotonic())
                    )
                return parts.path, query

            def _injected(self, path: str) -> bool:
                fault = fake._fault(path)
                if fault is None:
                    return False
                if fault.kind == "hang":
                    fake.arrived.set()
                    fake.release.wait(120)
                    self.close_connection = True
                    return True
                if fault.kind == "bad_json":
                    self._send(200, b'{"locationId": 1, "parameters": [ {"oops"')
                    return True
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._send(fault.status, fault.body, headers)
                return True

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                path, _ = self._record()
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                if self._injected(path):
                    return
                if path != "/public-api/oauth/token":
                    self._send(404, b'{"error": "not found"}')
                    return
                want = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode())
                if self.headers.get("Authorization") != f"Basic {want.decode()}":
                    self._send(401, b'{"error": "invalid_client"}')
                    return
                if form.get("grant_type") != ["client_credentials"]:
                    self._send(400, b'{"error": "unsupported_grant_type"}')
                    return
                token = secrets.token_hex(16)
                with fake.lock:
                    fake.tokens.add(token)
                answer = {"access_token": token, "token_type": "bearer", "expires_in": 3600}
                self._send(200, json.dumps(answer).encode())

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path, query = self._record()
                if self._injected(path):
                    return
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    self._send(401, b'{"error": "invalid_token"}')
                    return
                if path == "/public-api/v1/sispec/friendlynames":
                    names = {"parameters": PARAMETERS, "units": UNITS}
                    self._send(200, json.dumps(names).encode())
                    return
                parts = path.split("/")
                if len(parts) == 6 and parts[3] == "locations" and parts[5] == "data":
                    device = int(parts[4])
                    start = int(query.get("startTime", "0"))
                    token = self.headers.get("x-isi-start-page")
                    page = int(token[1:]) if token else 0
                    body, nxt = fake.page(device, start, page)
                    self._send(200, body, {"x-isi-next-page": nxt} if nxt else {})
                    return
                self._send(404, b'{"error": "not found"}')

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()
            thread.join()
