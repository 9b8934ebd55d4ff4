"""Runs one fit in a fresh process, for the SIGKILL tests: ``python reliability_worker.py KIND CKPT OUT DELAY LOG``.

KIND is ``policy`` or ``refiner``. The fit checkpoints to CKPT after every step and sleeps DELAY seconds per step
(so the test can kill it mid-run); the first step it runs is appended to LOG (so the test can see where a resumed
fit started); the result is saved to OUT.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from reliability_helpers import POLICY_FIT, REFINER_FIT, policy_data, refiner_data  # noqa: E402

from learned_augment.fit import fit_policy  # noqa: E402
from learned_augment.refine import fit_refiner  # noqa: E402


def main(kind: str, ckpt: str, out: str, delay: float, log: str) -> None:
    first: list[str] = []

    def note(where: str) -> None:
        if not first:
            first.append(where)
            with open(log, "a") as f:
                f.write(where + "\n")
        time.sleep(delay)

    if kind == "policy":
        cb = [lambda step, metrics, policy: note(f"step {step}")]
        policy = fit_policy(policy_data(), checkpoint=ckpt, checkpoint_every=1, callbacks=cb, **POLICY_FIT)
        policy.save(out)
    else:
        x, y = refiner_data()
        cb = [lambda info: note(f"stage {info.stage} step {info.step - 1}")]
        refiner = fit_refiner(x, y, checkpoint=ckpt, checkpoint_every=1, callbacks=cb, **REFINER_FIT)
        refiner.save(Path(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
