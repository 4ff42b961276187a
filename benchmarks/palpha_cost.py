"""What the P and alpha outputs cost in a LAMMPS force call (``pair_style allegro/pol``).

In the field-expansion models P and alpha are closed-form sums of read-outs of the enthalpy
expansion (``nequip_pol/nn/field_expansion.py``): no backward pass. This measures how much of a
force call they take, on what LAMMPS runs: two AOTInductor packages of the same tutorial-size
Allegro-pol model (2 layers, 64 scalar / 32 tensor features, l_max 1, r_max 5 A, field
expansion of order 3), both for the pair style's inputs without Born charges

    with     outputs E_i, F, virial, P, alpha, atomic dipoles   (the noborn variant as shipped)
    without  outputs E_i, F, virial only (response_outputs=[]: AOTInductor drops the P, alpha
             and dipole arithmetic from the compiled graph)

evaluated on the same graph: a rattled perovskite cell (lattice 4 A, 5 n^3 atoms) laid out as
LAMMPS lays out one rank's graph (local atoms, then the periodic images that edges reach as
ghost nodes). The two packages run interleaved (alternating which goes first), median of
``--repeats`` calls each, after one warm-up call, in one process (``OMP_NUM_THREADS=1`` recommended; the thread count is printed).
Wall and CPU time (``time.process_time``) per call are both reported: on a loaded machine the CPU
time of a one-thread run is the steadier of the two.

Compile the two packages first (2-5 min each; float32, the production default):

    SIZE="r_max=5.0 num_scalar_features=64 num_tensor_features=32 allegro_mlp_hidden_layers_width=64 \\
      readout_mlp_hidden_layers_width=64 field_mlp_hidden_layers_width=64 field_expansion_order=3 \\
      avg_num_neighbors=40.0 model_dtype='float32'"
    python lammps_patch/tools/compile_model.py ALLEGRO_POL nequip_pol_pair_allegro_no_born with.nequip.pt2 \\
      $SIZE "response_outputs=['polarization','polarizability']"
    python lammps_patch/tools/compile_model.py ALLEGRO_POL nequip_pol_pair_allegro_no_born without.nequip.pt2 \\
      $SIZE "response_outputs=[]" "outputs=['atomic_energy','forces','virial']"

then

    OMP_NUM_THREADS=1 python benchmarks/palpha_cost.py with.nequip.pt2 without.nequip.pt2 --n 4 6
"""

import argparse
import statistics
import time

import numpy as np
import torch


def pair_graph(n, r_max, ntypes, seed=1):
    """Inputs of the pair style for a periodic perovskite cell of 5 n^3 atoms: positions of the
    local atoms and of the ghost images some edge reaches, edges from local atoms only."""
    from ase.neighborlist import neighbor_list

    from nequip_pol.reference.paraelectric import ideal_structure

    atoms = ideal_structure((n, n, n))
    atoms.rattle(0.05, seed=seed)
    i, j, shift = neighbor_list("ijS", atoms, r_max)
    nlocal = len(atoms)
    pos = atoms.get_positions()
    ghost_index = {}
    ghost_pos = []
    dst = np.empty_like(j)
    for k in range(len(i)):
        if not shift[k].any():
            dst[k] = j[k]
            continue
        key = (j[k], *shift[k])
        if key not in ghost_index:
            ghost_index[key] = nlocal + len(ghost_pos)
            ghost_pos.append(pos[j[k]] + shift[k] @ atoms.cell.array)
        dst[k] = ghost_index[key]
    all_pos = np.concatenate([pos, np.array(ghost_pos).reshape(-1, 3)])
    species = {"Ba": 0, "Ti": 1, "O": 2}
    types = np.array([species[s] % ntypes for s in atoms.get_chemical_symbols()])
    ghost_types = [types[key[0]] for key in ghost_index]
    all_types = np.concatenate([types, np.array(ghost_types, dtype=types.dtype)])
    return (
        {
            "pos": torch.tensor(all_pos, dtype=torch.float64),
            "edge_index": torch.tensor(np.stack([i, dst]), dtype=torch.long),
            "atom_types": torch.tensor(all_types, dtype=torch.long),
            "electric_field": torch.tensor([[0.01, 0.02, -0.01]], dtype=torch.float64),
        },
        nlocal,
        len(ghost_pos),
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("with_palpha", help="package with P and alpha outputs")
    parser.add_argument("without_palpha", help="package without them")
    parser.add_argument(
        "--n", nargs="+", type=int, default=[4, 6], help="cells of 5 n^3 atoms"
    )
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()

    models = {}
    for name, path in (("with", args.with_palpha), ("without", args.without_palpha)):
        model = torch._inductor.aoti_load_package(path)
        meta = model.get_metadata()
        models[name] = (model, meta["nequip_aoti_inputs"].split(), meta)
    meta = models["with"][2]
    print(
        f"threads {torch.get_num_threads()}; dtype {meta['model_dtype']}; r_max {meta['r_max']}"
    )
    print(f"outputs with:    {models['with'][2]['nequip_aoti_outputs']}")
    print(f"outputs without: {models['without'][2]['nequip_aoti_outputs']}")
    for n in args.n:
        inputs, nlocal, nghost = pair_graph(
            n, float(meta["r_max"]), len(meta["type_names"].split())
        )
        times = {"with": [], "without": []}
        cpu = {"with": [], "without": []}
        with torch.inference_mode():
            for name, (model, keys, _) in models.items():
                model([inputs[k] for k in keys])  # warm-up
            for r in range(args.repeats):
                # alternate which package goes first: neither gets the other's warm caches always
                for name in ("with", "without") if r % 2 == 0 else ("without", "with"):
                    model, keys, _ = models[name]
                    t0, c0 = time.perf_counter(), time.process_time()
                    model([inputs[k] for k in keys])
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
        w, wo = statistics.median(times["with"]), statistics.median(times["without"])
        cw, cwo = statistics.median(cpu["with"]), statistics.median(cpu["without"])
        print(
            f"{nlocal} atoms (+{nghost} ghost nodes, {inputs['edge_index'].shape[1]} edges): "
            f"with P, alpha {1000 * w:.1f} ms, without {1000 * wo:.1f} ms; "
            f"P and alpha take {100 * (w - wo) / w:.1f} % of the call "
            f"(per-call spread with {1000 * min(times['with']):.1f}-{1000 * max(times['with']):.1f} ms, "
            f"without {1000 * min(times['without']):.1f}-{1000 * max(times['without']):.1f} ms); "
            f"CPU time with {1000 * cw:.1f} ms, without {1000 * cwo:.1f} ms: {100 * (cw - cwo) / cw:.1f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
