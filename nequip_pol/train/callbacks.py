"""Lightning callbacks for training on a CPU budget."""

import time

import lightning


class CPUTimeLogger(lightning.Callback):
    """Log the CPU time spent in training so far, across restarts.

    Logs ``cpu_hours`` (CPU time of the training process, all threads, since ``fit`` started,
    plus what earlier runs of the same training spent: the total rides in the checkpoint) and
    ``wall_hours`` likewise, once per training epoch (after validation). Use it to plot learning
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

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        cpu, wall = self._totals()
        pl_module.log("cpu_hours", cpu / 3600.0, on_step=False, on_epoch=True)
        pl_module.log("wall_hours", wall / 3600.0, on_step=False, on_epoch=True)

    def state_dict(self):
        cpu, wall = self._totals()
        return {"cpu_seconds": cpu, "wall_seconds": wall}

    def load_state_dict(self, state_dict) -> None:
        self._cpu_offset = float(state_dict.get("cpu_seconds", 0.0))
        self._wall_offset = float(state_dict.get("wall_seconds", 0.0))
        self._cpu_start = time.process_time()
        self._wall_start = time.time()
