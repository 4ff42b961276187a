"""AOTInductor-compiled field-aware models return the eager model's P, Z*, alpha (float64).

One compile per builder (about 2-3 minutes each on 2 cores), with the ``nequip_pol_ase`` target;
the compiled model is evaluated on a structure and field it was not traced with.
"""

import copy

import pytest
import torch
from hydra.utils import get_method

from nequip.nn.compile import DictInputOutputWrapper
from nequip.scripts._compile_utils import COMPILE_TARGET_DICT
from nequip.utils.aot import aot_export_model

from nequip_pol._compile import ASE_TARGET
from model_configs import ALLEGRO_POL, NEQUIP_POL
from test_response import perovskite_like, to_data


@pytest.mark.parametrize("config", [ALLEGRO_POL, NEQUIP_POL], ids=["allegro", "nequip"])
def test_aotinductor_matches_eager(config, tmp_path):
    config = copy.deepcopy(config)
    config["model_dtype"] = "float64"
    model = get_method(config.pop("_target_"))(**config).eval()
    target = COMPILE_TARGET_DICT[ASE_TARGET]
    batch_map = target["batch_map_settings"](
        {
            "graph": torch.export.Dim("num_frames", min=1),
            "node": torch.export.Dim("num_nodes", min=2),
            "edge": torch.export.Dim("num_edges", min=2),
        }
    )
    trace_data = target["data_settings"](to_data(perovskite_like(seed=0)))
    path = str(tmp_path / "model.nequip.pt2")
    aot_export_model(
        model=model,
        device="cpu",
        input_fields=target["input"],
        output_fields=target["output"],
        data=trace_data,
        batch_map=batch_map,
        output_path=path,
    )
    compiled = DictInputOutputWrapper(
        torch._inductor.aoti_load_package(path), target["input"], target["output"]
    )

    for seed, field in [(5, [0.1, -0.2, 0.05]), (6, [0.0, 0.0, 0.0])]:
        data = target["data_settings"](to_data(perovskite_like(seed=seed), field))
        eager = model({k: v.clone() for k, v in data.items()})
        out = compiled({k: data[k] for k in target["input"]})
        for key in target["output"]:
            scale = eager[key].abs().max().clamp_min(1e-12)
            assert ((out[key] - eager[key]).abs().max() / scale).item() < 1e-8, key
        assert out["born_effective_charges"].abs().max() > 1e-3
