"""Training-time augmentations: switches orthogonal to the model and the strategy.

Since DCASE 2020 the device-robust systems that win are model-agnostic augmentations,
not conditioning. Three are offered, off by default (``TrainConfig.augment``), each with
its published hyper-parameters as the config's defaults (docs/unseen-devices.md gives
the references):

- ``dir``: device impulse responses (Morocutti et al., 2023): a device-A training clip
  is, with probability ``dir_p``, heard through another device's response. Our features
  are cached log-mels, so the convolution is applied where it lands: a short impulse
  response multiplies each STFT bin's magnitude by ``|H(f)|``, which adds
  ``log(mel-weighted |H|)`` to each log-mel bin (exact for a response flat across a mel
  band, close for the smooth phone responses used here). The responses are
  ``caalib.synth.devices.impulse_response_bank``: phones of no dataset device, the
  stand-in for the measured responses that cannot be downloaded here.
- ``freq_mixstyle``: Freq-MixStyle (Schmid et al., 2022): with probability
  ``mixstyle_p`` per batch, each clip's per-frequency mean and standard deviation over
  time are replaced by a Beta(``mixstyle_alpha``, ``mixstyle_alpha``) mix of its own and
  another clip's of the batch.
- ``mixup`` (Zhang et al., 2018): the batch is mixed with a permutation of itself with
  one λ ~ Beta(``mixup_alpha``, ``mixup_alpha``); the loss mixes the two targets by λ.

Every draw comes from ``default_rng([seed, tag, step])``, a pure function of the run's
seed and the step like the batch order, so a resumed run augments exactly as an
uninterrupted one and nothing needs saving in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..constants import DEVICE_INDEX
from .config import TrainConfig

#: Added to the variance before the square root (the statistics of a silent bin).
MIXSTYLE_EPS = 1e-6
#: Keeps the RNG streams of the augmentations apart from each other and from the batches.
_TAGS = {"dir": 7_001, "freq_mixstyle": 7_002, "mixup": 7_003}


def augment_rng(seed: int, name: str, step: int) -> np.random.Generator:
    """The generator augmentation ``name`` draws from at 0-based ``step``."""
    return np.random.default_rng([seed, _TAGS[name], step])


# ---------------------------------------------------------------------- device responses
def dir_log_gains(n: int = 12, seed: int = 2023) -> np.ndarray:
    """(n, 64) float64: each bank response's gain in every log-mel bin (natural log of
    the mel-weighted mean magnitude gain), on the feature recipe's STFT grid."""
    from ..features.recipe import N_FFT, mel_matrix
    from ..synth.devices import PHONE_RATE, impulse_response_bank, phone_gain

    freqs = np.fft.rfftfreq(N_FFT, d=1.0 / PHONE_RATE)
    mel = mel_matrix()  # (64, N_FFT // 2 + 1)
    weight = mel.sum(axis=1)
    gains = [np.log((mel @ phone_gain(p, freqs)) / weight) for p in impulse_response_bank(n, seed)]
    return np.stack(gains)


def apply_dir(x: torch.Tensor, source: torch.Tensor, offsets: torch.Tensor,
              rng: np.random.Generator, p: float) -> torch.Tensor:
    """Device-A rows of ``x`` (B, T, F), each with probability ``p``, plus one random row
    of ``offsets`` (n, F): the bank's log gains in the run's standardised units."""
    b = x.shape[0]
    on = torch.from_numpy(rng.random(b) < p).to(x.device)
    pick = torch.from_numpy(rng.integers(0, offsets.shape[0], size=b)).to(x.device)
    # the device-A test stays on the accelerator: no host round trip per training step
    on &= source.to(x.device) == DEVICE_INDEX["a"]
    add = offsets[pick].to(x.dtype) * on[:, None].to(x.dtype)  # zero for rows left alone
    return x + add[:, None, :]


# ---------------------------------------------------------------------- Freq-MixStyle
def freq_mixstyle(x: torch.Tensor, rng: np.random.Generator, p: float,
                  alpha: float) -> torch.Tensor:
    """With probability ``p``: each clip of ``x`` (B, T, F) re-styled with a Beta(alpha,
    alpha) mix of its own and a permuted clip's per-frequency mean and standard deviation
    over time (population variance + :data:`MIXSTYLE_EPS`). The statistics are constants
    to the gradient, as in MixStyle."""
    apply = rng.random() < p
    lam = rng.beta(alpha, alpha, size=x.shape[0])
    perm = rng.permutation(x.shape[0])
    if not apply:
        return x
    mu = x.mean(dim=1, keepdim=True).detach()  # (B, 1, F)
    sig = (x.var(dim=1, keepdim=True, unbiased=False) + MIXSTYLE_EPS).sqrt().detach()
    lam_t = torch.from_numpy(lam).to(x.device, x.dtype)[:, None, None]
    idx = torch.from_numpy(perm).to(x.device)
    mu_mix = lam_t * mu + (1 - lam_t) * mu[idx]
    sig_mix = lam_t * sig + (1 - lam_t) * sig[idx]
    return (x - mu) / sig * sig_mix + mu_mix


# ---------------------------------------------------------------------- mixup
@dataclass(frozen=True)
class Mix:
    """What mixup did to a batch: the partner of each row and the weight of the row."""

    perm: torch.Tensor  # (B,) int64 on the batch's torch device
    lam: float


def mixup(x: torch.Tensor, rng: np.random.Generator, alpha: float) -> tuple[torch.Tensor, Mix]:
    """``lam * x + (1 - lam) * x[perm]`` with one lam ~ Beta(alpha, alpha) per batch."""
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(x.shape[0])).to(x.device)
    return lam * x + (1 - lam) * x[perm], Mix(perm, lam)


# ---------------------------------------------------------------------- the switchboard
class Augmenter:
    """The augmentations a config switches on, applied to each training batch in the
    order of ``caalib.spec.AUGMENTATIONS``; ``__call__`` returns the batch and the
    :class:`Mix` when mixup ran (the loss needs it), else None."""

    def __init__(self, config: TrainConfig, std: np.ndarray, device: torch.device) -> None:
        self.config = config
        self.names = config.augmentations
        self.offsets = None
        if "dir" in self.names:
            gains = dir_log_gains() / np.asarray(std, dtype=np.float64)[None, :]
            self.offsets = torch.tensor(gains, dtype=torch.float32, device=device)

    def __call__(self, x: torch.Tensor, source: torch.Tensor,
                 step: int) -> tuple[torch.Tensor, Mix | None]:
        cfg, mix = self.config, None
        for name in self.names:
            rng = augment_rng(cfg.seed, name, step)
            if name == "dir":
                x = apply_dir(x, source, self.offsets, rng, cfg.dir_p)
            elif name == "freq_mixstyle":
                x = freq_mixstyle(x, rng, cfg.mixstyle_p, cfg.mixstyle_alpha)
            else:
                x, mix = mixup(x, rng, cfg.mixup_alpha)
        return x, mix


def build_augmenter(config: TrainConfig, std: np.ndarray,
                    device: torch.device) -> Augmenter | None:
    """None when the config switches no augmentation on (the released recipe, untouched)."""
    return Augmenter(config, std, device) if config.augmentations else None
