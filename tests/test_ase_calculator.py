"""NequIPPolCalculator: equality with the eager model (checkpoint, package, AOTInductor), field
caching, linear vs full mode, and the errors for bad inputs.

One module-scoped 1-epoch ``nequip-train`` of a small Allegro-pol model (float64) on 12 frames of
the analytic material (~30 s), one ``nequip-package build`` (~20 s) and one AOTInductor compile
with ``--target nequip_pol_ase`` (~2.5 min on 2 cores). A real compile with nequip's stock
``ase`` target is behind ``-m slow``; by default that case is exercised with the eager model
and the stock target's input/output keys.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.calculator import PropertyNotImplementedError
from ase.stress import voigt_6_to_full_3x3_stress

from nequip.data import AtomicDataDict, from_ase
from nequip.data.transforms import (
    ChemicalSpeciesToAtomTypeMapper,
    NeighborListTransform,
)

from nequip_pol import (
    ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)
from nequip_pol.integrations.ase import NequIPPolCalculator
from nequip_pol.reference.dataset import generate_dataset, write_dataset
from nequip_pol.reference.paraelectric import ideal_structure

TYPES = ["Ba", "Ti", "O"]
R_MAX = 4.0
FIELD = np.array([0.05, -0.08, 0.12])
CONFIG_DIR = Path(__file__).resolve().parents[1] / "nequip_pol" / "reference"
BIN = Path(sys.executable).parent


def _run(cmd, cwd, what):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({' '.join(map(str, cmd))}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


# small graphs: intra-op threads only add overhead (and are pathological on a loaded 2-core machine)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("ase_calculator")


@pytest.fixture(scope="module")
def checkpoint(workdir):
    data = workdir / "tiny.xyz"
    write_dataset(generate_dataset(12, seed=1, supercell=(2, 1, 1)), data)
    overrides = [
        f"data_file={data}",
        "num_train=8",
        "num_val=2",
        "num_test=2",
        "max_epochs=1",
        "batch_size=4",
        "model_dtype=float64",
        f"cutoff_radius={R_MAX}",
        "run=[train]",
        f"hydra.run.dir={workdir / 'train'}",
        "training_module.model.num_scalar_features=16",
        "training_module.model.num_tensor_features=4",
        "training_module.model.allegro_mlp_hidden_layers_width=16",
        "training_module.model.readout_mlp_hidden_layers_width=16",
        "training_module.model.field_mlp_hidden_layers_width=16",
        "trainer.enable_progress_bar=false",
        # the config's own callbacks: its TrainingRangeRecorder records the training range
        # (nequip_pol.guards) in the checkpoint and its model config; the guard tests use it
    ]
    _run(
        [
            BIN / "nequip-train",
            "-cp",
            str(CONFIG_DIR),
            "-cn",
            "analytic_allegro_pol",
            *overrides,
        ],
        workdir,
        "nequip-train",
    )
    path = workdir / "train" / "last.ckpt"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def compiled(checkpoint, workdir):
    out = workdir / "model.nequip.pt2"
    _run(
        [
            BIN / "nequip-compile",
            str(checkpoint),
            str(out),
            "--mode",
            "aotinductor",
            "--device",
            "cpu",
            "--target",
            "nequip_pol_ase",
        ],
        workdir,
        "nequip-compile",
    )
    return out


@pytest.fixture(scope="module")
def eager_model(checkpoint):
    from nequip.model.saved_models.load_utils import load_saved_model
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return load_saved_model(str(checkpoint)).eval()


def structure(seed=0):
    atoms = ideal_structure((2, 1, 1))
    atoms.rattle(0.06, seed=seed)
    atoms.set_cell(
        atoms.cell.array
        @ (np.eye(3) + 0.01 * np.array([[1, 0.5, 0], [0.5, -1, 0], [0, 0, 0.5]])),
        scale_atoms=True,
    )
    return atoms


def reference(model, atoms, field):
    """The eager model's outputs, data built by hand (not by the calculator)."""
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(TYPES)(data)
    data = NeighborListTransform(r_max=R_MAX)(data)
    data[ELECTRIC_FIELD_KEY] = torch.as_tensor(np.asarray(field, float).reshape(1, 3))
    out = model(data)
    get = lambda k: out[k].detach().to(torch.float64).numpy()  # noqa: E731
    return {
        "energy": get(AtomicDataDict.TOTAL_ENERGY_KEY).item(),
        "forces": get(AtomicDataDict.FORCE_KEY),
        "stress": get(AtomicDataDict.STRESS_KEY).reshape(3, 3),
        "polarization": get(POLARIZATION_KEY).reshape(3),
        "born_effective_charges": get(BORN_CHARGE_KEY),
        "polarizability": get(POLARIZABILITY_KEY).reshape(3, 3),
    }


