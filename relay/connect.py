"""A small client of Kafka Connect's REST API: apply, inspect and remove the CDC relay's connector.

Every HTTP failure is translated here, once, into ConnectError with Connect's own message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from outbox.urls import mask_url
from relay.errors import ConnectError


@dataclass(frozen=True)
class ConnectorState:
    """`GET /connectors/<name>/status`, reduced to what an operator reads."""

    name: str
    connector: str
    tasks: tuple[tuple[int, str, str], ...]
    """(task id, state, first line of the failure trace or '')."""

    @property
    def running(self) -> bool:
        return self.connector == "RUNNING" and bool(self.tasks) and all(t[1] == "RUNNING" for t in self.tasks)

    @property
    def failed(self) -> bool:
        return self.connector == "FAILED" or any(t[1] == "FAILED" for t in self.tasks)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ConnectorState:
        tasks = tuple(
            (int(t["id"]), str(t["state"]), (t.get("trace") or "").strip().split("\n")[0])
            for t in body.get("tasks", [])
        )
        return cls(str(body["name"]), str(body["connector"]["state"]), tasks)


class ConnectClient:
    """Blocking calls on one Connect cluster (any worker forwards to the leader). Not thread-safe."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        # Connect answers 409 while its group rebalances (e.g. just after a worker restart): retry.
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = self.http.request(method, path, json=body)
            except httpx.HTTPError as err:
                raise ConnectError(
                    f"Kafka Connect at {mask_url(self.url)} cannot be reached: {mask_url(str(err))}"
                ) from err
            if resp.status_code == 409 and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            if resp.status_code == 404 and missing_ok:
                return None
            if resp.status_code >= 400:
                try:
                    message = resp.json().get("message", resp.text)
                except ValueError:
                    message = resp.text
                raise ConnectError(f"Kafka Connect: {method} {path} -> {resp.status_code}: {message}")
            return resp.json() if resp.content else None

    def put_config(self, name: str, config: dict[str, str]) -> None:
        """Create the connector, or update its configuration (idempotent)."""
        self._call("PUT", f"/connectors/{name}/config", config)

    def config(self, name: str) -> dict[str, str] | None:
        result: dict[str, str] | None = self._call("GET", f"/connectors/{name}/config", missing_ok=True)
        return result

    def status(self, name: str) -> ConnectorState | None:
        body = self._call("GET", f"/connectors/{name}/status", missing_ok=True)
        return ConnectorState.from_json(body) if body else None

    def pause(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/pause")

    def resume(self, name: str) -> None:
        self._call("PUT", f"/connectors/{name}/resume")

    def restart(self, name: str) -> None:
        """Restart the connector and its tasks (stop, then start from the committed offsets)."""
        self._call("POST", f"/connectors/{name}/restart?includeTasks=true")

    def delete(self, name: str) -> bool:
        """Remove the connector; False when there was none."""
        if self.status(name) is None:
            return False
        self._call("DELETE", f"/connectors/{name}", missing_ok=True)
        deadline = time.monotonic() + 30  # the status topic catches up a moment later
        while self.status(name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        return True

    def plugins(self) -> set[str]:
        return {p["class"] for p in self._call("GET", "/connector-plugins?connectorsOnly=false")}

    def wait(self, name: str, state: str = "RUNNING", timeout: float = 90.0) -> ConnectorState:
        """Until connector and tasks are in `state`; raises ConnectError on FAILED or timeout."""
        deadline = time.monotonic() + timeout
        current = None
        while time.monotonic() < deadline:
            current = self.status(name)
            if current is not None:
                if current.failed:
                    raise ConnectError(f"connector {name} failed: {current.tasks}")
                if current.connector == state and current.tasks and all(t[1] == state for t in current.tasks):
                    return current
            time.sleep(0.25)
        raise ConnectError(f"connector {name} not {state} after {timeout:.0f}s: {current}")
