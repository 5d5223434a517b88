"""Train a segmentation model in FP32: python train.py --config configs/... [--do_eval ...]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads, train_options

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("train",)).parse_args(argv)
    from segq.config import load_config
    from segq.engine.workflows import train

    cfg = load_config(args.config, config_opts(args))
    train(cfg, train_options(args))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
