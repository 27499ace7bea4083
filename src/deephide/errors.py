"""The one exception type users see: the CLI prints its message as a single line."""


class DeephideError(Exception):
    """A user-facing error: bad input, unknown name, unusable file.

    The message must name the file (or argument) and the problem in one line.
    """


def error_line(e: BaseException, limit: int = 200, with_type: bool = False) -> str:
    """One line saying what went wrong in ``e``: the first non-empty line of its message (of the original error
    for a wrapper that carries one in ``cause``, as Ray's task errors do), else its type name; at most ``limit``
    characters. ``with_type`` prefixes the type name (``ValueError: ...``)."""
    inner = getattr(e, "cause", None)
    if isinstance(inner, BaseException):
        e = inner
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    text = lines[0] if lines else ""
    if with_type or not text:
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text[:limit]
