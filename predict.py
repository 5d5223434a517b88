"""Predict masks: python predict.py --config C --model_path P --image_path IMG_OR_DIR --save_dir D"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("predict",)).parse_args(argv)
    from segq.config import load_config
    from segq.engine.visualize import predict_images

    cfg = load_config(args.config, config_opts(args))
    written = predict_images(cfg, args.model_path, args.image_path, args.save_dir)
    print(f"wrote {len(written)} masks and overlays to {args.save_dir}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
