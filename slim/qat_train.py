"""Quantization-aware fine-tuning of a trained FP32 model:
python slim/qat_train.py --config C --model_path output_fp32/best_model/model.pdparams
    [--learning_rate 0.001 --iters N --do_eval --save_interval K --save_dir output_quant ...]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads, train_options

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("train",)).parse_args(argv)
    from segq.config import load_config
    from segq.quant.qat import qat_train

    cfg = load_config(args.config, config_opts(args))
    qat_train(cfg, train_options(args))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
