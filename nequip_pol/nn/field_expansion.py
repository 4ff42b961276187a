"""Field embedding: the electric enthalpy as a local expansion in the field.

Design
------
The homogeneous field **E** enters every model through one module, the same for NequIP and
Allegro: a truncated expansion of the electric enthalpy in the field whose coefficients are
learned, environment-dependent, equivariant *edge* tensors,

    E(R, E) = E0(R) - P0(cell).E - sum_(ij) [ c1_ij s_ij
                                            + 1/2 (c2a_ij s_ij^2 + c2b_ij |E|^2)
                                            + 1/6 (c3a_ij s_ij^3 + c3b_ij s_ij |E|^2) ],

with s_ij = rhat_ij . E, rhat_ij the unit vector of edge i->j, and c*_ij invariant functions of
the network's final scalar edge (Allegro) or node-pair (NequIP) features, multiplied by the
smooth radial cutoff. For one direction rhat and one vector E, {s, s^2, |E|^2, s^3, s |E|^2}
span *all* rotation-invariant polynomials up to third order, so each edge carries the most
general local dipole (c1 rhat), anisotropic polarizability (c2a rhat rhat^T + c2b I) and
hyperpolarizability its environment allows; summed over the edges of an atom, these are the
atom-wise dipoles p_i, polarizabilities a_i and hyperpolarizabilities of the enthalpy
expansion E0 - sum_i [p_i.E + 1/2 E.a_i.E + 1/6 b_i:EEE]. The energy is exactly E(3)
equivariant in (R, cell, E), smooth, and nonlinear in E for ``order >= 2``; the field-dependent
Born charges come from the second and third orders. Atom i's terms depend only on its edges and
the field, so Allegro stays strictly local (LAMMPS domain decomposition is unaffected).

Why this design rather than the field as an extra input of the edge embedding (as in the
published Allegro-pol): the expansion gives P = -dE/dE and alpha = dP/dE in closed form as sums
of read-outs (computed here, exact derivatives of the energy above, no autograd needed), so
Born charges Z* = dP/dR need only *first-order* backward passes through the network (one per
field direction, beside the force backward) (see :class:`~nequip_pol.nn.ElectricResponseOutput`).
The general coupling needs a second backward through the force graph for Z* and alpha, which is
what makes the published Born charges cost 4-6x the energy and forces. Fields in practice
(|E| < 0.5 V/A) sit well inside the radius where a third-order expansion is accurate; the
benchmark ``benchmarks/response_cost.py`` measures the cost difference on the same network.

**Fields that vary in space.** The optional per-atom field ``atomic_electric_field`` ((num_atoms,
3), V/A) *adds to* the frame's homogeneous field: atom i sees E_i = E_frame + E_atomic,i, and
every edge i->j of atom i's enthalpy uses the field at its centre atom i (s_ij = rhat_ij . E_i).
So a uniform per-atom field gives the per-frame result exactly, and atom i's enthalpy depends on
the field at i only. The outputs are then:

- ``atomic_dipoles`` p_i = -dE/dE_i (closed form: the dipoles of atom i's edges at E_i, plus its
  share P0/N of the offset below), the response of the enthalpy to the field at atom i;
- ``polarization`` P = -dE/dE_frame = sum_i p_i, the response to a *uniform* change of the field
  on top of the given profile (the cell dipole when the field is uniform);
- ``polarizability`` alpha = dP/dE_frame = sum over the edges of their polarizabilities at the
  local fields (the response to a uniform change, again).

Derivatives with respect to positions (forces, Z*) are taken at fixed per-atom field values
(:mod:`nequip_pol.nn.response`); a field that is a function of position adds a term the
calculator supplies (``docs/simulate.md``, "Fields that vary in space").

The constant ``P0(cell) = f @ cell`` (``polarization_offset_fractional`` f, in units of lattice
vectors; zero by default) carries a dataset's branch offset that no sum of local terms can
represent, e.g. half a polarization quantum in centrosymmetric reference structures. It is
equivariant (it rotates with the cell) and, like every periodic P, defined modulo integers.
Inversion fixes it: the local terms are odd under R -> -R, and in a periodic insulator
P(-R) = -P(R) modulo the quantum, so 2 f must be integer: each entry is 0 or 1/2. The module takes
only those values and always applies the nearest one, ``round(2 f) / 2``, so a model is symmetric
whatever its stored f (checkpoints of the earlier learned, continuous offset load and are
projected). Which value a dataset needs: ``nequip-pol check-data`` (nequip_pol.data.offset).
"""

