"""VASP runs -> frames (nequip_pol.io.vasp): conventions, partial labels, refusals, real outputs.

Synthetic OUTCARs (tests/lr_outputs.py) pin values and index order. Real outputs are read when
present under ``$NEQUIP_POL_LR_OUTPUTS`` (default ``<shared data>/lr_outputs``; they are not
stored in this repository):

* ``vasp/SnO2-lepsilon/vasprun.xml``: phonopy (BSD-3-Clause), commit
  3a3e0f099da5de2556e75d72ea89b3bb22c8e97e, test/cui/phonopy_command/vaspruns_SnO2/
  vasprun.xml-born.xz (decompressed); VASP 5.4.4, LEPSILON, rutile SnO2.
* ``vasp/Si-lepsilon-ibrion8/{OUTCAR.gz,vasprun.xml.gz}``: hackingmaterials/atomate (modified
  BSD), commit 2e541f297165254ac054b50e8132adaa282a01e0,
  atomate/vasp/test_files/raman_wf/2/outputs/; VASP 5.4.1, LEPSILON + IBRION=8.
"""

import os
from pathlib import Path

import numpy as np
import pytest

import lr_outputs as L
from nequip_pol.io.qe import write_frames
from nequip_pol.io.vasp import (
    VaspParseError,
    parse_vasp_runs,
    read_vasp_run,
)
from nequip_pol.units import (
    EPS_VAC,
    dielectric_from_polarizability,
    polarizability_from_dielectric,
)


def lr_outputs_dir() -> Path:
    from nequip_pol.data_path import shared_data_dir

    return Path(
        os.environ.get("NEQUIP_POL_LR_OUTPUTS", shared_data_dir() / "lr_outputs")
    )


def real_run(name):
    path = lr_outputs_dir() / "vasp" / name
    if not path.is_dir():
        pytest.skip(f"real VASP output {path} not present")
    return path


# ------------------------------------------------------------------------ synthetic OUTCAR


def test_outcar_labels_units_and_conventions(tmp_path):
    run = read_vasp_run(L.make_outcar(tmp_path / "r").parent)
    assert run.symbols == L.SYMBOLS
    assert run.energy == pytest.approx(L.ENERGY, abs=1e-8)
    np.testing.assert_allclose(run.positions, L.POSITIONS, atol=1e-5)
    np.testing.assert_allclose(run.forces, L.FORCES, atol=1e-6)
    # ASE sign (minus VASP's printed stress), kB -> eV/A^3; VASP order XX YY ZZ XY YZ ZX
    xx, yy, zz, xy, yz, zx = -L.STRESS_KB / 1602.1766208
    expected = np.array([[xx, xy, zx], [xy, yy, yz], [zx, yz, zz]])
    np.testing.assert_allclose(run.stress, expected, rtol=1e-6)
    # Born charges stored as printed: row = field / polarization direction
    np.testing.assert_allclose(run.born_effective_charges, L.BORN, atol=1e-5)
    np.testing.assert_allclose(run.epsilon, L.EPS, atol=1e-6)
    # "electrons Angst": the cell dipole is minus the printed sum
    np.testing.assert_allclose(run.dipole, -(L.P_ION + L.P_ELC), atol=1e-5)
    assert set(run.sources) == {
        "born_effective_charges",
        "polarizability",
        "polarization",
    }


def test_born_sum_rule_as_in_file(tmp_path):
    (frame,) = parse_vasp_runs(L.make_outcar(tmp_path / "r").parent)
    z = frame.arrays["born_effective_charges"].reshape(-1, 3, 3)
    np.testing.assert_allclose(z.sum(axis=0), L.BORN.sum(axis=0), atol=1e-4)
    np.testing.assert_allclose(z.sum(axis=0), L.SUM_RULE_ERROR, atol=1e-4)


