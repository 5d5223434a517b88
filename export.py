"""Export an FP32 Paddle Inference model (legacy .pdmodel) plus deploy.yaml:
python export.py --config C --model_path P --save_dir D [--input_shape N C H W]
    [--with_softmax] [--without_argmax] [--argmax_before_resize]"""
from segq.cli import build_parser, config_opts, export_options, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("export",)).parse_args(argv)
    from segq.config import load_config
    from segq.deploy.workflows import export

    cfg = load_config(args.config, config_opts(args))
    out = export(cfg, args.model_path, args.save_dir, export_options(args))
    print(f"exported to {out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
