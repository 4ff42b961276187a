"""The electric-response head shared by the NequIP-pol and Allegro-pol models.

From the electric enthalpy E(R, E) of the wrapped energy model it computes, by exact
differentiation (units eV, A, V/A, e):

- ``forces`` F_i = -dE/dR_i (eV/A, (num_atoms, 3)),
- ``virial`` and ``stress`` (eV and eV/A^3, (num_frames, 3, 3)) from the symmetric strain
  derivative, nequip's convention (stress = (1/V) dE/d(strain), virial = -V stress),
- ``polarization`` P = -dE/dE (cell dipole, e*A, (num_frames, 3)),
- ``born_effective_charges`` Z*_i,ab = dP_a/dR_ib (e, (num_atoms, 3, 3)),
- ``polarizability`` alpha_ab = dP_a/dE_b (e*A^2/V, (num_frames, 3, 3)).

With a per-atom field ``atomic_electric_field`` (added to the frame's field at each atom, see
:class:`~nequip_pol.nn.FieldExpansionEnergy`), every derivative with respect to positions or
strain (forces, stress, Z*) is taken at fixed per-atom field values, and E in P = -dE/dE and
alpha = dP/dE is the uniform (frame) field on top of it.

Two sources of P: ``"field_expansion"`` uses the closed-form P and alpha written by
:class:`~nequip_pol.nn.FieldExpansionEnergy` (exact derivatives of its enthalpy), so Z* needs
only first-order backward passes; ``"autograd"`` differentiates the energy with respect to the
field (any field-dependent energy model), with Z* and alpha by a second backward pass.

Z* needs one derivative of P per field direction. ``born_charge_method="loop"`` (default) runs the
force backward and the three backward passes of P one after the other on a retained graph;
``"vmap"`` runs them as one batched vector-Jacobian product over four cotangents. On CPU the loop
is faster and needs far less memory (``benchmarks/response_cost.py``: at 1080 atoms, float32,
Allegro, Z*+alpha cost 2.9x E+F+stress with the loop, 4.1x with vmap; memory 1.2x vs 2.3x).

Cheaper training steps: ``born_charge_training="projected"`` (or the non-persistent model modifier
``born_charge_training_mode``, e.g. in a training config ``_target_: nequip.model.modify`` with
``modifiers: [{modifier: born_charge_training_mode, mode: projected}]``) makes the head, *in training mode only*, draw one random unit
vector v per frame and compute the projected Born charges (v.Z*)_ib = sum_a v_a Z*_i,ab =
d(v.P)/dR_ib with a single backward pass instead of three. It writes v under
``born_charge_projection`` ((num_frames, 3)) and v.Z* under ``projected_born_effective_charges``
((num_atoms, 3), e) instead of the full Z*; :class:`~nequip_pol.train.ElectricResponseLoss`
compares it with v.Z*_ref. Since E[v v^T] = I/3 for v uniform on the sphere, the mean of
(v.(Z* - Z*_ref))_ib^2 over atoms i and components b is an unbiased estimate of the mean of
(Z* - Z*_ref)_iab^2 over all nine components (the full Z* MSE). In eval mode (validation, test,
inference, deployment) the head computes the full Z*, unchanged.
"""

import torch

from nequip.data import AtomicDataDict
from nequip.nn import GraphModuleMixin
from nequip.nn.model_modifier_utils import model_modifier, replace_submodules

from .._keys import (
    ELECTRIC_FIELD_KEY,
    ATOMIC_ELECTRIC_FIELD_KEY,
    POLARIZATION_KEY,
    BORN_CHARGE_KEY,
    POLARIZABILITY_KEY,
)

from typing import List, Optional, Sequence, Tuple

RESPONSE_OUTPUTS = (POLARIZATION_KEY, BORN_CHARGE_KEY, POLARIZABILITY_KEY)
BORN_CHARGE_TRAINING_MODES = ("full", "projected")
#: random unit vector v per frame of a projected Born-charge training step, (num_frames, 3)
BORN_CHARGE_PROJECTION_KEY = "born_charge_projection"
#: projected Born charges (v.Z*)_ib = sum_a v_a Z*_i,ab = d(v.P)/dR_ib, (num_atoms, 3), e
PROJECTED_BORN_CHARGE_KEY = "projected_born_effective_charges"
POLARIZATION_SOURCES = ("field_expansion", "autograd")
BORN_CHARGE_METHODS = ("vmap", "loop")


