"""The CLI acting on a team server (``evaltray --server URL``, or ``EVALTRAY_SERVER``) with an API token
(``EVALTRAY_TOKEN``, made by an admin with ``evaltray user token NAME``): the command calls the web app's JSON
endpoints, so the server's workspace, its role checks, its audit log and its signing key apply, and no
workspace or private key is needed where the command runs. The standard library's HTTP client: the default
install needs nothing more."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from evaltray.core.errors import EvaltrayError

SERVER_ENV = "EVALTRAY_SERVER"
TOKEN_ENV = "EVALTRAY_TOKEN"
#: Commands that may act on a server; any other refuses ``--server`` rather than act on a local workspace.
REMOTE_COMMANDS = ("promote", "tasks list", "tasks next", "labels record", "review", "reject")


class RemoteError(EvaltrayError):
    """The team server could not be reached, refused the token, or refused the act (its message is kept)."""


class Remote:
    """A team server the CLI calls with ``token`` (sent as ``Authorization: Bearer``)."""

    def __init__(self, url: str, token: str | None, timeout: float = 60) -> None:
        if not url.startswith(("http://", "https://")):
            raise RemoteError(f"--server {url!r}: give the server's address, e.g. https://evaltray.example.com")
        if not token:
            raise RemoteError(f"--server needs an API token in {TOKEN_ENV} (an admin makes one: `evaltray user token`)")
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        query: dict[str, Any] | None = None,
    ) -> Any:
        """The server's JSON answer to ``method path`` (``data`` sent as a form); its refusal as :class:`RemoteError`."""
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if body is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (an http(s) URL, checked)
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach the server {self.url}: {reason}") from None
        except ValueError:
            raise RemoteError(f"the server {self.url} did not answer {path} with JSON: is it evaltray?") from None

    def _refusal(self, exc: urllib.error.HTTPError) -> RemoteError:
        try:
            message = json.loads(exc.read()).get("error") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        if exc.code == 401:
            return RemoteError(
                f"the server {self.url} refused the token in {TOKEN_ENV} ({message}); "
                "ask an admin for a new one (`evaltray user token NAME`)"
            )
        return RemoteError(f"the server {self.url} refused: {message}")


__all__ = ["REMOTE_COMMANDS", "SERVER_ENV", "TOKEN_ENV", "Remote", "RemoteError"]
