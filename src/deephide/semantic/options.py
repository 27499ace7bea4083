"""Typed access to a source's ``**options`` (they may arrive as strings from the command line)."""

from __future__ import annotations

from typing import Any

from ..errors import DeephideError


class Options:
    """Pop typed options by name; ``finish()`` rejects any option the source did not read."""

    def __init__(self, source: str, options: dict[str, Any]):
        self.source = source
        self._left = dict(options)
        self.used: dict[str, Any] = {}

    def _take(self, name: str, default: Any) -> Any:
        value = self._left.pop(name, default)
        return value

    def str(self, name: str, default: str | None) -> str | None:
        v = self._take(name, default)
        out = None if v is None else str(v)
        self.used[name] = out
        return out

    def int(self, name: str, default: int | None, lo: int | None = None) -> int | None:
        v = self._take(name, default)
        if v is None:
            self.used[name] = None
            return None
        try:
            out = int(str(v), 10) if isinstance(v, str) else int(v)
        except (TypeError, ValueError):
            raise DeephideError(f"semantic source '{self.source}': option {name}={v!r} is not an integer") from None
        if lo is not None and out < lo:
            raise DeephideError(f"semantic source '{self.source}': option {name}={out} must be >= {lo}")
        self.used[name] = out
        return out

    def float(self, name: str, default: float, lo: float | None = None, hi: float | None = None) -> float:
        v = self._take(name, default)
        try:
            out = float(v)
        except (TypeError, ValueError):
            raise DeephideError(f"semantic source '{self.source}': option {name}={v!r} is not a number") from None
        if (lo is not None and out < lo) or (hi is not None and out > hi) or out != out:
            raise DeephideError(f"semantic source '{self.source}': option {name}={out} must lie in [{lo}, {hi}]")
        self.used[name] = out
        return out

    def bool(self, name: str, default: bool) -> bool:
        v = self._take(name, default)
        if isinstance(v, str):
            low = v.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise DeephideError(f"semantic source '{self.source}': option {name}={v!r} is not a boolean")
            out = low in ("1", "true", "yes", "on")
        else:
            out = bool(v)
        self.used[name] = out
        return out

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        v = str(self._take(name, default))
        if v not in choices:
            raise DeephideError(f"semantic source '{self.source}': option {name}={v!r}; "
                                f"choose one of: {', '.join(choices)}")
        self.used[name] = v
        return v

    def finish(self) -> dict[str, Any]:
        """The options read (with defaults filled in); unknown leftovers are an error."""
        if self._left:
            raise DeephideError(
                f"semantic source '{self.source}': unknown option(s) {', '.join(sorted(self._left))}; "
                f"known: {', '.join(sorted(self.used))}"
            )
        return dict(self.used)
