"""The benchmark models in PyTorch, the architectures of :mod:`benchmarks._jax_models`.

PyTorch is optional (the ``bench`` extra pins the CPU build): :func:`torch_or_none` returns
``None`` and logs one line naming the extra when it is missing, and the torch columns are
skipped. PyTorch runs with as many intra-op threads as the machine has cores
(``torch.set_num_threads(os.cpu_count())``).
"""

from __future__ import annotations

import os

from benchmarks._worker_io import log

HINT = "PyTorch is not installed, its columns are skipped: pip install 'jtricks[bench]'"
_warned: list[bool] = []


def torch_or_none():
    """The ``torch`` module with its threads set to the core count, or ``None`` (logged once)."""
    try:
        import torch
    except ImportError:
        if not _warned:
            log(f"[bench] {HINT}")
            _warned.append(True)
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def mlp(features, dropout=0.1, in_features=64):
    import torch.nn as tnn

    layers, d = [tnn.Flatten()], in_features
    for width in features[:-1]:
        layers += [tnn.Linear(d, width), tnn.ReLU(), tnn.Dropout(dropout)]
        d = width
    return tnn.Sequential(*layers, tnn.Linear(d, features[-1]))


def cnn(num_classes=10, channels=(16, 32), dense_features=(64,), dropout=0.1, size=8):
    import torch.nn as tnn

    layers, c = [], 1
    for out in channels:
        layers += [tnn.Conv2d(c, out, 3, padding=1), tnn.ReLU(), tnn.MaxPool2d(2, ceil_mode=True)]
        c, size = out, -(-size // 2)
    layers.append(tnn.Flatten())
    d = c * size * size
    for width in dense_features:
        layers += [tnn.Linear(d, width), tnn.ReLU(), tnn.Dropout(dropout)]
        d = width
    return tnn.Sequential(*layers, tnn.Linear(d, num_classes))


def resnet(num_classes, stage_channels, blocks_per_stage, in_channels=3):
    import torch
    import torch.nn as tnn

    def conv_bn(c_in, c_out, k, s):
        return tnn.Sequential(tnn.Conv2d(c_in, c_out, k, s, padding=k // 2, bias=False),
                              tnn.BatchNorm2d(c_out, momentum=0.1, eps=1e-5))

    class Block(tnn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.a, self.b = conv_bn(c_in, c_out, 3, stride), conv_bn(c_out, c_out, 3, 1)
            self.shortcut = (conv_bn(c_in, c_out, 1, stride)
                             if stride != 1 or c_in != c_out else tnn.Identity())

        def forward(self, x):
            return torch.relu(self.shortcut(x) + self.b(torch.relu(self.a(x))))

    blocks, c = [conv_bn(in_channels, stage_channels[0], 3, 1), tnn.ReLU()], stage_channels[0]
    for s, out in enumerate(stage_channels):
        for b in range(blocks_per_stage):
            blocks.append(Block(c, out, 2 if (s > 0 and b == 0) else 1))
            c = out
    return tnn.Sequential(*blocks, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                          tnn.Linear(c, num_classes))


def transformer(num_classes, width, depth, heads, d_in):
    import torch
    import torch.nn as tnn
    import torch.nn.functional as F

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln_0, self.ln_1 = tnn.LayerNorm(width), tnn.LayerNorm(width)
            self.qkv, self.out = tnn.Linear(width, 3 * width), tnn.Linear(width, width)
            self.fc_0, self.fc_1 = tnn.Linear(width, 2 * width), tnn.Linear(2 * width, width)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (a.view(b, t, heads, -1).transpose(1, 2)
                       for a in self.qkv(self.ln_0(x)).chunk(3, dim=-1))
            a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, width)
            x = x + self.out(a)
            return x + self.fc_1(F.gelu(self.fc_0(self.ln_1(x))))

    class Transformer(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Linear(d_in, width)
            self.blocks = tnn.Sequential(*[Block() for _ in range(depth)])
            self.ln, self.head = tnn.LayerNorm(width), tnn.Linear(width, num_classes)

        def forward(self, x):
            return self.head(self.ln(self.blocks(self.embed(x))).mean(dim=1))

    return Transformer()


def train_step(model, optimizer, clip: float | None = 1.0):
    """The eager step a PyTorch user writes: zero_grad, loss, backward, clip, step."""
    import torch.nn.functional as F
    from torch.nn.utils import clip_grad_norm_

    params = list(model.parameters())

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip is not None:
            clip_grad_norm_(params, clip)
        optimizer.step()
        return loss

    return step


def train_epoch(model, optimizer, x, y, batch_size: int) -> None:
    """One epoch of the usual PyTorch loop: shuffled full batches, zero_grad, backward, step."""
    import torch
    import torch.nn.functional as F

    order = torch.randperm(len(y))
    for i in range(len(y) // batch_size):
        idx = order[i * batch_size:(i + 1) * batch_size]
        optimizer.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()


def grad_step(model):
    """Forward and backward only."""
    import torch.nn.functional as F

    def step(x, y):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return step


def accuracy(model, x, y) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    model.train()
    return acc


def nchw(torch, x):
    """An NHWC numpy / JAX batch as a contiguous NCHW float tensor."""
    import numpy as np

    return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x), (0, 3, 1, 2))))