def _is_tracing() -> bool:
    """True under torch.compile/export and nequip's make_fx tracing, where values are symbolic."""
    from torch.fx.experimental.proxy_tensor import get_proxy_mode

    return torch.compiler.is_compiling() or get_proxy_mode() is not None


def _check_field(data: AtomicDataDict.Type, key: str, rows: int, what: str) -> None:
    field = data[key]
    if field.dim() != 2 or field.shape[0] != rows or field.shape[1] != 3:
        raise ValueError(
            f"`{key}` must have shape ({what}, 3) = ({rows}, 3) in V/A, got {tuple(field.shape)}"
        )
    if not _is_tracing():
        if not bool(torch.isfinite(field).all()):
            bad = (~torch.isfinite(field)).any(-1).nonzero().flatten()[:5].tolist()
            raise ValueError(
                f"`{key}` contains NaN or infinite values (rows {bad}, first ones)"
            )


def check_electric_field(data: AtomicDataDict.Type) -> None:
    """Raise a ``ValueError`` naming ``electric_field`` (or ``atomic_electric_field``) if it has
    the wrong shape or is not finite."""
    if ELECTRIC_FIELD_KEY in data:
        _check_field(
            data, ELECTRIC_FIELD_KEY, AtomicDataDict.num_frames(data), "num_frames"
        )
    if ATOMIC_ELECTRIC_FIELD_KEY in data:
        _check_field(
            data, ATOMIC_ELECTRIC_FIELD_KEY, AtomicDataDict.num_nodes(data), "num_atoms"
        )


def _polarization_jacobian(
    polarization: torch.Tensor, wrt: torch.Tensor, create_graph: bool, keep_graph: bool
) -> torch.Tensor:
    """dP_a/d(wrt)_b stacked as (len(wrt), a, b): one backward pass per direction a.

    ``keep_graph``: keep the graph after the last pass (more derivatives of P follow).
    """
    rows: List[torch.Tensor] = []
    for a in range(3):
        grad = torch.autograd.grad(
            [polarization[:, a].sum()],
            [wrt],
            retain_graph=keep_graph or a < 2 or create_graph,
            create_graph=create_graph,
        )[0]
        assert grad is not None
        rows.append(grad)
    return torch.stack(rows, dim=1)


