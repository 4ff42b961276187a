"""Learning-rate schedules that know the training budget.

:class:`WarmupStableDecayLR` ramps the learning rate up linearly over the first epochs, holds it,
then decays it (cosine or linear) to a small final value at the planned last epoch. Decaying over
all epochs after the warm-up is the usual warm-up + cosine schedule; decaying over the last
``decay_epochs`` only is a warm-up-stable-decay (WSD) schedule, which suits long runs in chunks:
the stable phase can be extended (a larger ``max_epochs``), and a decay branched off any of its
checkpoints (resume at epoch k with ``max_epochs = k + N`` and ``decay_epochs = N``), without
redoing the earlier epochs.

The learning rate is a closed-form function of the epoch and the settings: the scheduler's state
(saved in checkpoints) holds only the epoch counter and the base learning rates, so a run resumed
with other settings (a longer plan, a later decay) follows the new settings from its current epoch.

:class:`DecayStageLossWeights` changes the loss weights where that decay starts (a final stage
with, e.g., a higher energy weight).
"""

import math
from typing import Dict, Optional

import lightning
import torch

from .metrics import loss_term_name


class WarmupStableDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """Linear warm-up, constant plateau, cosine or linear decay; stepped once per epoch.

    The factor applied to each parameter group's base learning rate at epoch ``e`` (0-based, the
    epoch about to be trained) is

    - ``(e + 1) / (warmup_epochs + 1)`` for ``e < warmup_epochs``;
    - 1 until the decay starts at ``s = total_epochs - decay_epochs``;
    - from 1 down to ``final_lr_factor`` at ``total_epochs - 1``, cosine or linear in
      ``(e - s) / (total_epochs - 1 - s)``;
    - ``final_lr_factor`` after ``total_epochs``.

    Args:
        optimizer: the optimizer (given by nequip's training module)
        total_epochs: the planned number of epochs (the trainer's ``max_epochs``)
        warmup_epochs: epochs of linear warm-up (0: none)
        decay_epochs: length of the decay, ending at the last planned epoch (default: every epoch
            after the warm-up, i.e. no plateau)
        decay_fraction: the decay length as a fraction of ``total_epochs``, used where
            ``decay_epochs`` is None (rounded, at least 1 epoch, at most the epochs after the
            warm-up; 1/3 is the WSD recipe of ``configs/dft.yaml``)
        final_lr_factor: learning rate at the last epoch, as a fraction of the base learning rate
            (0.002 takes lr 0.005 to 1e-5)
        shape: ``cosine`` or ``linear`` decay
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_epochs: int,
        warmup_epochs: int = 0,
        decay_epochs: int = None,
        final_lr_factor: float = 0.002,
        decay_fraction: float = None,
        shape: str = "cosine",
        last_epoch: int = -1,
    ):
        if total_epochs < 1:
            raise ValueError(f"total_epochs must be at least 1, not {total_epochs}")
        if decay_fraction is not None and decay_epochs is None:
            if not 0.0 < decay_fraction <= 1.0:
                raise ValueError(
                    f"decay_fraction must lie in (0, 1], not {decay_fraction}"
                )
            decay_epochs = max(1, round(decay_fraction * total_epochs))
            decay_epochs = min(decay_epochs, total_epochs - warmup_epochs)
        decay_epochs = (
            total_epochs - warmup_epochs if decay_epochs is None else decay_epochs
        )
        if (
            warmup_epochs < 0
            or decay_epochs < 0
            or warmup_epochs + decay_epochs > total_epochs
        ):
            raise ValueError(
                "need warmup_epochs >= 0, decay_epochs >= 0 and warmup_epochs + decay_epochs <= "
                f"total_epochs, got {warmup_epochs}, {decay_epochs}, {total_epochs}"
            )
        if not 0.0 <= final_lr_factor <= 1.0:
            raise ValueError(
                f"final_lr_factor must lie in [0, 1], not {final_lr_factor}"
            )
        if shape not in ("cosine", "linear"):
            raise ValueError(f"shape must be 'cosine' or 'linear', not {shape!r}")
        self.total_epochs = int(total_epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.decay_start_epoch = int(total_epochs - decay_epochs)
        self.final_lr_factor = float(final_lr_factor)
        self.shape = shape
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        """The learning-rate factor of (0-based) epoch ``epoch``."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        if epoch < self.decay_start_epoch:
            return 1.0
        span = self.total_epochs - 1 - self.decay_start_epoch
        progress = (
            1.0 if span <= 0 else min(1.0, (epoch - self.decay_start_epoch) / span)
        )
        if self.shape == "cosine":
            weight = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            weight = 1.0 - progress
        return self.final_lr_factor + (1.0 - self.final_lr_factor) * weight

    def get_lr(self):
        factor = self.factor(max(self.last_epoch, 0))
        return [base_lr * factor for base_lr in self.base_lrs]

    # the settings stay those of the config, not of the checkpoint: see the module docstring
    _STATE_KEYS = (
        "last_epoch",
        "base_lrs",
        "_step_count",
        "_last_lr",
        "_get_lr_called_within_step",
    )

    def state_dict(self):
        return {
            key: self.__dict__[key] for key in self._STATE_KEYS if key in self.__dict__
        }

    def load_state_dict(self, state_dict):
        self.__dict__.update(
            {key: state_dict[key] for key in self._STATE_KEYS if key in state_dict}
        )
        # the learning rate of the resumed epoch under the current settings
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


