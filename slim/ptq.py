"""Post-training quantization of a trained FP32 model, calibrated on unlabeled images:
python slim/ptq.py --config C --model_path FP32.pdparams --save_dir out/ptq_kl
    [--calib_dir DIR | --calib_list LIST] [--calib_num 256] [--batch_size 8]
    [--algo abs_max|avg|hist|mse|KL|all] [--hist_percent 0.9999] [--bias_correction]
    [--weight_only --weight_bits 8] [--input_shape N C H W] [--opts ...]"""
from segq.cli import build_parser, ptq_options, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("ptq",)).parse_args(argv)
    from segq.config import load_config
    from segq.quant.ptq import ptq, report

    cfg = load_config(args.config, args.opts)
    print(report(ptq(cfg, args.model_path, ptq_options(args))))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
