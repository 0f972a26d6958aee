"""The ``tfae`` command: a thin click shell over the ``tfae`` library (see ``cli.main``)."""
