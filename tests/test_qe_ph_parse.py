"""Quantum ESPRESSO linear response (pw.x + ph.x) -> frames (nequip_pol.io.qe_ph).

Synthetic outputs (tests/lr_outputs.py) pin values, the index order and the refusals. Real outputs
are read when present under ``$NEQUIP_POL_LR_OUTPUTS`` (default ``<shared data>/lr_outputs``; not
stored in this repository: Quantum ESPRESSO's reference outputs are GPL-2.0, used here only to
check the reader):

* ``qe/AlAs-epsil/{alas.scf.out,alas.ph.out}``: QEF/q-e commit
  ddbec46536cc9c6f8cf3cd9db486573bcc5424a4, PHonon/examples/example02/reference/ (QE 6.0; ph.x on
  a 4x4x4 q grid, epsil at Gamma);
* ``qe/AlAs-raman/{alas.scf.out,alas.ph.out,alas.dynG}``: same commit,
  PHonon/examples/example05/reference/ (ph.x at Gamma with epsil and Raman, and its dyn file).
"""

import os
from pathlib import Path

import numpy as np
import pytest

import lr_outputs as L
from nequip_pol.io.qe import write_frames
from nequip_pol.io.qe_ph import parse_qe_ph_runs, read_qe_ph_run
from nequip_pol.io.qe_xml import QEParseError
from nequip_pol.units import EPS_VAC

from ase.io.espresso import units as _ase_espresso_units  # noqa: E402

# the constants ASE's espresso-out reader converts with (CODATA 2006)
RY_EV = _ase_espresso_units["Ry"]
BOHR_A = _ase_espresso_units["Bohr"]


def lr_outputs_dir() -> Path:
    from nequip_pol.data_path import shared_data_dir

    return Path(
        os.environ.get("NEQUIP_POL_LR_OUTPUTS", shared_data_dir() / "lr_outputs")
    )


def real_run(name):
    path = lr_outputs_dir() / "qe" / name
    if not path.is_dir():
        pytest.skip(f"real QE output {path} not present")
    return path


def config(folder, **kw):
    kw.setdefault("scf", L.pw_scf_text(stress_ry_bohr3=np.diag([1e-5, 2e-5, 3e-5])))
    kw.setdefault("ph", L.ph_text())
    return L.make_qe_ph_run(folder, **kw)


def test_labels_units_and_conventions(tmp_path):
    run = read_qe_ph_run(config(tmp_path / "c"))
    assert run.symbols == L.SYMBOLS
    assert run.energy == pytest.approx(-42.5 * RY_EV, rel=1e-6)
    np.testing.assert_allclose(run.positions, L.POSITIONS, atol=1e-6)
    np.testing.assert_allclose(run.forces, L.FORCES, atol=1e-6)
    # ASE sign: minus QE's stress
    np.testing.assert_allclose(
        np.diag(run.stress),
        -np.array([1e-5, 2e-5, 3e-5]) * RY_EV / BOHR_A**3,
        rtol=1e-5,
    )
    # rows Ex, Ey, Ez = field direction: stored as printed; the raw block, not the ASR one
    np.testing.assert_allclose(run.born_effective_charges, L.BORN, atol=1e-5)
    assert "without acoustic sum rule" in run.sources["born_effective_charges"]
    np.testing.assert_allclose(run.epsilon, L.EPS, atol=1e-9)
    np.testing.assert_allclose(
        run.polarizability,
        EPS_VAC * abs(np.linalg.det(L.CELL)) * (L.EPS - np.eye(3)),
        rtol=1e-6,
    )
    assert run.dipole is None


def test_sum_rule_as_in_file_and_check_dataset(tmp_path):
    from nequip_pol.io.check_data import check_dataset

    frames = parse_qe_ph_runs([config(tmp_path / "a"), config(tmp_path / "b")])
    z = frames[0].arrays["born_effective_charges"].reshape(-1, 3, 3)
    np.testing.assert_allclose(z.sum(0), L.SUM_RULE_ERROR, atol=1e-4)
    out = write_frames(frames, tmp_path / "out.xyz")
    rep = check_dataset(out)
    assert rep.ok, rep.errors
    assert rep.asr_max == pytest.approx(np.abs(L.SUM_RULE_ERROR).max(), abs=1e-4)
    assert "polarization" not in frames[0].info


def test_dyn_file_alone_and_dpdu_fallback(tmp_path):
    run = read_qe_ph_run(config(tmp_path / "d", ph=None, dyn=L.dyn_text()))
    np.testing.assert_allclose(run.born_effective_charges, L.BORN, atol=1e-10)
    np.testing.assert_allclose(run.epsilon, L.EPS, atol=1e-10)
    assert "Effective Charges E-U" in run.sources["born_effective_charges"]
    text = L.ph_text()
    cut = text.index("          Effective charges (d Force / dE)")
    zue_only = text[:cut] + text[text.index("          Effective charges (d P / du)") :]
    run = read_qe_ph_run(config(tmp_path / "p", ph=zue_only))
    assert "(d P / du)" in run.sources["born_effective_charges"]
    np.testing.assert_allclose(run.born_effective_charges, L.BORN + 1e-4, atol=1e-5)


