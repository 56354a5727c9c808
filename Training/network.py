"""3D U-Net (InstanceNorm + LeakyReLU, optional residual blocks) that exports cleanly to ONNX."""
from __future__ import annotations

import torch
from torch import nn

from .config import NetworkConfig


class ConvBlock(nn.Module):
    """Two 3x3x3 conv-norm-act layers (first one optionally strided), with an optional residual path."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm3d(c_out, affine=True)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm3d(c_out, affine=True)
        self.act = nn.LeakyReLU(0.01, inplace=True)
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Sequential(nn.Conv3d(c_in, c_out, 1, stride=stride, bias=False), nn.InstanceNorm3d(c_out, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c_in, z, y, x) -> (N, c_out, z/stride, y/stride, x/stride)."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.skip is not None:
            out = out + self.skip(x)
        return self.act(out)


class UNet3D(nn.Module):
    """U-Net on (N, 1, z, y, x) float32 inputs whose spatial sizes are multiples of 2**depth."""

    def __init__(self, num_classes: int, base_features: int = 8, depth: int = 3,
                 max_features: int = 128, residual: bool = True, in_channels: int = 1) -> None:
        super().__init__()
        self.depth = depth
        feats = [min(base_features * 2**i, max_features) for i in range(depth + 1)]
        self.encoders = nn.ModuleList(
            [ConvBlock(in_channels, feats[0], 1, residual)]
            + [ConvBlock(feats[i - 1], feats[i], 2, residual) for i in range(1, depth + 1)]
        )
        self.ups = nn.ModuleList([nn.ConvTranspose3d(feats[i], feats[i - 1], 2, stride=2) for i in range(depth, 0, -1)])
        self.decoders = nn.ModuleList([ConvBlock(2 * feats[i - 1], feats[i - 1], 1, residual) for i in range(depth, 0, -1)])
        self.head = nn.Conv3d(feats[0], num_classes, 1)

    @property
    def multiple(self) -> int:
        """Spatial sizes the network accepts are multiples of this."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, z, y, x) for normalised CT (N, 1, z, y, x)."""
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def build_network(cfg: NetworkConfig, num_classes: int) -> UNet3D:
    """The U-Net described by `cfg`."""
    return UNet3D(num_classes, cfg.base_features, cfg.depth, cfg.max_features, cfg.residual)