def calc_results(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return {
        "energy": atoms.get_potential_energy(),
        "free_energy": atoms.get_potential_energy(force_consistent=True),
        "forces": atoms.get_forces(),
        "stress": voigt_6_to_full_3x3_stress(atoms.get_stress()),
        "polarization": calc.get_polarization(atoms),
        "born_effective_charges": calc.get_born_effective_charges(atoms),
        "polarizability": calc.get_polarizability(atoms),
    }


def assert_matches(got, ref, rel=1e-8):
    for key, value in ref.items():
        value = np.asarray(value)
        scale = max(np.abs(value).max(), 1e-12)
        np.testing.assert_allclose(
            got[key], value, rtol=0, atol=rel * scale, err_msg=key
        )


@pytest.fixture(scope="module")
def ckpt_calc(checkpoint):
    return NequIPPolCalculator.from_saved_model(
        checkpoint, chemical_species_to_atom_type_map=True
    )


# ---------------------------------------------------------------------- equality with the model
def test_checkpoint_calculator_matches_eager_model(checkpoint, eager_model):
    calc = NequIPPolCalculator.from_saved_model(
        checkpoint, chemical_species_to_atom_type_map=True, field=FIELD
    )
    for seed in (0, 1):
        atoms = structure(seed)
        got = calc_results(calc, atoms)
        ref = reference(eager_model, atoms, FIELD)
        assert_matches(got, ref, rel=1e-12)
        assert got["free_energy"] == got["energy"]
        assert np.abs(got["born_effective_charges"]).max() > 1e-3


def test_compiled_calculator_matches_eager_model(compiled, eager_model):
    calc = NequIPPolCalculator.from_compiled_model(
        compiled, chemical_species_to_atom_type_map=True, field=FIELD
    )
    assert ELECTRIC_FIELD_KEY in calc.input_keys and BORN_CHARGE_KEY in calc.output_keys
    for seed, field in [(2, FIELD), (3, np.zeros(3)), (4, -2 * FIELD)]:
        calc.set_field(field)
        atoms = structure(seed)
        assert_matches(
            calc_results(calc, atoms), reference(eager_model, atoms, field), rel=1e-8
        )
    # linear mode on the compiled model = linear mode on the checkpoint model
    ckpt = NequIPPolCalculator.from_saved_model(
        Path(compiled).parent / "train" / "last.ckpt",
        chemical_species_to_atom_type_map=True,
        field=FIELD,
        mode="linear",
    )
    calc.set_field(FIELD)
    calc.set_mode("linear")
    atoms = structure(5)
    assert_matches(calc_results(calc, atoms), calc_results(ckpt, atoms), rel=1e-8)


@pytest.fixture(scope="module")
def package(checkpoint, workdir):
    out = workdir / "model.nequip.zip"
    _run(
        [BIN / "nequip-package", "build", str(checkpoint), str(out)],
        workdir,
        "nequip-package",
    )
    return out


def test_packaged_model_matches_checkpoint(package, ckpt_calc):
    calc = NequIPPolCalculator.from_saved_model(
        package, chemical_species_to_atom_type_map=True, field=FIELD
    )
    ckpt_calc.set_field(FIELD)
    ckpt_calc.set_mode("full")
    atoms = structure(6)
    assert_matches(calc_results(calc, atoms), calc_results(ckpt_calc, atoms), rel=1e-12)


# ---------------------------------------------------------------------- field and cache
def test_new_field_recomputes_and_only_then(ckpt_calc):
    calc = ckpt_calc
    calc.set_mode("full")
    calc.time = 0.0
    calc.set_field(FIELD)
    atoms = structure(7)
    atoms.calc = calc
    e1, f1, p1 = (
        atoms.get_potential_energy(),
        atoms.get_forces().copy(),
        calc.get_polarization(atoms).copy(),
    )
    n = calc.num_evaluations
    calc.set_field(list(FIELD))  # same value, other type
    calc.time = 123.0  # static field: time does not matter
    assert atoms.get_potential_energy() == e1 and calc.num_evaluations == n
    assert calc.results_time == 0.0  # where the cached results were computed
    calc.set_field(FIELD * 2)
    assert calc.results == {}  # dropped at once
    e2, f2, p2 = (
        atoms.get_potential_energy(),
        atoms.get_forces(),
        calc.get_polarization(atoms),
    )
    assert calc.num_evaluations == n + 1
    assert (
        abs(e2 - e1) > 1e-6
        and np.abs(f2 - f1).max() > 1e-6
        and np.abs(p2 - p1).max() > 1e-6
    )
    np.testing.assert_array_equal(calc.results_field, FIELD * 2)
    # a time-dependent field: recomputed when E(t) changes, not when only t does
    calc.set_field(lambda t: FIELD * 2 if t < 200.0 else FIELD)
    assert (
        calc.num_evaluations == n + 1 and atoms.get_potential_energy() == e2
    )  # same value at t = 123
    calc.time = 150.0
    atoms.get_forces()
    assert calc.num_evaluations == n + 1
    calc.time = 250.0
    assert atoms.get_potential_energy() == pytest.approx(e1, abs=1e-12)
    assert calc.num_evaluations == n + 2
    calc.set_field(None)
    calc.time = 0.0


def test_linear_mode_is_first_order(ckpt_calc):
    atoms = structure(8)
    calc = ckpt_calc
    direction = np.array([0.3, -0.5, 0.8])
    diffs = []
    for scale in (0.2, 0.1, 0.05):
        field = scale * direction
        full = calc.evaluate(atoms, field, mode="full")
        linear = calc.evaluate(atoms, field, mode="linear")
        diffs.append(
            {
                k: np.abs(np.asarray(full[k]) - np.asarray(linear[k])).max()
                for k in ("energy", "forces", "polarization")
            }
        )
    for key in ("energy", "forces", "polarization"):
        r1, r2 = diffs[0][key] / diffs[1][key], diffs[1][key] / diffs[2][key]
        print(
            f"{key}: |full - linear| = {[d[key] for d in diffs]}, ratios {r1:.3f} {r2:.3f}"
        )
        assert diffs[2][key] > 1e-9  # the model is nonlinear: the test is not trivial
        assert (
            3.0 < r2 < 5.0 and abs(r2 - 4.0) <= abs(r1 - 4.0) + 0.05
        )  # -> 4 = 2^2 as E -> 0
    zero_full = calc.evaluate(atoms, np.zeros(3), mode="full")
    zero_linear = calc.evaluate(atoms, np.zeros(3), mode="linear")
    assert_matches(
        zero_linear,
        {k: zero_full[k] for k in ("energy", "forces", "polarization")},
        rel=0,
    )


def test_linear_mode_forces_are_born_charges_times_field(ckpt_calc):
    atoms = structure(9)
    zero = ckpt_calc.evaluate(atoms, np.zeros(3), mode="full")
    linear = ckpt_calc.evaluate(atoms, FIELD, mode="linear")
    z = zero["born_effective_charges"]
    np.testing.assert_allclose(
        linear["forces"] - zero["forces"], np.einsum("iab,a->ib", z, FIELD), atol=1e-12
    )
    assert linear["energy"] == pytest.approx(
        zero["energy"] - FIELD @ zero["polarization"], abs=1e-12
    )
    np.testing.assert_allclose(
        linear["polarization"],
        zero["polarization"] + zero["polarizability"] @ FIELD,
        atol=1e-12,
    )


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "field, message",
    [
        ([0.1, 0.2], r"3-vector.*shape \(2,\)"),
        ([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]], r"3-vector.*shape \(2, 3\)"),
        ([float("nan"), 0.0, 0.0], "NaN"),
        ([0.0, float("inf"), 0.0], "NaN or infinite"),
        ("strong", "electric field"),
        (lambda t: [0.0, 0.0], r"returned by .* at t = 0.0 fs"),
    ],
)
def test_bad_field(ckpt_calc, field, message):
    with pytest.raises(ValueError, match=message) as error:
        ckpt_calc.set_field(field)
    assert "electric field" in str(error.value)


