import tomllib
from pathlib import Path

import pytest

from gptft.commands import doctor
from gptft.commands.cli import main



@pytest.fixture
def versions(monkeypatch):
    """Pretend other package versions are installed (the doctor reads metadata, never imports)."""
    original = doctor.installed_version
    overrides = {}
    monkeypatch.setattr(doctor, "installed_version", lambda name: overrides.get(name, original(name)))
    return overrides


def test_healthy_environment_exits_zero(capsys):
    assert main(["doctor", "--no-hub"]) == 0
    out = capsys.readouterr().out
    assert "environment is sound" in out
    assert "compiled and ran a tiny training step" in out
    assert "MindSpore can use: CPU" in out


def test_numpy_2_is_a_problem_with_its_fix(versions, capsys):
    versions["numpy"] = "2.1.3"
    assert doctor.main(check_hub=False, compile_step=False) == 1
    out = capsys.readouterr().out
    assert "FAIL  numpy" in out and "2.1.3 is outside the tested range >=1.25,<2" in out
    assert "Unable to avoid copy" in out and "fix: pip install 'numpy>=1.25,<2'" in out


def test_mindnlp_installed_is_explained(versions, capsys):
    versions["mindnlp"] = "0.5.1"
    assert doctor.main(check_hub=False, compile_step=False) == 1
    out = capsys.readouterr().out
    assert "replaces methods of mindspore.Tensor" in out and "fix: pip uninstall mindnlp" in out


def test_missing_mindspore_and_too_new_pyarrow(versions, capsys):
    versions["mindspore"] = None
    versions["pyarrow"] = "26.0.0"
    checks = {c.name: c for c in doctor.run_checks(check_hub_too=False, compile_step=False)}
    assert checks["mindspore"].status == "FAIL" and checks["mindspore"].detail == "not installed"
    assert checks["pyarrow"].status == "FAIL" and "breaks `import datasets`" in checks["pyarrow"].detail


def test_unreachable_hub_is_a_warning_naming_the_mirror(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    check = doctor.check_hub(timeout=2)
    assert check.status == "warn" and "http://127.0.0.1:9 is not reachable" in check.detail
    assert "HF_ENDPOINT" in check.fix


def test_tested_ranges_match_pyproject():
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    declared = {}
    for requirement in project["project"]["dependencies"]:
        name = requirement.split(">")[0].split("<")[0].split("=")[0].strip()
        declared[name] = requirement[len(name):].replace(" ", "")
    for package, (low, high) in doctor.TESTED.items():
        assert declared[package] == doctor._spec(low, high), package


def test_version_ranges():
    assert doctor.in_range("2.7.0", "2.7.0", "2.11") and doctor.in_range("2.10.0", "2.7.0", "2.11")
    assert not doctor.in_range("2.11.0", "2.7.0", "2.11") and not doctor.in_range("1.26.4", "1.25", "1.26")
    assert doctor.in_range("2.13.0+cpu", "2.13", None)


def test_the_compile_cache_is_reported_and_cleared(monkeypatch, tmp_path, capsys):
    cache = tmp_path / "cache"
    (cache / "0123" / "rank_0").mkdir(parents=True)
    (cache / "0123" / "complete").write_text("")
    (cache / "0123" / "rank_0" / "compile_cache_0.mindir").write_bytes(b"x" * 2_000_000)
    monkeypatch.setenv("GPTFT_COMPILE_CACHE", str(cache))
    check = doctor.check_compile_cache()
    assert check.status == "ok" and f"{cache}: 1 cached runs, 2 MB" in check.detail
    assert doctor.main(check_hub=False, compile_step=False, clear_compile_cache=True) == 0
    assert f"cleared the compile cache {cache}" in capsys.readouterr().out and not cache.exists()
    monkeypatch.setenv("GPTFT_COMPILE_CACHE", "off")
    assert "off" in doctor.check_compile_cache().detail
