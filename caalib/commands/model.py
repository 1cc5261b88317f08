"""``caa model-summary``: parameters, feature maps, receptive fields and MACs of a model."""

from __future__ import annotations

import argparse
import json

from ..models import ATTENTION_VARIANTS, COND_LAYERS, POOLINGS, STRATEGIES, TOPOLOGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "model-summary",
        help="print a model's parameter count, feature-map sizes, receptive fields and MACs",
        description="Summarise one of the paper's models for one clip (analytic counts; "
                    "no data needed).",
    )
    p.add_argument("--topology", required=True, choices=TOPOLOGIES)
    p.add_argument("--pooling", required=True, choices=POOLINGS)
    p.add_argument("--strategy", required=True, choices=STRATEGIES)
    p.add_argument("--cond-layer", type=int, choices=COND_LAYERS, default=None,
                   help="conditioned block (required by teacher_forcing and multi_task)")
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1)")
    p.add_argument("--frames", type=int, default=320, help="clip length in frames (320 = 10 s)")
    p.add_argument("--mels", type=int, default=64, help="mel bins (default 64)")
    p.add_argument("--attention", choices=ATTENTION_VARIANTS, default="released")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_model_summary)


def run_model_summary(args: argparse.Namespace) -> int:
    from ..models import build_model
    from ..summary import model_summary

    model = build_model(
        args.topology, args.pooling, args.strategy, cond_layer=args.cond_layer,
        width=args.width, n_frames=args.frames, n_mels=args.mels, attention=args.attention,
    )
    summary = model_summary(model)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    elif args.markdown:
        print(summary.to_markdown())
    else:
        print(summary.to_text())
    return 0
