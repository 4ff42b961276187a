"""Quantum ESPRESSO finite-field converter: real runs vs stored frames, synthetic runs, errors, CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nequip_pol.cli import main as cli_main
from nequip_pol.io.qe import (
    BOHR_ANGSTROM,
    HARTREE_EV,
    RY_DIPOLE_E_ANGSTROM,
    RY_FIELD_V_PER_A,
    NequipPolIOError,
    OutputExistsError,
    QEParseError,
    parse_qe_runs,
    read_qe_xml,
    reduce_dipole_difference,
    write_frames,
)

SYSTEMS = {"BaTiO3": "BaTiO3-", "SiO2": "SiO2-T300-"}

# max abs differences asserted against the stored frame 0 (reached: see the README, "Training data from Quantum ESPRESSO").
# The stored per-atom columns have 8 decimals, hence ~5e-9 on positions, forces and Born charges.
TOL = {
    "energy": 1e-6,  # eV (reached: 0)
    "positions": 1e-7,  # A
    "cell": 1e-8,  # A
    "forces": 1e-7,  # eV/A
    "stress": 1e-10,  # eV/A^3 (reached: 0)
    "polarization": 1e-9,  # e*A (reached: ~3e-13)
    "born_effective_charges": 1e-7,  # e
    "polarizability": 1e-9,  # e*A^2/V (reached: 0)
}


def _run_dirs(shared_data, system):
    dirs = sorted((shared_data / "qe_runs").glob(f"{SYSTEMS[system]}E*-0"))
    if len(dirs) != 4:
        pytest.skip(f"QE runs of {system} not found under {shared_data / 'qe_runs'}")
    return dirs


@pytest.fixture(scope="module")
def reference(shared_data):
    import ase.io

    return {s: ase.io.read(shared_data / "dft" / f"{s}.xyz", index=0) for s in SYSTEMS}


def _diffs(frame, ref):
    p = frame.info["polarization"]
    pref = ref.calc.results["polarization"]
    return {
        "energy": abs(frame.info["total_energy"] - ref.info["total_energy"]),
        "positions": np.abs(frame.positions - ref.positions).max(),
        "cell": np.abs(frame.cell[:] - ref.cell[:]).max(),
        "forces": np.abs(frame.arrays["forces"] - ref.get_forces()).max(),
        "stress": np.abs(
            frame.info["stress"].reshape(3, 3) - ref.get_stress(voigt=False)
        ).max(),
        "polarization": np.abs(p - pref).max(),
        "polarization_mod_quantum": np.abs(
            reduce_dipole_difference(p - pref, frame.cell[:])
        ).max(),
        "born_effective_charges": np.abs(
            frame.arrays["born_effective_charges"] - ref.arrays["born_charge"]
        ).max(),
        "polarizability": np.abs(
            frame.info["polarizability"] - np.ravel(ref.info["polarizability"])
        ).max(),
    }


# ------------------------------------------------------------------------------------ real data


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_real_runs_reproduce_stored_frame(shared_data, reference, system):
    frames = parse_qe_runs(_run_dirs(shared_data, system))
    assert len(frames) == 1
    f = frames[0]
    ref = reference[system]
    assert f.get_chemical_symbols() == ref.get_chemical_symbols()
    assert "electric_field" not in f.info
    d = _diffs(f, ref)
    for k, tol in TOL.items():
        assert d[k] < tol, (k, d[k])
    assert d["polarization_mod_quantum"] < TOL["polarization"]


def test_real_runs_xml_files_any_order_and_two_systems(shared_data, reference):
    xmls = []
    for s in SYSTEMS:
        for d in _run_dirs(shared_data, s):
            xmls += sorted(d.glob("*.xml"))
    xmls = xmls[
        ::-1
    ]  # order must not matter; the field comes from the XML, not the name
    frames = parse_qe_runs(xmls)
    assert len(frames) == 2
    by_n = {len(f): f for f in frames}
    for s, ref in reference.items():
        d = _diffs(by_n[len(ref)], ref)
        assert d["born_effective_charges"] < TOL["born_effective_charges"]
        assert d["polarizability"] < TOL["polarizability"]


def test_real_field_frames(shared_data):
    frames = parse_qe_runs(_run_dirs(shared_data, "BaTiO3"), include_field_frames=True)
    assert len(frames) == 4
    f0 = frames[0]
    assert "electric_field" not in f0.info
    alpha = f0.info["polarizability"].reshape(3, 3)
    for f in frames[1:]:
        e = f.info["electric_field"]
        assert np.count_nonzero(e) == 1 and np.isclose(
            np.abs(e).max(), 1e-4 * RY_FIELD_V_PER_A
        )
        # P(E) = P0 + alpha E (consistent branch), E(F) = E0 - F.(P0 + P)/2 (QE's branch jumps removed)
        np.testing.assert_allclose(
            f.info["polarization"], f0.info["polarization"] + alpha @ e, atol=1e-12
        )
        target = (
            f0.info["total_energy"]
            - e @ (f0.info["polarization"] + f.info["polarization"]) / 2
        )
        assert abs(f.info["total_energy"] - target) < 1e-3


# ------------------------------------------------------------------------- synthetic QE-like XML

NS = "http://www.quantum-espresso.org/ns/qes/qes-1.0"
CELL = np.diag([3.0, 3.2, 3.4])  # A
POS = np.array([[0.1, 0.2, 0.3], [1.6, 1.5, 1.8]])  # A
SYMBOLS = ("Na", "Cl")
# deliberately non-symmetric Born charges (sum rule satisfied) to pin the index order
Z_TRUE = np.array([[[1.1, 0.2, 0.05], [-0.1, 1.2, 0.0], [0.03, 0.07, 1.3]]])
Z_TRUE = np.concatenate([Z_TRUE, -Z_TRUE])
ALPHA_TRUE = np.array([[2.0, 0.1, 0.0], [0.3, 2.5, 0.2], [0.0, 0.1, 3.0]])
F0 = np.array([[0.01, -0.02, 0.03], [-0.01, 0.02, -0.03]])  # eV/A
P0 = np.array([0.4, -0.3, 1.0])  # e*A
E0 = -100.0  # eV


def make_qe_xml(
    path,
    field_ry=(0.0, 0.0, 0.0),
    *,
    shift=(0.0, 0.0, 0.0),
    cell_scale=1.0,
    symbols=SYMBOLS,
    converged=True,
    berry=True,
    jump=(0, 0, 0),
    stress=True,
):
    """Write a minimal QE-like XML (Hartree a.u.; field/dipoles in Ry a.u.) of a 2-atom cell whose
    forces and dipole follow the linear model F = F0 + Z^T E, P = P0 + alpha E (+ jump quanta)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    e = np.asarray(field_ry, float) * RY_FIELD_V_PER_A  # V/A
    cell = CELL * cell_scale
    pos = POS + np.asarray(shift)
    forces = F0 + np.einsum("a,iab->ib", e, Z_TRUE)
    p = P0 + ALPHA_TRUE @ e + cell.T @ np.asarray(jump, float)
    dip = p / RY_DIPOLE_E_ANGSTROM
    ion = np.array([50.0, 60.0, 70.0])
    energy = (E0 - p @ e) / HARTREE_EV

    def v(x):
        return "   ".join(f"{y:.16E}" for y in np.ravel(x))

    atoms = "\n".join(
        f'        <atom name="{s}" index="{i + 1}">{v(r / BOHR_ANGSTROM)}</atom>'
        for i, (s, r) in enumerate(zip(symbols, pos))
    )
    cellxml = "\n".join(
        f"        <a{k + 1}>{v(cell[k] / BOHR_ANGSTROM)}</a{k + 1}>" for k in range(3)
    )
    stress_xml = (
        f'    <stress rank="2" dims="3 3">{v(np.diag([1e-6, 2e-6, 3e-6]))}</stress>\n'
        if stress
        else ""
    )
    berry_xml = (
        f"""    <electric_field>
      <finiteElectricFieldInfo>
        <electronicDipole>{v(dip - ion)}</electronicDipole>
        <ionicDipole>{v(ion)}</ionicDipole>
      </finiteElectricFieldInfo>
    </electric_field>
"""
        if berry
        else ""
    )
    text = f"""<?xml version="1.0" encoding="UTF-8"?>
<qes:espresso xmlns:qes="{NS}" Units="Hartree atomic units">
  <input>
    <electric_field>
      <electric_potential>homogenous_field</electric_potential>
      <electric_field_vector>{v(field_ry)}</electric_field_vector>
    </electric_field>
  </input>
  <output>
    <convergence_info><scf_conv>
      <convergence_achieved>{"true" if converged else "false"}</convergence_achieved>
    </scf_conv></convergence_info>
    <atomic_structure nat="{len(symbols)}">
      <atomic_positions>
{atoms}
      </atomic_positions>
      <cell>
{cellxml}
      </cell>
    </atomic_structure>
    <total_energy><etot>{energy:.16E}</etot></total_energy>
    <forces rank="2" dims="3 {len(symbols)}">{v(forces / (HARTREE_EV / BOHR_ANGSTROM))}</forces>
{stress_xml}{berry_xml}  </output>
  <exit_status>0</exit_status>
</qes:espresso>
"""
    path.write_text(text)
    return path