import math
import warnings

import torch

from e3nn.o3._irreps import Irreps
from nequip.data import AtomicDataDict
from nequip.nn import GraphModuleMixin, ScalarMLPFunction, scatter
from nequip.nn.model_modifier_utils import model_modifier

from .._keys import (
    ELECTRIC_FIELD_KEY,
    ATOMIC_ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    POLARIZABILITY_KEY,
    ATOMIC_DIPOLE_KEY,
    PER_ATOM_FIELD_ENERGY_KEY,
)

from typing import Dict, List, Optional, Sequence, Union

_NUM_COEFFICIENTS = {1: 1, 2: 3, 3: 5}


class FieldExpansionEnergy(GraphModuleMixin, torch.nn.Module):
    """Add the field enthalpy of a local expansion to the per-atom energy; write P and alpha.

    Reads the per-frame field ``electric_field`` ((num_frames, 3), V/A; absent means zero), the
    optional per-atom field ``atomic_electric_field`` ((num_atoms, 3), V/A, added to the frame's
    field at each atom; edge i->j uses the field at i), invariant edge features (Allegro: ``edge_features``; NequIP: the scalar ``node_features`` of
    both ends of an edge and the ``edge_embedding``), the edge vectors and the edge cutoff.
    Writes:

    - ``atomic_energy`` += field energy of each atom's edges (eV, (num_atoms, 1)),
    - ``polarization`` = -dE/dE (cell dipole, e*A, (num_frames, 3)),
    - ``polarizability`` = dP/dE (e*A^2/V, (num_frames, 3, 3), symmetric),
    - ``atomic_dipoles`` p_i = -dE/dE_i (e*A, (num_atoms, 3)): the dipoles of atom i's edges,
      plus P0/N when a polarization offset applies; sum_i p_i = P.

    Args:
        type_names: atom type names (for the normalisation of edge sums)
        order: highest power of the field in the enthalpy, 1, 2 or 3
        edge_feature_fields: edge-level invariant inputs of the coefficient MLP
        node_feature_fields: node-level invariant inputs, used for both ends of each edge
        mlp_hidden_layers_depth, mlp_hidden_layers_width, mlp_nonlinearity: coefficient MLP
        dipole_scale: initial scale of c1 (e*A per edge, after the edge-sum normalisation)
        polarizability_scale: initial scale of c2 (e*A^2/V)
        hyperpolarizability_scale: initial scale of c3 (e*A^3/V^2)
        avg_num_neighbors: edge sums are divided by its square root, as in nequip's convolutions
        polarization_offset_fractional: constant P0 = f @ cell, f in units of lattice vectors,
            each entry 0 or 1/2 modulo 1 (the values inversion allows)
        polarization_offset_trainable: deprecated (a learned, continuous offset breaks
            inversion); accepted so that older checkpoints load: f is then a fixed buffer, and
            like every f applied as its nearest allowed value
    """

    order: int
    has_offset: bool

    def __init__(
        self,
        type_names: Sequence[str],
        order: int = 3,
        edge_feature_fields: Sequence[str] = (),
        node_feature_fields: Sequence[str] = (),
        mlp_hidden_layers_depth: int = 1,
        mlp_hidden_layers_width: int = 64,
        mlp_nonlinearity: Optional[str] = "silu",
        dipole_scale: float = 1.0,
        polarizability_scale: float = 1.0,
        hyperpolarizability_scale: float = 1.0,
        avg_num_neighbors: Optional[Union[float, Dict[str, float]]] = None,
        polarization_offset_fractional: Optional[Sequence[float]] = None,
        polarization_offset_trainable: bool = False,
        irreps_in=None,
    ):
        super().__init__()
        if order not in _NUM_COEFFICIENTS:
            raise ValueError(f"field expansion `order` must be 1, 2 or 3, got {order}")
        if len(edge_feature_fields) + len(node_feature_fields) == 0:
            raise ValueError(
                "FieldExpansionEnergy needs at least one invariant feature field"
            )
        self.order = order
        self.edge_feature_fields: List[str] = list(edge_feature_fields)
        self.node_feature_fields: List[str] = list(node_feature_fields)

        self._init_irreps(
            irreps_in=irreps_in,
            my_irreps_in={
                ELECTRIC_FIELD_KEY: Irreps("1o"),
                ATOMIC_ELECTRIC_FIELD_KEY: Irreps("1o"),
            },
            irreps_out={
                POLARIZATION_KEY: Irreps("1o"),
                POLARIZABILITY_KEY: None,  # Cartesian rank-2, "ij=ji"
                ATOMIC_DIPOLE_KEY: Irreps("1o"),
                PER_ATOM_FIELD_ENERGY_KEY: Irreps("0e"),
            },
        )
        input_dim = 0
        for key in self.edge_feature_fields:
            input_dim += self._scalar_dim(key)
        for key in self.node_feature_fields:
            input_dim += 2 * self._scalar_dim(key)

        self.coefficient_mlp = ScalarMLPFunction(
            input_dim=input_dim,
            output_dim=_NUM_COEFFICIENTS[order],
            hidden_layers_depth=mlp_hidden_layers_depth,
            hidden_layers_width=mlp_hidden_layers_width,
            nonlinearity=mlp_nonlinearity,
            bias=False,
            forward_weight_init=True,
        )
        scales = [
            dipole_scale,
            polarizability_scale,
            polarizability_scale,
            hyperpolarizability_scale,
            hyperpolarizability_scale,
        ]
        self.log_scales = torch.nn.Parameter(
            torch.log(
                torch.as_tensor(
                    scales[: _NUM_COEFFICIENTS[order]], dtype=torch.get_default_dtype()
                )
            )
        )
        if avg_num_neighbors is None:
            edge_sum_norm = 1.0
        elif isinstance(avg_num_neighbors, dict):
            edge_sum_norm = 1.0 / math.sqrt(
                sum(avg_num_neighbors.values()) / len(avg_num_neighbors)
            )
        else:
            edge_sum_norm = 1.0 / math.sqrt(float(avg_num_neighbors))
        self.edge_sum_norm = edge_sum_norm

        self.has_offset = (
            polarization_offset_fractional is not None or polarization_offset_trainable
        )
        offset = (
            torch.zeros(3)
            if polarization_offset_fractional is None
            else torch.as_tensor(
                polarization_offset_fractional, dtype=torch.get_default_dtype()
            )
        )
        if offset.shape != (3,):
            raise ValueError(
                f"`polarization_offset_fractional` must have 3 entries, got shape {tuple(offset.shape)}"
            )
        offset = offset.to(torch.get_default_dtype())
        if polarization_offset_trainable:
            warnings.warn(
                "`polarization_offset_trainable` is deprecated and ignored: a learned offset "
                "breaks inversion symmetry (P(-R) = -P(R) modulo the quantum). The offset is "
                "fixed and applied as its nearest allowed value (0 or 1/2 per lattice vector); "
                "set `polarization_offset_fractional` to the value `nequip-pol check-data` "
                "reports for your data"
            )
        elif not torch.allclose(2.0 * offset, torch.round(2.0 * offset), atol=1e-6):
            raise ValueError(
                "`polarization_offset_fractional` must be 0 or 1/2 (modulo 1) in each lattice "
                f"direction, the values inversion symmetry allows; got {offset.tolist()} "
                "(`nequip-pol check-data DATA` reports which value the data need)"
            )
        if polarization_offset_trainable:
            # kept a (frozen) parameter so that checkpoints of the learned offset, whose EMA
            # weights and optimizer state count it among the parameters, still load
            self.polarization_offset_fractional = torch.nn.Parameter(
                offset, requires_grad=False
            )
        else:
            self.register_buffer("polarization_offset_fractional", offset)

    def _get_metadata_contributions(self) -> Dict[str, str]:
        # deployed models (LAMMPS) add P0 = f @ cell themselves where the cell is no model input
        if not self.has_offset:
            return {}
        values = self.allowed_offset().tolist()
        return {
            "polarization_offset_fractional": " ".join(repr(float(v)) for v in values)
        }

    @model_modifier(persistent=False, private=False)
    @classmethod
    def initialize_from_checkpoint(cls, model, checkpoint_path: Optional[str] = None):
        """Start training from the weights of an earlier run's checkpoint or of a packaged
        model (fine-tuning on more data, a new schedule, the inversion-allowed offset of the
        config).

        ``checkpoint_path``: a nequip checkpoint (``*.ckpt``: its model weights are copied, not
        its EMA copy) or a nequip package (``*.nequip.zip``, e.g. a shipped model of
        :mod:`nequip_pol.models`: the weights it was packaged with, the EMA weights of an EMA
        run). Every weight must match the freshly built model by name and shape. The
        polarization offset is *not* copied: the config states it (0 or 1/2 per lattice
        vector). Not persistent: a model rebuilt from the new run's checkpoint (packaging,
        compiling) takes that checkpoint's weights and does not need this file. ``None``: the
        model is left as built.
        """
        if checkpoint_path is None:
            return model
        weights = {
            key: value
            for key, value in _saved_model_weights(str(checkpoint_path)).items()
            if not key.endswith("polarization_offset_fractional")
        }
        own = model.state_dict()
        missing = sorted(set(own) - set(weights))
        missing = [
            k for k in missing if not k.endswith("polarization_offset_fractional")
        ]
        unexpected = sorted(set(weights) - set(own))
        mismatched = sorted(
            k for k in set(own) & set(weights) if own[k].shape != weights[k].shape
        )
        if missing or unexpected or mismatched:
            raise ValueError(
                f"initialize_from_checkpoint: {checkpoint_path} does not fit the model "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes "
                f"{mismatched[:5]}): the architecture settings must be those of that run"
            )
        model.load_state_dict(weights, strict=False)
        return model

    def allowed_offset(self) -> torch.Tensor:
        """The offset applied: the stored f projected on {0, 1/2} per lattice vector, (3,)."""
        # + 0.0: a projected -0.0 reads 0.0 in the metadata
        return (
            torch.remainder(
                torch.round(2.0 * self.polarization_offset_fractional.detach()) / 2.0,
                1.0,
            )
            + 0.0
        )

    def _scalar_dim(self, key: str) -> int:
        irreps = Irreps(self.irreps_in[key])
        if not all(ir.l == 0 and ir.p == 1 for _, ir in irreps):
            raise ValueError(
                f"field expansion input `{key}` must be scalars (0e), got {irreps}"
            )
        return irreps.dim

    @staticmethod
    def _empty_field(like: torch.Tensor) -> torch.Tensor:
        return torch.zeros((0, 3), dtype=like.dtype, device=like.device)

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        edge_center = data[AtomicDataDict.EDGE_INDEX_KEY][0]
        edge_neighbor = data[AtomicDataDict.EDGE_INDEX_KEY][1]
        num_nodes = AtomicDataDict.num_nodes(data)
        num_frames = AtomicDataDict.num_frames(data)
        edge_vec = data[AtomicDataDict.EDGE_VECTORS_KEY]
        dtype = edge_vec.dtype

        # === per-edge invariant coefficients, smooth at the cutoff ===
        features: List[torch.Tensor] = []
        for key in self.edge_feature_fields:
            features.append(data[key])
        for key in self.node_feature_fields:
            node_features = data[key]
            features.append(torch.index_select(node_features, 0, edge_center))
            features.append(torch.index_select(node_features, 0, edge_neighbor))
        coefficients = self.coefficient_mlp(torch.cat(features, dim=-1))
        coefficients = (
            coefficients
            * data[AtomicDataDict.EDGE_CUTOFF_KEY].view(-1, 1)
            * (self.log_scales.exp() * self.edge_sum_norm).view(1, -1)
        ).to(dtype)

        # === field at each edge: the frame's field, plus the per-atom field at the centre atom ===
        if ELECTRIC_FIELD_KEY in data:
            field = data[ELECTRIC_FIELD_KEY].to(dtype).view(-1, 3)
        else:
            field = torch.zeros((num_frames, 3), dtype=dtype, device=edge_vec.device)
        if AtomicDataDict.BATCH_KEY in data:
            batch = data[AtomicDataDict.BATCH_KEY]
            edge_frame = torch.index_select(batch, 0, edge_center)
            edge_field = torch.index_select(field, 0, edge_frame)
        else:
            batch = edge_center  # unused: single frame
            edge_frame = edge_center
            edge_field = field.expand(edge_vec.size(0), 3)
        has_atomic_field = ATOMIC_ELECTRIC_FIELD_KEY in data
        if has_atomic_field:
            atomic_field = data[ATOMIC_ELECTRIC_FIELD_KEY].to(dtype).view(-1, 3)
            edge_field = edge_field + torch.index_select(atomic_field, 0, edge_center)
        else:
            atomic_field = self._empty_field(edge_vec)

        rhat = edge_vec / torch.linalg.norm(edge_vec, dim=-1, keepdim=True)
        s = (rhat * edge_field).sum(-1, keepdim=True)  # (num_edges, 1)
        field_sq = (edge_field * edge_field).sum(-1, keepdim=True)

        # enthalpy u, dipole p = -du/dE, polarizability dp/dE of each edge
        c1 = coefficients[:, 0:1]
        edge_energy = -c1 * s
        edge_dipole = c1 * rhat
        edge_alpha = torch.zeros(
            (edge_vec.size(0), 3, 3), dtype=dtype, device=edge_vec.device
        )
        if self.order >= 2:
            c2a = coefficients[:, 1:2]
            c2b = coefficients[:, 2:3]
            rr = rhat.unsqueeze(-1) * rhat.unsqueeze(-2)
            eye = torch.eye(3, dtype=dtype, device=edge_vec.device).unsqueeze(0)
            edge_energy = edge_energy - 0.5 * (c2a * s * s + c2b * field_sq)
            edge_dipole = edge_dipole + c2a * s * rhat + c2b * edge_field
            edge_alpha = edge_alpha + c2a.unsqueeze(-1) * rr + c2b.unsqueeze(-1) * eye
            if self.order >= 3:
                c3a = coefficients[:, 3:4]
                c3b = coefficients[:, 4:5]
                edge_energy = edge_energy - (c3a * s * s * s + c3b * s * field_sq) / 6.0
                edge_dipole = (
                    edge_dipole
                    + 0.5 * c3a * s * s * rhat
                    + (c3b / 6.0) * (field_sq * rhat + 2.0 * s * edge_field)
                )
                re = rhat.unsqueeze(-1) * edge_field.unsqueeze(-2)
                edge_alpha = (
                    edge_alpha
                    + (c3a * s).unsqueeze(-1) * rr
                    + (c3b / 3.0).unsqueeze(-1)
                    * (re + re.transpose(-1, -2) + s.unsqueeze(-1) * eye)
                )

        # === reduce to atoms and frames ===
        atom_field_energy = scatter(edge_energy, edge_center, dim=0, dim_size=num_nodes)
        atom_dipole = scatter(edge_dipole, edge_center, dim=0, dim_size=num_nodes)
        if AtomicDataDict.BATCH_KEY in data:
            polarization = scatter(atom_dipole, batch, dim=0, dim_size=num_frames)
            polarizability = scatter(edge_alpha, edge_frame, dim=0, dim_size=num_frames)
        else:
            polarization = atom_dipole.sum(0, keepdim=True)
            polarizability = edge_alpha.sum(0, keepdim=True)

        if self.has_offset and AtomicDataDict.CELL_KEY in data:
            # the nearest value inversion allows (a no-op for a valid f; projects the learned f
            # of older checkpoints); rounding has no gradient: f is never trained
            allowed = torch.round(2.0 * self.polarization_offset_fractional) / 2.0
            offset = torch.matmul(
                allowed.to(dtype).view(1, 1, 3),
                data[AtomicDataDict.CELL_KEY].view(-1, 3, 3).to(dtype),
            ).view(-1, 3)
            polarization = polarization + offset
            # charged to the atoms evenly, each at its own field: atom i gets -(P0/N).E_i and
            # the dipole P0/N, so that per-atom energies sum to the enthalpy and p_i to P
            if AtomicDataDict.BATCH_KEY in data:
                atom_offset = torch.index_select(offset, 0, batch)
                atom_field = torch.index_select(field, 0, batch)
            else:
                atom_offset = offset.expand(num_nodes, 3)
                atom_field = field.expand(num_nodes, 3)
            if has_atomic_field:
                atom_field = atom_field + atomic_field
            offset_energy = -(atom_offset * atom_field).sum(-1, keepdim=True)
            if AtomicDataDict.BATCH_KEY in data:
                atoms_per_frame = (
                    data[AtomicDataDict.NUM_NODES_KEY].to(dtype).view(-1, 1)
                )
                atom_count = torch.index_select(atoms_per_frame, 0, batch)
                offset_energy = offset_energy / atom_count
                offset_dipole = atom_offset / atom_count
            else:  # divided by the (symbolic, when traced) atom count itself
                offset_energy = offset_energy / num_nodes
                offset_dipole = atom_offset / num_nodes
            atom_field_energy = atom_field_energy + offset_energy
            atom_dipole = atom_dipole + offset_dipole

        energy_key = AtomicDataDict.PER_ATOM_ENERGY_KEY
        data[energy_key] = data[energy_key] + atom_field_energy.to(
            data[energy_key].dtype
        )
        data[PER_ATOM_FIELD_ENERGY_KEY] = atom_field_energy
        data[ATOMIC_DIPOLE_KEY] = atom_dipole
        data[POLARIZATION_KEY] = polarization
        data[POLARIZABILITY_KEY] = polarizability
        return data


def _saved_model_weights(path: str) -> Dict[str, torch.Tensor]:
    """The weights of the single model in a nequip checkpoint or package, keyed as in the
    model's own ``state_dict``."""
    if path.endswith(".nequip.zip"):
        # torch.package directly, not nequip's ModelFromPackage: this module is packaged with
        # every model, and importing nequip.model here would pull nequip's training stack into
        # the package (nequip-package then refuses it)
        from torch.package import PackageImporter

        try:
            models = PackageImporter(path).load_pickle(
                package="model", resource="eager_model.pkl", map_location="cpu"
            )
        except Exception as error:
            raise ValueError(
                f"initialize_from_checkpoint: could not load the package {path}: {error}"
            ) from error
        prefix = "sole_model."
        state = models.state_dict()
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)[
                "state_dict"
            ]
        except Exception as error:
            raise ValueError(
                f"initialize_from_checkpoint: {path} is neither a nequip checkpoint nor a "
                f"package (*.nequip.zip): {error}"
            ) from error
        prefix = "model.sole_model."
    return {
        key[len(prefix) :]: value
        for key, value in state.items()
        if key.startswith(prefix)
    }