def _energy_gradients(
    energy: torch.Tensor,
    pos: torch.Tensor,
    strain: torch.Tensor,
    retain_graph: bool,
    create_graph: bool,
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """dE/dR (num_atoms, 3) and dE/d(strain) (num_frames, 3, 3) of the summed energy, eV/A and
    eV; the second None when the strain does not enter (no stress computed).

    ``retain_graph``: keep the graph for more backward passes (Born charges from P after this);
    ``create_graph``: make the gradients differentiable (training on forces and stress).
    """
    grads = torch.autograd.grad(
        [energy.sum()],
        [pos, strain],
        retain_graph=retain_graph,
        create_graph=create_graph,
        allow_unused=True,
    )
    return grads[0], grads[1]


class ElectricResponseOutput(GraphModuleMixin, torch.nn.Module):
    """Forces, stress and the electric response of a field-dependent energy model.

    Args:
        func: the energy model (a ``SequentialGraphNetwork`` producing ``total_energy``)
        response_outputs: which of ``polarization``, ``born_effective_charges``,
            ``polarizability`` to compute (default: all); forces and stress are always computed
        polarization_source: ``"field_expansion"`` or ``"autograd"`` (see module docstring)
        born_charge_method: ``"vmap"`` or ``"loop"`` (see module docstring)
        born_charge_training: ``"full"`` (default) or ``"projected"``: in training mode, compute
            only v.Z* for a random unit vector v per frame (one backward pass; see module docstring)
        do_derivatives: if ``False``, only run ``func`` (energy only)
        compute_stress: if ``False``, skip the strain derivative (no stress or virial)
    """

    compute_polarization: bool
    compute_born_charges: bool
    compute_polarizability: bool
    autograd_polarization: bool
    vmap_born_charges: bool
    project_born_charges: bool
    do_derivatives: bool
    compute_stress: bool

    def __init__(
        self,
        func: GraphModuleMixin,
        response_outputs: Optional[Sequence[str]] = None,
        polarization_source: str = "field_expansion",
        born_charge_method: str = "loop",
        do_derivatives: bool = True,
        compute_stress: bool = True,
        born_charge_training: str = "full",
    ):
        super().__init__()
        response_outputs = list(
            RESPONSE_OUTPUTS if response_outputs is None else response_outputs
        )
        unknown = [k for k in response_outputs if k not in RESPONSE_OUTPUTS]
        if unknown:
            raise ValueError(
                f"unknown `response_outputs` {unknown}; choose from {list(RESPONSE_OUTPUTS)}"
            )
        if polarization_source not in POLARIZATION_SOURCES:
            raise ValueError(
                f"`polarization_source` must be one of {POLARIZATION_SOURCES}, got {polarization_source!r}"
            )
        if born_charge_method not in BORN_CHARGE_METHODS:
            raise ValueError(
                f"`born_charge_method` must be one of {BORN_CHARGE_METHODS}, got {born_charge_method!r}"
            )
        if born_charge_training not in BORN_CHARGE_TRAINING_MODES:
            raise ValueError(
                f"`born_charge_training` must be one of {BORN_CHARGE_TRAINING_MODES}, got {born_charge_training!r}"
            )
        if (
            polarization_source == "field_expansion"
            and POLARIZATION_KEY not in func.irreps_out
        ):
            raise ValueError(
                "`polarization_source='field_expansion'` needs an energy model with a FieldExpansionEnergy module"
            )
        self.func = func
        self.response_outputs: List[str] = response_outputs
        self.compute_born_charges = BORN_CHARGE_KEY in response_outputs
        self.compute_polarizability = POLARIZABILITY_KEY in response_outputs
        # Z* and alpha are derivatives of P, so P comes with them
        self.compute_polarization = (
            POLARIZATION_KEY in response_outputs
            or self.compute_born_charges
            or self.compute_polarizability
        )
        self.polarization_source = polarization_source
        self.autograd_polarization = polarization_source == "autograd"
        self.born_charge_method = born_charge_method
        self.vmap_born_charges = born_charge_method == "vmap"
        self.born_charge_training = born_charge_training
        self.project_born_charges = born_charge_training == "projected"
        self.do_derivatives = do_derivatives
        self.compute_stress = compute_stress

        irreps_in = dict(func.irreps_in)
        irreps_in[ELECTRIC_FIELD_KEY] = "1o"
        irreps_in[ATOMIC_ELECTRIC_FIELD_KEY] = "1o"
        self._init_irreps(irreps_in=irreps_in, irreps_out=func.irreps_out.copy())
        self.irreps_out[AtomicDataDict.FORCE_KEY] = "1o"
        if compute_stress:
            self.irreps_out[AtomicDataDict.STRESS_KEY] = None
            self.irreps_out[AtomicDataDict.VIRIAL_KEY] = None
        if self.compute_polarization:
            self.irreps_out[POLARIZATION_KEY] = "1o"
        if self.compute_born_charges:
            self.irreps_out[BORN_CHARGE_KEY] = None
        if self.compute_polarizability:
            self.irreps_out[POLARIZABILITY_KEY] = None
        self.register_buffer("_empty", torch.Tensor())

    def forward(self, data: AtomicDataDict.Type) -> AtomicDataDict.Type:
        check_electric_field(data)
        if not self.do_derivatives:
            return self.func(data)
        create_graph = self.training  # gradients of these outputs are trained on

        num_frames = AtomicDataDict.num_frames(data)
        batched = AtomicDataDict.BATCH_KEY in data
        pos = data[AtomicDataDict.POSITIONS_KEY]
        # the cell is touched (strained and restored) only when the stress is computed
        has_cell = AtomicDataDict.CELL_KEY in data and self.compute_stress

        # === symmetric strain, applied to positions and cell ===
        strain = torch.zeros((num_frames, 3, 3), dtype=pos.dtype, device=pos.device)
        strain.requires_grad_(True)
        symmetric_strain = 0.5 * (strain + strain.transpose(-1, -2))
        did_pos_require_grad = pos.requires_grad
        pos.requires_grad_(True)
        if self.compute_stress:
            if batched:
                atom_strain = torch.index_select(
                    symmetric_strain, 0, data[AtomicDataDict.BATCH_KEY]
                )
            else:
                atom_strain = symmetric_strain.expand(pos.size(0), 3, 3)
            data[AtomicDataDict.POSITIONS_KEY] = pos + torch.bmm(
                pos.unsqueeze(-2), atom_strain
            ).squeeze(-2)
        if has_cell:
            orig_cell = data[AtomicDataDict.CELL_KEY]
            cell = orig_cell.view(-1, 3, 3).expand(num_frames, 3, 3)
            data[AtomicDataDict.CELL_KEY] = cell + torch.bmm(cell, symmetric_strain)
        else:
            orig_cell = self._empty
            cell = self._empty

        # === field ===
        if ELECTRIC_FIELD_KEY in data:
            field = data[ELECTRIC_FIELD_KEY].view(num_frames, 3).to(pos.dtype)
        else:
            field = torch.zeros((num_frames, 3), dtype=pos.dtype, device=pos.device)
        if self.autograd_polarization and self.compute_polarization:
            field = field.detach().requires_grad_(True)
        data[ELECTRIC_FIELD_KEY] = field

        data = self.func(data)
        energy = data[AtomicDataDict.TOTAL_ENERGY_KEY]

        need_p_graph = self.compute_born_charges or self.compute_polarizability
        born_charges = self._empty
        polarizability = self._empty
        projection = self._empty
        project = self.project_born_charges and self.training
        if self.autograd_polarization and self.compute_polarization:
            grads = torch.autograd.grad(
                [energy.sum()],
                [pos, strain, field],
                create_graph=create_graph or need_p_graph,
                allow_unused=True,
            )
            force_grad, virial_grad, field_grad = grads[0], grads[1], grads[2]
            assert field_grad is not None
            polarization = torch.neg(field_grad)
            if self.compute_born_charges:
                born_charges = _polarization_jacobian(
                    polarization, pos, create_graph, keep_graph=True
                )
            if self.compute_polarizability:
                polarizability = _polarization_jacobian(
                    polarization, field, create_graph, keep_graph=True
                )
        elif self.compute_born_charges and project:
            # training step with the projected Born-charge loss: force backward + one backward of v.P
            polarization = data[POLARIZATION_KEY]
            force_grad, virial_grad = _energy_gradients(
                energy, pos, strain, retain_graph=True, create_graph=create_graph
            )
            projection = torch.randn(
                (num_frames, 3), dtype=polarization.dtype, device=polarization.device
            )
            projection = projection / projection.norm(dim=-1, keepdim=True)
            born_charges = torch.autograd.grad(
                [(polarization * projection).sum()], [pos], create_graph=create_graph
            )[0]
            assert born_charges is not None
            if self.compute_polarizability:
                polarizability = data[POLARIZABILITY_KEY]
        elif self.compute_born_charges:
            polarization = data[POLARIZATION_KEY]
            # batched backward can neither be traced for export nor run under anomaly mode
            # (which inspects every gradient with `.item()`): there the loop does the same work
            if (
                self.vmap_born_charges
                and not torch.is_anomaly_enabled()
                and not _is_tracing()
            ):
                # one batched backward: cotangent 0 -> (dE/dR, dE/dstrain), cotangents 1..3 -> dP_a/dR
                eye = torch.eye(4, dtype=energy.dtype, device=energy.device)
                energy_cotangent = eye[:, 0].view(4, 1).expand(4, num_frames)
                polarization_cotangent = (
                    eye[:, 1:].view(4, 1, 3).expand(4, num_frames, 3)
                )
                grads = torch.autograd.grad(
                    [energy.view(num_frames), polarization],
                    [pos, strain],
                    grad_outputs=[energy_cotangent, polarization_cotangent],
                    is_grads_batched=True,
                    create_graph=create_graph,
                    allow_unused=True,
                )
                all_pos_grads, all_strain_grads = grads[0], grads[1]
                assert all_pos_grads is not None
                force_grad = all_pos_grads[0]
                virial_grad = None if all_strain_grads is None else all_strain_grads[0]
                born_charges = all_pos_grads[1:].permute(1, 0, 2)  # (num_atoms, a, b)
            else:
                force_grad, virial_grad = _energy_gradients(
                    energy, pos, strain, retain_graph=True, create_graph=create_graph
                )
                born_charges = _polarization_jacobian(
                    polarization, pos, create_graph, keep_graph=False
                )
            if self.compute_polarizability:
                polarizability = data[POLARIZABILITY_KEY]
        else:
            force_grad, virial_grad = _energy_gradients(
                energy,
                pos,
                strain,
                retain_graph=create_graph,
                create_graph=create_graph,
            )
            polarization = (
                data[POLARIZATION_KEY] if self.compute_polarization else self._empty
            )
            if self.compute_polarizability:
                polarizability = data[POLARIZABILITY_KEY]

        assert force_grad is not None
        data[AtomicDataDict.FORCE_KEY] = torch.neg(force_grad)
        if virial_grad is None:  # compute_stress=False
            virial_grad = torch.zeros(
                (num_frames, 3, 3), dtype=pos.dtype, device=pos.device
            )
        virial_grad = virial_grad.view(num_frames, 3, 3)
        if has_cell:
            volume = torch.linalg.det(cell).abs().view(num_frames, 1, 1)
            # frames without a cell (zero volume) get NaN stress, as in nequip
            has_volume = volume > 0
            safe_volume = torch.where(has_volume, volume, torch.ones_like(volume))
            stress = torch.where(
                has_volume,
                virial_grad / safe_volume,
                torch.full_like(virial_grad, float("nan")),
            )
            data[AtomicDataDict.CELL_KEY] = orig_cell
        else:
            stress = self._empty
        if self.compute_stress:
            data[AtomicDataDict.STRESS_KEY] = stress
            data[AtomicDataDict.VIRIAL_KEY] = torch.neg(virial_grad)
        data[AtomicDataDict.POSITIONS_KEY] = pos
        if self.compute_polarization:
            data[POLARIZATION_KEY] = polarization
        elif POLARIZATION_KEY in data:
            del data[POLARIZATION_KEY]
        if self.compute_born_charges and project and not self.autograd_polarization:
            data[BORN_CHARGE_PROJECTION_KEY] = projection
            data[PROJECTED_BORN_CHARGE_KEY] = born_charges
        elif self.compute_born_charges:
            data[BORN_CHARGE_KEY] = born_charges
        if self.compute_polarizability:
            data[POLARIZABILITY_KEY] = polarizability
        elif POLARIZABILITY_KEY in data:
            del data[POLARIZABILITY_KEY]
        if not did_pos_require_grad:
            pos.requires_grad_(False)
        return data

    def _with_outputs(
        self,
        response_outputs: Sequence[str],
        born_charge_training: Optional[str] = None,
    ) -> "ElectricResponseOutput":
        return type(self)(
            func=self.func,
            response_outputs=response_outputs,
            polarization_source=self.polarization_source,
            born_charge_method=self.born_charge_method,
            do_derivatives=self.do_derivatives,
            compute_stress=self.compute_stress,
            born_charge_training=self.born_charge_training
            if born_charge_training is None
            else born_charge_training,
        )

    @model_modifier(persistent=False, private=False)
    @classmethod
    def born_charge_training_mode(cls, model, mode: str = "projected"):
        """How training steps fit the Born charges: ``"projected"`` (v.Z* for a random unit vector
        v per frame, one backward pass instead of three) or ``"full"``. Evaluation always gives the
        full Z*. Not persistent: packaged, compiled and deployed models are unaffected."""
        if mode not in BORN_CHARGE_TRAINING_MODES:
            raise ValueError(
                f"`mode` of born_charge_training_mode must be one of {BORN_CHARGE_TRAINING_MODES}, got {mode!r}"
            )
        return replace_submodules(
            model, cls, lambda old: old._with_outputs(old.response_outputs, mode)
        )

    @model_modifier(persistent=True, private=False)
    @classmethod
    def disable_born_charges(cls, model):
        """Stop computing Born charges (cheaper MD when only forces, P and alpha are needed)."""
        return replace_submodules(
            model,
            cls,
            lambda old: old._with_outputs(
                [k for k in old.response_outputs if k != BORN_CHARGE_KEY]
            ),
        )

    @model_modifier(persistent=True, private=False)
    @classmethod
    def energy_forces_only(cls, model):
        """Compute only energy, forces and stress: no electric-response outputs."""
        return replace_submodules(model, cls, lambda old: old._with_outputs([]))

    @model_modifier(persistent=True, private=False)
    @classmethod
    def enable_all_response(cls, model):
        """Compute P, Z* and alpha."""
        return replace_submodules(
            model, cls, lambda old: old._with_outputs(list(RESPONSE_OUTPUTS))
        )
