"""The one exception type tfae raises for bad input.

The CLI turns it into a one-line message and a non-zero exit; library users catch it like any
``ValueError``.

Example:
    >>> from tfae.errors import TfaeError
    >>> try:
    ...     raise TfaeError("--epochs must be positive, got 0")
    ... except ValueError as error:
    ...     print(error)
    --epochs must be positive, got 0
"""


class TfaeError(ValueError):
    """Bad input from the user: an unknown name, a malformed option, an unusable folder or file."""
