"""The one exception type tfae raises for bad input.

The CLI turns it into a one-line message and a non-zero exit; library users catch it like any
``ValueError``. A message that names options holds them as ``{name}`` fields, listed in
``options``: Python users read the option's name, the CLI renders its flag.

Examples:
    >>> from tfae.errors import TfaeError
    >>> error = TfaeError("{penalty_weight} must be >= 0, got -1", options=["penalty_weight"])
    >>> print(error)
    penalty_weight must be >= 0, got -1
    >>> error.render(lambda name: "--lambda")
    '--lambda must be >= 0, got -1'
"""

import re


class TfaeError(ValueError):
    """Bad input from the user: an unknown name, a malformed option, an unusable folder or file.

    Args:
        message: the message; with ``options``, a template naming each as ``{option}`` (other
            braces are left as they are).
        options: the names of the options the message mentions.

    Examples:
        >>> from tfae.families import get_family
        >>> try:
        ...     get_family("nope")
        ... except TfaeError as error:
        ...     print(error)
        unknown model 'nope'; choose one of shallow, deep, contractive, denoising, conv, deep-conv, randomized, vae, geometric, geometric-conv
    """

    def __init__(self, message, options=()):
        self.template = message
        self.options = tuple(options)
        super().__init__(self.render(str))

    def render(self, name_of):
        """The message with each option written as ``name_of(option)``, such as its CLI flag."""
        message = self.template
        for option in self.options:
            message = message.replace("{%s}" % option, name_of(option))
        return message


def first_line(error):
    """An exception's message as one line (its first), or its type's name when it has none.

    Examples:
        >>> first_line(ValueError("bad value\\nmore detail")), first_line(KeyError())
        ('bad value', 'KeyError')
    """
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def op_error_message(error):
    """A TensorFlow op error's message as one line, without the function, node and op names
    TensorFlow wraps around it.

    Examples:
        >>> class OpError(Exception):
        ...     message = "{{function_node __wrapped__DecodeImage}} Unknown image file format [Op:DecodeImage]"
        >>> op_error_message(OpError())
        'Unknown image file format'
    """
    text = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", getattr(error, "message", str(error)))
    return first_line(text.strip()) if text.strip() else type(error).__name__