def test_dielectric_polarizability_round_trip():
    volume = abs(np.linalg.det(L.CELL))
    alpha = polarizability_from_dielectric(L.EPS, volume)
    np.testing.assert_allclose(
        alpha, 0.00552634940 * volume * (L.EPS - np.eye(3)), rtol=1e-8
    )
    np.testing.assert_allclose(
        dielectric_from_polarizability(alpha, volume), L.EPS, atol=1e-14
    )
    assert EPS_VAC == pytest.approx(0.0055263494, rel=1e-8)


def test_frame_polarizability_and_folded_polarization(tmp_path):
    runs = []
    (frame,) = parse_vasp_runs(L.make_outcar(tmp_path / "r").parent, runs_out=runs)
    volume = abs(np.linalg.det(L.CELL))
    np.testing.assert_allclose(
        frame.info["polarizability"].reshape(3, 3),
        EPS_VAC * volume * (L.EPS - np.eye(3)),
    )
    # the polarization quantum is reported: rows e*R_k; P folded to fractional [-1/2, 1/2)
    np.testing.assert_allclose(runs[0].polarization_quantum, L.CELL)
    p = frame.info["polarization"]
    frac = np.linalg.solve(L.CELL.T, p)
    assert np.all(frac >= -0.5) and np.all(frac < 0.5)
    raw = -(L.P_ION + L.P_ELC)
    k = np.linalg.solve(L.CELL.T, raw - p)
    np.testing.assert_allclose(k, np.round(k), atol=1e-6)  # whole quanta apart
    (unfolded,) = parse_vasp_runs(tmp_path / "r", fold=False)
    np.testing.assert_allclose(unfolded.info["polarization"], raw, atol=1e-5)


def test_lcalcpol_sign_from_the_vasp_wiki_naf_example(tmp_path):
    """VASP wiki, LCALCPOL: NaF (a = 4.5102 A, fcc), F moved by +0.045102 A along z: p[ion]
    2.25510 -> 1.93939 and p[elc] 0 -> 0.36061 ("electrons Angst"), Z*_F,zz = -0.995 |e|."""
    a = 4.5102
    cell = a * np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    frac0 = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    frac1 = np.array([[0.0, 0.0, 0.0], [0.51, 0.51, 0.49]])
    kw = dict(
        symbols=["Na", "F"], cell=cell, forces=np.zeros((2, 3)), born=None, eps=None
    )
    L.make_outcar(
        tmp_path / "0",
        positions=frac0 @ cell,
        p_ion=[2.25510] * 3,
        p_elc=[0.0] * 3,
        **kw,
    )
    L.make_outcar(
        tmp_path / "1",
        positions=frac1 @ cell,
        p_ion=[2.25510, 2.25510, 1.93939],
        p_elc=[0.0, 0.0, 0.36061],
        **kw,
    )
    f0, f1 = parse_vasp_runs([tmp_path / "0", tmp_path / "1"], fold=False)
    dz = f1.positions[1, 2] - f0.positions[1, 2]
    assert dz == pytest.approx(0.045102, abs=1e-5)
    dp = f1.info["polarization"] - f0.info["polarization"]
    assert dp[2] / dz == pytest.approx(-0.995, abs=2e-3)
    assert abs(dp[0]) < 1e-9 and abs(dp[1]) < 1e-9


def test_partial_runs_give_partial_frames(tmp_path):
    L.make_outcar(tmp_path / "plain", born=None, eps=None, p_ion=None, p_elc=None)
    L.make_outcar(tmp_path / "born", eps=None, p_ion=None, p_elc=None)
    L.make_outcar(tmp_path / "nostress", stress_kb=None, born=None, eps=None)
    plain, born, nostress = parse_vasp_runs(
        [tmp_path / "plain", tmp_path / "born", tmp_path / "nostress"]
    )
    assert set(plain.info) == {"total_energy", "stress"}
    assert "born_effective_charges" not in plain.arrays and "forces" in plain.arrays
    assert "born_effective_charges" in born.arrays and "polarizability" not in born.info
    assert "stress" not in nostress.info and "polarization" in nostress.info


