"""FP32, INT8 and INT8-argmax-before-resize exports of a config's network with random weights,
for speed measurements and profiles without training (see segq.bench.random_exports):
python tools/random_exports.py --config C --save_dir D [--input_shape 1 3 360 480]
    [--fast_argmax SCALE] [--onnx]
    writes D/fp32, D/int8, D/int8_fast; with --onnx also their model.onnx (FP32, INT8 in
    ONNX Runtime's layout) and the peers' post-training INT8 of the FP32 model (random
    calibration data): D/nncf/model.xml (NNCF) and D/ort_ptq/model.onnx (quantize_static)"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--save_dir", required=True, help="the three exports go under it")
    p.add_argument("--input_shape", type=int, nargs=4, default=[1, 3, 360, 480],
                   metavar=("N", "C", "H", "W"), help="the exports' fixed input shape")
    p.add_argument("--fast_argmax", type=float, default=None, metavar="SCALE",
                   help="int8_fast takes the arg max at SCALE x the input size (default: at "
                        "the logits' resolution, as --argmax_before_resize alone)")
    p.add_argument("--onnx", action="store_true",
                   help="also the ONNX files and the NNCF and ONNX Runtime peers")
    args = p.parse_args(argv)
    from segq.bench.random_exports import onnx_and_nncf_peer, random_weight_exports
    from segq.config import load_config

    cfg = load_config(args.config, config_opts(args))
    dirs = random_weight_exports(cfg, args.save_dir, args.input_shape, seed=args.seed,
                                 fast_argmax=True if args.fast_argmax is None else args.fast_argmax)
    for name, path in dirs.items():
        print(f"{name}: {path}")
    if args.onnx:
        for name, path in onnx_and_nncf_peer(dirs, args.save_dir, args.input_shape).items():
            print(f"{name} (ONNX / OpenVINO): {path}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
