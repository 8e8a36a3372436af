"""Samples of a symbolic formula, generated in-process: the data of function fitting (the KAN papers')."""

from __future__ import annotations

import re

import numpy as np
import torch

from mlplab.data.in_memory import InMemoryDataModule
from mlplab.errors import ConfigError, require_positive

#: Named formulas: the toy examples of the KAN paper (Liu et al. 2024, figure 3.1); variables x1, x2, ...
FORMULAS: dict[str, str] = {
    "bessel": "besselj(0, 20*x1)",
    "exp_sin": "exp(sin(pi*x1) + x2**2)",
    "product": "x1*x2",
    "exp_sin_4d": "exp((sin(pi*(x1**2 + x2**2)) + sin(pi*(x3**2 + x4**2)))/2)",
    "exp_sin_sq_100d": "exp((" + " + ".join(f"sin(pi*x{i}/2)**2" for i in range(1, 101)) + ")/100)",
}


def compile_formula(formula: str, num_inputs: int | None = None):
    """Parse ``formula`` (a name of :data:`FORMULAS` or an expression in x1, x2, ...) into a NumPy function.

    Returns:
        ``(function, num_inputs, expression)``: ``function(x)`` maps ``(N, num_inputs)`` to ``(N,)``.

    Raises:
        ConfigError: The formula cannot be parsed, uses other names than x1..xN and sympy's functions,
            or more variables than ``num_inputs``.
    """
    import sympy
    from sympy.parsing.sympy_parser import parse_expr

    text = FORMULAS.get(formula, formula)
    indices = [int(i) for i in re.findall(r"\bx(\d+)\b", text)]
    highest = max(indices, default=0)
    count = num_inputs if num_inputs is not None else max(highest, 1)
    if highest > count:
        raise ConfigError(f"FunctionDataModule: the formula uses x{highest} but num_inputs is {count}")
    symbols = [sympy.Symbol(f"x{i}", real=True) for i in range(1, count + 1)]
    try:
        expression = parse_expr(text, local_dict={s.name: s for s in symbols})
    except Exception as error:  # sympy raises SyntaxError, TokenError, TypeError, ...
        raise ConfigError(
            f"FunctionDataModule: cannot parse the formula {text!r} ({type(error).__name__}: {error}); "
            f"write it in x1..x{count} with sympy's functions, e.g. exp(sin(pi*x1) + x2**2), or name one of "
            f"{', '.join(FORMULAS)}"
        ) from error
    unknown = sorted(str(s) for s in expression.free_symbols if s not in symbols)
    if unknown:
        raise ConfigError(
            f"FunctionDataModule: the formula {text!r} uses unknown names {unknown}; "
            f"its variables are x1..x{count}"
        )
    function = sympy.lambdify(symbols, expression, modules=["scipy", "numpy"])

    def evaluate(x: np.ndarray) -> np.ndarray:
        return np.array(np.broadcast_to(np.asarray(function(*x.T), dtype=np.float64), (len(x),)))

    return evaluate, count, expression