H = 1e-4  # Ry a.u.


def make_config(root, name="cfg", signs=(1,), skip=(), **kw):
    """Zero-field run plus runs along x, y, z (each sign in ``signs``); axes in ``skip`` left out.
    Run folders have neutral names: the parser must read the field from the XML."""
    root = Path(root)
    paths = [make_qe_xml(root / f"{name}-run0" / "pw.xml", **kw)]
    k = 1
    for ax in range(3):
        if ax in skip:
            continue
        for s in signs:
            f = np.zeros(3)
            f[ax] = s * H
            paths.append(make_qe_xml(root / f"{name}-run{k}" / "pw.xml", f, **kw))
            k += 1
    return [p.parent for p in paths]


def test_synthetic_forward_differences_conventions(tmp_path):
    runs = make_config(tmp_path)
    # put one run's raw dipole a full quantum away: the difference must be taken on the nearest branch
    make_qe_xml(runs[2] / "pw.xml", (0.0, H, 0.0), jump=(1, -2, 3))
    (f,) = parse_qe_runs(runs)
    z = f.arrays["born_effective_charges"].reshape(2, 3, 3)
    np.testing.assert_allclose(z, Z_TRUE, atol=1e-8)  # Z_i,ab = dF_ib / dE_a, row-major
    np.testing.assert_allclose(
        f.info["polarizability"].reshape(3, 3), ALPHA_TRUE, atol=1e-8
    )  # dP_a/dE_b
    np.testing.assert_allclose(f.info["polarization"], P0, atol=1e-10)
    assert abs(f.info["total_energy"] - E0) < 1e-9
    np.testing.assert_allclose(f.arrays["forces"], F0, atol=1e-12)
    # ASE sign: minus QE's stress
    np.testing.assert_allclose(
        f.info["stress"].reshape(3, 3),
        -np.diag([1e-6, 2e-6, 3e-6]) * HARTREE_EV / BOHR_ANGSTROM**3,
        rtol=1e-12,
    )
    np.testing.assert_allclose(f.positions, POS, atol=1e-12)


