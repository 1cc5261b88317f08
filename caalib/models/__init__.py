"""The CAA-Net model family (paper Section III): build any of the 14 models x 4 strategies.

``build_model(topology, pooling, strategy, cond_layer, ...)`` returns a :class:`CAANet`;
``model(x, source=None)`` returns a :class:`ModelOutput` (scene, source, attention);
``source`` is the recording device (DCASE's word), never the torch device.
"""

from ..spec import (
    ATTENTION_POOLINGS,
    ATTENTION_VARIANTS,
    COND_LAYERS,
    CONDITIONED_STRATEGIES,
    POOLINGS,
    STRATEGIES,
    TOPOLOGIES,
)
from .blocks import ConvBlock, DeviceConditioning
from .device_cnn import DEVICE_CNN_CHANNELS, DeviceCNN
from .heads import ROI_SIZE, AttentionHead, FlattenHead, GlobalPoolHead
from .init import he_uniform_bound, init_module
from .net import (
    BACKBONE_CHANNELS,
    DILATIONS,
    VALID_POOLINGS,
    CAANet,
    ModelConfigError,
    ModelOutput,
    block_map_sizes,
    build_model,
    scale_channels,
    validate_model_args,
)

__all__ = [
    "ATTENTION_POOLINGS", "ATTENTION_VARIANTS", "BACKBONE_CHANNELS", "COND_LAYERS",
    "CONDITIONED_STRATEGIES", "DEVICE_CNN_CHANNELS", "DILATIONS", "POOLINGS", "ROI_SIZE",
    "STRATEGIES", "TOPOLOGIES", "VALID_POOLINGS", "AttentionHead", "CAANet", "ConvBlock",
    "DeviceCNN", "DeviceConditioning", "FlattenHead", "GlobalPoolHead", "ModelConfigError",
    "ModelOutput", "block_map_sizes", "build_model", "he_uniform_bound", "init_module",
    "scale_channels", "validate_model_args",
]
