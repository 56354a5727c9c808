"""PyTorch rebuild of the generalized U-Net of pyliverlesionseg / DeepVoxNet (`create_unet_like_model`).

Written from the architecture description of pyliverlesionseg 0.3 (`architectures/unet_generalized.py`,
Apache-2.0, Tang et al. 2020): pathways at increasing subsample factors, each with a "left" (down) and
"right" (up) list of convolutions; instance normalisation (x - mean) / (std + 1e-7) over space, then
LeakyReLU(0.01), before every convolution except the very first; max pooling down; "copy" (nearest)
or "linear" (nearest + box filter, which shrinks by factor - 1) upsampling; left features centre-cropped
and concatenated before the right convolutions; optional residual blocks with a 1x1x1 projection when
the channel count changes; a final 1x1x1 convolution (sigmoid output, returned here as logits).

Tensors are (N, C, x, y, z) in the Keras axis order of the original (RAS arrays from nibabel), so Keras
kernels (kx, ky, kz, c_in, c_out) map onto PyTorch weights by a transpose only. Convolutions are created
in the order Keras created them, so the k-th `conv3d_k` of the HDF5 file is `self.convs[k - 1]`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Triple = tuple[int, int, int]
EPSILON = 1e-7  # Keras backend epsilon used by the original instance normalisation


@dataclass(frozen=True)
class UNetSpec:
    """Arguments of `create_unet_like_model` that define the trained networks (x, y, z order)."""

    subsample_factors: tuple[Triple, ...]
    kernels: tuple[tuple[tuple[Triple, ...], tuple[Triple, ...]], ...]  # per pathway: (left, right)
    features: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    padding: str  # "same" or "valid"
    upsampling: str  # "copy" or "linear"
    residual: bool = False
    input_features: int = 1
    output_features: int = 1

    def check(self) -> None:
        """Raise ValueError for settings this port does not implement (alignment pooling, odd crops)."""
        if self.padding not in ("same", "valid") or self.upsampling not in ("copy", "linear"):
            raise ValueError(f"unsupported padding/upsampling {self.padding}/{self.upsampling}")
        previous = (1, 1, 1)
        for factor, (left, right) in zip(self.subsample_factors, self.kernels):
            step = [f // p for f, p in zip(factor, previous)]
            # The original inserts a shift-correcting average pool when a pooling step or a kernel moves the
            # voxel centres by half a voxel; that happens only for even sizes, which these networks never use.
            if any((f * (s - 1) + 1) % 2 == 0 for f, s in zip(factor, step)):
                raise ValueError("even subsample steps need alignment pooling, not implemented")
            if any((f * (k - 1) + 1) % 2 == 0 for kernel in left + right for f, k in zip(factor, kernel)):
                raise ValueError("even kernels need alignment pooling, not implemented")
            previous = factor


def centre_crop(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """`x` (N, C, *space) cropped symmetrically to spatial `size` (each difference must be even)."""
    slices = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], size):
        cut = have - want
        if cut < 0 or cut % 2:
            raise ValueError(f"cannot centre-crop {tuple(x.shape[2:])} to {tuple(size)}")
        slices.append(slice(cut // 2, have - cut // 2))
    return x[tuple(slices)]


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """(x - mean) / (population std + 1e-7) over the spatial axes, per sample and channel.

    Written as one `instance_norm` (ONNX InstanceNormalization, a single fused kernel in ONNX Runtime) with
    eps = 1e-14: (x - m) / sqrt(var + 1e-14) differs from the original's (x - m) / (std + 1e-7) by less than
    1e-7 / std relative, and gives 0 for a constant channel as the original does.
    """
    channels = int(x.shape[1])  # a constant of the graph (ONNX needs the scale and bias of every channel)
    ones = torch.ones(channels, dtype=x.dtype, device=x.device)
    return F.instance_norm(x, weight=ones, bias=torch.zeros_like(ones), eps=EPSILON * EPSILON)


def nearest_upsample(x: torch.Tensor, factor: Triple) -> torch.Tensor:
    """(N, C, a, b, c) -> (N, C, a*fa, b*fb, c*fc) by repeating voxels (ONNX Expand + Reshape, cheaper than Resize)."""
    n, ch, a, b, c = x.shape
    fa, fb, fc = factor
    x = x.reshape(n, ch, a, 1, b, 1, c, 1).expand(n, ch, a, fa, b, fb, c, fc)
    return x.reshape(n, ch, a * fa, b * fb, c * fc)


class DeepVoxNetUNet(nn.Module):
    """The pyliverlesionseg U-Net; `forward` maps (N, 1, x, y, z) input to (N, 1, x', y', z') logits."""

    def __init__(self, spec: UNetSpec) -> None:
        super().__init__()
        spec.check()
        self.spec = spec
        self.convs = nn.ModuleList()
        self.plan: list[dict] = []  # per pathway: conv indices of the left/right blocks and their shortcuts
        self._build()

    def _conv(self, c_in: int, c_out: int, kernel: Triple) -> int:
        """Create one Conv3d (Keras creation order) and return its index."""
        pad = tuple(k // 2 for k in kernel) if self.spec.padding == "same" else 0
        self.convs.append(nn.Conv3d(c_in, c_out, kernel, padding=pad))
        return len(self.convs) - 1

    def _block(self, c_in: int, kernels: tuple[Triple, ...], features: tuple[int, ...]) -> tuple[dict, int]:
        """Convolutions of one left or right block (+ residual projection); returns its plan and c_out."""
        plan = {"convs": [], "shortcut": None}
        c = c_in
        for kernel, n in zip(kernels, features):
            plan["convs"].append(self._conv(c, n, kernel))
            c = n
        if self.spec.residual and kernels and c != c_in:
            plan["shortcut"] = self._conv(c_in, c, (1, 1, 1))
        return plan, c

    def _build(self) -> None:
        """All convolutions, left pathways first (shallow to deep), then right ones (deep to shallow)."""
        s = self.spec
        c, left_channels = s.input_features, []
        for kernels, features in zip(s.kernels, s.features):
            plan, c = self._block(c, kernels[0], features[0])
            self.plan.append({"left": plan})
            left_channels.append(c)
        for p in reversed(range(len(s.kernels))):
            if p < len(s.kernels) - 1:
                c = c + left_channels[p]
            plan, c = self._block(c, s.kernels[p][1], s.features[p][1])
            self.plan[p]["right"] = plan
        self.final = self._conv(c, s.output_features, (1, 1, 1))

    def _run_block(self, x: torch.Tensor, plan: dict, first: bool) -> torch.Tensor:
        """Norm → LeakyReLU → conv for each conv of a block (not before the network's first conv)."""
        shortcut = x
        for j, index in enumerate(plan["convs"]):
            if not (first and j == 0):
                x = F.leaky_relu(instance_norm(x), 0.01)
            x = self.convs[index](x)
        if self.spec.residual and plan["convs"]:
            shortcut = centre_crop(shortcut, tuple(x.shape[2:]))
            if plan["shortcut"] is not None:
                shortcut = self.convs[plan["shortcut"]](shortcut)
            x = x + shortcut
        return x

    def _upsample(self, x: torch.Tensor, factor: Triple) -> torch.Tensor:
        """Nearest-neighbour upsampling by `factor`; "linear" adds a factor-sized box filter (valid)."""
        if factor == (1, 1, 1):
            return x
        x = nearest_upsample(x, factor)
        return F.avg_pool3d(x, factor, stride=1) if self.spec.upsampling == "linear" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the single output feature; input and output (N, C, x, y, z)."""
        s = self.spec
        factors = (((1, 1, 1),) + tuple(s.subsample_factors))
        lefts = []
        for p in range(len(s.kernels)):
            step = tuple(f // q for f, q in zip(factors[p + 1], factors[p]))
            if step != (1, 1, 1):
                if any(n % k for n, k in zip(x.shape[2:], step)):
                    raise ValueError(f"size {tuple(x.shape[2:])} is not divisible by the pooling step {step}")
                x = F.max_pool3d(x, step, stride=step)
            x = self._run_block(x, self.plan[p]["left"], first=p == 0)
            lefts.append(x)
        for p in reversed(range(len(s.kernels))):
            if p < len(s.kernels) - 1:
                x = torch.cat([centre_crop(lefts[p], tuple(x.shape[2:])), x], dim=1)
            x = self._run_block(x, self.plan[p]["right"], first=False)
            if p > 0:
                x = self._upsample(x, tuple(f // q for f, q in zip(factors[p + 1], factors[p])))
        x = F.leaky_relu(instance_norm(x), 0.01)
        return self.convs[self.final](x)


#: The two trained networks of pyliverlesionseg 0.3 (arguments of unet_liver_predict / unet_lesion_predict).
_LEFT_RIGHT = (((3, 3, 1), (3, 3, 3)), ((3, 3, 3), (3, 3, 1)))
_FEATURES = (((20, 40), (40, 20)), ((40, 80), (80, 40)), ((80, 160), (160, 80)), ((160, 160), ()))
LIVER_SPEC = UNetSpec(
    subsample_factors=((1, 1, 1), (3, 3, 3), (9, 9, 9), (27, 27, 27)),
    kernels=(_LEFT_RIGHT, _LEFT_RIGHT, _LEFT_RIGHT, (((3, 3, 3), (3, 3, 3)), ())),
    features=_FEATURES, padding="same", upsampling="linear",
)
LESION_SPEC = UNetSpec(
    subsample_factors=((1, 1, 1), (2, 2, 2), (4, 4, 4), (8, 8, 8)),
    kernels=(_LEFT_RIGHT, _LEFT_RIGHT, _LEFT_RIGHT, (((3, 3, 1), (3, 3, 3)), ())),
    features=_FEATURES, padding="valid", upsampling="copy", residual=True,
)