def test_field_runs_do_not_give_polarization(tmp_path):
    runs = []
    L.make_outcar(tmp_path / "eps", incar="LCALCEPS = .TRUE.\nIBRION = -1\n")
    L.make_outcar(tmp_path / "pead", incar="EFIELD_PEAD = 0 0 0.01 ! a field\n")
    L.make_outcar(tmp_path / "zero", incar="EFIELD_PEAD = 0 0 0\nLCALCPOL = .TRUE.\n")
    frames = parse_vasp_runs(
        [tmp_path / "eps", tmp_path / "pead", tmp_path / "zero"], runs_out=runs
    )
    assert "polarization" not in frames[0].info and "LCALCEPS" in runs[0].notes[0]
    assert "polarization" not in frames[1].info and "EFIELD_PEAD" in runs[1].notes[0]
    assert "polarization" in frames[2].info and not runs[2].notes


def test_lcalceps_headers_and_gzip_and_folder_of_runs(tmp_path):
    L.make_outcar(
        tmp_path / "runs" / "b",
        name="OUTCAR.gz",
        born_header="BORN EFFECTIVE CHARGES (including local field effects) (in |e|, "
        "cummulative output)",
        eps_header="MACROSCOPIC STATIC DIELECTRIC TENSOR (including local field effects)",
        incar="LCALCEPS = .TRUE.",
    )
    L.make_outcar(tmp_path / "runs" / "a", eps=2 * L.EPS)
    frames = parse_vasp_runs(tmp_path / "runs")
    assert len(frames) == 2  # sorted by folder name: a, b
    v = abs(np.linalg.det(L.CELL))
    np.testing.assert_allclose(
        frames[0].info["polarizability"].reshape(3, 3),
        EPS_VAC * v * (2 * L.EPS - np.eye(3)),
    )
    np.testing.assert_allclose(
        frames[1].arrays["born_effective_charges"].reshape(-1, 3, 3), L.BORN, atol=1e-5
    )


def test_excluded_dielectric_blocks_are_not_taken(tmp_path):
    for header in (
        "MACROSCOPIC STATIC DIELECTRIC TENSOR (excluding local field effects)",
        "MACROSCOPIC STATIC DIELECTRIC TENSOR IONIC CONTRIBUTION",
        "HEAD OF MICROSCOPIC STATIC DIELECTRIC TENSOR (INDEPENDENT PARTICLE, excluding "
        "Hartree and local field effects)",
    ):
        run = read_vasp_run(
            L.make_outcar(tmp_path / header[:20], eps_header=header).parent
        )
        assert run.epsilon is None


def test_vasp_and_qe_frames_share_keys_and_units(tmp_path):
    """A VASP frame and a parse-qe frame, written by the one writer and read back by ASE,
    carry the same keys with the same shapes; a value survives the round trip."""
    import ase.io
    import test_qe_parse as qe

    from nequip_pol.io.qe import parse_qe_runs

    (vasp,) = parse_vasp_runs(L.make_outcar(tmp_path / "v").parent)
    (qef,) = parse_qe_runs(qe.make_config(tmp_path / "qe"))
    write_frames([vasp], tmp_path / "vasp.xyz")
    write_frames([qef], tmp_path / "qe.xyz")
    a = ase.io.read(tmp_path / "vasp.xyz")
    b = ase.io.read(tmp_path / "qe.xyz")

    def keys(atoms):
        calc = atoms.calc.results if atoms.calc is not None else {}
        return {
            k: np.shape(v)
            for d in (atoms.info, atoms.arrays, calc)
            for k, v in d.items()
        }

    ka, kb = keys(a), keys(b)
    assert set(ka) == set(kb)
    for k in ka:
        if k in ("numbers", "positions", "forces", "born_effective_charges"):
            assert ka[k][1:] == kb[k][1:], k
        else:
            assert ka[k] == kb[k], k
    np.testing.assert_allclose(
        qe._get(a, "born_effective_charges").reshape(-1, 3, 3), L.BORN, atol=1e-5
    )
    np.testing.assert_allclose(a.get_forces(), L.FORCES, atol=1e-6)
    np.testing.assert_allclose(
        a.get_stress(voigt=False), vasp.info["stress"].reshape(3, 3)
    )


