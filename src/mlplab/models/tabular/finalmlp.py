"""FinalMLP: two MLP streams with stream-specific feature gating and multi-head bilinear fusion.

Paper: Kelong Mao, Jieming Zhu, Liangcai Su, Guohao Cai, Yuru Li, Zhenhua Dong, "FinalMLP: An Enhanced
Two-Stream MLP Model for CTR Prediction", AAAI 2023. Official code: github.com/reczoo/FuxiCTR
(``model_zoo/FinalMLP/src/FinalMLP.py``; embeddings ``fuxictr/pytorch/layers/embeddings``, MLPs
``fuxictr/pytorch/layers/blocks/mlp_block.py``).

* **Embeddings per field** ``e (B, F * d)``: a categorical field looks its code up in its own table
  (``nn.Embedding``, initialised N(0, 1e-4) as FuxiCTR's default; the row of code 0, unknown, starts at
  zero, as FuxiCTR's out-of-vocabulary row starts near it); a numeric field scales its own learned vector
  by the value (FuxiCTR's ``nn.Linear(1, d, bias=False)``, Xavier-normal).
* **Feature selection** (``feature_selection``): each stream ``s`` gates the embeddings with
  ``g_s = 2 * sigmoid(MLP_s(c_s))``, ``h_s = g_s * e``, where the context ``c_s`` is a learned vector
  (``fs*_context: []``, the configuration of the published benchmarks).
* **Two streams**: MLPs ``mlp1_dims`` and ``mlp2_dims`` (Linear, optional BatchNorm, ReLU, dropout).
* **Interaction aggregation** with ``num_heads`` heads: ``y = w1 o1 + w2 o2 + sum_h o1_h^T W3_h o2_h``.

Linear layers are Xavier-normal with zero biases (FuxiCTR's ``reset_parameters``). Deviations: the
gates' context vectors start at N(0, 1), not zero (at zero, FuxiCTR's gates can learn only their output
bias: :class:`FeatureGate`); the
output is ``num_outputs`` logits for the task's softmax (FuxiCTR: one logit and a sigmoid for
click-through rates; two softmax logits model the same), and gates conditioned on chosen fields
(``fs1_context: [user_id]``) are not offered. Numeric fields come first, then the categorical ones.

With FuxiCTR's weights copied in, the outputs and every weight's gradient equal FuxiCTR's
``FinalMLP`` to float32 rounding (``benchmarks/tabular_official_check.py --finalmlp``; docs/results.md).

Shapes: ``(x_num (B, N), x_cat (B, C)) -> (B, num_outputs)``.
"""

from __future__ import annotations

import torch
from torch import nn

from mlplab.errors import ConfigError, require_positive, require_rate
from mlplab.models.registry import Variant, register_family
from mlplab.models.tabular.common import TabularFamily


