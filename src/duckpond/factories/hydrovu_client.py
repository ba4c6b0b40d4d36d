"""The HydroVu public API over httpx2, with authlib doing OAuth2 client credentials.

Every request (the token one too) goes through RetryTransport: an answer 429 or 5xx is
retried after a bounded backoff that honours Retry-After, capped by `max_retry_wait`.
Each request may take at most `timeout` seconds (connect, each read, each write), so a
server that hangs ends the request with an error instead of the run waiting for ever."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import OAuth2Client

from ..errors import FactoryError
from .hydrovu_models import Readings, Settings, friendly_names

API = "/public-api"
TOKEN_PATH = f"{API}/oauth/token"
NAMES_PATH = f"{API}/v1/sispec/friendlynames"
SCOPES = "read:locations read:data"
NEXT_PAGE = "x-isi-next-page"  # response header: there is another page, this is its token
START_PAGE = "x-isi-start-page"  # request header: the page wanted
RETRIED = frozenset({429, 500, 502, 503, 504})
FIRST_BACKOFF = 0.5  # seconds; doubled per attempt, capped by max_retry_wait


class HydroVuAuthError(FactoryError):
    """The credentials or the token were refused: no device can be read."""


class DeviceError(FactoryError):
    """One device's readings could not be fetched or understood."""


class RetryTransport(httpx2.BaseTransport):
    """Retries an answer in RETRIED, at most `retries` times, waiting min(Retry-After or
    an exponential backoff, `max_wait`) seconds before each try."""

    def __init__(
        self,
        inner: httpx2.BaseTransport,
        retries: int,
        max_wait: float,
        on_retry: Callable[[str], None],
    ) -> None:
        self.inner = inner
        self.retries = retries
        self.max_wait = max_wait
        self.on_retry = on_retry

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        attempt = 0
        while True:
            response = self.inner.handle_request(request)
            if response.status_code not in RETRIED or attempt >= self.retries:
                return response
            wait = min(self.max_wait, _retry_after(response) or FIRST_BACKOFF * 2**attempt)
            response.read()
            response.close()
            attempt += 1
            self.on_retry(
                f"HydroVu answered HTTP {response.status_code} for {request.url.path}; "
                f"retry {attempt} of {self.retries} in {wait:.3g} s"
            )
            time.sleep(wait)

    def close(self) -> None:
        self.inner.close()


def _retry_after(response: httpx2.Response) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), if given."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HydroVuClient:
    def __init__(self, settings: Settings, on_retry: Callable[[str], None]) -> None:
        self.settings = settings
        self.base = settings.base_url
        transport = RetryTransport(
            httpx2.HTTPTransport(), settings.max_retries, settings.max_retry_wait, on_retry
        )
        self._http = OAuth2Client(
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            token_endpoint_auth_method="client_secret_basic",
            scope=SCOPES,
            # an expired token is fetched again by authlib (client_credentials has no refresh)
            token_endpoint=self.base + TOKEN_PATH,
            grant_type="client_credentials",
            timeout=httpx2.Timeout(settings.timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HydroVuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authenticate(self) -> None:
        url = self.base + TOKEN_PATH
        try:
            self._http.fetch_token(url, grant_type="client_credentials")
        except OAuthError as e:
            raise HydroVuAuthError(
                f"HydroVu refused the credentials ({e.error}): check client_id and client_secret"
            ) from None
        except httpx2.HTTPStatusError as e:
            status = e.response.status_code
            if status in (400, 401, 403):
                raise HydroVuAuthError(
                    f"HydroVu refused the credentials (HTTP {status} from {TOKEN_PATH}): "
                    "check client_id and client_secret"
                ) from None
            raise HydroVuAuthError(f"HydroVu token request failed: HTTP {status}") from None
        except httpx2.HTTPError as e:
            raise HydroVuAuthError(f"HydroVu token request failed: {_http_reason(e)}") from None
        except ValueError as e:  # the token answer was not JSON, or lacked access_token
            raise HydroVuAuthError(f"HydroVu token answer not understood: {e}") from None

    def friendly_names(self) -> dict[str, dict[str, str]]:
        response = self._get(NAMES_PATH, {}, {})
        return friendly_names(_json(response, NAMES_PATH), NAMES_PATH)

    def readings(self, device_id: int, start: int, max_points: int) -> tuple[Readings, bool]:
        """The device's readings from `start` (Unix seconds), page after page until no next
        page or at least `max_points` readings; (readings, stopped at the cap with more
        pages waiting)."""
        path = f"{API}/v1/locations/{device_id}/data"
        out = Readings.empty()
        headers: dict[str, str] = {}
        seen: set[str] = set()
        page = 1
        while True:
            where = f"{path} page {page}"
            response = self._get(path, {"startTime": str(start)}, headers, where)
            out.add_page(_json(response, where), where)
            token = response.headers.get(NEXT_PAGE)
            if not token:
                return out, False
            if out.count >= max_points:
                return out, True
            if token in seen:  # a server going round in circles would never end the run
                raise DeviceError(f"HydroVu {where} names a page it already gave: {token[:40]!r}")
            seen.add(token)
            headers = {START_PAGE: token}
            page += 1

    def _get(
        self, path: str, params: dict[str, str], headers: dict[str, str], where: str = ""
    ) -> httpx2.Response:
        where = where or path
        try:
            response: httpx2.Response = self._http.get(
                self.base + path, params=params, headers=headers
            )
        except httpx2.HTTPError as e:
            raise DeviceError(f"HydroVu request {where} failed: {_http_reason(e)}") from None
        except OAuthError as e:  # an expired token fetched again, and refused
            raise HydroVuAuthError(f"HydroVu refused a new token ({e.error})") from None
        if response.status_code == 401:
            raise HydroVuAuthError(
                f"HydroVu refused the access token (HTTP 401 from {where}): "
                "check client_id, client_secret and their scopes"
            )
        if response.status_code >= 400:
            raise DeviceError(
                f"HTTP {response.status_code} from HydroVu {where}: {_body(response)}"
            )
        return response


def _json(response: httpx2.Response, where: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DeviceError(f"HydroVu {where} answered with invalid JSON: {e}") from None


def _body(response: httpx2.Response) -> str:
    return " ".join(response.text[:200].split())


def _http_reason(e: httpx2.HTTPError) -> str:
    if isinstance(e, httpx2.TimeoutException):
        return "no answer within the timeout"
    return " ".join(str(e).split()) or type(e).__name__