def test_bad_field_later_in_time(ckpt_calc):
    calc = ckpt_calc
    calc.set_field(lambda t: [0.0, 0.0, 0.1] if t < 10 else [float("nan")] * 3)
    atoms = structure(0)
    atoms.calc = calc
    atoms.get_potential_energy()
    calc.time = 20.0
    with pytest.raises(ValueError, match=r"NaN.*|.*t = 20.0 fs"):
        atoms.get_potential_energy()
    calc.set_field(None)
    calc.time = 0.0


def test_unknown_species(ckpt_calc):
    atoms = structure(0)
    atoms[0].symbol = "Sr"
    atoms[1].symbol = "H"
    atoms.calc = ckpt_calc
    with pytest.raises(
        ValueError, match=r"unknown species \['H', 'Sr'\].*\['Ba', 'Ti', 'O'\]"
    ):
        atoms.get_potential_energy()


def test_missing_model_files(tmp_path):
    with pytest.raises(
        FileNotFoundError, match="compiled model file not found.*nothere.nequip.pt2"
    ):
        NequIPPolCalculator.from_compiled_model(tmp_path / "nothere.nequip.pt2")
    with pytest.raises(FileNotFoundError, match="model file not found.*nothere.ckpt"):
        NequIPPolCalculator.from_saved_model(tmp_path / "nothere.ckpt")
    (tmp_path / "model.ckpt").write_text("x")
    with pytest.raises(ValueError, match="not an AOTInductor model"):
        NequIPPolCalculator.from_compiled_model(tmp_path / "model.ckpt")


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "not_a_model"])
@pytest.mark.parametrize("kind", ["checkpoint", "package", "compiled"])
def test_damaged_model_files_are_named(
    request, kind, damage, checkpoint, package, tmp_path
):
    """A model file cut short (interrupted save or copy), with changed bytes, or a sound zip
    that is not a model: a ValueError naming the file and the problem, from either loader."""
    from damaged_files import corrupted_copy, truncated_copy

    src = {"checkpoint": checkpoint, "package": package}.get(kind)
    if src is None:
        src = request.getfixturevalue("compiled")
    name = {"checkpoint": "model.ckpt", "package": "model.nequip.zip"}.get(
        kind, "model.nequip.pt2"
    )
    bad = tmp_path / f"{damage}_{name}"
    if damage == "truncated":
        truncated_copy(src, bad)
        expected = "truncated .*the zip archive has no end record"
    elif damage == "corrupted":
        corrupted_copy(src, bad)
        expected = "corrupted .*the member .* fails its CRC-32 check"
    else:  # a sound archive of the wrong content
        torch.save({"weights": torch.zeros(3)}, bad)
        expected = "cannot load the .*: "
    load = (
        NequIPPolCalculator.from_compiled_model
        if kind == "compiled"
        else NequIPPolCalculator.from_saved_model
    )
    with pytest.raises(ValueError, match=expected) as info:
        load(bad, chemical_species_to_atom_type_map=True)
    assert str(bad) in str(info.value)


