"""The one exception type users see: a bad input, reported as a single line."""


class RingcertError(Exception):
    """A problem with the user's input (file, argument, image, model).

    The CLI prints ``str(error)`` on one line and exits with status 2; it never shows a
    traceback for this class.
    """
