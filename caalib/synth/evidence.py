"""Ground truth for explanations: where in time and frequency a clip's evidence lies.

The simulator knows which components of a clip are specific to its scene and which come
from a bed several scenes share (``scenes.SCENE`` / ``scenes.SHARED``). This module turns
the two parts into masks on exactly the grid the features use (frames x 64 mel bins of
``caalib.features.recipe``), so an attention map or an attribution can be scored against
them. Definitions and thresholds: docs/explanations.md.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path

import numpy as np
from scipy import signal

from ..atomic import atomic_path
from ..constants import FEATURE_SAMPLE_RATE
from ..errors import DatasetError
from .devices import PHONE_RATE, PHONES, SCENE_RATE, Phone, phone_gain

#: The file ``caa synth`` writes beside ``meta.csv``.
EVIDENCE_FILE = "evidence.npz"
#: Bumped when the mask definition changes (2: phones' gains read at the STFT bins' own
#: frequencies, through the codec low-pass exactly as recorded).
EVIDENCE_VERSION = 2
#: Bins quieter than this far below the clip's loudest bin hold no evidence of anything.
FLOOR_DB = 60.0
#: A phone passes a mel bin when its mean power gain there is at least this.
PASS_DB = -20.0


def _grid():
    # the grid is the feature recipe's; imported here so the synthesiser loads fast
    from ..features.recipe import HOP, N_FFT, NOVERLAP, mel_matrix, n_frames

    return N_FFT, HOP, NOVERLAP, mel_matrix().astype(np.float64), n_frames


def to_feature_rate(x48: np.ndarray) -> np.ndarray:
    """A 48 kHz signal at 44.1 kHz, ``ceil(n * 147 / 160)`` samples like the features'."""
    return signal.resample_poly(np.asarray(x48, dtype=np.float64), PHONE_RATE // 300,
                                SCENE_RATE // 300)


def mel_power(x44: np.ndarray) -> np.ndarray:
    """(T, 64) mel-weighted power of a 44.1 kHz signal on the features' frames."""
    n_fft, _, noverlap, mel, _ = _grid()
    _, _, spec = signal.spectrogram(x44, window=np.hamming(n_fft), nperseg=n_fft,
                                    noverlap=noverlap, detrend=False, return_onesided=True,
                                    mode="magnitude")
    return (mel @ np.square(spec)).T


def scene_masks(x48: np.ndarray, part48: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scene, shared) boolean masks (T, 64) of a scene signal and its specific part.

    A bin is scene evidence where the scene-specific part carries more power than the
    rest of the mix, shared where the rest carries at least as much; bins more than
    ``FLOOR_DB`` below the clip's loudest are neither.
    """
    x44 = to_feature_rate(x48)
    s44 = to_feature_rate(part48)
    p_scene = mel_power(s44)
    p_shared = mel_power(x44 - s44)
    total = p_scene + p_shared
    audible = total >= total.max() * 10.0 ** (-FLOOR_DB / 10.0)
    return (p_scene > p_shared) & audible, (p_shared >= p_scene) & audible


def phone_gain_db(phone: Phone) -> np.ndarray:
    """(64,) mean power gain (dB) of a phone's linear response over each mel band.

    The chain ``devices.device_phone`` applies (``devices.phone_gain`` with the codec's
    low-pass), its squared magnitude at the STFT bins' own frequencies (``k * 44100 /
    n_fft``, k = 0 .. n_fft / 2, the last at Nyquist: where the mel filters' weights sit)
    averaged with each mel filter's weights.
    """
    n_fft, _, _, mel, _ = _grid()
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / FEATURE_SAMPLE_RATE)
    power = phone_gain(phone, freqs, PHONE_RATE, codec=True) ** 2
    gain = (mel @ power) / np.maximum(mel.sum(axis=1), 1e-30)
    return 10.0 * np.log10(np.maximum(gain, 1e-30))


def device_masks(device: str, scene: np.ndarray, shared: np.ndarray,
                 shift: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The twin's masks as ``device`` records them at device-shift ``shift``: bands the
    phone does not pass (mean gain below ``PASS_DB``) hold no evidence; the reference
    device keeps all."""
    if device not in PHONES:
        return scene, shared
    passes = _passes(device, float(shift))
    return scene & passes[None, :], shared & passes[None, :]


@functools.cache
def _passes(device: str, shift: float) -> np.ndarray:
    """The mel bands ``device`` passes at ``shift``: one filter response per device and
    shift, not one per clip."""
    passes = phone_gain_db(PHONES[device].at(shift)) >= PASS_DB
    passes.setflags(write=False)
    return passes


def write_evidence(path: str | os.PathLike[str], masks: dict[str, tuple[np.ndarray, np.ndarray]]
                   ) -> Path:
    """One NPZ: ``filename`` (N,), ``scene`` and ``shared`` (N, T, 64) bool, ``version``."""
    names = sorted(masks)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh, filename=np.array(names, dtype=str),
            scene=np.stack([masks[k][0] for k in names]).astype(bool),
            shared=np.stack([masks[k][1] for k in names]).astype(bool),
            version=np.array(EVIDENCE_VERSION))
    return path


def evidence_version(data_dir: str | os.PathLike[str]) -> int | None:
    """The definition version of a dataset's masks (None: no readable evidence file);
    reads the version alone, not the masks."""
    try:
        with np.load(Path(data_dir) / EVIDENCE_FILE) as z:
            return int(z["version"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def read_evidence(data_dir: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """``{filename: {"scene": (T, 64), "shared": (T, 64)}}`` of a synthetic dataset.

    A ``DatasetError`` naming the file when it is missing (real data, or a dataset
    synthesised before masks existed) or malformed.
    """
    path = Path(data_dir) / EVIDENCE_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: no evidence masks (only datasets made by `caa synth` "
                           "have them; `caa synth --skip-existing` with its settings adds them)")
    try:
        with np.load(path) as z:
            names, scene, shared = z["filename"], z["scene"], z["shared"]
            version = int(z["version"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: unreadable evidence masks ({exc})") from None
    if version != EVIDENCE_VERSION:
        raise DatasetError(f"{path}: evidence version {version}, expected {EVIDENCE_VERSION} "
                           "(masks made by an older definition); `caa synth` with the "
                           "dataset's settings and --skip-existing rewrites them (the audio "
                           "is unchanged)")
    if scene.shape != shared.shape or scene.ndim != 3 or len(names) != scene.shape[0]:
        raise DatasetError(f"{path}: scene {scene.shape}, shared {shared.shape} and "
                           f"{len(names)} filenames do not agree")
    return {str(n): {"scene": scene[i], "shared": shared[i]} for i, n in enumerate(names)}
