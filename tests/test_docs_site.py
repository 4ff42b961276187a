"""The documentation site (``mkdocs.yml``: the guides of ``docs/`` and API pages generated from
the docstrings) builds with ``mkdocs build --strict``: a link to a page or heading that does not
exist, a page left out of the nav, or a docstring the API pages cannot render fails the build.

The site is built into ``tmp_path`` (``--site-dir``), never into the repository, and without the
network (nothing is fetched at build time). About 10 s for the full build.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

for _module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
    pytest.importorskip(
        _module, reason="the docs site needs the docs extra: pip install -e '.[docs]'"
    )

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "mkdocs.yml"


def _mkdocs_build(config: Path, site_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # mkdocs-material's banner
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site_dir),
        ],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    had_site = (REPO / "site").exists()
    start = time.perf_counter()
    proc = _mkdocs_build(CONFIG, site)
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, (
        "mkdocs build --strict failed (a broken link, a page not in the nav, or a docstring "
        "the API pages cannot render):\n" + (proc.stdout + proc.stderr)[-6000:]
    )
    assert (REPO / "site").exists() == had_site, (
        "the build wrote site/ into the repository"
    )
    # the guides, the model cards (included from nequip_pol/models) and the API pages are there
    for page in ("index.html", "simulate/index.html", "training_on_cpu/index.html"):
        assert (site / page).is_file(), page
    card = (site / "model_cards" / "sio2" / "index.html").read_text()
    assert "Known limits" in card and "Test errors" in card
    api = (site / "api" / "models" / "index.html").read_text()
    assert 'id="nequip_pol.models.load"' in api
    calculator = (site / "api" / "integrations" / "index.html").read_text()
    assert 'id="nequip_pol.integrations.ase.NequIPPolCalculator"' in calculator


def test_broken_link_fails_the_build(tmp_path):
    """The configuration keeps broken links fatal: a page with a link to a missing page and one
    to a missing heading, built with the repository's settings, fails."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(
        "# Home\n\nSee [the guide](missing_guide.md) and [a section](#no-such-heading).\n"
    )
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"INHERIT: {CONFIG}\ndocs_dir: {docs}\nnav:\n  - Home: index.md\n"
    )
    proc = _mkdocs_build(config, tmp_path / "site")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "missing_guide.md" in output and "no-such-heading" in output, output[-3000:]
