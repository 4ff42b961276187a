"""Small model configs for tests and tools: seconds to build, no training.

Used by the test suite (``tests/model_configs.py`` re-exports them), the LAMMPS tool
``nequip_pol/lammps/tools/compile_model.py`` (a small model compiled for the pair styles)
and the benchmarks. Each is a nequip model config (``_target_`` a builder) with the type
names of nequip's test fixtures: H, C, O.
"""

TYPE_NAMES = ["H", "C", "O"]

ALLEGRO_POL = {
    "_target_": "nequip_pol.model.AllegroPolModel",
    "seed": 123,
    "type_names": TYPE_NAMES,
    "r_max": 4.0,
    "l_max": 1,
    "num_layers": 2,
    "num_scalar_features": 16,
    "num_tensor_features": 4,
    "radial_chemical_embed": {
        "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
        "num_bessels": 8,
    },
    "allegro_mlp_hidden_layers_depth": 1,
    "allegro_mlp_hidden_layers_width": 16,
    "readout_mlp_hidden_layers_depth": 1,
    "readout_mlp_hidden_layers_width": 8,
    "avg_num_neighbors": 20.0,
    "per_type_energy_shifts": {"H": 0.1, "C": -0.2, "O": 0.3},
    "per_type_energy_scales": {"H": 1.0, "C": 1.0, "O": 1.0},
    "field_mlp_hidden_layers_width": 16,
}

NEQUIP_POL = {
    "_target_": "nequip_pol.model.NequIPPolModel",
    "seed": 123,
    "type_names": TYPE_NAMES,
    "r_max": 4.0,
    "l_max": 1,
    "num_layers": 2,
    "num_features": 8,
    "radial_mlp_depth": 1,
    "radial_mlp_width": 8,
    "avg_num_neighbors": 20.0,
    "per_type_energy_shifts": {"H": 0.1, "C": -0.2, "O": 0.3},
    "per_type_energy_scales": {"H": 1.0, "C": 1.0, "O": 1.0},
    "field_mlp_hidden_layers_width": 16,
}