class FunctionDataModule(InMemoryDataModule):
    """Samples ``(x, f(x))`` of a formula, drawn uniformly from a box, as the KAN papers fit them.

    The formula is an expression in ``x1``, ``x2``, ... with sympy's functions and constants
    (``exp(sin(pi*x1) + x2**2)``, ``besselj(0, 20*x1)``), or one of the named ones in :data:`FORMULAS`
    (the KAN paper's examples of its figure 3.1: ``bessel``, ``exp_sin``, ``product``,
    ``exp_sin_4d``, ``exp_sin_sq_100d``). Inputs are drawn uniformly from ``input_range`` in every
    dimension (the KAN paper's ``create_dataset``: [-1, 1], 1,000 training and 1,000 test samples), each
    split from its own seeded generator; ``noise_std`` adds Gaussian noise to the training targets only.

    Args:
        formula: The formula (see above).
        num_inputs: Input dimension; ``None``: the highest ``xN`` the formula uses.
        input_range: ``[low, high]`` of every input.
        num_train: Training samples.
        num_val: Validation samples.
        num_test: Test samples.
        noise_std: Standard deviation of the noise on the training targets.
        seed: Seed of the samples: the data, which the run's seed does not change.
        shuffle_seed: Seed of the training batch order; ``None``: the run's seed (``--seed_everything``).
        batch_size: Training batch size.
        eval_batch_size: Evaluation batch size.
        on_device: Keep the samples on the accelerator (see :class:`~mlplab.data.InMemoryDataModule`).
    """

    summary = ("formula", "num_inputs", "input_range")

    def __init__(
        self,
        formula: str = "exp_sin",
        num_inputs: int | None = None,
        input_range: tuple[float, float] = (-1.0, 1.0),
        num_train: int = 1000,
        num_val: int = 1000,
        num_test: int = 1000,
        noise_std: float = 0.0,
        seed: int = 0,
        shuffle_seed: int | None = None,
        batch_size: int = 128,
        eval_batch_size: int | None = 1000,
        on_device: bool | None = None,
    ):
        super().__init__(batch_size, eval_batch_size, shuffle_seed, on_device)
        require_positive("FunctionDataModule", num_train=num_train, num_val=num_val, num_test=num_test)
        if num_inputs is not None:
            require_positive("FunctionDataModule", num_inputs=num_inputs)
        low, high = input_range
        if not low < high:
            raise ConfigError(
                f"FunctionDataModule: input_range must be [low, high] with low < high, got {input_range}"
            )
        if noise_std < 0:
            raise ConfigError(f"FunctionDataModule: noise_std must be non-negative, got {noise_std}")
        if seed < 0:  # NumPy's generators take non-negative seeds
            raise ConfigError(f"FunctionDataModule: seed must be non-negative, got {seed}")
        self.formula = formula
        self.function, self.num_inputs, self.expression = compile_formula(formula, num_inputs)
        self.num_outputs = 1
        self.input_range = (float(low), float(high))
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.noise_std = noise_std
        self.seed = seed

    def prepare_data(self) -> None:
        """Nothing to download: the samples are generated."""

    def build_splits(self) -> dict[str, tuple[torch.Tensor, ...]]:
        splits = {}
        low, high = self.input_range
        for offset, (split, count) in enumerate(self.sizes.items()):
            generator = np.random.default_rng([self.seed, offset])
            x = generator.uniform(low, high, size=(count, self.num_inputs))
            with np.errstate(all="ignore"):
                y = self.function(x)
            if not np.isfinite(y).all():
                bad = x[~np.isfinite(y)][0].round(3).tolist()
                raise ConfigError(
                    f"FunctionDataModule: the formula {self.formula!r} is not finite everywhere on "
                    f"{list(self.input_range)}^{self.num_inputs} (e.g. at x = {bad}); "
                    "change input_range or the formula"
                )
            if split == "train" and self.noise_std > 0:
                y = y + self.noise_std * generator.standard_normal(count)
            splits[split] = (torch.from_numpy(x).float(), torch.from_numpy(y).float()[:, None])
        return splits

    def prediction_table(
        self, outputs: dict[str, torch.Tensor], first_window: int = 0, every: int = 1
    ) -> dict[str, np.ndarray]:
        """``predict``'s samples as a table: ``split``, ``index``, ``x1 ... xN``, ``target``, ``prediction``.

        Args:
            outputs: What the task's ``predict_step`` returned, concatenated.
            first_window: Index (in the split) of the first sample in ``outputs``.
            every: The step between samples (a process of several takes every ``world_size``-th one).
        """
        split = self.loader_splits["predict"]
        rows = len(outputs["predictions"])
        columns: dict[str, np.ndarray] = {
            "split": np.full(rows, split, dtype=object),
            "index": np.arange(self.sizes[split])[first_window::every][:rows],
        }
        inputs = outputs["inputs"].double().numpy()
        for dimension in range(inputs.shape[1]):
            columns[f"x{dimension + 1}"] = inputs[:, dimension]
        columns["target"] = outputs["targets"].double().numpy()[:, 0]
        columns["prediction"] = outputs["predictions"].double().numpy()[:, 0]
        return columns


__all__ = ["FORMULAS", "FunctionDataModule", "compile_formula"]