class DecayStageLossWeights(lightning.Callback):
    """Multiply loss weights when the learning-rate decay starts: a final training stage.

    A common last stage of NequIP/MACE training lowers the learning rate and raises the energy
    weight (energies are the smallest, most precise labels; the decay is when the model can fit
    them). With :class:`WarmupStableDecayLR` the decay start is known, so this callback scales
    the named loss terms there, once (the new weights, renormalized to sum 1 as nequip's
    :class:`~nequip.train.MetricsManager` keeps them, are saved in checkpoints, and so is the fact
    that they were applied: a resumed run neither repeats nor undoes it, even under a new plan).

    Example (energy weight x10 in the decay)::

        callbacks:
          - _target_: nequip_pol.train.DecayStageLossWeights
            scale: {total_energy: 10.0}

    Args:
        scale: loss term -> factor. A term is named by its key in the loss's ``coeffs``
            (``total_energy``, ``forces``, ``born_effective_charges``, ...) or by its metric name
            (``per_atom_energy_mse``, ``forces_mse``, ...); None or empty: the callback does
            nothing
    """

    def __init__(self, scale: Optional[Dict[str, float]] = None) -> None:
        self.scale = {str(k): float(v) for k, v in (scale or {}).items()}
        bad = {k: v for k, v in self.scale.items() if not v > 0.0}
        if bad:
            raise ValueError(f"loss-weight factors must be positive, got {bad}")
        self.applied = False

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if not self.scale or self.applied:
            return
        schedulers = [
            config.scheduler
            for config in trainer.lr_scheduler_configs
            if isinstance(config.scheduler, WarmupStableDecayLR)
        ]
        if not schedulers:
            raise RuntimeError(
                "DecayStageLossWeights needs the learning-rate scheduler "
                "nequip_pol.train.WarmupStableDecayLR (it scales the loss where that decay starts)"
            )
        if trainer.current_epoch < schedulers[0].decay_start_epoch:
            return
        entries = pl_module.loss.entries
        factors = {
            _loss_term(name, entries): factor for name, factor in self.scale.items()
        }
        pl_module.loss.set_coeffs(
            {
                name: None
                if entry.coeff is None
                else entry.coeff * factors.get(name, 1.0)
                for name, entry in entries.items()
            }
        )
        self.applied = True

    def state_dict(self):
        return {"applied": self.applied}

    def load_state_dict(self, state_dict) -> None:
        self.applied = bool(state_dict.get("applied", False))


def _loss_term(name: str, entries) -> str:
    """The metric name of a loss term given by its ``coeffs`` key or its metric name."""
    # the energy's term is per_atom_energy_mse or total_energy_mse (ElectricResponseLoss's choice)
    for candidate in (name, loss_term_name(name, True), loss_term_name(name, False)):
        if candidate in entries:
            if entries[candidate].coeff is None:
                raise ValueError(
                    f"DecayStageLossWeights: the loss term {name!r} has no weight (it is not "
                    "trained on), so it cannot be scaled"
                )
            return candidate
    raise ValueError(
        f"DecayStageLossWeights: no loss term {name!r}; the loss has {list(entries)}"
    )
