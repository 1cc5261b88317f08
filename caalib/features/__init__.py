"""Log-mel features: the reference recipe, the batched torch path, the HDF5 cache.

`reference_logmel` is the oracle of study notes section 1; `logmel_numpy` (one clip, CPU)
and `LogMel` / `logmel` (batches, torch) compute the same numbers faster;
`extract_features` / `load_features` manage the per-dataset cache the training reads
(`caalib.features.pipeline` runs the clips on every core); `fit_standardiser` /
`standardise` normalise each mel bin.
"""

from .audio import ImplausibleAudioWarning, read_clip, resample
from .cache import (
    FeatureSet,
    SilentClipWarning,
    dataset_fingerprint,
    default_feature_path,
    extract_features,
    fingerprint,
    load_feature_fingerprint,
    load_features,
    verify_features,
)
from .fast import LogMel, density_scale, logmel, logmel_numpy
from .recipe import (
    DEFAULT_RESAMPLER,
    HOP,
    LOG_OFFSET,
    N_FFT,
    N_MELS,
    RECIPE,
    RESAMPLERS,
    SAMPLE_RATE,
    mel_matrix,
    n_frames,
    recipe,
    reference_logmel,
)
from .standardise import fit_standardiser, standardise

__all__ = [
    "DEFAULT_RESAMPLER",
    "HOP",
    "LOG_OFFSET",
    "N_FFT",
    "N_MELS",
    "RECIPE",
    "RESAMPLERS",
    "SAMPLE_RATE",
    "FeatureSet",
    "ImplausibleAudioWarning",
    "LogMel",
    "SilentClipWarning",
    "dataset_fingerprint",
    "default_feature_path",
    "density_scale",
    "extract_features",
    "fingerprint",
    "fit_standardiser",
    "load_feature_fingerprint",
    "load_features",
    "logmel",
    "logmel_numpy",
    "mel_matrix",
    "n_frames",
    "read_clip",
    "recipe",
    "reference_logmel",
    "resample",
    "standardise",
    "verify_features",
]