def test_synthetic_central_differences(tmp_path):
    runs = make_config(tmp_path, signs=(1, -1))
    (f,) = parse_qe_runs(runs)
    np.testing.assert_allclose(
        f.arrays["born_effective_charges"].reshape(2, 3, 3), Z_TRUE, atol=1e-8
    )
    np.testing.assert_allclose(
        f.info["polarizability"].reshape(3, 3), ALPHA_TRUE, atol=1e-8
    )


def test_synthetic_raw_branch_and_folding(tmp_path):
    runs = make_config(tmp_path)
    make_qe_xml(runs[0] / "pw.xml", jump=(2, 0, -1))
    (f,) = parse_qe_runs(runs)
    np.testing.assert_allclose(
        f.info["polarization"], P0, atol=1e-10
    )  # folded to the branch near 0
    (g,) = parse_qe_runs(runs, fold=False)
    np.testing.assert_allclose(
        g.info["polarization"], P0 + CELL.T @ [2, 0, -1], atol=1e-10
    )


# ----------------------------------------------------------------------------------------- errors


def test_error_missing_direction(tmp_path):
    runs = make_config(tmp_path, skip=(1,))
    with pytest.raises(
        QEParseError, match=r"missing field direction.*field along y"
    ) as exc:
        parse_qe_runs(runs)
    assert "pw.xml" in str(exc.value)


