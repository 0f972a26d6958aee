"""A registry of named things: the families, measurements, corruption kinds and figure kinds.

Each is a ``Registry`` of declarations with a ``name``. Built-in ones may live in modules that
register them when imported, loaded on first use (so that reading the registry imports no more
than it needs): they are listed first, in the order given; others follow in the order they
registered. Nothing here imports TensorFlow.

Examples:
    >>> import collections
    >>> Colour = collections.namedtuple("Colour", "name")
    >>> colours = Registry("colour")
    >>> colours.register(Colour("red"))
    >>> colours.names(), colours.get("red")
    (['red'], Colour(name='red'))
    >>> colours.get("blue")
    Traceback (most recent call last):
    ...
    tfae.errors.TfaeError: unknown colour 'blue'; choose one of red
"""

import importlib

from tfae.errors import TfaeError


class Registry:
    """Declarations of one kind, by name.

    Args:
        what: what a declaration is, for errors (``model``, ``measurement``).
        built_in: names of the built-in declarations, in the order they are listed.
        package: the package whose modules, one a built-in (``name`` with dashes written as
            underscores), register them when imported; ``None``: they register themselves.
        load: called once, after the built-in modules, to import others (plug-ins).

    Examples:
        >>> import collections
        >>> Colour = collections.namedtuple("Colour", "name")
        >>> colours = Registry("colour", built_in=("red", "green"),
        ...                    load=lambda: colours.register(Colour("green")))
        >>> colours.register(Colour("blue"))
        >>> colours.register(Colour("red"))
        >>> colours.names()  # the built-in ones first, the loaded one among them
        ['red', 'green', 'blue']
    """

    def __init__(self, what, built_in=(), package=None, load=None):
        self.what = what
        self.built_in = tuple(built_in)
        self._package = package
        self._load = load
        self._loaded = package is None and load is None
        self._declared = {}

    def register(self, declaration):
        """Adds ``declaration``; one of the same name is replaced."""
        self._declared[declaration.name] = declaration

    def unregister(self, name):
        """Removes the declaration called ``name`` (for tests and notebooks that add their own)."""
        self._declared.pop(name, None)

    def all(self):
        """The declarations: built-in ones first, in their order, then the others."""
        if not self._loaded:
            self._loaded = True
            for name in self.built_in if self._package else ():
                importlib.import_module(f"{self._package}.{name.replace('-', '_')}")
            if self._load:
                self._load()
        return ([self._declared[name] for name in self.built_in if name in self._declared]
                + [item for name, item in self._declared.items() if name not in self.built_in])

    def __contains__(self, name):
        self.all()
        return name in self._declared

    def names(self):
        """The declarations' names, in ``all``'s order."""
        return [declaration.name for declaration in self.all()]

    def get(self, name):
        """The declaration called ``name``.

        Raises:
            TfaeError: for an unknown name, listing the known ones.
        """
        self.all()
        if name not in self._declared:
            raise TfaeError(f"unknown {self.what} {name!r}; choose one of {', '.join(self.names())}")
        return self._declared[name]
