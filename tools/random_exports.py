"""FP32, INT8 and INT8-argmax-before-resize exports of a config's network with random weights,
for speed measurements and profiles without training (see segq.deploy.random_exports):
python tools/random_exports.py --config C --save_dir D [--input_shape 1 3 360 480]
    writes D/fp32, D/int8, D/int8_fast"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--save_dir", required=True, help="the three exports go under it")
    p.add_argument("--input_shape", type=int, nargs=4, default=[1, 3, 360, 480],
                   metavar=("N", "C", "H", "W"), help="the exports' fixed input shape")
    args = p.parse_args(argv)
    from segq.config import load_config
    from segq.deploy.random_exports import random_weight_exports

    cfg = load_config(args.config, config_opts(args))
    for name, path in random_weight_exports(cfg, args.save_dir, args.input_shape,
                                            seed=args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
