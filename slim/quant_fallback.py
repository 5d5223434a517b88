"""Keep the fewest layers of an INT8 model in float so its deployed mIoU stays within a budget
of FP32; writes a config (quant.skip_layers) for slim/ptq.py and slim/qat_train.py:
python slim/quant_fallback.py --config C --fp32_model FP32.pdparams \
    (--model_path QAT.pdparams | --ptq_algo KL | --model_dir INT8_EXPORT) \
    --max_miou_drop 0.005 [--max_latency_ms L] --save_config configs/quant/my_net_auto.yml"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ("analysis",))
    g = p.add_argument_group("fallback search")
    g.add_argument("--ptq_algo", default=None,
                   help="calibrate the FP32 model here with this algorithm (slim/ptq.py's "
                        "--algo) and start from that")
    g.add_argument("--calib_dir", default=None, help="with --ptq_algo, as slim/ptq.py")
    g.add_argument("--calib_list", default=None, help="with --ptq_algo, as slim/ptq.py")
    g.add_argument("--calib_num", type=int, default=256, help="with --ptq_algo")
    g.add_argument("--max_miou_drop", type=float, default=0.005,
                   help="deployed INT8 mIoU may be this much below deployed FP32")
    g.add_argument("--max_latency_ms", type=float, default=None,
                   help="and run in at most this (median, batch 1)")
    g.add_argument("--save_config", required=True, help="the config file to write")
    g.add_argument("--work_dir", default=None, help="exports and candidates (default "
                   "output/quant_fallback/<save_config name>)")
    g.add_argument("--rank_images", type=int, default=16,
                   help="labeled val images the layer ranking runs on")
    g.add_argument("--rank_by", choices=("miou", "cosine", "deployed"), default="miou")
    args = p.parse_args(argv)
    from pathlib import Path

    from segq.config import load_config
    from segq.quant.analysis.fallback import FallbackOptions, quant_fallback, summary
    from segq.quant.calibration import CalibrationSource

    opts = FallbackOptions(
        save_config=args.save_config, max_miou_drop=args.max_miou_drop,
        max_latency_ms=args.max_latency_ms, rank_images=args.rank_images,
        rank_by=args.rank_by, cpu_threads=args.cpu_threads,
        work_dir=args.work_dir or f"output/quant_fallback/{Path(args.save_config).stem}")
    r = quant_fallback(load_config(args.config, args.opts), args.config, args.fp32_model, opts,
                       qat_weights=args.model_path, ptq_algo=args.ptq_algo,
                       model_dir=args.model_dir, calib_source=CalibrationSource(
                           args.calib_dir, args.calib_list, args.calib_num))
    print(summary(r))
    print(f"table: {opts.work_dir}/fallback.md")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
