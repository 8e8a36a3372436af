"""The family registry: each family's domain, channel-MLP kinds, named variants and residual-block layout.

A family registers itself in its own file with :func:`register_family`, in the spirit of timm's
``@register_model`` and litgpt's named configs::

    @register_family(
        domains=("image_classification",),
        channel_mlps=("conventional", "hourglass", "moe"),
        variants={
            "tiny": Variant({"patch_size": 4, "embed_dim": 32, "depth": 2}),
            "B/16": Variant({"patch_size": 16, "embed_dim": 768, "depth": 12}, params=59_880_000,
                            precision=10_000, shapes=IMAGENET, source="timm results-imagenet.csv"),
        },
        blocks=BlockLayout(MixerBlock, mixer=("mlp_tokens",), mlp=("mlp_channels",)),
    )
    class MlpMixer(PatchClassifier): ...

What registration gives a family, with no other edit:

* **a short name** that resolves without clashes (``class_path: MlpMixer`` is mlplab's, even though
  timm has a class of that name too; the CLI resolves short names here first);
* **named variants**: ``mlplab models`` lists them with their parameter counts, a config selects one
  with ``init_args: {variant: S-1}`` and overrides single arguments next to it
  (:func:`expand_config`), Python builds one with :func:`build`, and a task takes
  ``functools.partial(Family, variant="S-1", embed_dim=...)`` as its backbone (:func:`expand_variant`);
* **tests** (``tests/models/test_registry.py``, parametrised over this registry): the ``tiny`` variant
  is built and trained for a few steps on its domain's example data (shapes, a gradient for every
  trainable parameter, the loss going down, the domain's contract such as causality), its parameter
  count on the meta device equals the real one, every variant with a published count has it, every
  declared channel-MLP kind works, and the block layout below holds;
* **benchmarks and README tables** read the registry instead of keeping their own lists.

The **domain** says which task trains the family and how the task calls it (:data:`DOMAINS`; new
domains register with :func:`register_domain`). The **channel-MLP kinds** are the ``channel_mlp.kind``
values the family honours; a task refuses a backbone holding another kind in one line
(:func:`check_channel_mlps`). The **block layout** (:class:`BlockLayout`) tells analysis tools (layer
similarity, layer dropping) where the residual blocks are and which of their sub-layers are residual
branches. ``renamed`` lists argument names a family had before (old configs and run directories keep
working: :func:`expand_config` renames them, with a warning) and ``legacy_keys`` state-dict keys it had
before (old checkpoints load: :func:`upgrade_state_dict`).

**Loading**: a family file is imported when its family is first asked for, not before, so a run pays
for the libraries its own family needs (timm for the vision families) and for no others. A short name
(``HourglassMLP``) is looked up in :func:`defining_modules`, which reads the ``class`` statements of
the files under :mod:`mlplab.models` as text, and only the file that defines it is imported; a class
path imports its own module. :func:`families` (``mlplab models``, the tests, the README tables)
imports every file.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mlplab.errors import ConfigError

#: The ``channel_mlp.kind`` values of :class:`mlplab.nn.ChannelMLP`.
CHANNEL_MLP_KINDS = ("conventional", "hourglass", "moe", "moe_plus_plus")


# --------------------------------------------------------------------------------------------- domains
@dataclass(frozen=True)
class Domain:
    """What a family of a domain maps, which task trains it, and the data its ``tiny`` variant is tested on.

    Args:
        name: Identifier, e.g. ``image_classification``.
        tasks: The task classes that train families of this domain.
        call: How the task calls the family (for the documentation).
        example_shapes: The shape arguments the task would pass, for small example data (tests,
            ``mlplab models``, smoke benchmarks).
        example_data_args: Further data-given arguments, passed to families that declare them (e.g. the
            number of calendar features of a forecasting family).
    """

    name: str
    tasks: tuple[str, ...]
    call: str
    example_shapes: tuple
    example_data_args: Mapping[str, Any] = field(default_factory=dict)


DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> Domain:
    """Add a domain (a new kind of task and data); registering the same name twice is refused."""
    if domain.name in DOMAINS and DOMAINS[domain.name] != domain:
        raise ConfigError(f"a domain named {domain.name!r} is already registered")
    DOMAINS[domain.name] = domain
    return domain


register_domain(Domain("image_classification", ("ImageClassification",),
                       "family(image_shape, (num_classes,)): (B, C, H, W) -> logits (B, K)",
                       ((3, 16, 16), (5,))))  # fmt: skip
register_domain(Domain("image_restoration", ("ImageRestoration",),
                       "family(input_shape, image_shape): (B, C, h, w) -> (B, C, H, W) in [0, 1]",
                       ((1, 8, 8), (1, 8, 8))))  # fmt: skip
register_domain(Domain("forecasting", ("ForecastingTask",),
                       "family((lookback, num_series), (horizon, num_series)): (B, L, N) -> (B, H, N)",
                       ((48, 3), (16, 3)), {"num_time_features": 4}))  # fmt: skip
register_domain(Domain("sequence", ("LanguageModeling", "AssociativeRecall"),
                       "family(vocab_size, context_length): tokens (B, T) -> logits (B, T, V), causal",
                       (23, 24)))  # fmt: skip


# -------------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """A named configuration of a family, and its published parameter count when there is one.

    Args:
        args: The family's arguments (the data-given shapes excluded).
        params: The published (or official code's) parameter count at ``shapes``; ``None``: none declared.
        precision: How precisely ``params`` is published: the count must lie within half of it
            (1: exact; 10_000 for a figure given as 59.88M).
        shapes: The data shapes ``params`` refers to (e.g. ImageNet-1k); ``None``: the domain's example.
        data_args: Further data-given arguments for the count (e.g. ``num_time_features``).
        source: Where ``params`` comes from (paper table, official code, timm's results).
    """

    args: Mapping[str, Any]
    params: int | None = None
    precision: int = 1
    shapes: tuple | None = None
    data_args: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class BlockLayout:
    """Where a family's residual blocks are, and which of their sub-layers are residual branches.

    The protocol analysis tools (layer similarity, layer dropping) rely on: the blocks are the
    submodules of type ``block_types``, in registration order (= execution order), each taking one
    input (a tensor, or a list of tensors) and returning one of the same structure. ``mixer`` and
    ``mlp`` name the block's attributes whose outputs are residual branches: when every named
    sub-layer outputs zeros, the block (in evaluation mode) returns its input unchanged, so dropping a
    sub-layer means replacing it by zeros. ``mixer`` are the token / sequence / time mixers (attention
    and its replacements), ``mlp`` the channel MLPs. A block without one of them leaves it empty;
    attributes that are ``None`` in a given configuration are skipped.

    Args:
        block_types: Class (or classes) of the residual blocks.
        mixer: Attribute names of the mixing branches.
        mlp: Attribute names of the channel-MLP branches.
    """

    block_types: type | tuple[type, ...]
    mixer: tuple[str, ...] = ()
    mlp: tuple[str, ...] = ()

    def blocks(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """``(name, block)`` of every residual block of ``model``, in execution order."""
        return [(name, m) for name, m in model.named_modules() if isinstance(m, self.block_types)]

    def branches(self, block: nn.Module, part: str) -> list[tuple[str, nn.Module]]:
        """``(attribute, sub-layer)`` of one ``part`` (``mixer`` or ``mlp``) of ``block`` that exist."""
        names = {"mixer": self.mixer, "mlp": self.mlp}[part]
        return [(name, getattr(block, name)) for name in names if getattr(block, name, None) is not None]


@dataclass(frozen=True)
class FamilySpec:
    """A registered family (see the module docstring; built by :func:`register_family`)."""

    name: str
    cls: type[nn.Module]
    domains: tuple[str, ...]
    variants: Mapping[str, Variant]
    channel_mlps: tuple[str, ...]
    blocks: BlockLayout | None
    renamed: Mapping[str, str]
    legacy_keys: tuple[tuple[str, str], ...]
    source: str
    layout_changes: tuple[str, ...] = ()

    @property
    def class_path(self) -> str:
        """The import path under which mlplab exports the class."""
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    @property
    def domain(self) -> Domain:
        """The family's first (main) domain."""
        return DOMAINS[self.domains[0]]

    def variant(self, name: str) -> Variant:
        """The named variant, or a one-line :class:`ConfigError` listing the ones there are."""
        if name not in self.variants:
            raise ConfigError(f"{self.name} has no variant {name!r} (it has {', '.join(self.variants)})")
        return self.variants[name]

    def shapes(self, variant: str, domain: str | None = None) -> tuple:
        """The data shapes a variant is counted at: its published ones, else the domain's example."""
        return self.variant(variant).shapes or DOMAINS[domain or self.domains[0]].example_shapes

    def data_args(self, variant: str, domain: str | None = None) -> dict[str, Any]:
        """The data-given arguments for building a variant at :meth:`shapes` (only those the family takes)."""
        chosen = self.variant(variant)
        given = chosen.data_args if chosen.shapes else DOMAINS[domain or self.domains[0]].example_data_args
        parameters = argument_names(self.cls)
        return {k: v for k, v in given.items() if k in parameters}


_FAMILIES: dict[str, FamilySpec] = {}


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The constructor arguments of ``cls``, following ``**kwargs`` into the base classes' ``__init__``.

    Families pass the arguments they share with their base on with ``**kwargs`` (as jsonargparse
    resolves them for the CLI); a subclass's own declaration of an argument (its default) wins.
    """
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is nn.Module or "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters
        for name, parameter in parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return found


def argument_names(cls: type) -> set[str]:
    """The names of :func:`constructor_parameters`."""
    return set(constructor_parameters(cls))


def register_family(
    *,
    domains: Sequence[str],
    variants: Mapping[str, Variant],
    channel_mlps: Sequence[str] = (),
    blocks: BlockLayout | None = None,
    renamed: Mapping[str, str] | None = None,
    legacy_keys: Sequence[tuple[str, str]] = (),
    source: str = "",
    name: str | None = None,
    layout_changes: Sequence[str] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that registers a family (see the module docstring); the class is left unchanged.

    Args:
        domains: The family's domains (:data:`DOMAINS`), its main one first.
        variants: Named configurations; ``tiny`` is required (a small one for tests).
        channel_mlps: The ``channel_mlp.kind`` values the family honours (empty: it has no ``channel_mlp``).
        blocks: Where its residual blocks are (``None``: not a stack of residual blocks).
        renamed: Former argument names -> current ones (old configs keep working, with a warning).
        legacy_keys: ``(pattern, replacement)`` regular expressions that turn state-dict keys of older
            versions of the family into the current ones.
        source: One line on where the implementation comes from (for the README tables).
        name: The short name; the class name by default. (Another name is found by short name once the
            family's file has been imported, e.g. by :func:`get` or ``mlplab models``.)
        layout_changes: One line each (date: what) on the changes that made older checkpoints of the
            family unloadable (weights that no ``legacy_keys`` rule can map); a checkpoint that does not
            fit is refused with them as the likely reason.
    """

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        spec = FamilySpec(
            name=name or cls.__name__,
            cls=cls,
            domains=tuple(domains),
            variants=dict(variants),
            channel_mlps=tuple(channel_mlps),
            blocks=blocks,
            renamed=dict(renamed or {}),
            legacy_keys=tuple(legacy_keys),
            source=source,
            layout_changes=tuple(layout_changes),
        )
        _check(spec)
        known = _FAMILIES.get(spec.name)
        if known is not None and known.class_path != spec.class_path:
            raise ConfigError(
                f"a family named {spec.name!r} is already registered ({known.class_path}); "
                f"register {spec.class_path} under another name"
            )
        _FAMILIES[spec.name] = spec
        return cls

    return decorate


def _check(spec: FamilySpec) -> None:
    """Refuse an inconsistent registration (a programming error, raised when the module is imported)."""
    where = f"register_family({spec.cls.__qualname__})"
    if "tiny" not in spec.variants:
        raise ConfigError(f"{where}: every family needs a 'tiny' variant (the tests build it)")
    unknown = [d for d in spec.domains if d not in DOMAINS]
    if not spec.domains or unknown:
        raise ConfigError(f"{where}: unknown domains {unknown}; known: {', '.join(DOMAINS)}")
    kinds = [k for k in spec.channel_mlps if k not in CHANNEL_MLP_KINDS]
    if kinds:
        raise ConfigError(
            f"{where}: unknown channel-MLP kinds {kinds}; known: {', '.join(CHANNEL_MLP_KINDS)}"
        )
    parameters = argument_names(spec.cls)
    if spec.channel_mlps and "channel_mlp" not in parameters:
        raise ConfigError(f"{where}: declares channel-MLP kinds but takes no channel_mlp argument")
    for variant_name, variant in spec.variants.items():
        extra = sorted(set(variant.args) - parameters)
        if extra:
            raise ConfigError(f"{where}: variant {variant_name!r} sets unknown arguments {extra}")
    for old, new in spec.renamed.items():
        if new not in parameters or old in parameters:
            raise ConfigError(f"{where}: renamed {old!r} -> {new!r} does not match the arguments")


# ------------------------------------------------------------------------------------------- look-ups
def _load() -> None:
    """Import every module of :mod:`mlplab.models`: a family registers itself in its own file."""
    import mlplab.models

    if getattr(_load, "done", False):
        return
    for module in pkgutil.walk_packages(mlplab.models.__path__, "mlplab.models."):
        importlib.import_module(module.name)
    _load.done = True  # type: ignore[attr-defined]


@functools.cache
def defining_modules() -> dict[str, tuple[str, ...]]:
    """The modules of :mod:`mlplab.models` whose source defines a class of each name, found without importing.

    Each file's top-level ``class Name`` statements are read as text (a few milliseconds for every
    file), so a short name leads to the one file to import (see the module docstring, Loading).
    """
    root = Path(__file__).resolve().parent
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(("mlplab.models", *parts[: -1 if parts[-1] == "__init__" else None]))
        for name in re.findall(r"^class (\w+)\b", path.read_text(encoding="utf-8"), re.MULTILINE):
            found.setdefault(name, []).append(module)
    return {name: tuple(modules) for name, modules in found.items()}


def import_defining_module(name: str) -> Any:
    """The class ``name`` of :mod:`mlplab.models`, importing only the file that defines it; else None."""
    for module in defining_modules().get(name, ()):
        value = getattr(importlib.import_module(module), name, None)
        if isinstance(value, type):
            return value
    return None


def _import_class_path(path: str) -> Any:
    """The object a dotted ``module.Name`` path names, or None when it cannot be imported."""
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # not importable (a typo, a broken user module): the caller reports the path
        return None


def families(domain: str | None = None, variant: str | None = None) -> list[FamilySpec]:
    """The registered families by main domain (:data:`DOMAINS` order), optionally of one domain or variant."""
    _load()
    if domain is not None and domain not in DOMAINS:
        raise ConfigError(f"unknown domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    order = list(DOMAINS)
    chosen = [
        spec
        for spec in _FAMILIES.values()
        if (domain is None or domain in spec.domains) and (variant is None or variant in spec.variants)
    ]
    return sorted(chosen, key=lambda spec: (order.index(spec.domains[0]), spec.name.lower()))


def get(family: str | type) -> FamilySpec:
    """The spec of a family given by short name, class path or class; a one-line error when unknown."""
    spec = find(family)
    if spec is None:
        _load()  # a family registered under another name than its class's
        spec = find(family)
    if spec is None:
        raise ConfigError(f"unknown family {family!r}: `mlplab models` lists the registered ones")
    return spec


def find(family: str | type | Any) -> FamilySpec | None:
    """The spec of a family (short name, class path, class, or ``functools.partial`` of one), else None.

    Imports at most the module that defines the family (see the module docstring, Loading): a class
    is registered once its module ran, a class path names its module, and a short name is looked up
    by :func:`import_defining_module`.
    """
    if isinstance(family, functools.partial):
        candidates = [family.func, *family.args]
        return next((s for s in map(find, candidates) if s is not None), None)
    if isinstance(family, type):
        return next((s for s in _FAMILIES.values() if s.cls is family), None)
    if not isinstance(family, str) or not family:
        return None
    if family in _FAMILIES:
        return _FAMILIES[family]
    if "." in family:
        found = _import_class_path(family)
        return find(found) if isinstance(found, type) else None
    import_defining_module(family)
    return _FAMILIES.get(family)


def resolve_short_name(name: str) -> str | None:
    """The class path of a registered family's short name (what the CLI resolves first), else None."""
    if "." in name:
        return None
    spec = find(name)
    return spec.class_path if spec is not None else None


# ------------------------------------------------------------------------------------------- building
def variant_args(family: str | type, variant: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A variant's arguments with ``overrides`` on top."""
    return {**get(family).variant(variant).args, **overrides}


def build(family: str | type, *shapes: Any, variant: str = "tiny", **overrides: Any) -> nn.Module:
    """Build a family's variant for the data ``shapes`` (by default its domain's example shapes).

    ``overrides`` replace single arguments of the variant. Data-given arguments of the domain (e.g.
    ``num_time_features``) are added when the family takes them and ``shapes`` are the example ones.
    """
    spec = get(family)
    if not shapes:
        shapes = spec.shapes(variant)
        overrides = {**spec.data_args(variant), **overrides}
    return spec.cls(*shapes, **variant_args(spec.name, variant, **overrides))


def expand_variant(factory: Any) -> Any:
    """``functools.partial(Family, variant=NAME, **given)`` as a partial of the variant's arguments.

    The given arguments go on top of the variant's, as :func:`expand_config` does for a config's
    ``init_args: {variant: NAME, ...}``.

    Anything else (a class, a partial without ``variant``, a family that takes an argument named
    ``variant`` itself, an unregistered class) is returned as it is.

    Raises:
        ConfigError: The family has no variant of that name (the line lists the ones it has).
    """
    if not isinstance(factory, functools.partial) or "variant" not in factory.keywords:
        return factory
    spec = find(factory.func) if isinstance(factory.func, type) else None
    if spec is None or "variant" in argument_names(spec.cls):
        return factory
    keywords = dict(factory.keywords)
    chosen = spec.variant(str(keywords.pop("variant")))
    return functools.partial(factory.func, *factory.args, **{**chosen.args, **keywords})


def count(family: str | type, variant: str = "tiny", domain: str | None = None) -> int:
    """Parameters of a variant at its counting shapes (:meth:`FamilySpec.shapes`), on the meta device."""
    spec = get(family)
    args = {**spec.variant(variant).args, **spec.data_args(variant, domain)}
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model = spec.cls(*spec.shapes(variant, domain), **args)
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------- channel-MLP kinds
def channel_mlp_kinds(module: nn.Module) -> set[str]:
    """The non-conventional channel-MLP kinds present in a built backbone."""
    from mlplab.nn import HourglassChannelMLP, MixtureOfExperts, MoEPlusPlus

    kinds = set()
    for layer in module.modules():
        if isinstance(layer, MoEPlusPlus):
            kinds.add("moe_plus_plus")
        elif isinstance(layer, MixtureOfExperts):
            kinds.add("moe")
        elif isinstance(layer, HourglassChannelMLP):
            kinds.add("hourglass")
    return kinds


def check_channel_mlps(backbone: nn.Module) -> None:
    """Refuse, in one line, a registered family built with a channel-MLP kind it does not honour.

    A mixture of experts that a family cannot honour would train without its load-balancing loss or
    gating residuals; families not in the registry are not checked.
    """
    spec = find(type(backbone))
    if spec is None:
        return
    refused = sorted(channel_mlp_kinds(backbone) - set(spec.channel_mlps))
    if refused:
        honoured = ", ".join(spec.channel_mlps) or "none (it has no channel_mlp argument)"
        raise ConfigError(
            f"{spec.name} does not support channel_mlp.kind={refused[0]} (it supports {honoured})"
        )


# ------------------------------------------------------------------------- configs and checkpoints
def expand_config(value: Any, where: str = "") -> Any:
    """Expand named variants and rename former arguments in every family spec of a loaded config.

    A mapping with a ``class_path`` naming a registered family and ``init_args`` holding
    ``variant: NAME`` gets the variant's arguments, with the other ``init_args`` on top (so single
    arguments override the variant); former argument names (``renamed``) become the current ones,
    with a :class:`FutureWarning`. Everything else is returned as it is.
    """
    if isinstance(value, list):
        return [expand_config(item, where) for item in value]
    if not isinstance(value, dict):
        return value
    value = {key: expand_config(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
    spec = find(value["class_path"]) if isinstance(value.get("class_path"), str) else None
    if spec is None:
        return value
    init_args = {}
    for key, item in (value.get("init_args") or {}).items():  # a later key wins, as in a merged mapping
        if key in spec.renamed:
            warnings.warn(
                f"{where or 'config'}: {spec.name}'s argument {key!r} is now called {spec.renamed[key]!r}; "
                "the old name will stop working in a future release",
                FutureWarning,
                stacklevel=2,
            )
            key = spec.renamed[key]
        init_args.pop(key, None)
        init_args[key] = item
    if "variant" in init_args:
        chosen = init_args.pop("variant")
        init_args = {**_yaml_ready(spec.variant(str(chosen)).args), **init_args}
    value["init_args"] = init_args
    return value


def _yaml_ready(args: Mapping[str, Any]) -> dict[str, Any]:
    """Variant arguments as a config would hold them (tuples as lists)."""

    def plain(item: Any) -> Any:
        return [plain(i) for i in item] if isinstance(item, (list, tuple)) else item

    return {key: plain(item) for key, item in args.items()}


def upgrade_state_dict(family: Any, state_dict: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Rename the state-dict keys an older version of ``family`` saved to the current ones.

    Args:
        family: The family (class, instance, partial or name); unregistered families pass through.
        state_dict: The saved weights.
        prefix: Where the family's weights sit in ``state_dict`` (e.g. ``backbone.`` in a task's).
    """
    spec = find(type(family) if isinstance(family, nn.Module) else family)
    if spec is None or not spec.legacy_keys:
        return dict(state_dict)
    upgraded = {}
    for key, tensor in state_dict.items():
        if key.startswith(prefix):
            local = key[len(prefix) :]
            for pattern, replacement in spec.legacy_keys:
                local = re.sub(pattern, replacement, local)
            key = prefix + local
        upgraded[key] = tensor
    return upgraded


# ------------------------------------------------------------------------------- listing (CLI, README)
def _millions(params: int) -> str:
    return f"{params / 1e6:.2f}M" if params >= 1e6 else f"{params / 1e3:.1f}k"


def rows(domain: str | None = None, variant: str | None = None) -> Iterator[dict[str, Any]]:
    """One row per family and variant: name, domain, variant, parameters counted on the meta device."""
    for spec in families(domain, variant):
        for name, chosen in spec.variants.items():
            if variant is not None and name != variant:
                continue
            yield {
                "family": spec.name,
                "domain": domain or spec.domains[0],
                "variant": name,
                "params": count(spec.name, name, domain),
                "published": chosen.params,
                "shapes": spec.shapes(name, domain),
                "channel_mlps": spec.channel_mlps,
            }


def format_table(domain: str | None = None, variant: str | None = None) -> str:
    """The text table ``mlplab models`` prints."""
    header = ("family", "domain", "variant", "params", "published", "at shapes", "channel MLPs")
    lines = [header]
    for row in rows(domain, variant):
        published = "" if row["published"] is None else f"{row['published']:,}"
        shapes = " -> ".join(str(tuple(s) if isinstance(s, (list, tuple)) else s) for s in row["shapes"])
        lines.append((row["family"], row["domain"], row["variant"], f"{row['params']:,}", published, shapes,
                      ", ".join(row["channel_mlps"]) or "-"))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def recipes_by_family(configs: str | Path) -> dict[str, list[str]]:
    """The recipes under ``configs`` (paths relative to it, without ``.yaml``), by their backbone's family."""
    import yaml

    root = Path(configs)
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.yaml")):
        loaded = yaml.safe_load(path.read_text()) or {}
        model = loaded.get("model") if isinstance(loaded, dict) else None
        backbone = (model.get("init_args") or {}).get("backbone") if isinstance(model, dict) else None
        spec = find(backbone.get("class_path")) if isinstance(backbone, dict) else None
        if spec is not None:
            found.setdefault(spec.name, []).append(str(path.relative_to(root).with_suffix("")))
    return found


def markdown_table(domain: str, recipes: Mapping[str, Sequence[str]] | None = None) -> str:
    """The README table of a domain's families: class, source, variants (published counts), recipes."""
    recipes = recipes or {}
    lines = ["| family | source | variants (published parameters) | channel MLPs | recipes |",
             "|---|---|---|---|---|"]  # fmt: skip
    for spec in families(domain):
        named = []
        for name, chosen in spec.variants.items():
            named.append(f"`{name}`" + (f" ({_millions(chosen.params)})" if chosen.params else ""))
        kinds = ", ".join(spec.channel_mlps) or "—"
        listed = ", ".join(f"`{r}`" for r in recipes.get(spec.name, ())) or "—"
        lines.append(f"| `{spec.name}` | {spec.source} | {', '.join(named)} | {kinds} | {listed} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``mlplab models``: list the registered families, their variants and parameter counts."""
    from mlplab.errors import OneLineParser

    parser = OneLineParser(
        prog="mlplab models",
        description="List the registered families with their domain, named variants and parameter counts "
        "(counted on the meta device at the variant's published shapes, else at the domain's example "
        "shapes). A config selects a variant with `init_args: {variant: NAME}` beside the class_path.",
    )
    _load()  # the domains the family packages register (tabular, image_fitting, ...) are known after it
    parser.add_argument("--domain", choices=list(DOMAINS), help="only the families of this domain")
    parser.add_argument("--variant", help="only this variant (e.g. tiny), of the families that have it")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="print the --domain's table as the README holds it (recipes found under --configs)",
    )
    parser.add_argument("--configs", default="configs", help="the recipes folder (default: ./configs)")
    options = parser.parse_args(list(argv) if argv is not None else None)
    if options.markdown:
        if options.domain is None:
            parser.error("--markdown needs a --domain")
        if options.variant is not None:  # the README's table names every variant of each family
            parser.error("--markdown prints the README's table, with every variant: leave out --variant")
        if not Path(options.configs).is_dir():  # the table's recipes column would be empty, unsaid
            parser.error(
                f"--configs {options.configs} is not a folder: give the recipes folder (the repository's "
                "configs/)"
            )
        print(markdown_table(options.domain, recipes_by_family(options.configs)))
        return
    if options.variant is not None and not families(options.domain, options.variant):
        known = sorted({name for spec in families(options.domain) for name in spec.variants})
        where = f" of the {options.domain} domain" if options.domain else ""
        parser.error(
            f"no family{where} has a variant {options.variant!r}; the variants are {', '.join(known)}"
        )
    print(format_table(options.domain, options.variant))


__all__ = [
    "CHANNEL_MLP_KINDS",
    "DOMAINS",
    "BlockLayout",
    "Domain",
    "FamilySpec",
    "Variant",
    "argument_names",
    "build",
    "channel_mlp_kinds",
    "check_channel_mlps",
    "constructor_parameters",
    "count",
    "defining_modules",
    "expand_config",
    "expand_variant",
    "families",
    "find",
    "format_table",
    "get",
    "import_defining_module",
    "main",
    "markdown_table",
    "register_domain",
    "recipes_by_family",
    "register_family",
    "resolve_short_name",
    "rows",
    "upgrade_state_dict",
    "variant_args",
]
