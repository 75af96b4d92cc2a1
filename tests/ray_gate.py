"""Ray worker setup hook of the cluster tests (:mod:`ray_cluster`): holds runs at a gate.

Set as ``__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR=ray_gate.setup`` in the environment of
``ray start``, with ``RR_TEST_GATE`` naming a folder: each task then touches
``started.<run id>.<node id>.<pid>`` there and waits until a file ``open`` appears.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def setup() -> None:
    folder = os.environ.get("RR_TEST_GATE")
    if not folder:
        return
    import importlib

    from rankrobust.experiments.grid import run_id

    try:
        module = importlib.import_module("rankrobust.experiments.ray_executor")
    except ImportError:  # before the Ray executor had a module of its own
        module = importlib.import_module("rankrobust.experiments.executors")
    real = module.execute_run

    def gated(config: Any) -> Any:
        import ray

        node = ray.get_runtime_context().get_node_id()
        (Path(folder) / f"started.{run_id(config)}.{node}.{os.getpid()}").touch()
        while not (Path(folder) / "open").exists():
            time.sleep(0.05)
        return real(config)

    module.execute_run = gated
