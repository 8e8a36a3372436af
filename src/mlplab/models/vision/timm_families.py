"""Thin typed wrappers over timm's MLP-Mixer, ResMLP, gMLP, PoolFormer and ConViT.

The networks are timm's own (``timm/models/mlp_mixer.py``, ``metaformer.py``, ``convit.py``), built
with the task's image size and channels and the family's arguments; the wrappers only give them typed,
documented constructor arguments (so ``--model.backbone.help`` and ``--print_config`` show them), the
family contract ``family(input_shape, output_shape, **args)``, and one-line errors for image sizes the
network cannot take.

* ``MlpMixer``: Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021
  (github.com/google-research/vision_transformer). Token MLP across the ``(H/p)·(W/p)`` patches, channel
  MLP across the ``embed_dim`` features.
* ``ResMLP``: Touvron et al., "ResMLP: Feedforward networks for image classification with data-efficient
  training", TPAMI 2022 (github.com/facebookresearch/deit). A single linear layer mixes the tokens;
  Affine "norms" and LayerScale.
* ``GMLP``: Liu et al., "Pay Attention to MLPs", NeurIPS 2021. Spatial gating unit: half of the hidden
  channels are normalised, mixed across tokens by a linear layer and gate the other half.
* ``PoolFormer``: Yu et al., "MetaFormer Is Actually What You Need for Vision", CVPR 2022
  (github.com/sail-sg/poolformer). Token mixer = average pooling minus identity, 4-stage hierarchy.
* ``ConViT``: d'Ascoli et al., "ConViT: Improving Vision Transformers with Soft Convolutional Inductive
  Biases", ICML 2021 (github.com/facebookresearch/convit). Gated positional self-attention (GPSA) in the
  first ``local_up_to_layer`` blocks, then ordinary self-attention.

``channel_mlp`` (conventional, hourglass or moe, :class:`~mlplab.nn.ChannelMLP`) replaces the channel MLP
of MLP-Mixer and ResMLP blocks; a mixture of experts' expert layers start from timm's rule for linear
layers, as a dense channel MLP's (:func:`init_experts_as_timm_mixer`). gMLP has none to replace (its
spatial gating unit sits inside the channel MLP, which is its token mixer), and timm builds the MLPs of
PoolFormer and ConViT blocks itself, without an ``mlp_layer`` argument, so those two keep theirs.

Shapes: ``(B, C, H, W) -> (B, num_classes)``. MLP-Mixer, ResMLP, gMLP and ConViT mix a fixed number of
tokens ``(H/p)·(W/p)``: they are built for one image size, divisible by the patch size ``p`` (ConViT's only
for square images). PoolFormer is convolutional, but is built and checked for one size as well.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from timm.layers import GatedMlp, trunc_normal_
from timm.models.convit import Block as ConViTBlock
from timm.models.convit import ConVit as TimmConVit
from timm.models.metaformer import GroupNorm1, MetaFormer, MetaFormerBlock, Pooling
from timm.models.mlp_mixer import Affine, MixerBlock, ResBlock, SpatialGatingBlock
from timm.models.mlp_mixer import MlpMixer as TimmMlpMixer
from torch import nn

from mlplab.errors import ConfigError, require_positive
from mlplab.models.registry import BlockLayout, Variant, register_family
from mlplab.models.vision.common import CONVENTIONAL, IMAGENET, PatchClassifier
from mlplab.nn import ChannelMLP
from mlplab.nn.moe import MixtureOfExperts

#: timm's ImageNet-1k parameter counts (pytorch-image-models, results/results-imagenet.csv, param_count).
TIMM_RESULTS = "timm's results-imagenet.csv (param_count, to 0.01M)"


class TimmClassifier(PatchClassifier):
    """Base of the wrappers: holds timm's network as ``self.model`` (its features and head are timm's).

    Args:
        input_shape: ``(C, H, W)`` of the images.
        output_shape: ``(num_classes,)``.
        patch_size: Side of the square patches the image is cut into; must divide ``H`` and ``W``.
    """

    #: Whether timm's network takes only square images.
    square_only = False

    def __init__(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], patch_size: int):
        super().__init__(input_shape, output_shape, patch_size, square_only=self.square_only)
        self.patch_size = patch_size
        self.model: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


class TimmMixerClassifier(TimmClassifier):
    """Base of the families built on timm's ``MlpMixer`` network (MLP-Mixer, ResMLP, gMLP).

    Holds the arguments the three share; a family declares its own (and the defaults it wants for
    ``depth``, ``embed_dim``, ``mlp_ratio``), passes the rest on (``**kwargs``) and ends with
    :meth:`build_network`, given the network's block settings.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Side of the square patches; must divide the image size.
        depth: Number of blocks (timm's ``num_blocks``).
        embed_dim: Width of the patch embeddings (channels).
        mlp_ratio: Hidden width of the channel MLP as a multiple of ``embed_dim``.
        drop_rate: Dropout before the classifier.
        proj_drop_rate: Dropout inside the MLPs.
        drop_path_rate: Stochastic depth rate of every block.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        depth: int = 8,
        embed_dim: int = 256,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__(input_shape, output_shape, patch_size)
        require_positive(type(self).__name__, depth=depth, embed_dim=embed_dim)
        self.mlp_ratio = mlp_ratio
        self.network_args = {
            "num_blocks": depth,
            "embed_dim": embed_dim,
            "mlp_ratio": mlp_ratio,
            "drop_rate": drop_rate,
            "proj_drop_rate": proj_drop_rate,
            "drop_path_rate": drop_path_rate,
        }

    def build_network(self, **block_settings: Any) -> None:
        """Build timm's ``MlpMixer`` for this image size and classes; ``block_settings`` pick the family.

        timm's initialisation covers ``nn.Linear`` layers only (the mixture of experts' router is one);
        :func:`init_experts_as_timm_mixer` gives the experts of a ``moe`` channel MLP the same rule.
        """
        channels, height, width = self.input_shape
        self.model = TimmMlpMixer(
            num_classes=self.num_classes,
            img_size=(height, width),
            in_chans=channels,
            patch_size=self.patch_size,
            **{**self.network_args, **block_settings},
        )
        init_experts_as_timm_mixer(self.model)


def init_experts_as_timm_mixer(model: nn.Module) -> None:
    """The rule of timm's ``MlpMixer`` for linear layers (``_init_weights``, ``flax=False``), for experts.

    Every ``nn.Linear`` but the head gets a Xavier-uniform weight and, inside a module whose name holds
    ``mlp`` (the channel MLPs), a N(0, 1e-6) bias (zero elsewhere). timm's pass skips the experts' ``w1``
    / ``w2`` stacks, which would keep :meth:`~mlplab.nn.moe.MixtureOfExperts.reset_experts`' uniform
    +-1/sqrt(fan_in) (at width 32 and hidden 128 std 0.10 and 0.05 against the dense ``fc1`` / ``fc2``'s
    0.11, biases std 0.10 against 1e-6): here each expert gets what a dense ``fc1`` / ``fc2`` of its
    shape gets.
    """
    for name, module in model.named_modules():
        if isinstance(module, MixtureOfExperts):
            bias_init = partial(nn.init.normal_, std=1e-6) if "mlp" in name else nn.init.zeros_
            module.init_experts(nn.init.xavier_uniform_, bias_init=bias_init)


def _mixer_block_with(channel_mlp: ChannelMLP) -> Callable[..., MixerBlock]:
    """A ``block_layer`` for timm's ``MlpMixer``: its ``MixerBlock`` with ``channel_mlp`` as channel MLP.

    ``MixerBlock`` uses its ``mlp_layer`` for the token MLP as well, so the channel MLP is swapped after
    the block is built (timm's weight initialisation runs afterwards, over the whole model).
    """

    def block(dim: int, seq_len: int, mlp_ratio: tuple[float, float], **kwargs) -> MixerBlock:
        mixer_block = MixerBlock(dim, seq_len, mlp_ratio, **kwargs)
        if channel_mlp.kind != "conventional":
            mixer_block.mlp_channels = channel_mlp.build(
                dim, int(mlp_ratio[1] * dim), activation=kwargs.get("act_layer", nn.GELU), drop=kwargs["drop"]
            )
        return mixer_block

    return block


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant({"patch_size": 4, "depth": 2, "embed_dim": 32}),
        "S/16": Variant({"patch_size": 16, "depth": 8, "embed_dim": 512}, shapes=IMAGENET),
        "B/16": Variant(
            {"patch_size": 16, "depth": 12, "embed_dim": 768},
            params=59_880_000,
            precision=10_000,
            shapes=IMAGENET,
            source=f"mixer_b16_224 in {TIMM_RESULTS}",
        ),
    },
    blocks=BlockLayout(MixerBlock, mixer=("mlp_tokens",), mlp=("mlp_channels",)),
    renamed={"num_blocks": "depth", "channel_mlp_ratio": "mlp_ratio"},
    source="timm (`mlp_mixer.py`), typed wrapper",
)
class MlpMixer(TimmMixerClassifier):
    """MLP-Mixer (timm's ``MlpMixer``): patches, mixer blocks (token MLP, channel MLP), LN, mean, head.

    Mixer-S/16 at 224 px is ``patch_size=16, depth=8, embed_dim=512``; Mixer-B/16
    ``patch_size=16, depth=12, embed_dim=768`` (variants ``S/16`` and ``B/16``).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        token_mlp_ratio: Hidden width of the token MLP as a multiple of ``embed_dim``.
        stem_norm: Normalise the patch embeddings.
        channel_mlp: The channel MLP of every block: conventional, hourglass or moe.
        **kwargs: The arguments of :class:`TimmMixerClassifier`: ``patch_size``, ``depth`` (8),
            ``embed_dim`` (256), ``mlp_ratio`` (4), ``drop_rate``, ``proj_drop_rate``, ``drop_path_rate``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        token_mlp_ratio: float = 0.5,
        stem_norm: bool = False,
        channel_mlp: ChannelMLP = CONVENTIONAL,
        **kwargs: Any,
    ):
        super().__init__(input_shape, output_shape, **kwargs)
        self.build_network(
            mlp_ratio=(token_mlp_ratio, self.mlp_ratio),
            block_layer=_mixer_block_with(channel_mlp),
            stem_norm=stem_norm,
        )


@register_family(
    domains=("image_classification",),
    channel_mlps=("conventional", "hourglass", "moe"),
    variants={
        "tiny": Variant({"patch_size": 4, "depth": 2, "embed_dim": 32, "init_values": 0.1}),
        "S12": Variant(
            {"patch_size": 16, "depth": 12, "embed_dim": 384},
            params=15_350_000,
            precision=10_000,
            shapes=IMAGENET,
            source=f"resmlp_12_224 in {TIMM_RESULTS}",
        ),
    },
    blocks=BlockLayout(ResBlock, mixer=("linear_tokens",), mlp=("mlp_channels",)),
    renamed={"num_blocks": "depth"},
    source="timm (`mlp_mixer.py`), typed wrapper",
)
class ResMLP(TimmMixerClassifier):
    """ResMLP (timm's ``MlpMixer`` with ``ResBlock`` and ``Affine``): linear token mixing, LayerScale.

    ResMLP-S12 at 224 px (variant ``S12``) is ``patch_size=16, depth=12, embed_dim=384``.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        depth: Number of residual blocks (timm's ``num_blocks``).
        embed_dim: Width of the patch embeddings.
        init_values: Initial LayerScale (1e-4 for 12 blocks, 1e-5 for 24, 1e-6 for 36 in the paper).
        channel_mlp: The channel MLP of every block: conventional, hourglass or moe.
        **kwargs: The arguments of :class:`TimmMixerClassifier`: ``patch_size``, ``mlp_ratio`` (4),
            ``drop_rate``, ``proj_drop_rate``, ``drop_path_rate``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        depth: int = 12,
        embed_dim: int = 384,
        init_values: float = 1e-4,
        channel_mlp: ChannelMLP = CONVENTIONAL,
        **kwargs: Any,
    ):
        super().__init__(input_shape, output_shape, depth=depth, embed_dim=embed_dim, **kwargs)
        extra = {} if channel_mlp.kind == "conventional" else {"mlp_layer": channel_mlp.as_timm_mlp_layer()}
        self.build_network(block_layer=partial(ResBlock, init_values=init_values), norm_layer=Affine, **extra)


@register_family(
    domains=("image_classification",),
    variants={
        "tiny": Variant({"patch_size": 4, "depth": 2, "embed_dim": 32}),
        "Ti": Variant(
            {"patch_size": 16, "depth": 30, "embed_dim": 128, "mlp_ratio": 6.0},
            params=6_000_000,
            precision=1_000_000,
            shapes=IMAGENET,
            source='the paper\'s "6M" (Liu et al. 2021, Table 1)',
        ),
        "S": Variant(
            {"patch_size": 16, "depth": 30, "embed_dim": 256, "mlp_ratio": 6.0},
            params=19_420_000,
            precision=10_000,
            shapes=IMAGENET,
            source=f"gmlp_s16_224 in {TIMM_RESULTS}",
        ),
    },
    blocks=BlockLayout(SpatialGatingBlock, mlp=("mlp_channels",)),
    renamed={"num_blocks": "depth"},
    source="timm (`mlp_mixer.py`), typed wrapper",
)
class GMLP(TimmMixerClassifier):
    """gMLP (timm's ``MlpMixer`` with ``SpatialGatingBlock``): channel MLP gated by a spatial linear layer.

    gMLP-Ti / S / B at 224 px: ``patch_size=16, depth=30, mlp_ratio=6`` and ``embed_dim`` 128 / 256
    / 512 (variants ``Ti`` and ``S``). There is no ``channel_mlp`` argument: the spatial gating unit sits
    inside the channel MLP.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        depth: Number of gMLP blocks (timm's ``num_blocks``).
        embed_dim: Width of the patch embeddings.
        mlp_ratio: Hidden width of the gated channel MLP as a multiple of ``embed_dim``.
        **kwargs: The arguments of :class:`TimmMixerClassifier`: ``patch_size``, ``drop_rate``,
            ``proj_drop_rate``, ``drop_path_rate``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        depth: int = 30,
        embed_dim: int = 128,
        mlp_ratio: float = 6.0,
        **kwargs: Any,
    ):
        super().__init__(
            input_shape, output_shape, depth=depth, embed_dim=embed_dim, mlp_ratio=mlp_ratio, **kwargs
        )
        self.build_network(block_layer=SpatialGatingBlock, mlp_layer=GatedMlp)


@register_family(
    domains=("image_classification",),
    variants={
        # three stages: at 16x16 a fourth would be a 1x1 map, where pooling minus identity is zero
        "tiny": Variant(
            {"patch_size": 2, "depths": (1, 1, 1), "dims": (8, 16, 24), "layer_scale_init_value": 0.1}
        ),
        "S12": Variant(
            {"patch_size": 4, "depths": (2, 2, 6, 2), "dims": (64, 128, 320, 512)},
            params=11_920_000,
            precision=10_000,
            shapes=IMAGENET,
            source=f"poolformer_s12 in {TIMM_RESULTS}",
        ),
    },
    blocks=BlockLayout(MetaFormerBlock, mixer=("token_mixer",), mlp=("mlp",)),
    source="timm (`metaformer.py`), typed wrapper",
)
class PoolFormer(TimmClassifier):
    """PoolFormer (timm's ``MetaFormer`` with ``Pooling`` token mixers), as timm's ``poolformer_s12``.

    Stem: a convolution of stride ``patch_size`` (kernel ``patch_size + 3``, padding 2: timm's 7/4/2
    stem for ``patch_size=4``), then 4 stages of ``depths`` blocks (pooling token mixer, GroupNorm,
    LayerScale, GELU channel MLP of ratio 4) with stride-2 downsampling in between, GroupNorm-free head
    (LayerNorm, linear). PoolFormer-S12 is ``depths=(2, 2, 6, 2), dims=(64, 128, 320, 512)``.

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Stride of the stem (at least 2); must divide the image size.
        depths: Blocks per stage.
        dims: Width of each stage.
        pool_size: Window of the average-pooling token mixer.
        layer_scale_init_value: Initial LayerScale of every block.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth rate (linearly increasing over the blocks).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        dims: tuple[int, ...] = (64, 128, 320, 512),
        pool_size: int = 3,
        layer_scale_init_value: float = 1e-5,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__(input_shape, output_shape, patch_size)
        if patch_size < 2:
            raise ConfigError(f"PoolFormer: patch_size must be at least 2, got {patch_size}")
        if len(depths) != len(dims) or not depths:
            raise ConfigError(f"PoolFormer: depths {tuple(depths)} and dims {tuple(dims)} must be as long")
        channels = self.input_shape[0]
        self.model = MetaFormer(
            in_chans=channels,
            num_classes=self.num_classes,
            depths=tuple(depths),
            dims=tuple(dims),
            token_mixers=Pooling,
            pool_size=pool_size,
            downsample_norm=None,
            mlp_act=nn.GELU,
            mlp_bias=True,
            norm_layers=GroupNorm1,
            layer_scale_init_values=layer_scale_init_value,
            res_scale_init_values=None,
            use_mlp_head=False,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
        )
        if patch_size != 4:
            stem = nn.Conv2d(channels, dims[0], kernel_size=patch_size + 3, stride=patch_size, padding=2)
            trunc_normal_(stem.weight, std=0.02)
            nn.init.zeros_(stem.bias)
            self.model.stem.conv = stem


@register_family(
    domains=("image_classification",),
    variants={
        "tiny": Variant({"patch_size": 4, "depth": 2, "num_heads": 2, "head_dim": 8, "local_up_to_layer": 1}),
        "Ti": Variant(
            {"patch_size": 16, "depth": 12, "num_heads": 4, "head_dim": 48, "local_up_to_layer": 10},
            params=5_710_000,
            precision=10_000,
            shapes=IMAGENET,
            source=f"convit_tiny in {TIMM_RESULTS}",
        ),
    },
    blocks=BlockLayout(ConViTBlock, mixer=("attn",), mlp=("mlp",)),
    source="timm (`convit.py`), typed wrapper",
)
class ConViT(TimmClassifier):
    """ConViT (timm's ``ConVit``): a ViT whose first blocks use gated positional self-attention.

    Images must be square (the positional attention assumes a square grid of patches).

    ConViT-Ti at 224 px is ``patch_size=16, num_heads=4, head_dim=48`` (width 192, 12 blocks, GPSA in
    the first 10).

    Args:
        input_shape: ``(C, H, W)`` of the images; filled in from the data.
        output_shape: ``(num_classes,)``; filled in from the data.
        patch_size: Side of the square patches; must divide the image size.
        depth: Number of transformer blocks.
        num_heads: Attention heads per block.
        head_dim: Width per head (timm's ``embed_dim``); the model width is ``num_heads * head_dim``.
        local_up_to_layer: Number of leading blocks with gated positional self-attention.
        locality_strength: Initial locality strength of the GPSA heads.
        mlp_ratio: Hidden width of the MLPs as a multiple of the model width.
        qkv_bias: Biases in the query/key/value projections.
        drop_rate: Dropout before the classifier.
        drop_path_rate: Stochastic depth rate (linearly increasing over the blocks).
    """

    square_only = True

    def __init__(
        self,
        input_shape: tuple[int, ...],
        output_shape: tuple[int, ...],
        patch_size: int = 4,
        depth: int = 12,
        num_heads: int = 4,
        head_dim: int = 48,
        local_up_to_layer: int = 10,
        locality_strength: float = 1.0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__(input_shape, output_shape, patch_size)
        require_positive("ConViT", depth=depth, num_heads=num_heads, head_dim=head_dim)
        channels, height, _ = self.input_shape
        self.model = TimmConVit(
            img_size=height,
            patch_size=patch_size,
            in_chans=channels,
            num_classes=self.num_classes,
            embed_dim=head_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            local_up_to_layer=local_up_to_layer,
            locality_strength=locality_strength,
        )
