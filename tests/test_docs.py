"""The docs: every tutorial runs start to finish, the site builds strictly, the API is documented.

Each tutorial's fenced ``bash`` and ``python`` blocks run in order in a fresh folder: shell blocks
through bash with the installed ``tfae`` on the PATH, Python blocks in one interpreter per
tutorial, so a block sees the names an earlier one defined.
"""

import contextlib
import importlib
import inspect
import os
import pathlib
import pkgutil
import re
import signal
import subprocess
import sys
import textwrap

import pytest

import tfae
from tfae.families import family_names

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs/tutorials").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
# Fenced languages the tests run; any other must be one a reader is not meant to run here.
RUN_AS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
NOT_RUN = {"text", "yaml"}

# Runs one tutorial's blocks, given as JSON on stdin, stopping at the first that fails. Plain
# `tfae ...` lines (no variables, pipes, redirections or globs, which need bash) run in this
# process, as click's own test runner does, so a tutorial pays TensorFlow's start (4-5 s) once,
# not once a command; the block's other lines go to bash, a run of them at a time, unless the
# block keeps shell state across lines (a variable, a loop, an if), when all of it goes to bash.
# What a user's shell adds to such a line (the console script's exit status) is test_cli.py's.
_RUNNER = textwrap.dedent(r"""
    import json, re, shlex, subprocess, sys, time, traceback
    namespace = {"__name__": "__main__"}
    started = time.perf_counter()
    SHELL_SYNTAX = re.compile(r"[|&;<>`$(){}*?\[\]~!#]")
    SHELL_STATE = re.compile(r"^(if|then|else|elif|fi|for|while|until|do|done|case|esac|cd|"
                             r"export|source|set|trap|wait|kill)\b|^\w+=|[{}()]\s*$")


    def parts(code):
        # (True, arguments) for each plain tfae line, (False, bash code) for the others
        lines = [line for line in code.replace("\\\n", " ").splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        if any(SHELL_STATE.search(line.strip()) for line in lines):
            return [(False, code)]
        found = []
        for line in lines:
            if line.startswith("tfae ") and not SHELL_SYNTAX.search(line):
                found.append((True, shlex.split(line)[1:]))
            elif found and not found[-1][0]:
                found[-1] = (False, found[-1][1] + "\n" + line)
            else:
                found.append((False, line))
        return found


    def tfae_in_process(arguments):
        # click's standalone mode, as the console script runs it: errors shown, then SystemExit
        from tfae_cli.main import tfae

        print("+ tfae " + shlex.join(arguments), file=sys.stderr, flush=True)
        try:
            tfae.main(arguments, prog_name="tfae")
        except SystemExit as stop:
            return stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return 0


    for language, line, code in json.load(sys.stdin):
        print(f"--- line {line} ({language}) at {time.perf_counter() - started:.1f} s",
              flush=True)
        if language == "bash":
            failed = any(
                tfae_in_process(part) != 0 if in_process else
                subprocess.run(["bash", "-euo", "pipefail", "-c", part]).returncode != 0
                for in_process, part in parts(code))
        else:
            try:
                exec(compile(code, f"line {line}", "exec"), namespace)
                failed = False
            except Exception:
                traceback.print_exc()
                failed = True
        sys.stdout.flush()
        if failed:
            print(f"FAILED AT LINE {line}", flush=True)
            sys.exit(1)
""")


def tutorial_blocks(path):
    """The fenced shell and Python blocks of a Markdown file: (bash or python, first line, code).

    A fence with no language, or one neither run nor listed in ``NOT_RUN``, is an error: it
    would otherwise be skipped without anyone noticing.
    """
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 2
        language = match.group(1)
        if language not in RUN_AS and language not in NOT_RUN:
            raise ValueError(f"{path.name}:{line - 1}: fence language {language!r} is neither "
                             f"run ({', '.join(RUN_AS)}) nor text ({', '.join(NOT_RUN)})")
        if language in RUN_AS:
            blocks.append((RUN_AS[language], line, match.group(2)))
    return blocks