def test_extrapolation_guard(checkpoint, compiled, package, tmp_path, capsys):
    """The shipped config records the training range in the checkpoint; the calculator warns
    once when the field exceeds 1.2 x the trained maximum or atoms come closer than the trained
    minimum, counts every case, raises in strict mode; nequip-compile and nequip-package carry
    the range into the model's metadata; a model without the range runs with one note."""
    import json
    import warnings
    import zipfile

    from nequip_pol.guards import (
        RANGES_FILE,
        RANGES_KEY,
        ExtrapolationError,
        ExtrapolationWarning,
        data_ranges,
    )

    data = Path(checkpoint).parent.parent / "tiny.xyz"
    expected = data_ranges(data)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)[RANGES_KEY]
    assert saved["max_field"] == pytest.approx(expected["max_field"])
    assert saved["min_distance"] == pytest.approx(expected["min_distance"])
    assert saved["species"] == ["Ba", "O", "Ti"]
    on_disk = json.loads((Path(checkpoint).parent / RANGES_FILE).read_text())
    assert on_disk["max_field"] == pytest.approx(expected["max_field"])

    calc = NequIPPolCalculator.from_saved_model(
        checkpoint, chemical_species_to_atom_type_map=True
    )
    assert calc.guard is not None and calc.guard.active
    emax = saved["max_field"]
    direction = np.array([0.6, 0.0, 0.8])
    atoms = structure(7)
    atoms.calc = calc
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtrapolationWarning)
        calc.set_field(0.75 * emax * direction)  # inside: no warning
        atoms.get_potential_energy()
    calc.set_field(2.5 * emax * direction)
    with pytest.warns(ExtrapolationWarning, match="exceeds 1.2 x the trained maximum"):
        atoms.get_potential_energy()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "error", ExtrapolationWarning
        )  # once per run, then counted
        calc.set_field(3.0 * emax * direction)
        atoms.get_potential_energy()
    assert calc.guard.counts["field"] == 2
    # a pair closer than any in training
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.5, 0.0, 0.0]
    close.calc = calc
    calc.set_field(np.zeros(3))
    close.get_potential_energy()
    assert calc.guard.counts["distance"] == 1
    assert "outside the trained range: field 2, distance 1" in calc.guard.report()

    # a model trained up to 0.2 V/A (the range given explicitly): 0.5 V/A warns, 0.15 does not
    strict = NequIPPolCalculator.from_saved_model(
        checkpoint,
        chemical_species_to_atom_type_map=True,
        guard="strict",
    )
    strict.set_guard("strict", dict(saved, max_field=0.2))
    atoms.calc = strict
    strict.set_field([0.0, 0.0, 0.15])
    atoms.get_potential_energy()
    strict.set_field([0.0, 0.0, 0.5])
    with pytest.raises(ExtrapolationError, match="0.5 V/A exceeds"):
        atoms.get_potential_energy()

    # nequip-compile of the checkpoint: the range in the metadata (JSON and the flat keys the
    # LAMMPS pair styles read), and the calculator's guard on it
    from nequip_pol.guards import ranges_metadata, saved_model_ranges

    aoti = NequIPPolCalculator.from_compiled_model(
        compiled, chemical_species_to_atom_type_map=True
    )
    assert aoti.guard is not None and aoti.guard.ranges == saved
    metadata = {}
    with zipfile.ZipFile(compiled) as z:
        for name in z.namelist():
            if name.endswith("wrapper_metadata.json"):
                metadata = json.loads(z.read(name))
    for key, value in ranges_metadata(saved).items():
        assert metadata[key] == value, key
    # nequip-package of the checkpoint: the range in the packaged model's metadata
    packaged = NequIPPolCalculator.from_saved_model(
        package, chemical_species_to_atom_type_map=True, guard="off"
    )
    assert saved_model_ranges(package, packaged.model) == saved

    # no recorded range (a copy of the compiled model without it): one note, no checks
    bare = tmp_path / "bare.nequip.pt2"
    with zipfile.ZipFile(compiled) as zin, zipfile.ZipFile(bare, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("_metadata.json"):
                meta = json.loads(data)
                meta = {
                    k: v for k, v in meta.items() if not k.startswith("nequip_pol_")
                }
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    capsys.readouterr()
    old = NequIPPolCalculator.from_compiled_model(
        bare, chemical_species_to_atom_type_map=True
    )
    err = capsys.readouterr().err
    assert "no recorded training range: the extrapolation guard is off" in err
    assert old.guard is not None and not old.guard.active


def test_bad_mode_and_units(ckpt_calc):
    with pytest.raises(ValueError, match="`mode` must be one of"):
        ckpt_calc.set_mode("quadratic")
    with pytest.raises(ValueError, match="energy_units_to_eV"):
        NequIPPolCalculator(
            ckpt_calc.model, transforms=ckpt_calc.transforms, energy_units_to_eV=1000.0
        )


def test_model_without_response_outputs(checkpoint):
    calc = NequIPPolCalculator.from_saved_model(
        checkpoint,
        chemical_species_to_atom_type_map=True,
        modifiers=["energy_forces_only"],
        field=FIELD,
    )
    atoms = structure(0)
    atoms.calc = calc
    assert np.isfinite(atoms.get_forces()).all()  # energy and forces still work
    with pytest.raises(
        PropertyNotImplementedError, match="born_effective_charges.*energy_forces_only"
    ):
        calc.get_born_effective_charges(atoms)
    with pytest.raises(PropertyNotImplementedError, match="polarization"):
        calc.get_polarization(atoms)
    with pytest.raises(ValueError, match="mode='linear' need model outputs"):
        calc.set_mode("linear")


def _stock_ase_keys():
    from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

    target = COMPILE_TARGET_DICT["ase"]
    return list(target["input"]), list(target["output"])


def test_stock_ase_target_keys(ckpt_calc):
    """What a model compiled with nequip's stock ``ase`` target offers: no field, no response."""
    inputs, outputs = _stock_ase_keys()
    stock_like = NequIPPolCalculator(
        ckpt_calc.model,
        transforms=ckpt_calc.transforms,
        input_keys=inputs,
        output_keys=outputs,
    )
    atoms = structure(0)
    atoms.calc = stock_like
    atoms.get_forces()  # zero field works
    with pytest.raises(
        PropertyNotImplementedError,
        match=r"born_effective_charges.*stock `ase` compile target",
    ):
        stock_like.get_born_effective_charges(atoms)
    stock_like.set_field(FIELD)
    with pytest.raises(ValueError, match="takes no `electric_field` input"):
        atoms.get_forces()
    with pytest.raises(ValueError, match="stock `ase` compile target"):
        NequIPPolCalculator(
            ckpt_calc.model,
            transforms=ckpt_calc.transforms,
            input_keys=inputs,
            output_keys=outputs,
            mode="linear",
        )


@pytest.mark.slow
def test_stock_ase_target_compiled(checkpoint, workdir):
    out = workdir / "stock.nequip.pt2"
    _run(
        [
            BIN / "nequip-compile",
            str(checkpoint),
            str(out),
            "--mode",
            "aotinductor",
            "--device",
            "cpu",
            "--target",
            "ase",
        ],
        workdir,
        "nequip-compile",
    )
    calc = NequIPPolCalculator.from_compiled_model(
        out, chemical_species_to_atom_type_map=True
    )
    atoms = structure(0)
    atoms.calc = calc
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError, match="born_effective_charges"):
        calc.get_born_effective_charges(atoms)
    with pytest.raises(ValueError, match="stock `ase` compile target"):
        calc.set_mode("linear")