def test_error_missing_zero_field(tmp_path):
    runs = make_config(tmp_path)
    with pytest.raises(QEParseError, match="missing zero-field run"):
        parse_qe_runs(runs[1:])


@pytest.mark.parametrize(
    "kw, reason",
    [
        ({"shift": (0.05, 0.0, 0.0)}, "positions"),
        ({"cell_scale": 1.01}, "cell"),
        ({"symbols": ("K", "Cl")}, "species"),
    ],
)
def test_error_runs_do_not_group(tmp_path, kw, reason):
    runs = make_config(tmp_path)
    odd = make_qe_xml(tmp_path / "odd" / "pw.xml", (0.0, 0.0, H), **kw)
    runs[3] = odd.parent  # the z run belongs to another configuration
    with pytest.raises(QEParseError, match=f"do not group.*{reason}") as exc:
        parse_qe_runs(runs)
    assert str(odd) in str(exc.value) or str(runs[0]) in str(exc.value)


def test_error_not_converged(tmp_path):
    runs = make_config(tmp_path)
    bad = make_qe_xml(runs[1] / "pw.xml", (H, 0.0, 0.0), converged=False)
    with pytest.raises(QEParseError, match="did not converge") as exc:
        parse_qe_runs(runs)
    assert str(bad) in str(exc.value)


def test_error_no_berry_phase(tmp_path):
    runs = make_config(tmp_path)
    bad = make_qe_xml(runs[0] / "pw.xml", berry=False)
    with pytest.raises(QEParseError, match="no Berry-phase polarization") as exc:
        parse_qe_runs(runs)
    assert str(bad) in str(exc.value)


