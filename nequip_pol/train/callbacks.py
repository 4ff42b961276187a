"""Lightning callbacks for nequip-train runs: progress lines and CPU-time accounting.

- :class:`EpochProgressPrinter`: one line per epoch (validation RMSEs in meV/atom, meV/A, e*A, e,
  e*A^2/V; elapsed wall and CPU time; time left), optionally a CSV learning curve. Lightning's
  progress bar redraws one line per step, which a log file shows as an unreadable stream::

      trainer:
        enable_progress_bar: false
        callbacks:
          - _target_: nequip_pol.train.EpochProgressPrinter
            csv_path: ${hydra:runtime.output_dir}/progress.csv

- :class:`CPUTimeLogger`: logs the CPU and wall hours spent in training, across restarts.
- :class:`PerRankSeed`: seeds the random projections of the projected Born-charge loss per
  (seed, epoch, DDP rank).
"""

import csv
import os
import time
from typing import Optional

import lightning
import numpy as np
import torch

#: (logged validation metric, printed label, factor to the printed unit, unit)
PROGRESS_COLUMNS = (
    ("per_atom_energy_rmse", "E", 1000.0, "meV/atom"),
    ("forces_rmse", "F", 1000.0, "meV/A"),
    ("stress_rmse", "stress", 1000.0, "meV/A^3"),
    ("polarization_rmse", "P", 1.0, "e*A"),
    ("born_effective_charges_rmse", "Z*", 1.0, "e"),
    ("polarizability_rmse", "alpha", 1.0, "e*A^2/V"),
)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class EpochProgressPrinter(lightning.Callback):
    """Print (and optionally log to CSV) validation RMSEs and timing after every ``every`` epochs.

    The RMSEs are those of the latest validation (every epoch with ``check_val_every_n_epoch: 1``).

    Args:
        every: print every this many epochs (the last epoch is always printed)
        csv_path: if given, append one row per validation: epoch, wall and CPU seconds since the
            start of training, learning rate, and the validation RMSEs in the units above
        prefix: start of each printed line
        metrics_prefix: name of the validation metrics group (nequip's first validation set)
    """

    def __init__(
        self,
        every: int = 1,
        csv_path: Optional[str] = None,
        prefix: str = "[progress]",
        metrics_prefix: str = "val0_epoch",
    ):
        super().__init__()
        self.every = max(1, int(every))
        self.csv_path = csv_path
        self.prefix = prefix
        self.metrics_prefix = metrics_prefix
        self._wall0 = None
        self._cpu0 = None

    def on_train_start(self, trainer, pl_module) -> None:
        self._wall0, self._cpu0 = time.time(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # not on_validation_epoch_end: Lightning runs callbacks' hooks before the module's, and
        # nequip logs the validation metrics in the module's hook
        if self._wall0 is None or trainer.global_rank != 0:
            return
        epoch = trainer.current_epoch + 1
        total = trainer.max_epochs
        last = total is not None and epoch >= total
        wall = time.time() - self._wall0
        cpu = time.process_time() - self._cpu0
        values = {}
        for key, label, factor, unit in PROGRESS_COLUMNS:
            value = trainer.callback_metrics.get(f"{self.metrics_prefix}/{key}")
            if value is not None:
                values[key] = float(value) * factor
        lr = None
        if trainer.optimizers:
            lr = float(trainer.optimizers[0].param_groups[0]["lr"])
        if self.csv_path:
            self._append_csv(epoch, wall, cpu, lr, values)
        if epoch % self.every and not last:
            return
        parts = [
            f"{label} {values[key]:.3g} {unit}"
            for key, label, _, unit in PROGRESS_COLUMNS
            if key in values
        ]
        eta = ""
        if total is not None and total > 0 and total >= epoch:
            eta = f", ~{_clock(wall / epoch * (total - epoch))} left"
        limit = f"/{total}" if total is not None and total > 0 else ""
        print(
            f"{self.prefix} epoch {epoch}{limit}  val RMSE: "
            + ", ".join(parts)
            + f"  | {_clock(wall)} elapsed (CPU {_clock(cpu)}){eta}",
            flush=True,
        )

    def _append_csv(self, epoch, wall, cpu, lr, values) -> None:
        new = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(
                    ["epoch", "wall_s", "cpu_s", "lr"]
                    + [key for key, *_ in PROGRESS_COLUMNS]
                )
            writer.writerow(
                [epoch, f"{wall:.2f}", f"{cpu:.2f}", "" if lr is None else f"{lr:.6g}"]
                + [
                    "" if key not in values else f"{values[key]:.6g}"
                    for key, *_ in PROGRESS_COLUMNS
                ]
            )


class CPUTimeLogger(lightning.Callback):
    """Log the CPU time spent in training so far, across restarts.

    Logs ``cpu_hours`` (CPU time of the training process, all threads, since ``fit`` started,
    plus what earlier runs of the same training spent: the total rides in the checkpoint) and
    ``wall_hours`` likewise, and the learning rate ``lr`` the epoch trained with (first parameter group), once per
    training epoch (after validation). Use it to plot learning
    curves against compute and to compare the cost of training setups:

        trainer:
          callbacks:
            - _target_: nequip_pol.train.CPUTimeLogger

    The time before ``fit`` starts (imports, reading data, neighbour lists) is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cpu_offset = 0.0
        self._wall_offset = 0.0
        self._cpu_start = time.process_time()
        self._wall_start = time.time()

    def _totals(self):
        return (
            self._cpu_offset + time.process_time() - self._cpu_start,
            self._wall_offset + time.time() - self._wall_start,
        )

    def on_fit_start(self, trainer, pl_module) -> None:
        self._cpu_start = time.process_time()
        self._wall_start = time.time()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # read here: Lightning steps per-epoch schedulers before the callbacks' epoch-end hooks
        self._epoch_lr = (
            float(trainer.optimizers[0].param_groups[0]["lr"])
            if trainer.optimizers
            else None
        )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        cpu, wall = self._totals()
        pl_module.log("cpu_hours", cpu / 3600.0, on_step=False, on_epoch=True)
        pl_module.log("wall_hours", wall / 3600.0, on_step=False, on_epoch=True)
        if getattr(self, "_epoch_lr", None) is not None:
            pl_module.log("lr", self._epoch_lr, on_step=False, on_epoch=True)

    def state_dict(self):
        cpu, wall = self._totals()
        return {"cpu_seconds": cpu, "wall_seconds": wall}

    def load_state_dict(self, state_dict) -> None:
        self._cpu_offset = float(state_dict.get("cpu_seconds", 0.0))
        self._wall_offset = float(state_dict.get("wall_seconds", 0.0))
        self._cpu_start = time.process_time()
        self._wall_start = time.time()


class PerRankSeed(lightning.Callback):
    """Seed torch's global random number generator at the start of every training epoch from
    (``seed``, epoch, global rank).

    nequip-train seeds no global generator, so the unit vectors v of the projected Born-charge
    loss (``born_charge_training: projected``) come from torch's random start-up seed: a rerun
    or a restart draws other vectors. With this callback every DDP rank draws its own vectors
    for its frames, reproducibly from the config's seed, and a run resumed from a checkpoint
    draws in each epoch what an uninterrupted run draws::

        trainer:
          callbacks:
            - _target_: nequip_pol.train.PerRankSeed
              seed: ${seed}
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)

    def seed_for(self, epoch: int, rank: int) -> int:
        """The 63-bit seed of ``epoch`` on global rank ``rank``."""
        words = np.random.SeedSequence(
            [self.seed, int(epoch), int(rank)]
        ).generate_state(2, dtype=np.uint32)
        return (int(words[0]) << 31) | (int(words[1]) >> 1)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        torch.manual_seed(self.seed_for(trainer.current_epoch, trainer.global_rank))
