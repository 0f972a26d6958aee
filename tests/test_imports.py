"""The import graph of ``tfae/``: no module reaches itself through its imports, those inside
functions included."""

import ast
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import tfae

PACKAGE = pathlib.Path(tfae.__file__).parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path, modules):
    """The modules of ``modules`` that the file at ``path`` imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            # ``from tfae.serving import rest`` imports the module tfae.serving.rest, and the
            # package only as every submodule does; ``from tfae.config import resolve``, the module
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, paths) for name, path in paths.items()}


def circles(graph):
    """Each import circle once, as the list of modules around it."""
    found, done = [], set()

    def visit(module, trail):
        if module in trail:
            circle = trail[trail.index(module):]
            start = circle.index(min(circle))
            found.append(circle[start:] + circle[:start])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, trail + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    return sorted(set(map(tuple, found)))


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]


def test_the_graph_sees_imports_inside_functions():
    assert "tfae.corruptions" in import_graph()["tfae.config"]


def test_no_module_of_tfae_imports_itself_in_a_circle():
    assert circles(import_graph()) == []


def test_setup_cfg_installs_every_package_of_tfae_and_the_command_line():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(PACKAGE.parent / "setup.cfg")
    listed = set(setup["options"]["packages"].split())
    folders = {".".join(path.relative_to(PACKAGE.parent).parts)
               for path in [PACKAGE, *PACKAGE.rglob("*")]
               if path.is_dir() and path.name != "__pycache__"}
    assert listed == folders | {"tfae_cli"}
    assert setup["options"]["package_dir"].split() == ["tfae_cli", "=", "cli"]


def test_the_public_namespace_holds_tfaes_names_only():
    public = [name for name in dir(tfae) if not name.startswith("_")]
    assert {"importlib", "wrapt", "KERAS_CLASS_MODULES"}.isdisjoint(public)
    assert set(tfae.__all__) <= set(public)
    for name in tfae.__all__:  # each resolves, imported on first use
        assert getattr(tfae, name) is not None


@pytest.mark.slow  # a fresh interpreter: the full tier
def test_no_public_name_is_also_a_module_that_importing_would_put_in_its_place():
    # Importing tfae.X sets the attribute tfae.X to the module, over a function of that name:
    # tfae.evaluate(...) failed as "'module' object is not callable" once tfae.report was imported.
    modules = {info.name for info in pkgutil.iter_modules(tfae.__path__)}
    assert not modules & set(tfae.__all__)
    assert _printed("import tfae, tfae.report, tfae.apply, tfae.train, tfae.tuning; "
                    "print(all(callable(getattr(tfae, name)) for name in "
                    "('evaluate', 'tune', 'export', 'encode', 'score', 'fit')))") == "True"


@pytest.mark.slow  # a fresh interpreter: the full tier
def test_a_server_worker_imports_neither_tfds_nor_the_data_pipeline_nor_training():
    # What a worker process imports (tfae.serving.server:app_from_environment), measured in a
    # process of its own: a server loads exports, and training's modules only cost it memory.
    assert _printed("import sys, tfae.serving.server; print(sorted(name for name in ("
                    "'tensorflow_datasets', 'tfae.data', 'tfae.exports', 'tfae.train', "
                    "'keras_tuner') if name in sys.modules))") == "[]"


def _printed(code):
    """What ``code`` prints in a fresh interpreter (whose imports are its own)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_every_keras_class_tfae_registers_is_in_a_module_loading_a_model_imports_first():
    # Keras imports only its own packages' modules when it loads a model: a class of tfae's
    # that no module of tfae._keras_class_modules() defines cannot be loaded in a new process.
    import importlib

    import keras

    for info in pkgutil.walk_packages(tfae.__path__, "tfae."):
        if not info.name.endswith("__main__"):  # which would run the command line
            importlib.import_module(info.name)
    defined_in = {cls.__module__ for name, cls in
                  keras.saving.get_custom_objects().items() if name.startswith("tfae>")}
    assert "tfae.models.geometric" in defined_in
    assert defined_in <= set(tfae._keras_class_modules())


@pytest.mark.slow  # a fresh interpreter: the full tier
def test_a_geometric_run_opens_in_a_process_that_never_built_its_model(tmp_path):
    # It failed there ("Could not locate class 'GeometricAutoencoder'") while every test that
    # built one in its own process first passed.
    from tfae.config import FitConfig

    tfae.fit(FitConfig(model="geometric", epochs=1, limit=64), tmp_path / "run", export=False,
             verbose=0)
    assert _printed(f"import tfae; print(tfae.open_model({str(tmp_path / 'run')!r})"
                    ".transformation_surprise.__self__.__class__.__name__)") \
        == "GeometricAutoencoder"
