"""The live view of a training run, without any UI: fixed preview images, reconstructions and
prior samples decoded from recent weights, and the step history thinned into chart series.

A training worker (vae_core.worker) decodes each :class:`Preview` next to its model and sends it;
the job's handle (vae_core.handle) keeps the latest and a :class:`PreviewHistory` of them over time
(the Train page's GIF); a :class:`~vae_core.registry.TrainerHandle` keeps one :class:`SeriesBuffer`;
pages read :class:`Preview` objects and ``dict[str, np.ndarray]`` series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import Dataset, to_float
from .models import AE, VAE
from .train import History

__all__ = [
    "Preview",
    "PreviewFrame",
    "PreviewHistory",
    "PREVIEW_FRAMES",
    "SeriesBuffer",
    "fixed_examples",
    "prior_noise",
    "make_preview",
    "plot_series",
]


@dataclass(frozen=True)
class Preview:
    """Decoded images at one training step, made by the worker that trains the model."""

    step: int  # the training step whose weights decoded them
    inputs: torch.Tensor  # (N, D) uint8: the fixed test images (fixed_examples)
    recon: torch.Tensor  # (N, D) their reconstructions (decoded from mu), pixel means in [0, 1]
    samples: torch.Tensor  # (M, D) decodes of the fixed prior draws z ~ N(0, I) (prior_noise), in [0, 1]


# Frames a PreviewHistory keeps. 60 frames at the GIF's ~150 ms are a 9-second film, long enough to see
# the reconstructions sharpen and the samples form; at one preview a second a default run (~3 minutes)
# already brings three times as many. Stored as uint8, a frame of 8 reconstructions and 16 samples of
# 28x28 pixels is 18.8 KB, so a run's history stays under 1.2 MB (a room of 30 sessions: ~35 MB).
PREVIEW_FRAMES = 60


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """Pixel means (N, D) in [0, 1] (or uint8) -> (N, D) uint8, rounded: what a picture of them shows."""
    a = images.detach().cpu().numpy()
    if a.dtype == np.uint8:
        return a.copy()
    return np.clip(np.rint(a.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PreviewFrame:
    """One :class:`Preview` as kept over time: uint8 (a quarter of float32's memory), read-only arrays."""

    step: int  # the training step whose weights decoded it
    inputs: np.ndarray  # (N, D) uint8: the fixed test images (one array shared by every frame of a run)
    recon: np.ndarray  # (N, D) uint8: their reconstructions
    samples: np.ndarray  # (M, D) uint8: decodes of the fixed prior draws


class PreviewHistory:
    """The previews of one run over time, one per update that brought one, at most ``cap`` of them.

    Past the cap, each new frame pushes out the one in the middle whose neighbours are closest in
    steps: the first frame (the untrained decoder) and the newest always stay, and the others
    thin towards an even spread over the run, however long it goes on (with previews arriving
    steadily, the widest gap in steps stays within about twice the narrowest). Each call is O(cap). Not thread-safe: its owner holds a lock.
    """

    def __init__(self, cap: int = PREVIEW_FRAMES) -> None:
        if cap < 2:
            raise ValueError(
                f"a preview history keeps at least 2 frames (the first and the newest), got {cap}"
            )
        self.cap = cap
        self._frames: list[PreviewFrame] = []
        self._inputs: np.ndarray | None = None  # (N, D) uint8: the fixed test images, shared by the frames

    def add(self, pv: Preview) -> None:
        """Keep ``pv`` (its images as uint8); a preview of a step already kept replaces that frame."""
        inputs = _to_uint8(pv.inputs)
        if self._inputs is None or not np.array_equal(self._inputs, inputs):
            inputs.flags.writeable = False
            self._inputs = (
                inputs  # the worker sends the same fixed images each time: one copy serves every frame
            )
        recon, samples = _to_uint8(pv.recon), _to_uint8(pv.samples)
        recon.flags.writeable = samples.flags.writeable = False
        frame = PreviewFrame(int(pv.step), self._inputs, recon, samples)
        if self._frames and self._frames[-1].step == frame.step:
            self._frames[-1] = frame
            return
        self._frames.append(frame)
        if len(self._frames) > self.cap:
            steps = [f.step for f in self._frames]
            # drop the interior frame whose removal leaves the smallest gap (the earliest on a tie)
            i = min(range(1, len(steps) - 1), key=lambda k: steps[k + 1] - steps[k - 1])
            del self._frames[i]

    def frames(self) -> tuple[PreviewFrame, ...]:
        """The kept frames, oldest first (a tuple: safe to keep while more arrive)."""
        return tuple(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def fixed_examples(dataset: Dataset, n: int = 8) -> torch.Tensor:
    """``n`` fixed test images (n, D) uint8: the first of each class in turn, so classes differ."""
    y = dataset.y_test.cpu()
    picks: list[int] = []
    for c in range(int(y.max()) + 1 if len(y) else 0):
        where = (y == c).nonzero()
        if len(where):
            picks.append(int(where[0]))
        if len(picks) == n:
            break
    for i in range(len(y)):  # fewer classes than n: top up with the first unused images
        if len(picks) >= n:
            break
        if i not in picks:
            picks.append(i)
    return dataset.x_test[torch.tensor(picks, dtype=torch.long)].cpu()


def prior_noise(latent_dim: int, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` fixed draws z ~ N(0, I), shape (n, latent_dim), the same for every step."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent_dim, generator=g)


@torch.no_grad()
def make_preview(model: AE | VAE, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions (N, D), samples (M, D)) as pixel means in [0, 1], on CPU.

    ``x`` (N, D) uint8 or float in [0, 1] is reconstructed from its posterior mean (the AE's
    code); ``z`` (M, z) is decoded as is. For an AE, ``z`` is not from any prior it has.
    Leaves the model in eval mode.
    """
    model = model.eval()
    dev = next(model.parameters()).device
    mu, _ = model.encode(to_float(x.to(dev)))  # (N, z)
    return model.mean_image(mu).cpu(), model.mean_image(z.to(dev)).cpu()


def _bucket(cols: dict[str, np.ndarray], max_points: int) -> dict[str, np.ndarray]:
    """Average every column into at most ``max_points`` buckets; ``step`` keeps each bucket's last.

    Adds ``neg_elbo`` = ``recon_cost`` + ``kl`` (nats/example).
    """
    n = len(cols["step"])
    out = dict(cols)
    if n > max_points > 0:
        starts = np.linspace(0, n, max_points + 1).astype(np.int64)[:-1]
        counts = np.diff(np.append(starts, n))
        for k, v in cols.items():
            if k == "step":
                out[k] = v[starts + counts - 1]
            elif v.ndim == 2 and v.shape[1] == 0:
                out[k] = v[: len(starts)]
            else:
                out[k] = np.add.reduceat(v, starts, axis=0) / (counts[:, None] if v.ndim == 2 else counts)
    out["neg_elbo"] = out["recon_cost"] + out["kl"]
    return out


def plot_series(history: History, max_points: int = 400) -> dict[str, np.ndarray]:
    """The step records (:meth:`History.arrays`) averaged into at most ``max_points`` buckets.

    Keys: ``step`` (last step of each bucket), ``epoch``, ``recon_cost`` (-E_q log p(x|z),
    nats/example, >= 0), ``kl`` and ``neg_elbo`` (nats/example), ``loss`` (the beta-weighted
    objective), ``beta``, and ``kl_per_dim`` (P, z) in nats/example. Averaging also smooths
    per-batch noise, and keeps the figures small however long training runs.
    """
    return _bucket(history.arrays(), max_points)


class SeriesBuffer:
    """Growing numpy copies of one trainer's step records, so that a long run costs the same per
    redraw as a short one (see :meth:`~vae_core.registry.TrainerHandle.series`)."""

    def __init__(self, trainer_id: int) -> None:
        self.trainer_id = trainer_id  # id() of the trainer whose history this holds
        self.n = 0  # step records converted so far
        self.cols: dict[str, np.ndarray] | None = None

    def update(self, history: History, max_points: int) -> dict[str, np.ndarray]:
        """Convert the records new since the last call and return :func:`plot_series` of all."""
        n = len(history.step)
        new = history.arrays(self.n, n)
        if self.cols is None or self.n == 0:  # nothing yet (a (0, 0) per-dim array cannot be extended)
            self.cols = new
        elif n > self.n:
            self.cols = {k: np.concatenate([self.cols[k], new[k]]) for k in self.cols}
        self.n = n
        return _bucket(self.cols, max_points)
