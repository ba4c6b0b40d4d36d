"""`test-executor`: a factory for tests and demos (SPEC §8)."""

from __future__ import annotations

import time
from typing import Any

from ..errors import MAX_MESSAGE_CHARS, FactoryError, clip
from .base import Factory, Fields, RunContext


class TestExecutor(Factory):
    name = "test-executor"
    description = (
        "Test/demo job: logs `message` repeat_count times, sleeps sleep_ms, checks "
        "file_to_read holds expected_content, writes message to write_path, fails when fail."
    )

    def validate(self, config: dict[str, Any]) -> dict[str, Any]:
        f = Fields(self.name, config)
        out = {
            "message": f.get("message", str, ""),
            "repeat_count": f.get("repeat_count", int, 1),
            "fail": f.get("fail", bool, False),
            "sleep_ms": f.get("sleep_ms", int, 0),
            "file_to_read": f.get("file_to_read", str),
            "expected_content": f.get("expected_content", str),
            "write_path": f.get("write_path", str),
        }
        f.done()
        if out["repeat_count"] < 1:
            raise FactoryError(f"{self.name}: 'repeat_count' must be at least 1")
        if out["sleep_ms"] < 0:
            raise FactoryError(f"{self.name}: 'sleep_ms' must not be negative")
        if (out["file_to_read"] is None) != (out["expected_content"] is None):
            raise FactoryError(f"{self.name}: 'file_to_read' and 'expected_content' go together")
        return out

    def run(self, config: dict[str, Any], ctx: RunContext) -> None:
        cfg = self.validate(config)
        # Redacted before the cut (no fragment of a secret), clipped as error messages are:
        # a huge message is never printed or stored whole.
        shown = ctx.redact(cfg["message"])
        message = clip(shown, MAX_MESSAGE_CHARS)
        for _ in range(cfg["repeat_count"]):
            ctx.log(message)
        if cfg["sleep_ms"]:
            time.sleep(cfg["sleep_ms"] / 1000)
        if cfg["file_to_read"] is not None:
            path = cfg["file_to_read"]
            if not ctx.exists(path):
                raise FactoryError(f"{self.name}: file_to_read {path} does not exist")
            got = ctx.read_bytes(path).decode("utf-8", "replace")
            if got != cfg["expected_content"]:
                # Redacted before the cut, so no fragment of a secret value is echoed.
                shown, wanted = ctx.redact(got), ctx.redact(cfg["expected_content"])
                raise FactoryError(
                    f"{self.name}: {path} holds {shown[:80]!r}, expected {wanted[:80]!r}"
                )
        if cfg["write_path"] is not None:
            ctx.write_bytes(cfg["write_path"], cfg["message"].encode())
        if cfg["fail"]:
            raise FactoryError(f"{self.name} intentionally failed: {clip(shown)}")


FACTORY = TestExecutor()
