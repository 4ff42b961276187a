"""Relaxation tolerances follow the model's precision: ``phonons`` and ``dielectric`` with their
defaults on a float32 model (issue: a fixed 1e-8 eV/A is below a float32 model's force noise).

The float32 model is a small Allegro-pol model fitted in seconds (Adam on E, F, P, Z*, alpha) to
displaced 5-atom cells of the analytic perovskite, some under a field: enough for a stable minimum
near the cubic structure and a positive eps_inf, which is all the relaxation, the phonons and
LO-TO need.
"""

import ase.io
import numpy as np
import pytest
import torch

from nequip_pol.analysis import tolerances as T
from nequip_pol.reference import (
    ReferenceMaterialCalculator,
    generate_dataset,
    ideal_structure,
)

TYPES = ["Ba", "Ti", "O"]
R_MAX = 4.5
STEPS = 120  # Adam steps of the fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def float32_calc(one_torch_thread):
    from nequip.data import AtomicDataDict, from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip.utils.global_state import set_global_state

    from nequip_pol import (
        BORN_CHARGE_KEY,
        ELECTRIC_FIELD_KEY,
        POLARIZABILITY_KEY,
        POLARIZATION_KEY,
        _register_with_nequip,
    )
    from nequip_pol.integrations.ase import NequIPPolCalculator
    from nequip_pol.model import AllegroPolModel

    _register_with_nequip()
    set_global_state()
    model = AllegroPolModel(
        seed=1,
        model_dtype="float32",
        type_names=TYPES,
        r_max=R_MAX,
        l_max=1,
        num_layers=1,
        num_scalar_features=16,
        num_tensor_features=4,
        radial_chemical_embed={
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": 8,
        },
        allegro_mlp_hidden_layers_depth=1,
        allegro_mlp_hidden_layers_width=16,
        readout_mlp_hidden_layers_depth=1,
        readout_mlp_hidden_layers_width=16,
        avg_num_neighbors=30.0,
        per_type_energy_shifts={t: 0.0 for t in TYPES},
        per_type_energy_scales={t: 1.0 for t in TYPES},
        field_mlp_hidden_layers_width=16,
    )
    frames = generate_dataset(
        16,
        seed=3,
        supercell=(1, 1, 1),
        displacement_std=0.04,
        strain_std=0.0,
        field_fraction=0.5,
        max_field=0.05,
    )
    mapper, neighbors = (
        ChemicalSpeciesToAtomTypeMapper(TYPES),
        NeighborListTransform(r_max=R_MAX),
    )

    def data(atoms):
        d = neighbors(mapper(from_ase(atoms)))
        d[ELECTRIC_FIELD_KEY] = torch.as_tensor(
            np.reshape(atoms.info["electric_field"], (1, 3))
        )
        return d

    batch = AtomicDataDict.batched_from_list([data(a) for a in frames])
    target = {
        AtomicDataDict.TOTAL_ENERGY_KEY: torch.tensor(
            [[a.info["total_energy"]] for a in frames]
        ),
        AtomicDataDict.FORCE_KEY: torch.as_tensor(
            np.concatenate([a.arrays["forces"] for a in frames])
        ),
        POLARIZATION_KEY: torch.as_tensor(
            np.array([a.info["polarization_exact"] for a in frames])
        ),
        BORN_CHARGE_KEY: torch.as_tensor(
            np.concatenate([a.arrays["born_effective_charges"] for a in frames])
        ).view(-1, 3, 3),
        POLARIZABILITY_KEY: torch.as_tensor(
            np.array([a.info["polarizability"] for a in frames])
        ),
    }
    target[AtomicDataDict.TOTAL_ENERGY_KEY] -= target[
        AtomicDataDict.TOTAL_ENERGY_KEY
    ].mean()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(STEPS):
        optimizer.zero_grad()
        out = model({k: v.clone() for k, v in batch.items()})
        loss = 0.0
        for key, ref in target.items():
            pred = out[key].double()
            if key == AtomicDataDict.TOTAL_ENERGY_KEY:  # per atom, up to a constant
                pred, ref = (pred - pred.mean()) / 5, ref / 5
            loss = loss + (pred - ref).square().mean()
        loss.backward()
        optimizer.step()
    model.eval()
    return NequIPPolCalculator(model, transforms=[mapper, neighbors])


def _structure():
    atoms = ideal_structure((1, 1, 1))
    atoms.rattle(0.02, seed=1)
    return atoms


def test_precision_of_calculators(float32_calc):
    assert float32_calc.model_dtype == "float32"
    assert T.calculator_precision(float32_calc) == "float32"
    assert T.calculator_precision(ReferenceMaterialCalculator()) == "exact"
    assert T.calculator_precision(object()) == "unknown"


def test_tolerance_follows_the_precision(float32_calc):
    atoms = _structure()
    assert T.relaxation_fmax(atoms, ReferenceMaterialCalculator()) == (
        1e-8,
        "the default for an exact calculator",
    )
    assert T.relaxation_fmax(atoms, float32_calc, fmax=1e-3) == (1e-3, "given")
    with pytest.raises(ValueError, match="positive"):
        T.relaxation_fmax(atoms, float32_calc, fmax=0.0)
    noise = T.force_noise(atoms, float32_calc)
    assert 1e-9 < noise < 1e-4  # float32 rounding, not zero, far below the forces
    fmax, why = T.relaxation_fmax(atoms, float32_calc)
    assert fmax == pytest.approx(T.NOISE_FACTOR * noise) and "float32 model" in why
    assert T.force_noise(atoms, ReferenceMaterialCalculator()) < 1e-10
    # the reason for all this: a float64 tolerance is out of a float32 model's reach
    from nequip_pol.analysis.dielectric import relax_positions

    with pytest.raises(
        ValueError, match=r"did not converge to max \|F\| < 1e-09 .*tolerance: given"
    ):
        relax_positions(atoms, float32_calc, fmax=1e-9, max_newton=10)


def test_phonons_and_dielectric_with_defaults_on_a_float32_model(
    float32_calc, tmp_path, monkeypatch, capsys
):
    from nequip_pol.cli import main
    from nequip_pol.integrations.ase import NequIPPolCalculator

    structure = tmp_path / "bto.extxyz"
    ase.io.write(structure, _structure())
    model = tmp_path / "model.ckpt"
    model.write_text("stands for the float32 model of the fixture")
    monkeypatch.setattr(
        NequIPPolCalculator,
        "from_saved_model",
        classmethod(lambda cls, path, **kwargs: float32_calc),
    )

    assert (
        main(["phonons", str(model), str(structure), "-o", str(tmp_path / "ph")]) == 0
    )
    out = capsys.readouterr().out
    assert "relaxation tolerance: max |F| <" in out and "float32 model" in out, out
    assert (tmp_path / "ph_phonons.csv").exists()

    assert (
        main(["dielectric", str(model), str(structure), "-o", str(tmp_path / "di")])
        == 0
    )
    out = capsys.readouterr().out
    assert "field response: relaxation tolerance" in out and "float32 model" in out, out
    lines = (tmp_path / "di_dielectric.csv").read_text().splitlines()
    routes = {row.split(",")[0] for row in lines[2:]}
    assert routes == {"harmonic", "field"}
    relaxed = ase.io.read(tmp_path / "di_relaxed.extxyz")
    assert relaxed.info["relax_fmax"] < relaxed.info["relax_tolerance"] < 1e-3
