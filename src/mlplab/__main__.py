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

import importlib
import os
import sys
import warnings

from mlplab.startup import collector_paused, startup_done

#: ``mlplab <command> ARGS``: the module whose ``main(ARGS)`` runs the command.
COMMANDS = {
    "sweep": "mlplab.tools.sweep.command",
    "models": "mlplab.models.registry",
    "compare": "mlplab.tools.compare",
    "export": "mlplab.tools.export",
}
#: ``mlplab <command> ARGS``: questions asked of a trained run (``analysis.command.main(command, ARGS)``).
ANALYSIS_COMMANDS = ("analyze", "drop-layers", "prune")
#: Warnings one library raises about another's code, nothing a user can act on: (message, module) regexes.
LIBRARY_WARNINGS = (
    # torch (2.11 and 2.14 at least) deprecates LeafSpec, which Lightning 2.6 still builds for a batch
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\.pytorch\.utilities\._pytree"),
    # Lightning hands a prediction writer the batches' sample indices from a DataLoader's batch sampler
    # only; mlplab's writer (SavePredictions) places the predictions without them
    (r"Couldn't infer the batch indices fetched from your dataloader: `TensorBatchLoader`", ""),
)


def hide_library_warnings() -> None:
    """Ignore :data:`LIBRARY_WARNINGS` from here on (every ``mlplab`` command starts with it)."""
    for message, module in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``mlplab``: run one of ``COMMANDS`` or ``ANALYSIS_COMMANDS``, or the training CLI."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # users' own modules in the working directory are importable
    argv = sys.argv[1:] if args is None else list(args)
    command = argv[0] if argv else None
    hide_library_warnings()
    # start-up without full garbage-collector passes; the program (no args given) ends with the command,
    # so its start-up objects stay frozen through the interpreter's shutdown (see mlplab.startup)
    with collector_paused(thaw=args is not None):
        try:
            run_command(command, argv, args)
        except BrokenPipeError:  # `mlplab models | head`: the reader has all it wanted
            if args is not None:
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            sys.exit(1)


def run_command(command: str | None, argv: list[str], args: list[str] | None) -> None:
    """Run ``command`` (``argv[0]``) with ``argv[1:]``; the training CLI parses ``args`` itself."""
    if command in COMMANDS:
        run = importlib.import_module(COMMANDS[command]).main
        startup_done()
        run(argv[1:])
    elif command in ANALYSIS_COMMANDS:
        from mlplab.analysis.command import main as analysis_main

        startup_done()
        analysis_main(command, argv[1:])
    else:
        from mlplab.cli import main as cli_main

        cli_main(args)  # the training CLI says when start-up is done: after building, before running


if __name__ == "__main__":
    main()
