"""Training-step benchmark: how fast one model trains, and how much of the hardware that is.

Three ways of running the same update (``released``, ``default``, ``fast``; ``compiled``
optional) are timed in one process, so their ratios need no cross-run calibration; the
fast modes are the training engine's own update. The modules, bottom up:

- :mod:`~caalib.bench.settings`: :class:`BenchSettings` (torch-free; the model part is a
  :class:`caalib.spec.ModelSpec`);
- :mod:`~caalib.bench.environment`: torch device, backend flags, memory readings, versions;
- :mod:`~caalib.bench.matmul`: the hardware's dense matmul rate;
- :mod:`~caalib.bench.modes`: how each mode runs one update (recipes written out here,
  the fast modes through :class:`caalib.training.Engine`);
- :mod:`~caalib.bench.timing`: timing one mode (steps, evaluation, peak memory);
- :mod:`~caalib.bench.feature_timing`: log-mel throughput on a :mod:`caalib.synth` set;
- :mod:`~caalib.bench.derived`: ratios, implied run times and targets of a record;
- :mod:`~caalib.bench.report`: the record as JSON and as the printed summary;
- :mod:`~caalib.bench.runner`: :func:`run_bench`, the whole record;
- :mod:`~caalib.bench.cli`: the ``caa bench`` options and ``python -m caalib.bench``.

The fast path's numerics check lives beside the engine
(:mod:`caalib.training.numerics`); :func:`check_fast_numerics` here runs it for a
:class:`BenchSettings`. Importing this package pulls in torch, numpy and the training
package but no audio library: feature timing imports librosa, soundfile and soxr when
it runs and is skipped (with the reason recorded) where one is missing.
"""

from ..training.numerics import NumericsReport, SyntheticData, compare_runs, synthetic_data
from .cli import add_arguments, main, run_bench_command, settings_from_args
from .derived import (
    EVAL_CLIPS_2018,
    EVAL_EVERY,
    RUN_ITERATIONS,
    TABLE2_RUNS,
    TARGETS,
    derive,
)
from .environment import (
    GIB,
    TORCH_DEFAULT_FLAGS,
    TRUE_FP32_FLAGS,
    environment,
    resolve_accelerator,
    synchronize,
    torch_flags,
)
from .feature_timing import bench_features, feature_profile
from .matmul import measure_matmul
from .modes import (
    EngineTrainer,
    Recipe,
    RecipeTrainer,
    Trainer,
    check_fast_numerics,
    engine_config,
    make_trainer,
    recipe_for,
)
from .report import format_report, write_record
from .runner import run_bench
from .settings import ACCELERATORS, COMPILE_MODES, CPU_QUICK, MODES, BenchSettings
from .timing import bench_mode

__all__ = [
    "ACCELERATORS", "COMPILE_MODES", "CPU_QUICK", "EVAL_CLIPS_2018", "EVAL_EVERY", "GIB",
    "MODES", "RUN_ITERATIONS", "TABLE2_RUNS", "TARGETS", "TORCH_DEFAULT_FLAGS",
    "TRUE_FP32_FLAGS", "BenchSettings", "EngineTrainer", "NumericsReport", "Recipe",
    "RecipeTrainer", "SyntheticData", "Trainer", "add_arguments", "bench_features",
    "bench_mode", "check_fast_numerics", "compare_runs", "derive", "engine_config",
    "environment", "feature_profile", "format_report", "main", "make_trainer",
    "measure_matmul", "recipe_for", "resolve_accelerator", "run_bench", "run_bench_command",
    "settings_from_args", "synchronize", "synthetic_data", "torch_flags", "write_record",
]