def test_fence_parser_finds_blocks_and_their_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# T\n\n```sh\necho hi\n```\ntext\n```python\nx = 1\n```\n```text\nno\n```\n")
    assert tutorial_blocks(page) == [("bash", 4, "echo hi\n"), ("python", 8, "x = 1\n")]
    page.write_text("# T\n\n```\necho unlabelled\n```\n")
    with pytest.raises(ValueError, match="page.md:3: fence language ''"):
        tutorial_blocks(page)


@pytest.mark.slow
@pytest.mark.parametrize("tutorial", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_runs_start_to_finish(tutorial, tmp_path):
    import json

    blocks = tutorial_blocks(tutorial)
    assert blocks, f"{tutorial.name} has no bash or python block"
    env = {**os.environ, "PATH": f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}"}
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    workdir = tmp_path / "tutorial"
    workdir.mkdir()
    # Output goes to files, not pipes, and the runner leads its own process group: a server a
    # tutorial started and a failed block left running would otherwise hold the pipes open and
    # hang the test until its timeout, hiding which line failed.
    with open(tmp_path / "blocks.json") as blocks_file, open(tmp_path / "stdout", "w") as out, \
            open(tmp_path / "stderr", "w") as err:
        runner = subprocess.Popen([sys.executable, "-c", _RUNNER], stdin=blocks_file, stdout=out,
                                  stderr=err, cwd=workdir, env=env, start_new_session=True)
        try:
            returncode = runner.wait(timeout=900)
        except subprocess.TimeoutExpired:
            returncode = "timed out after 900 s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    stdout, stderr = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    if returncode != 0:
        failed = re.search(r"FAILED AT LINE (\d+)", stdout)
        where = f"{tutorial.name}:{failed.group(1)}" if failed else tutorial.name
        pytest.fail(f"{where} failed ({returncode}):\n{stdout[-2000:]}\n{stderr[-3000:]}")


def _public_objects():
    for info in pkgutil.walk_packages(tfae.__path__, "tfae."):
        module = importlib.import_module(info.name)
        yield module, None
        for name, value in vars(module).items():
            if not name.startswith("_") and (inspect.isfunction(value) or inspect.isclass(value)) \
                    and value.__module__ == module.__name__:
                yield module, value


def test_every_public_function_and_class_has_an_example():
    missing = [f"{module.__name__}.{value.__name__}" if value else module.__name__
               for module, value in _public_objects()
               if "Example" not in (inspect.getdoc(value or module) or "")]
    assert not missing, f"docstrings without an Example: {', '.join(missing)}"


def test_reference_page_documents_every_module():
    reference = (ROOT / "docs/reference.md").read_text()
    listed = set(re.findall(r"^::: (\S+)$", reference, re.MULTILINE))
    # A package shown with its submodules documents each of them (the families, one module each).
    with_submodules = set(re.findall(r"^::: (\S+)\n    options:\n      show_submodules: true",
                                     reference, re.MULTILINE))
    modules = {module.__name__ for module, value in _public_objects() if value is None}
    missing = {name for name in modules - {"tfae.mnist", "tfae.__main__"} - listed
               if name.rpartition(".")[0] not in with_submodules}
    assert not missing, f"missing from the reference: {missing}"


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                             "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (tmp_path / "site/reference/index.html").read_text()
    assert reference.count("tfae.tuning.tune") >= 1
    assert all(f"tfae.families.{name.replace('-', '_')}" in reference for name in family_names())
    assert "--latent-dim" in (tmp_path / "site/cli/index.html").read_text()


def test_the_readme_lists_every_family_and_measurement_as_registered():
    from tfae.families import families
    from tfae.measurements import measurements

    readme = (ROOT / "README.md").read_text()
    for family in families():
        assert f"| `{family.name}` |" in readme, family.name
    for measurement in measurements():
        assert f"| `{measurement.name}` | {measurement.summary} |" in readme, measurement.name


def test_the_operations_page_shows_the_matrix_the_matrix_test_runs():
    from test_matrix import matrix_table

    page = (ROOT / "docs/operations.md").read_text()
    generated = page.split("<!-- generated from tests/test_matrix.py: MATRIX -->\n")[1]
    assert generated.split("<!-- end of the generated table -->")[0] == matrix_table()


def test_the_readmes_tune_command_lists_every_tunable_family():
    from tfae.families import tunable_family_names

    readme = (ROOT / "README.md").read_text()
    assert f"tfae tune --model {{{','.join(tunable_family_names())}}}" in readme
