"""The one exception type users see: the CLI prints its message as a single line."""


class DeephideError(Exception):
    """A user-facing error: bad input, unknown name, unusable file.

    The message must name the file (or argument) and the problem in one line.
    """
