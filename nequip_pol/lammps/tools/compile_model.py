"""Build a small field-aware model in memory and compile it for the LAMMPS pair styles.

Used by ``tests/test_lammps.py`` and the examples/benchmarks when no trained checkpoint is at
hand (the configs of :mod:`nequip_pol.testing`). A trained model is compiled with the CLI
instead::

    nequip-compile MODEL.ckpt OUT.nequip.pt2 --mode aotinductor --device cpu \
        --target nequip_pol_pair_allegro      # or nequip_pol_pair_nequip

The package written here carries the same metadata as ``nequip-compile`` writes (type names,
r_max, model_dtype, ..., and the AOTI input/output key lists) so the C++ side reads it alike.

Usage: python compile_model.py CONFIG_NAME TARGET OUT.nequip.pt2 [key=value ...]
(CONFIG_NAME: ALLEGRO_POL or NEQUIP_POL from nequip_pol/testing.py; extra key=value pairs
override the config, values parsed as Python literals; ``outputs=[...]`` replaces the target's
output list, e.g. for a model without Born charges:
``response_outputs=['polarization','polarizability'] "outputs=['atomic_energy','forces','virial','polarization','polarizability','atomic_dipoles']"``;
``model_dtype='float32'`` builds a float32 model with the float64 model's weights, rounded,
unless ``weights_from_float64=False``.)
"""

import ast
import sys
import time


def build_model(config_name, overrides=None):
    """The eager model of ``nequip_pol.testing.<config_name>`` (float64 unless
    ``overrides`` say otherwise), in eval mode."""
    from hydra.utils import get_method

    from nequip_pol import testing

    if not hasattr(testing, config_name):
        raise ValueError(f"no model config {config_name!r} in nequip_pol.testing")
    cfg = dict(getattr(testing, config_name))
    cfg["model_dtype"] = "float64"
    cfg.update(overrides or {})
    same_weights = cfg.pop("weights_from_float64", True)
    builder = get_method(cfg.pop("_target_"))
    model = builder(**cfg)
    if cfg["model_dtype"] != "float64" and same_weights:
        # the float64 model's weights, rounded: float32 and float64 builds then differ only by
        # precision (a float32 build draws its own initial weights otherwise)
        reference = builder(**{**cfg, "model_dtype": "float64"})
        model.load_state_dict(reference.state_dict())
    return model.eval()


def example_data(model, target_name, r_max):
    """A small periodic frame to trace with (types from the model's type names)."""
    import numpy as np
    from ase import Atoms
    from nequip.data import from_ase
    from nequip.data.transforms import (
        ChemicalSpeciesToAtomTypeMapper,
        NeighborListTransform,
    )
    from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

    type_names = model.type_names
    rng = np.random.default_rng(0)
    n = 24
    atoms = Atoms(
        symbols=[type_names[i % len(type_names)] for i in range(n)],
        positions=rng.uniform(0, 6.0, size=(n, 3)),
        cell=np.diag([6.0, 6.2, 6.4]),
        pbc=True,
    )
    data = from_ase(atoms)
    data = ChemicalSpeciesToAtomTypeMapper(type_names)(data)
    data = NeighborListTransform(r_max=r_max)(data)
    return COMPILE_TARGET_DICT[target_name]["data_settings"](data)


def compile_model(model, target_name, output_path, r_max, outputs=None):
    import torch
    from nequip.utils.aot import aot_export_model
    from nequip.utils.aoti_metadata import (
        NEQUIP_AOTI_INPUTS_KEY,
        NEQUIP_AOTI_OUTPUTS_KEY,
        serialize_aoti_keys,
    )
    from nequip.utils.global_state import get_latest_global_state
    from nequip.scripts._compile_utils import COMPILE_TARGET_DICT

    target = dict(COMPILE_TARGET_DICT[target_name])
    if outputs is not None:
        target["output"] = list(outputs)
    data = example_data(model, target_name, r_max)
    batch_map = target["batch_map_settings"](
        {
            "graph": torch.export.Dim("num_frames", min=1),
            "node": torch.export.Dim("num_nodes", min=2),
            "edge": torch.export.Dim("num_edges", min=2),
        }
    )
    # same metadata as nequip-compile writes
    metadata = dict(model.metadata)
    metadata.update(get_latest_global_state(only_metadata_related=True))
    metadata = {
        k: str(int(v)) if isinstance(v, bool) else v for k, v in metadata.items()
    }
    metadata[NEQUIP_AOTI_INPUTS_KEY] = serialize_aoti_keys(target["input"])
    metadata[NEQUIP_AOTI_OUTPUTS_KEY] = serialize_aoti_keys(target["output"])
    metadata = {k: str(v) for k, v in metadata.items()}
    aot_export_model(
        model=model,
        device="cpu",
        input_fields=target["input"],
        output_fields=target["output"],
        data=data,
        batch_map=batch_map,
        output_path=str(output_path),
        inductor_configs={"aot_inductor.metadata": metadata},
    )
    return metadata


def main(argv):
    from nequip.utils.global_state import set_global_state
    import torch

    set_global_state()
    torch.set_default_dtype(torch.float64)
    config_name, target_name, out = argv[:3]
    overrides = {}
    outputs = None
    for item in argv[3:]:
        key, value = item.split("=", 1)
        if key == "outputs":
            outputs = ast.literal_eval(value)
        else:
            overrides[key] = ast.literal_eval(value)
    model = build_model(config_name, overrides)
    t0 = time.time()
    metadata = compile_model(
        model, target_name, out, r_max=float(model.metadata["r_max"]), outputs=outputs
    )
    print(
        f"compiled {config_name} -> {out} ({target_name}) in {time.time() - t0:.0f} s"
    )
    for k, v in metadata.items():
        print(f"  {k}: {v}")


if __name__ == "__main__":
    main(sys.argv[1:])
