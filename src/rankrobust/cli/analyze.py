"""``rankrobust analyze CHECKPOINT``: per-layer effective rank, sparsity and norms of a model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rankrobust.cli.common import (
    add_model_source_args,
    check_choice,
    emit_frame,
    load_model_for_cli,
    output_dir,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze", help="structure of a checkpoint's weights (effective rank, sparsity, norms)",
        description="Print one row per weight matrix of a checkpoint: effective rank, effective "
        "sparsity, stable rank, nuclear/spectral/Frobenius/l1 norms and normalized variants; "
        "optionally plot singular value spectra and weight-magnitude histograms (PNG). Any "
        "PyTorch model: --model-factory MODULE:FUNCTION with its weights file as CHECKPOINT.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="model.safetensors, model.json or their folder (with --model-factory: the "
                   "weights file)")
    p.add_argument("--init", metavar="CHECKPOINT", default=None,
                   help="weights at initialization (same architecture, loaded like CHECKPOINT): "
                   "also print the metrics of W − W₀ per layer as delta_* columns (a zero "
                   "difference gives 0 throughout)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--plot", metavar="DIR", default=None, help="write spectra.png and weight_histograms.png here")
    p.add_argument("--conv", default="reshape",
                   help="reshape: a conv kernel is one (out, in·k) matrix (default); per-tap: one "
                   "matrix per kernel tap")
    p.add_argument("--order", type=float, default=1.0, help="Rényi order of effective rank/sparsity (1 = Shannon)")
    p.add_argument("--method", default="gram",
                   help="singular values from float64 Gram eigenvalues (gram, fast; default), a "
                   "float64 SVD (svd) or float32 Gram eigenvalues (gram32, lossy)")
    p.add_argument("--device", default="cpu", help="auto | cpu | cuda[:N]")
    add_model_source_args(p, has_dataset=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # heavy: imports torch
    from rankrobust.device import resolve_device
    from rankrobust.structure import (
        CONV_MODES,
        METHODS,
        analyze,
        analyze_delta,
        layer_matrices,
        snapshot,
        spectra,
    )

    check_choice("--conv", args.conv, CONV_MODES)
    check_choice("--method", args.method, METHODS)
    plot_dir = None if args.plot is None else output_dir(args.plot, "--plot")
    device = resolve_device(args.device)
    model = load_model_for_cli(args, device).network  # the weights, unwrapped
    frame = analyze(model, args.conv, order=args.order, method=args.method)
    if args.init is not None:
        init = load_model_for_cli(argparse.Namespace(**{**vars(args), "checkpoint": args.init}),
                                  device).network
        delta = analyze_delta(model, snapshot(init, args.conv), args.conv, order=args.order,
                              method=args.method)
        frame = frame.merge(delta, on="layer", how="left", validate="one_to_one")
    emit_frame(frame, args.format)
    if plot_dir is not None:
        from rankrobust.cli.analyze_plots import write_plots  # heavy: imports matplotlib

        weights = {k: v.cpu().numpy() for k, v in layer_matrices(model).items()}
        paths = write_plots(spectra(model, method=args.method), weights, plot_dir)
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
