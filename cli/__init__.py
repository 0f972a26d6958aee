"""The ``tfae`` command: a thin click shell over the ``tfae`` library (installed as ``tfae_cli``; see ``tfae_cli.main``)."""
