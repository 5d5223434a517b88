"""Train a segmentation model in FP32: python train.py --config configs/... [--do_eval ...]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("train",)).parse_args(argv)
    from segq.config import load_config
    from segq.engine.workflows import TrainOptions, train

    cfg = load_config(args.config, config_opts(args))
    train(cfg, TrainOptions(
        save_dir=args.save_dir, model_path=args.model_path, resume_model=args.resume_model,
        do_eval=args.do_eval, save_interval=args.save_interval,
        keep_checkpoint_max=args.keep_checkpoint_max, log_iters=args.log_iters,
        num_workers=args.num_workers, use_vdl=args.use_vdl, seed=args.seed))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