def test_lberry_runs_give_the_cell_dipole_and_quantum(tmp_path):
    # P_k printed = f_k |a_k| (fractional coordinate of the dipole along a_k, times |a_k|)
    f = np.array([0.1, -0.2, 0.3])
    a_bohr = np.linalg.norm(L.QE_CELL_ALAT, axis=1) * L.ALAT_BOHR
    berry = [
        L.pw_scf_text(energy_ry=None, berry=(k + 1, f[k] * a_bohr[k], 2 * a_bohr[k]))
        for k in range(3)
    ]
    runs = []
    (frame,) = parse_qe_ph_runs(
        config(tmp_path / "b", berry=berry), fold=False, runs_out=runs
    )
    cell = np.array(frame.cell[:])
    np.testing.assert_allclose(frame.info["polarization"], f @ cell, atol=1e-5)
    np.testing.assert_allclose(runs[0].polarization_quantum, 2 * cell, atol=2e-6)
    (folded,) = parse_qe_ph_runs(tmp_path / "b")
    np.testing.assert_allclose(folded.info["polarization"], f @ cell, atol=1e-5)
    with pytest.raises(QEParseError, match="three"):
        parse_qe_ph_runs(config(tmp_path / "one", berry=berry[:1]))


@pytest.mark.parametrize(
    "kw, match, which",
    [
        (
            {"ph": L.ph_text(finished=False)},
            "did not finish or the file is truncated",
            "ph",
        ),
        ({"scf": L.pw_scf_text(finished=False)}, "did not finish", "scf"),
        ({"scf": L.pw_scf_text(converged=False)}, "did not converge", "scf"),
        ({"ph": L.ph_text(eps=None, born=None)}, "epsil", "ph"),
        ({"ph": L.ph_text(frac=L.FRAC + 0.01)}, "not of the same structure", "ph"),
        ({"ph": None}, "no ph.x output", None),
        ({"scf": None}, "no pw.x SCF output", None),
    ],
)
def test_refusals_name_the_file(tmp_path, kw, match, which):
    folder = config(tmp_path / "c", **kw)
    with pytest.raises(QEParseError, match=match) as info:
        parse_qe_ph_runs(folder)
    name = {"ph": "ph.out", "scf": "scf.out", None: ""}[which]
    assert str(folder / name) in str(info.value)


def test_two_scf_outputs_and_truncated_gzip(tmp_path):
    folder = config(tmp_path / "c")
    (folder / "again.out").write_text(L.pw_scf_text())
    with pytest.raises(QEParseError, match="several pw.x SCF outputs"):
        parse_qe_ph_runs(folder)
    g = tmp_path / "g"
    config(g, ph=None)
    import gzip

    data = gzip.compress(L.ph_text().encode())
    (g / "ph.out.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(QEParseError, match="no ph.x output|cannot read"):
        parse_qe_ph_runs(g)


# ----------------------------------------------------------------------------- real outputs


def test_real_alas_scf_and_ph():
    runs = []
    (frame,) = parse_qe_ph_runs(real_run("AlAs-epsil"), runs_out=runs)
    run = runs[0]
    assert run.symbols == ["Al", "As"]
    assert run.energy == pytest.approx(-16.98877678 * RY_EV, rel=1e-9)
    z = frame.arrays["born_effective_charges"].reshape(-1, 3, 3)
    np.testing.assert_allclose(np.diag(z[0]), [1.88292] * 3)
    np.testing.assert_allclose(np.diag(z[1]), [-3.23353] * 3)
    # the file's own (poor, low-cutoff example) sum rule, kept as computed
    assert z.sum(0)[0, 0] == pytest.approx(1.88292 - 3.23353, abs=1e-9)
    alpha = frame.info["polarizability"].reshape(3, 3)
    np.testing.assert_allclose(
        np.diag(alpha), EPS_VAC * run.volume * (13.742216934 - 1), rtol=1e-9
    )
    # AlAs fcc, alat 10.5 bohr: volume 289.4062 bohr^3
    assert run.volume == pytest.approx(289.4062 * BOHR_A**3, rel=1e-6)


def test_real_alas_raman_run_with_dyn_file():
    run = read_qe_ph_run(real_run("AlAs-raman"))
    # ph.x's last (final) dielectric block, the value the dyn file also holds
    np.testing.assert_allclose(np.diag(run.epsilon), [8.811591229] * 3)
    np.testing.assert_allclose(np.diag(run.born_effective_charges[0]), [2.14176] * 3)
    assert "alas.ph.out" in run.sources["born_effective_charges"]


def test_cli_parse_qe_ph(tmp_path, capsys):
    import ase.io

    from nequip_pol.cli import main

    config(tmp_path / "runs" / "a")
    config(tmp_path / "runs" / "b", ph=None, dyn=L.dyn_text())
    out = tmp_path / "out.xyz"
    assert main(["parse-qe-ph", str(tmp_path / "runs"), "-o", str(out)]) == 0
    assert "wrote 2 frame(s)" in capsys.readouterr().out
    assert len(ase.io.read(out, index=":")) == 2
    assert main(["parse-qe-ph", str(tmp_path / "runs"), "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    config(tmp_path / "runs" / "c", scf=L.pw_scf_text(converged=False))
    bad = tmp_path / "bad.xyz"
    assert main(["parse-qe-ph", str(tmp_path / "runs"), "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nequip-pol parse-qe-ph: error: ") and "c/scf.out" in err
    assert not bad.exists()
    # check-data reads it without errors; without lberry runs there is no P, so the DFT
    # recipe's loss cannot train on it (NOT READY, exit 3), a loss without P can
    capsys.readouterr()
    assert main(["check-data", str(out)]) == 3
    assert "NOT READY to train: the loss needs polarization" in capsys.readouterr().out
    no_p = tmp_path / "no_p.yaml"
    no_p.write_text(
        "training_module:\n  loss:\n    coeffs:\n"
        "      total_energy: 1.0\n      forces: 1.0\n      born_effective_charges: 1.0\n"
    )
    assert main(["check-data", str(out), "--config", str(no_p)]) == 0
