"""Mixture-of-experts channel MLPs: top-k gating with load balancing, and MoE++ zero-computation experts.

Both are drop-in channel MLPs ``(..., dim) -> (..., dim)`` chosen with ``channel_mlp.kind`` (see
:class:`mlplab.nn.ChannelMLP`). Each forward pass leaves its weighted load-balancing loss in
``self.aux_loss``; :func:`auxiliary_loss` sums those of a model and the sequence tasks add the sum to
the training loss, so the router learns to spread the tokens.

* :class:`MixtureOfExperts`: a router ``W_r x`` gives softmax probabilities over ``E`` MLP experts;
  each token goes to its ``top_k`` most probable experts with those probabilities renormalised to
  sum to one (Mixtral), and the output is the gate-weighted sum of their outputs. Load balancing is
  the Switch Transformer loss (Fedus et al., 2022) extended to top-k:
  ``E * sum_i f_i P_i`` with ``f_i`` the fraction of routing slots given to expert ``i`` and ``P_i``
  its mean router probability (1 when the routing is uniform).
* :class:`MoEPlusPlus`: MoE++ (Jin, Zhu, Yan, Yuan, ICLR 2025, arXiv 2410.07348; official code
  SkyworkAI/MoE-plus-plus, ``moe_plus_plus_layer.py``). Besides the MLP experts the router can choose
  zero-computation experts: *zero* (outputs 0, i.e. the token skips a slot), *copy* (outputs its
  input) and *constant* (``a1 x + a2 v`` with ``[a1, a2] = softmax(W_c x)`` and a learned vector
  ``v``). Router logits of one MoE++ layer feed the next through a linear map (gating residuals,
  ``logits_j = W_r x + W_g logits_{j-1}``). Following the official code, the gates are the top-k
  softmax probabilities with the zero experts' entries set to zero, renormalised to sum to one.
  The official code also scales the experts' inputs by k, which we leave out (it is not in the
  paper). The load-balancing loss is the paper's heterogeneous one,
  ``E_all * sum_i eta_i f_i P_i`` with ``eta_i = 1`` for MLP experts and ``tau`` for
  zero-computation experts (``zero_computation_balance``; the released code has no training loop).

By default (``sparse_dispatch=True``) each MLP expert runs only on the tokens routed to it with a
non-zero gate: the token slots are sorted by expert, each expert's MLP runs on its contiguous slice
and the weighted outputs are added back, so compute and activation memory follow the ``top_k``
selected experts (MoE++'s zero-computation experts cost nothing). Sorting costs two host
synchronisations per layer (the number of routed slots and the per-expert counts), and the shapes
change from batch to batch. ``sparse_dispatch=False`` runs every expert on every token and weights
the outputs by the sparse gates instead: the same result with static shapes and no host
synchronisation (what ``torch.compile`` and CUDA graphs want), at ``E / top_k`` times the FLOPs and
an ``(tokens, E, hidden)`` activation per layer. On the meta device (parameter and FLOP counting),
where routing is unknown, the sparse path counts every expert on ``tokens * top_k / num_routed``
tokens: the FLOPs of uniform routing, which the load-balancing loss aims at.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.nn.mlp import activation_layer


def auxiliary_loss(module: nn.Module) -> torch.Tensor | None:
    """The sum of the auxiliary losses that the mixture-of-experts layers of ``module`` left.

    Each layer keeps the loss of its last forward pass, already weighted by its ``aux_loss_weight``;
    ``None`` when ``module`` has no such layer.
    """
    losses = [
        m.aux_loss for m in module.modules() if isinstance(m, MixtureOfExperts) and m.aux_loss is not None
    ]
    if not losses:
        return None
    return torch.stack([loss.float() for loss in losses]).sum()


def link_gating_residuals(module: nn.Module) -> None:
    """Chain the MoE++ layers of ``module`` in registration (= execution) order for gating residuals.

    Every MoE++ layer with ``gating_residual`` after the first gets the previous one as its source
    and a map ``W_g: E_all -> E_all`` of its logits. Families call this at the end of ``__init__``.
    """
    previous: MoEPlusPlus | None = None
    for layer in module.modules():
        if not isinstance(layer, MoEPlusPlus):
            continue
        if previous is not None and layer.gating_residual:
            if previous.num_routed != layer.num_routed:
                raise ConfigError(
                    "MoE++ gating residuals need the same number of experts in every layer, got "
                    f"{previous.num_routed} and {layer.num_routed}"
                )
            layer.link_previous(previous)
        previous = layer


class Float32Linear(nn.Linear):
    """An ``nn.Linear`` computed in float32 whatever the dtype of its input and weights (the routers).

    The router calls it as a module rather than reading its ``weight``: a module's forward pre-hooks
    run, such as the one by which a pruning mask (``torch.nn.utils.prune``) recomputes the weight.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), self.weight.float(), bias)


