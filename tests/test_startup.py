"""Starting TensorFlow: XLA's compiled programs kept between runs, where that is safe."""

import pathlib

from tfae import startup


def test_compiled_programs_go_to_a_folder_per_tensorflow_version(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    startup._keep_compiled_programs()
    folder = startup.xla_cache_dir()
    assert folder.parent == tmp_path and folder.name.startswith("xla-2.")
    assert startup.os.environ["TF_XLA_FLAGS"] == f"--tf_xla_persistent_cache_directory={folder}"


def test_the_users_own_cache_flag_and_other_flags_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_persistent_cache_directory=/mine")
    startup._keep_compiled_programs()
    assert startup.os.environ["TF_XLA_FLAGS"] == "--tf_xla_persistent_cache_directory=/mine"
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=2")
    startup._keep_compiled_programs()
    assert startup.os.environ["TF_XLA_FLAGS"].startswith("--tf_xla_auto_jit=2 --tf_xla_persistent")


def test_a_folder_that_cannot_be_written_turns_the_cache_off(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a file where the folder would go: no user can write into it
    monkeypatch.setenv("TFAE_CACHE_DIR", str(blocker))
    monkeypatch.delenv("TF_XLA_FLAGS", raising=False)
    assert startup.xla_cache_dir() is None
    startup._keep_compiled_programs()
    assert "TF_XLA_FLAGS" not in startup.os.environ
    assert pathlib.Path(blocker).read_text() == ""
