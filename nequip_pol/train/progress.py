"""A one-line-per-epoch progress report for ``nequip-train`` runs (a Lightning callback).

Lightning's progress bar redraws one line per step, which a log file or a notebook shows as an
unreadable stream; :class:`EpochProgressPrinter` prints, after each validation, one line with the
epoch, the validation RMSEs of the electric-response metrics (in meV/atom, meV/A, e*A, e,
e*A^2/V), the elapsed wall and CPU time and an estimate of the time left, and optionally appends
the same numbers to a CSV file (a learning curve)::

    trainer:
      enable_progress_bar: false
      callbacks:
        - _target_: nequip_pol.train.progress.EpochProgressPrinter
          csv_path: ${hydra:runtime.output_dir}/progress.csv
"""

import csv
import os
import time
from typing import Optional

import lightning

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
        parts = [f"{label} {values[key]:.3g} {unit}" for key, label, _, unit in PROGRESS_COLUMNS if key in values]
        eta = ""
        if total is not None and total > 0 and total >= epoch:
            eta = f", ~{_clock(wall / epoch * (total - epoch))} left"
        limit = f"/{total}" if total is not None and total > 0 else ""
        print(
            f"{self.prefix} epoch {epoch}{limit}  val RMSE: " + ", ".join(parts)
            + f"  | {_clock(wall)} elapsed (CPU {_clock(cpu)}){eta}",
            flush=True,
        )

    def _append_csv(self, epoch, wall, cpu, lr, values) -> None:
        new = not os.path.exists(self.csv_path)
        with open(self.csv_path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "wall_s", "cpu_s", "lr"] + [key for key, *_ in PROGRESS_COLUMNS])
            writer.writerow(
                [epoch, f"{wall:.2f}", f"{cpu:.2f}", "" if lr is None else f"{lr:.6g}"]
                + ["" if key not in values else f"{values[key]:.6g}" for key, *_ in PROGRESS_COLUMNS]
            )