def test_error_malformed_and_unreadable(tmp_path):
    runs = make_config(tmp_path)
    xml = runs[2] / "pw.xml"
    xml.write_text(xml.read_text()[:500])  # truncated file
    with pytest.raises(QEParseError, match="malformed") as exc:
        parse_qe_runs(runs)
    assert str(xml) in str(exc.value)
    with pytest.raises(QEParseError, match="(?i)no such file"):
        read_qe_xml(tmp_path / "nope.xml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QEParseError, match="no QE XML file"):
        parse_qe_runs([tmp_path / "empty"])
    notqe = tmp_path / "other.xml"
    notqe.write_text("<root><a>1</a></root>")
    with pytest.raises(QEParseError, match="not a Quantum ESPRESSO XML"):
        read_qe_xml(notqe)


def test_error_duplicate_and_oblique_field(tmp_path):
    runs = make_config(tmp_path)
    dup = make_qe_xml(tmp_path / "dup" / "pw.xml", (H, 0.0, 0.0))
    with pytest.raises(QEParseError, match="duplicate run"):
        parse_qe_runs(runs + [dup.parent])
    make_qe_xml(runs[1] / "pw.xml", (H, H, 0.0))
    with pytest.raises(QEParseError, match="not along a Cartesian axis"):
        parse_qe_runs(runs)


# ----------------------------------------------------------------------------- writing and CLI


def test_write_frames_no_overwrite(tmp_path):
    import ase.io

    (f,) = parse_qe_runs(make_config(tmp_path))
    out = tmp_path / "out.xyz"
    write_frames([f], out)
    first = out.read_text()
    with pytest.raises(OutputExistsError, match="--force"):
        write_frames([f, f], out)
    assert out.read_text() == first
    write_frames([f, f], out, force=True)
    back = ase.io.read(out, index=":")
    assert len(back) == 2
    np.testing.assert_allclose(
        _get(back[0], "born_effective_charges"), f.arrays["born_effective_charges"]
    )
    np.testing.assert_allclose(
        np.ravel(_get(back[0], "polarizability")), f.info["polarizability"]
    )
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_cli_in_process(tmp_path, capsys):
    runs = [str(p) for p in make_config(tmp_path)]
    out = tmp_path / "out.xyz"
    assert cli_main(["parse-qe", *runs, "-o", str(out)]) == 0
    assert out.exists()
    before = out.read_text()
    assert cli_main(["parse-qe", *runs, "-o", str(out)]) != 0
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == before
    assert (
        cli_main(
            ["parse-qe", *runs, "-o", str(out), "--force", "--include-field-frames"]
        )
        == 0
    )
    assert out.read_text() != before
    # invalid input: error naming the file, nothing written
    bad_out = tmp_path / "bad.xyz"
    assert cli_main(["parse-qe", *runs[:3], "-o", str(bad_out)]) == 2
    assert "missing field direction" in capsys.readouterr().err
    assert not bad_out.exists()
    assert cli_main(["check-data", str(out)]) == 0
    assert "status: OK" in capsys.readouterr().out


def _get(atoms, key):
    """A per-atom/per-frame value after an extxyz round trip (ASE moves known keys to the calculator)."""
    for d in (
        atoms.arrays,
        atoms.info,
        atoms.calc.results if atoms.calc is not None else {},
    ):
        if key in d:
            return d[key]
    raise KeyError(key)


def _console_script():
    exe = Path(sys.executable).parent / "nequip-pol"
    if exe.exists():
        return str(exe)
    found = shutil.which("nequip-pol")
    if found is None:
        pytest.skip("nequip-pol console script not installed")
    return found


def test_cli_subprocess_real_runs(shared_data, reference, tmp_path):
    import ase.io

    out = tmp_path / "BaTiO3-0.xyz"
    dirs = [str(d) for d in _run_dirs(shared_data, "BaTiO3")]
    proc = subprocess.run(
        [_console_script(), "parse-qe", *dirs, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    (f,) = ase.io.read(out, index=":")
    ref = reference["BaTiO3"]
    np.testing.assert_allclose(
        _get(f, "born_effective_charges"), ref.arrays["born_charge"], atol=1e-7
    )
    np.testing.assert_allclose(f.get_forces(), ref.get_forces(), atol=1e-7)
    np.testing.assert_allclose(f.get_stress(), ref.get_stress(), atol=1e-10)
    np.testing.assert_allclose(
        f.info["total_energy"], ref.info["total_energy"], atol=1e-6
    )


def test_parent_folder_of_runs(tmp_path, capsys):
    """The folder above the run folders finds the runs below it; an empty one says what to pass."""
    runs = make_config(tmp_path / "qe_runs")
    (from_parent,) = parse_qe_runs([tmp_path / "qe_runs"])
    (from_runs,) = parse_qe_runs(runs)
    np.testing.assert_array_equal(
        from_parent.arrays["born_effective_charges"],
        from_runs.arrays["born_effective_charges"],
    )
    (tmp_path / "nothing" / "below").mkdir(parents=True)
    with pytest.raises(QEParseError, match=r"nothing/\*/"):
        parse_qe_runs([tmp_path / "nothing"])


def test_output_is_a_folder(tmp_path, capsys):
    runs = [str(p) for p in make_config(tmp_path / "runs")]
    folder = tmp_path / "out"
    folder.mkdir()
    for extra in ([], ["--force"]):
        assert cli_main(["parse-qe", *runs, "-o", str(folder), *extra]) == 2
        err = capsys.readouterr().err
        assert (
            "is a folder" in err
            and "Traceback" not in err
            and "output file exists" not in err
        )
    (f,) = parse_qe_runs(runs)
    with pytest.raises(NequipPolIOError, match="is a folder"):
        write_frames([f], folder, force=True)
    assert list(folder.iterdir()) == []


def test_written_file_follows_umask(tmp_path):
    (f,) = parse_qe_runs(make_config(tmp_path / "runs"))
    old = os.umask(0o022)
    try:
        out = write_frames([f], tmp_path / "out.xyz")
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644
