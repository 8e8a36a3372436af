"""The ``mlplab`` program (also ``python -m mlplab`` and ``python cli.py``).

``mlplab sweep ...`` goes to :mod:`mlplab.tools.sweep`, ``mlplab models ...`` (the registered families)
to :func:`mlplab.models.registry.main`, ``mlplab compare ...`` (runs side by side) to
:mod:`mlplab.tools.compare`, ``mlplab export ...`` (a trained run as safetensors, ONNX or TorchScript)
to :mod:`mlplab.tools.export`, ``mlplab analyze | drop-layers | prune ...`` (questions asked of a
trained run) to :mod:`mlplab.analysis.command`; every other command (fit, validate, test, predict) to the
training CLI, :func:`mlplab.cli.main`. The sweep imports the training CLI (it counts
and resolves runs with its parser); the training CLI imports nothing of the sweep, so dispatching
here keeps the two free of an import cycle.
"""

from __future__ import annotations

import os
import sys

from mlplab.startup import collector_paused, startup_done


def main(args: list[str] | None = None) -> None:
    """Entry point of ``mlplab``: run ``mlplab sweep`` or the training CLI."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # users' own modules in the working directory are importable
    argv = sys.argv[1:] if args is None else list(args)
    with collector_paused():  # start-up without full garbage-collector passes (see mlplab.startup)
        if argv[:1] == ["sweep"]:
            from mlplab.tools.sweep.command import main as sweep_main

            startup_done()
            sweep_main(argv[1:])
        elif argv[:1] == ["models"]:
            from mlplab.models.registry import main as models_main

            startup_done()
            models_main(argv[1:])
        elif argv[:1] == ["compare"]:
            from mlplab.tools.compare import main as compare_main

            startup_done()
            compare_main(argv[1:])
        elif argv[:1] == ["export"]:
            from mlplab.tools.export import main as export_main

            startup_done()
            export_main(argv[1:])
        elif argv[:1] in (["analyze"], ["drop-layers"], ["prune"]):
            from mlplab.analysis.command import main as analysis_main

            startup_done()
            analysis_main(argv[0], argv[1:])
        else:
            from mlplab.cli import main as cli_main

            cli_main(args)  # the training CLI says when start-up is done: after building, before running


if __name__ == "__main__":
    main()