def stream_mlp(in_features: int, dims: tuple[int, ...], dropout: float, batch_norm: bool) -> nn.Sequential:
    """FuxiCTR's ``MLP_Block`` without output layer: ``(Linear, [BatchNorm], ReLU, [Dropout])`` per width."""
    layers: list[nn.Module] = []
    for d_in, d_out in zip((in_features, *dims[:-1]), dims):
        layers.append(nn.Linear(d_in, d_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(d_out))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class FieldEmbeddings(nn.Module):
    """One ``embed_dim`` vector per field: numeric fields scaled by their value, categorical looked up.

    Shapes: ``(x_num (B, N), x_cat (B, C)) -> (B, N + C, embed_dim)``.
    """

    def __init__(self, num_numeric: int, cardinalities: tuple[int, ...], embed_dim: int):
        super().__init__()
        self.numeric = nn.Parameter(torch.empty(num_numeric, embed_dim)) if num_numeric else None
        if self.numeric is not None:
            nn.init.normal_(self.numeric, std=(2.0 / (1 + embed_dim)) ** 0.5)  # Xavier-normal of Linear(1, d)
        offsets = torch.tensor([0, *cardinalities], dtype=torch.long).cumsum(0)[: len(cardinalities)]
        self.register_buffer("offsets", offsets, persistent=False)
        self.categorical = nn.Embedding(sum(cardinalities), embed_dim) if cardinalities else None
        if self.categorical is not None:
            with torch.no_grad():
                nn.init.normal_(self.categorical.weight, std=1e-4)
                self.categorical.weight[offsets] = 0.0  # code 0 of every field: unknown

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        fields = []
        if self.numeric is not None:
            fields.append(x_num.unsqueeze(-1) * self.numeric)
        if self.categorical is not None:
            fields.append(self.categorical(x_cat + self.offsets))
        return torch.cat(fields, dim=1)


class FeatureGate(nn.Module):
    """A stream's feature gate: ``2 * sigmoid(MLP(context))`` from a learned context vector, ``(1, D)``.

    The context starts at N(0, 1). FuxiCTR starts it at zero, where, with the zero biases and the ReLU,
    no gradient reaches the context or the gate's hidden layers and only the output layer's bias learns.
    """

    def __init__(self, embed_dim: int, gate_dims: tuple[int, ...], feature_dim: int):
        super().__init__()
        self.context = nn.Parameter(torch.randn(1, embed_dim))
        self.mlp = stream_mlp(embed_dim, gate_dims, 0.0, False)
        self.out = nn.Linear(gate_dims[-1] if gate_dims else embed_dim, feature_dim)

    def forward(self) -> torch.Tensor:
        # the same for every row: computed once, (1, D), and broadcast (FuxiCTR repeats it per row)
        return 2.0 * torch.sigmoid(self.out(self.mlp(self.context)))


class InteractionAggregation(nn.Module):
    """Multi-head bilinear fusion of two stream outputs: ``w_x x + w_y y + sum_h x_h^T W_h y_h``.

    Shapes: ``x (B, x_dim), y (B, y_dim) -> (B, output_dim)``; ``weight`` is FuxiCTR's ``w_xy``
    ``(num_heads * hx * hy, output_dim)``, read as ``(num_heads, hx, output_dim, hy)``.
    """

    #: ``weight`` is a (bilinear) linear map: global magnitude pruning prunes it (mlplab.analysis.pruning).
    prunable_weights = ("weight",)

    def __init__(self, x_dim: int, y_dim: int, output_dim: int, num_heads: int):
        super().__init__()
        if x_dim % num_heads or y_dim % num_heads:
            raise ConfigError(
                f"FinalMLP: the streams' last widths ({x_dim}, {y_dim}) must be divisible by num_heads "
                f"({num_heads})"
            )
        self.num_heads = num_heads
        self.head_x, self.head_y, self.output_dim = x_dim // num_heads, y_dim // num_heads, output_dim
        self.w_x = nn.Linear(x_dim, output_dim)
        self.w_y = nn.Linear(y_dim, output_dim)
        self.weight = nn.Parameter(torch.empty(num_heads * self.head_x * self.head_y, output_dim))
        nn.init.xavier_normal_(self.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.num_heads
        weight = self.weight.view(h, self.head_x, self.output_dim, self.head_y)
        bilinear = torch.einsum(
            "bhi,hioj,bhj->bo", x.view(-1, h, self.head_x), weight, y.view(-1, h, self.head_y)
        )
        return self.w_x(x) + self.w_y(y) + bilinear


@register_family(
    domains=("tabular",),
    variants={
        "tiny": Variant(
            {"embed_dim": 4, "mlp1_dims": (16, 8), "mlp2_dims": (16, 8), "gate_dims": (8,), "num_heads": 2}
        ),
        # FuxiCTR's FinalMLP_default template (model_zoo/FinalMLP/config/model_config.yaml); its parameter
        # count depends on the vocabularies, so none is declared
        "default": Variant(
            {
                "embed_dim": 16,
                "mlp1_dims": (1024, 512),
                "mlp2_dims": (1024, 512, 256),
                "gate_dims": (1024, 512),
                "num_heads": 2,
            }
        ),
    },  # fmt: skip
    blocks=None,
    source="own, weight for weight with FuxiCTR (benchmarks/tabular_official_check.py)",
)
class FinalMLP(TabularFamily):
    """Two-stream MLP with feature gating and bilinear fusion over per-field embeddings (module docstring).

    Args:
        num_numeric: Numeric fields; filled in from the data.
        cardinalities: Codes per categorical field; filled in from the data.
        num_outputs: Classes, or 1 for regression; filled in from the data.
        embed_dim: Embedding size per field (``embedding_dim``).
        mlp1_dims: Widths of stream 1 (``mlp1_hidden_units``).
        mlp2_dims: Widths of stream 2 (``mlp2_hidden_units``).
        mlp1_dropout: Dropout of stream 1.
        mlp2_dropout: Dropout of stream 2.
        mlp1_batch_norm: BatchNorm in stream 1.
        mlp2_batch_norm: BatchNorm in stream 2.
        feature_selection: Gate each stream's embeddings (``use_fs``); off: both see the embeddings.
        gate_dims: Hidden widths of each gate's MLP (``fs_hidden_units``).
        num_heads: Heads of the bilinear fusion; must divide both streams' last widths.
    """

    def __init__(
        self,
        num_numeric: int,
        cardinalities: tuple[int, ...],
        num_outputs: int,
        embed_dim: int = 10,
        mlp1_dims: tuple[int, ...] = (64, 64, 64),
        mlp2_dims: tuple[int, ...] = (64, 64, 64),
        mlp1_dropout: float = 0.0,
        mlp2_dropout: float = 0.0,
        mlp1_batch_norm: bool = False,
        mlp2_batch_norm: bool = False,
        feature_selection: bool = True,
        gate_dims: tuple[int, ...] = (64,),
        num_heads: int = 1,
    ):
        super().__init__(num_numeric, cardinalities, num_outputs)
        owner = type(self).__name__
        require_positive(owner, embed_dim=embed_dim, num_heads=num_heads)
        mlp1_dims, mlp2_dims, gate_dims = tuple(mlp1_dims), tuple(mlp2_dims), tuple(gate_dims)
        if not mlp1_dims or not mlp2_dims:
            raise ConfigError(f"{owner}: mlp1_dims and mlp2_dims need at least one width each")
        for name, dims in (("mlp1_dims", mlp1_dims), ("mlp2_dims", mlp2_dims), ("gate_dims", gate_dims)):
            for width in dims:
                require_positive(owner, **{f"every width of {name}": width})
        require_rate(owner, mlp1_dropout=mlp1_dropout, mlp2_dropout=mlp2_dropout)
        feature_dim = embed_dim * (num_numeric + len(self.cardinalities))
        self.embeddings = FieldEmbeddings(num_numeric, self.cardinalities, embed_dim)
        self.gates = (
            nn.ModuleList(FeatureGate(embed_dim, gate_dims, feature_dim) for _ in range(2))
            if feature_selection
            else None
        )
        self.mlp1 = stream_mlp(feature_dim, mlp1_dims, mlp1_dropout, mlp1_batch_norm)
        self.mlp2 = stream_mlp(feature_dim, mlp2_dims, mlp2_dropout, mlp2_batch_norm)
        self.fusion = InteractionAggregation(mlp1_dims[-1], mlp2_dims[-1], num_outputs, num_heads)
        for module in self.modules():  # FuxiCTR's reset_parameters: Xavier-normal linear layers, zero biases
            if type(module) is nn.Linear:
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        self.check_input(x_num, x_cat)
        flat = self.embeddings(x_num, x_cat).flatten(1)
        if self.gates is None:
            first, second = flat, flat
        else:
            first, second = flat * self.gates[0](), flat * self.gates[1]()
        return self.fusion(self.mlp1(first), self.mlp2(second))


__all__ = ["FeatureGate", "FieldEmbeddings", "FinalMLP", "InteractionAggregation"]
