"""A command's start-up without the garbage collector's full passes over what the imports built.

Importing torch, Lightning and what they import (torchmetrics, torchvision, ``torch._dynamo``, scipy,
matplotlib, jsonargparse) creates about half a million long-lived objects. Python's cyclic collector
runs a full pass whenever the long-lived objects have grown by a quarter, so it walks them again and
again while they are being created: on the 2-core CPU machine the quickstart paid seven full passes of
100-240 ms each in its first four seconds, and one more during training (measured with
``gc.callbacks``; ``docs/results.md``, "Small runs against hand-written code"). They free next to
nothing: module objects live as long as the process.

:func:`collector_paused` (around a whole ``mlplab`` command) switches the collector off while the
command starts up; :func:`startup_done` (when the command is about to do its work: fit, sweep, ...)
freezes the objects alive at that moment (``gc.freeze``: later passes leave them out) and switches the
collector back on, so training runs with a collector that only walks what training creates. Leaving
:func:`collector_paused` restores the collector as it was and makes the frozen objects collectable
again, so a command run in-process (tests, notebooks) leaves nothing changed behind; the ``mlplab``
program itself, which ends right after, leaves them frozen (``thaw=False``): thawed, they made the
interpreter's shutdown take 1.8 s instead of 0.3 s after a quickstart fit.

``gc.unfreeze`` thaws every frozen object, not only ours, so an in-process command leaves the
collector alone when objects are frozen already: someone else's, or Python 3.12's own (3.12 starts
with a few hundred objects frozen, 375 on 3.12.1; 3.11 and 3.13 with none). The program thaws
nothing and pauses in any case.

This module imports nothing heavy: it runs before the imports it is about.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_state = {"paused": False, "frozen": False, "was_enabled": True}


@contextlib.contextmanager
def collector_paused(thaw: bool = True) -> Iterator[None]:
    """Run a command with the cyclic collector off until :func:`startup_done` (or the end).

    Args:
        thaw: Make the frozen objects collectable again at the end. ``False`` only where the process
            ends with the command: what stays frozen is never collected (nor walked at shutdown).
    """
    if _state["paused"] or _state["frozen"] or (thaw and gc.get_freeze_count()):  # a command in a
        yield  # command, or frozen objects not ours that gc.unfreeze would thaw too: leave it be
        return
    _state.update(paused=True, was_enabled=gc.isenabled())
    gc.disable()
    try:
        yield
    finally:
        if _state["frozen"] and thaw:
            gc.unfreeze()
        if _state["was_enabled"]:
            gc.enable()
        _state.update(paused=False, frozen=False)


def startup_done() -> None:
    """Freeze the objects alive now and switch the collector back on (no-op outside :func:`collector_paused`).

    Cyclic garbage made during start-up is frozen with them rather than freed; a command's start-up
    leaves little (3,588 objects for the quickstart's ``mlplab fit``, counted with a ``gc.collect()``
    at this point; ``docs/results.md``).
    """
    if not _state["paused"]:
        return
    gc.freeze()
    _state.update(paused=False, frozen=True)
    if _state["was_enabled"]:
        gc.enable()