def test_check_dataset_accepts_vasp_output(tmp_path):
    from nequip_pol.io.check_data import check_dataset

    frames = parse_vasp_runs(
        [L.make_outcar(tmp_path / "a").parent, L.make_outcar(tmp_path / "b").parent]
    )
    out = write_frames(frames, tmp_path / "out.xyz")
    rep = check_dataset(out)
    assert rep.ok, rep.errors
    assert rep.n_frames == 2
    assert rep.asr_max == pytest.approx(np.abs(L.SUM_RULE_ERROR).max(), abs=1e-4)


# -------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"finished": False}, "did not finish or the file is truncated"),
        ({"lrpa": True}, "LRPA"),
        ({"steps": 3}, "3 ionic steps"),
        ({"p_elc": None}, "LCALCPOL output incomplete"),
    ],
)
def test_refusals_name_the_file(tmp_path, kw, match):
    path = L.make_outcar(tmp_path / "r", **kw)
    with pytest.raises(VaspParseError, match=match) as info:
        parse_vasp_runs(path.parent)
    assert str(path) in str(info.value)


def test_malformed_blocks_and_missing_files(tmp_path):
    path = L.make_outcar(tmp_path / "r")
    text = path.read_text()
    path.write_text(text.replace(" ion    3", " ion    7"))
    with pytest.raises(VaspParseError, match="Born effective charge block"):
        read_vasp_run(path.parent)
    path.write_text(text.replace("2.500000", "2.5000**"))
    with pytest.raises(VaspParseError, match="dielectric tensor block"):
        read_vasp_run(path.parent)
    gz = L.make_outcar(tmp_path / "g", name="OUTCAR.gz")
    gz.write_bytes(gz.read_bytes()[:300])
    with pytest.raises(VaspParseError, match="cannot read file") as info:
        read_vasp_run(gz.parent)
    assert str(gz) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(VaspParseError, match="no OUTCAR or vasprun.xml"):
        parse_vasp_runs(tmp_path / "empty")
    with pytest.raises(VaspParseError, match="no such file"):
        parse_vasp_runs(tmp_path / "nope")
    bad = tmp_path / "x" / "vasprun.xml"
    bad.parent.mkdir()
    bad.write_text("<modeling><generator>")
    with pytest.raises(VaspParseError, match="truncated vasprun.xml") as info:
        parse_vasp_runs(bad.parent)
    assert str(bad) in str(info.value)


# ----------------------------------------------------------------------------- real outputs


def test_real_sno2_lepsilon_vasprun():
    runs = []
    (frame,) = parse_vasp_runs(real_run("SnO2-lepsilon"), runs_out=runs)
    run = runs[0]
    assert run.symbols == ["Sn", "Sn", "O", "O", "O", "O"]
    assert run.energy == pytest.approx(-39.66658636, abs=1e-8)
    # the file's own values: Sn row 1 = (4.09429103, 0.47310022, 0), eps_zz = 4.77663396
    z = frame.arrays["born_effective_charges"].reshape(-1, 3, 3)
    np.testing.assert_allclose(z[0, 0], [4.09429103, 0.47310022, 0.0])
    np.testing.assert_allclose(z[2, 2], [-0.00021885, 0.00021885, -2.24106318])
    np.testing.assert_allclose(z.sum(0), run.born_effective_charges.sum(0), atol=0)
    assert np.abs(z.sum(0)).max() < 1e-7  # the file's own sum rule
    eps = dielectric_from_polarizability(
        frame.info["polarizability"].reshape(3, 3), run.volume
    )
    np.testing.assert_allclose(
        np.diag(eps), [4.42038879, 4.42038879, 4.77663396], atol=1e-12
    )
    # vasprun's stress -0.5938 kB (VASP sign) -> +3.706e-4 eV/A^3 (ASE sign)
    assert frame.info["stress"][0] == pytest.approx(0.59380502 / 1602.1766208, rel=1e-6)
    assert "polarization" not in frame.info


