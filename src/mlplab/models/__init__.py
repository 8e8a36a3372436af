"""Architecture families as plain ``nn.Module``s (no Lightning): import them from here or by short name.

Every family registers itself (:mod:`mlplab.models.registry`) in its own file. Importing this package
imports none of them: ``from mlplab.models import HourglassMLP`` (or ``class_path: HourglassMLP`` in a
config) imports that family's file alone, so a run imports only the libraries its family needs.
``mlplab models`` lists them all with their named variants.
"""

from mlplab.models import registry
from mlplab.models.counting import count_parameters


def __getattr__(name: str) -> type:
    """Import a family (or base) on first use: only the file that defines it (PEP 562)."""
    found = registry.import_defining_module(name) if name in __all__ else None
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = found
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "CAM",
    "GMLP",
    "KAN",
    "MAXIM",
    "MSMLP",
    "SIREN",
    "SKAN",
    "Activator",
    "BottleneckMLP",
    "ConViT",
    "ConventionalMLP",
    "CoordinateMLP",
    "DLinear",
    "DynamicSpectrumMixer",
    "EfficientMod",
    "FinalMLP",
    "FlatMLP",
    "FreSh",
    "GatedAssociativeMemory",
    "GatedConv",
    "GatedLinearAttention",
    "GaussianRBFNet",
    "HopfieldLM",
    "HourglassMLP",
    "Mamba",
    "MlpMixer",
    "NiNformer",
    "PatchTST",
    "PoolFormer",
    "RaftMLP",
    "ResMLP",
    "SequenceModel",
    "SpaRTAN",
    "StandardMLP",
    "StripMLP",
    "TSMixer",
    "TSMixerGoogle",
    "TabM",
    "TabularMLP",
    "TimeMixer",
    "Transformer",
    "count_parameters",
    "registry",
]