class MixtureOfExperts(nn.Module):
    """Top-k softmax-gated mixture of two-layer MLP experts with a load-balancing loss (module docs).

    Shapes: ``(..., dim) -> (..., dim)``.

    Args:
        dim: Input and output width.
        hidden: Hidden width of each expert.
        num_experts: Number of MLP experts E.
        top_k: Experts per token.
        activation: Activation of the experts: a class, or a name :func:`~mlplab.nn.mlp.activation_layer`
            knows.
        bias: Whether the experts' layers have biases.
        aux_loss_weight: Weight of the load-balancing loss stored in ``aux_loss``.
        sparse_dispatch: Run each expert only on its tokens (``False``: every expert on every token;
            see the module docs).
    """

    #: The experts' matrices ``(E, dim, hidden)`` and ``(E, hidden, dim)`` are linear maps: global
    #: magnitude pruning ranks their entries with the other layers' (:mod:`mlplab.analysis.pruning`);
    #: the router is an ``nn.Linear`` and pruned as one, the biases are not.
    prunable_weights = ("w1", "w2")

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_experts: int = 8,
        top_k: int = 2,
        activation: str | type[nn.Module] = "gelu",
        bias: bool = True,
        aux_loss_weight: float = 0.01,
        sparse_dispatch: bool = True,
    ):
        super().__init__()
        owner = type(self).__name__
        require_positive(owner, dim=dim, hidden=hidden, num_experts=num_experts, top_k=top_k)
        self.dim = dim
        self.hidden = hidden
        self.num_experts = num_experts
        self.top_k = top_k
        self.aux_loss_weight = aux_loss_weight
        self.sparse_dispatch = sparse_dispatch
        if top_k > self.num_routed:
            raise ConfigError(f"{owner}: top_k={top_k} exceeds the {self.num_routed} experts to choose from")
        self.router = Float32Linear(dim, self.num_routed, bias=False)
        self.w1 = nn.Parameter(torch.empty(num_experts, dim, hidden))
        self.w2 = nn.Parameter(torch.empty(num_experts, hidden, dim))
        self.b1 = nn.Parameter(torch.empty(num_experts, hidden)) if bias else None
        self.b2 = nn.Parameter(torch.empty(num_experts, dim)) if bias else None
        self.act = activation_layer(activation)()
        self.aux_loss: torch.Tensor | None = None
        self.reset_experts()

    @property
    def num_routed(self) -> int:
        """Number of experts the router chooses from."""
        return self.num_experts

    def reset_experts(self) -> None:
        """Initialise every expert like a pair of ``nn.Linear`` layers (uniform in +-1/sqrt(fan_in)).

        PyTorch's default, which families that keep ``nn.Linear``'s default initialisation keep for the
        experts too (Mamba, as its official rule; Activator, DynamicSpectrumMixer, NiNformer, RaftMLP,
        StripMLP, TimeMixer, TSMixer, TSMixerGoogle). A family with a rule of its own for linear layers
        applies it with :meth:`init_experts`, as the other layers' (MoE++'s official model and Mixtral
        initialise their expert layers as every ``nn.Linear``): the other sequence families (GPT-2's),
        EfficientMod and MS-MLP (truncated normal), MLP-Mixer and ResMLP (timm's Xavier uniform), MAXIM
        (normal, std 0.02).
        """
        for weight, bias, fan_in in ((self.w1, self.b1, self.dim), (self.w2, self.b2, self.hidden)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)
            if bias is not None:
                nn.init.uniform_(bias, -bound, bound)

    def init_experts(
        self,
        init: Callable[..., Any],
        std: float | None = None,
        output_std: float | None = None,
        bias_init: Callable[[torch.Tensor], Any] = nn.init.zeros_,
    ) -> None:
        """Initialise the experts by a family's rule for its linear layers (biases zero unless ``bias_init``).

        Two kinds of rules:

        * i.i.d. entries of a given standard deviation (``std`` given): ``init(w, std=...)`` on the whole
          stacks ``w1`` and ``w2`` (``nn.init.normal_``, timm's ``trunc_normal_``);
        * a rule that depends on the layer's fans (``std=None``): ``init(weight)`` on every expert's
          matrix in ``nn.Linear``'s ``(out_features, in_features)`` layout (``nn.init.xavier_uniform_``,
          timm's ``lecun_normal_``), so each gets what an ``fc1`` ``dim -> hidden`` and an ``fc2``
          ``hidden -> dim`` would.

        Args:
            init: The family's initialiser of linear weights.
            std: Standard deviation of the first layers ``w1`` (the family's ``fc1``); ``None`` for a
                fan-dependent ``init``.
            output_std: Of the second layers ``w2``, which project back into the residual stream (the
                family's ``fc2``); ``None`` means ``std``. Only with ``std``.
            bias_init: Initialiser of the biases ``b1`` and ``b2``, called on each stack.
        """
        if std is None:
            if output_std is not None:
                raise ValueError("init_experts: output_std needs std (a fan-dependent init takes neither)")
            with torch.no_grad():
                for expert in range(self.num_experts):
                    init(self.w1[expert].T)  # (hidden, dim): nn.Linear(dim, hidden).weight
                    init(self.w2[expert].T)  # (dim, hidden): nn.Linear(hidden, dim).weight
        else:
            init(self.w1, std=std)
            init(self.w2, std=std if output_std is None else output_std)
        for bias in (self.b1, self.b2):
            if bias is not None:
                bias_init(bias)

    # ------------------------------------------------------------------------------------ routing
    def router_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Router logits ``(N, num_routed)`` of flattened tokens ``(N, dim)``, in float32."""
        return self.router(tokens)

    def gates(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k indices ``(N, k)`` and their gate weights (renormalised probabilities)."""
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        return top_i, top_p / top_p.sum(-1, keepdim=True)

    def balance_weights(self) -> torch.Tensor | None:
        """Per-expert weights eta_i of the load-balancing loss (``None``: all 1)."""
        return None

    def balance_loss(self, probs: torch.Tensor, top_i: torch.Tensor) -> torch.Tensor:
        """``E * sum_i eta_i f_i P_i`` (module docs), a float32 scalar."""
        experts = self.num_routed
        counts = F.one_hot(top_i, experts).sum(dim=(0, 1)).float()
        fraction = counts / top_i.numel()
        mean_prob = probs.mean(0)
        terms = fraction * mean_prob
        weights = self.balance_weights()
        if weights is not None:
            terms = terms * weights.to(terms)
        return experts * terms.sum()

    # ------------------------------------------------------------------------------------ experts
    def mlp_experts(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_e weights[:, e] * MLP_e(tokens)`` for tokens ``(N, dim)`` and weights ``(N, E)``."""
        weights = weights.to(tokens.dtype)
        if self.sparse_dispatch:
            return self.dispatched_experts(tokens, weights)
        hidden = torch.einsum("nd,edh->neh", tokens, self.w1)
        if self.b1 is not None:
            hidden = hidden + self.b1
        hidden = self.act(hidden) * weights[..., None]
        output = torch.einsum("neh,ehd->nd", hidden, self.w2)
        if self.b2 is not None:
            output = output + weights @ self.b2
        return output

    def expert_mlp(self, expert: int, tokens: torch.Tensor) -> torch.Tensor:
        """MLP expert ``expert`` on tokens ``(n, dim)``."""
        w1, w2 = self.w1[expert], self.w2[expert]
        hidden = tokens @ w1 if self.b1 is None else torch.addmm(self.b1[expert], tokens, w1)
        hidden = self.act(hidden)
        return hidden @ w2 if self.b2 is None else torch.addmm(self.b2[expert], hidden, w2)

    def dispatched_experts(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``mlp_experts`` with each expert run only on its tokens (the sorted dispatch, module docs)."""
        if tokens.is_meta:  # FLOP counting: uniform routing, as many slots per expert
            counts = [max(1, round(tokens.shape[0] * self.top_k / self.num_routed))] * self.num_experts
            token_index = torch.empty(sum(counts), dtype=torch.long, device=tokens.device)
            expert_index = torch.empty_like(token_index)
        else:
            token_index, expert_index = torch.nonzero(weights, as_tuple=True)  # slots with a non-zero gate
            order = torch.argsort(expert_index, stable=True)
            token_index, expert_index = token_index[order], expert_index[order]
            counts = torch.bincount(expert_index, minlength=self.num_experts).tolist()
        output = torch.zeros_like(tokens)
        if not token_index.numel():  # MoE++: every token went to zero-computation experts
            return output
        routed = tokens.index_select(0, token_index).split(counts)
        outputs = torch.cat([self.expert_mlp(e, part) for e, part in enumerate(routed) if part.shape[0]])
        return output.index_add_(0, token_index, outputs * weights[token_index, expert_index, None])

    def extra_experts(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        """Contribution of experts other than the MLPs (MoE++); ``None`` here."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, self.dim)
        logits = self.router_logits(tokens)
        probs = logits.softmax(dim=-1)
        top_i, top_w = self.gates(probs)
        weights = torch.zeros_like(probs).scatter(1, top_i, top_w)
        output = self.mlp_experts(tokens, weights[:, : self.num_experts])
        extra = self.extra_experts(tokens, weights)
        if extra is not None:
            output = output + extra
        self.aux_loss = self.aux_loss_weight * self.balance_loss(probs, top_i)
        return output.reshape(x.shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, num_experts={self.num_experts}, top_k={self.top_k}"


class MoEPlusPlus(MixtureOfExperts):
    """MoE++: MLP experts plus zero, copy and constant experts, with gating residuals (module docs).

    The routed experts are ordered: MLP experts, constant experts, copy experts, zero experts.

    Shapes: ``(..., dim) -> (..., dim)``.

    Args:
        dim: Input and output width.
        hidden: Hidden width of each MLP expert.
        num_experts: Number of MLP experts.
        top_k: Experts per token (zero-computation ones included).
        activation: Activation of the MLP experts.
        bias: Whether the MLP experts' layers have biases.
        aux_loss_weight: Weight of the load-balancing loss stored in ``aux_loss``.
        sparse_dispatch: Run each MLP expert only on its tokens.
        zero_experts: Number of zero experts.
        copy_experts: Number of copy experts.
        constant_experts: Number of constant experts.
        zero_computation_balance: Weight tau of the zero-computation experts in the balancing loss.
        gating_residual: Accept the previous MoE++ layer's logits (wired by :func:`link_gating_residuals`).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        num_experts: int = 8,
        top_k: int = 2,
        activation: str | type[nn.Module] = "gelu",
        bias: bool = True,
        aux_loss_weight: float = 0.01,
        sparse_dispatch: bool = True,
        zero_experts: int = 1,
        copy_experts: int = 1,
        constant_experts: int = 2,
        zero_computation_balance: float = 0.75,
        gating_residual: bool = True,
    ):
        for name, value in (
            ("zero_experts", zero_experts),
            ("copy_experts", copy_experts),
            ("constant_experts", constant_experts),
        ):
            if value < 0:
                raise ConfigError(f"MoEPlusPlus: {name} must be >= 0, got {value}")
        self.zero_experts = zero_experts
        self.copy_experts = copy_experts
        self.constant_experts = constant_experts
        super().__init__(dim, hidden, num_experts, top_k, activation, bias, aux_loss_weight, sparse_dispatch)
        self.zero_computation_balance = zero_computation_balance
        self.gating_residual = gating_residual
        self.constants = nn.Parameter(torch.randn(constant_experts, dim)) if constant_experts else None
        self.constant_mix = nn.Linear(dim, 2 * constant_experts, bias=False) if constant_experts else None
        eta = torch.full((self.num_routed,), float(zero_computation_balance))
        eta[:num_experts] = 1.0
        self.register_buffer("balance_eta", eta, persistent=False)  # on the device: no copy per step
        self.gate_map: Float32Linear | None = None
        self._previous: list[MoEPlusPlus] = []  # a plain list: the previous layer is not a submodule
        self.last_logits: torch.Tensor | None = None

    @property
    def num_routed(self) -> int:
        return self.num_experts + self.constant_experts + self.copy_experts + self.zero_experts

    def link_previous(self, previous: MoEPlusPlus) -> None:
        """Take gating residuals from ``previous`` (called by :func:`link_gating_residuals`)."""
        self._previous = [previous]
        self.gate_map = Float32Linear(self.num_routed, self.num_routed, bias=False)

    def router_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = super().router_logits(tokens)
        if self.gate_map is not None and self._previous and self._previous[0].last_logits is not None:
            residual = self._previous[0].last_logits
            if residual.shape == logits.shape:
                logits = logits + self.gate_map(residual)
        self.last_logits = logits
        return logits

    def gates(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        first_zero = self.num_routed - self.zero_experts
        top_p = top_p.masked_fill(top_i >= first_zero, 0.0)
        return top_i, top_p / top_p.sum(-1, keepdim=True).clamp_min(1e-9)

    def balance_weights(self) -> torch.Tensor:
        return self.balance_eta

    def extra_experts(self, tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        weights = weights.to(tokens.dtype)
        start = self.num_experts
        constant_w = weights[:, start : start + self.constant_experts]  # (N, C)
        copy_w = weights[:, start + self.constant_experts : start + self.constant_experts + self.copy_experts]
        output = tokens * copy_w.sum(-1, keepdim=True)
        if self.constant_mix is not None and self.constants is not None:
            mix = self.constant_mix(tokens).view(-1, self.constant_experts, 2).softmax(-1)  # (N, C, 2)
            keep = (constant_w * mix[..., 0]).sum(-1, keepdim=True)
            output = output + keep * tokens + (constant_w * mix[..., 1]) @ self.constants.to(tokens.dtype)
        return output

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, zero={self.zero_experts}, copy={self.copy_experts}, "
            f"constant={self.constant_experts}, gating_residual={self.gate_map is not None}"
        )