def test_real_si_outcar_and_vasprun_agree():
    folder = real_run("Si-lepsilon-ibrion8")
    both = read_vasp_run(folder)
    outcar = read_vasp_run(next(folder.glob("OUTCAR*")))
    vasprun = read_vasp_run(next(folder.glob("vasprun.xml*")))
    assert "OUTCAR" in both.sources["born_effective_charges"]
    assert "in DFT" in both.sources["polarizability"]
    np.testing.assert_allclose(
        outcar.born_effective_charges, vasprun.born_effective_charges, atol=1e-5
    )
    np.testing.assert_allclose(outcar.epsilon, vasprun.epsilon, atol=1e-5)
    assert np.abs(outcar.born_effective_charges.sum(0)).max() == pytest.approx(
        0.03096, abs=1e-5
    )
    np.testing.assert_allclose(
        np.diag(outcar.epsilon), [13.232451, 13.232459, 13.232456]
    )


# ------------------------------------------------------------------------------------ verb


def test_cli_parse_vasp(tmp_path, capsys):
    import ase.io

    from nequip_pol.cli import main

    a = L.make_outcar(tmp_path / "runs" / "a").parent
    b = L.make_outcar(tmp_path / "runs" / "b", born=None).parent
    out = tmp_path / "out.xyz"
    assert main(["parse-vasp", str(tmp_path / "runs"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote 2 frame(s)" in text and "P quantum along a1, a2, a3" in text
    assert f"{a}: E F S P Z* alpha" in text and f"{b}: E F S P alpha" in text
    frames = ase.io.read(out, index=":")
    assert len(frames) == 2
    before = out.read_text()
    assert main(["parse-vasp", str(a), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err and out.read_text() == before
    assert main(["parse-vasp", str(a), "-o", str(out), "--force", "--no-fold"]) == 0
    assert out.read_text() != before
    # one bad run among good ones: one error line naming the file, nothing written
    L.make_outcar(tmp_path / "runs" / "c", finished=False)
    bad_out = tmp_path / "bad.xyz"
    assert main(["parse-vasp", str(tmp_path / "runs"), "-o", str(bad_out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nequip-pol parse-vasp: error: ") and "c/OUTCAR" in err
    assert not bad_out.exists()
    assert main(["check-data", str(out)]) == 0


def test_usage_errors_of_both_verbs_come_before_heavy_imports(tmp_path):
    """parse-vasp and parse-qe-ph answer a missing run or an existing output with one error
    line and exit status 2, without importing torch, nequip or ase, and write nothing."""
    import json
    import subprocess
    import sys

    (tmp_path / "existing.xyz").write_text("keep me\n")
    cases = [
        (["parse-vasp", "missing_run", "-o", "out.xyz"], "no such VASP run folder"),
        (["parse-vasp", ".", "-o", "existing.xyz"], "output file exists"),
        (["parse-qe-ph", "missing_run", "-o", "out.xyz"], "no such QE run folder"),
        (["parse-qe-ph", ".", "-o", "."], "is a folder; give the path"),
    ]
    code = (
        "import sys, json; sys.argv[0] = 'nequip-pol'; from nequip_pol.cli import main\n"
        f"rc = [main(argv) for argv in {[argv for argv, _ in cases]!r}]\n"
        "print(json.dumps([rc, [m for m in ('torch', 'nequip', 'ase') if m in sys.modules]]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    codes, heavy = json.loads(res.stdout.strip().splitlines()[-1])
    assert codes == [2] * len(cases) and heavy == [], res.stdout + res.stderr
    for (argv, expected), line in zip(cases, res.stderr.strip().splitlines()):
        assert line.startswith(f"nequip-pol {argv[0]}: error: ") and expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.xyz"]
