"""``caa device-spectrum`` and ``caa receptive-field``: the figures of the inputs.

The two figures the notebooks draw from the data and the models rather than from runs:
the device shift of the log-mels (notebook 01) and the receptive fields over a log-mel
(notebook 02). Each command makes the calls its notebook makes
(:func:`caalib.results.spectra.parallel_device_spectrum` and
:func:`caalib.results.figures.device_spectrum_figure`;
:func:`caalib.receptive_field.receptive_field_table`,
:func:`caalib.results.spectra.example_logmel` and
:func:`caalib.results.figures.receptive_field_figure`), so both write the same files,
and replaces its three files (PNG, PDF, CSV) in the output directory at once, keeping
every other file there (``caalib.results.output``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

#: The figures directory ``caa study`` writes by default.
DEFAULT_FIGURES = Path("figures")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "device-spectrum", help="the device shift: mean log-mel per device (notebook 01)",
        description="Extract (or reuse) the dataset's log-mel cache, average it per device "
        "over the clips of three-device recordings, and write "
        "device_spectrum.{png,pdf,csv} (mel bins x devices) into the output directory.")
    p.add_argument("data_dir", metavar="DATA_DIR", type=Path,
                   help="dataset directory (holds meta.csv)")
    p.add_argument("--out", type=Path, default=DEFAULT_FIGURES,
                   help=f"figures directory (default: {DEFAULT_FIGURES})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_device_spectrum)

    p = sub.add_parser(
        "receptive-field", help="each block's receptive field over a log-mel (notebook 02)",
        description="Measure the receptive field of every block of the three topologies "
        "and draw it over the log-mel of one evaluate clip of device A (with --data) or an "
        "empty 320 x 64 map; writes receptive_field.{png,pdf,csv}.")
    p.add_argument("--data", type=Path, default=None, metavar="DATA_DIR",
                   help="dataset whose first three-device evaluate recording is drawn")
    p.add_argument("--out", type=Path, default=DEFAULT_FIGURES,
                   help=f"figures directory (default: {DEFAULT_FIGURES})")
    p.add_argument("--analytic", action="store_true",
                   help="draw the analytic sizes instead of measuring them (faster)")
    p.set_defaults(func=_receptive_field)


def _owner(name: str) -> Callable[[str], bool]:
    files = {f"{name}.{ext}" for ext in ("png", "pdf", "csv")}
    return files.__contains__


def _device_spectrum(args: argparse.Namespace) -> int:
    from ..features import default_feature_path, extract_features, load_features
    from ..results.figures import device_spectrum_figure
    from ..results.output import relocate, staged_output
    from ..results.spectra import parallel_device_spectrum

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = extract_features(args.data_dir, default_feature_path(args.data_dir),
                                progress=not args.quiet)
    for w in caught:
        print(f"caa device-spectrum: warning: {w.message}", file=sys.stderr)
    features = load_features(path)
    spectrum = parallel_device_spectrum(features.feature, features.meta)
    with staged_output(args.out, _owner("device_spectrum"), reads=[args.data_dir],
                       what="caa device-spectrum") as stage:
        made = relocate(list(device_spectrum_figure(stage, spectrum).values()), stage,
                        Path(args.out))
    print(f"wrote {len(made)} files to {args.out} ({spectrum.attrs['n_parallel']} of "
          f"{spectrum.attrs['n_clips']} clips in three-device recordings)")
    return 0


def _receptive_field(args: argparse.Namespace) -> int:
    from ..receptive_field import receptive_field_table
    from ..results.figures import receptive_field_figure
    from ..results.output import relocate, staged_output
    from ..results.spectra import example_logmel

    rf = receptive_field_table(measure=not args.analytic)
    clip, logmel = example_logmel(args.data) if args.data is not None else ("", None)
    reads = [args.data] if args.data is not None else []
    with staged_output(args.out, _owner("receptive_field"), reads=reads,
                       what="caa receptive-field") as stage:
        made = relocate(list(receptive_field_figure(stage, rf, logmel).values()), stage,
                        Path(args.out))
    print(f"wrote {len(made)} files to {args.out}" + (f" (over {clip})" if clip else ""))
    return 0
