"""The one exception type tfae raises for bad input.

The CLI turns it into a one-line message and a non-zero exit; library users catch it like any
``ValueError``.

Examples:
    >>> from tfae.errors import TfaeError
    >>> try:
    ...     raise TfaeError("--epochs must be positive, got 0")
    ... except ValueError as error:
    ...     print(error)
    --epochs must be positive, got 0
"""


class TfaeError(ValueError):
    """Bad input from the user: an unknown name, a malformed option, an unusable folder or file.

    The command line prints its message as one line and exits with status 1.

    Examples:
        >>> from tfae.models import get_family
        >>> try:
        ...     get_family("nope")
        ... except TfaeError as error:
        ...     print(error)
        unknown model 'nope'; choose one of shallow, deep, contractive, denoising, conv, deep-conv, randomized
    """
