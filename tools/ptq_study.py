"""FP32 against every post-training quantization segq runs (and a QAT export), evaluated and
timed under Paddle Inference in one run; prints a Markdown table:
python tools/ptq_study.py --config C --model_path FP32.pdparams --save_dir output/ptq_study
    --input_shape 1 3 360 480 [--calib_num 256] [--sizes 16 64] [--qat_dir INT8_EXPORT]
    [--cpu_threads 2] [--result_json F] [--out docs/ptq.md --title T]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--save_dir", default="output/ptq_study")
    p.add_argument("--input_shape", type=int, nargs=4, required=True,
                   metavar=("N", "C", "H", "W"), help="latency input, e.g. 1 3 360 480")
    p.add_argument("--calib_num", type=int, default=256)
    p.add_argument("--sizes", type=int, nargs="*", default=[16, 64])
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--algos", nargs="+", default=None,
                   help="the calibration algorithms to compare (default: all of slim/ptq.py's "
                        "--algo choices; mse is slow: its scale search runs per tensor and "
                        "batch)")
    p.add_argument("--qat_dir", default=None, help="a QAT INT8 export of the same FP32 model")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--latency_runs", type=int, default=30)
    p.add_argument("--result_json", default=None)
    p.add_argument("--out", default=None, help="append the table as a Markdown section here")
    p.add_argument("--title", default=None)
    args = p.parse_args(argv)
    from segq.bench.ptq_study import StudyOptions, run_study, study_markdown, write_study
    from segq.bench.markdown import append_section, command_line
    from segq.config import load_config
    from segq.cpu_runtime import run_environment

    cfg = load_config(args.config, args.opts)
    opts = StudyOptions(args.save_dir, args.input_shape, args.calib_num, tuple(args.sizes),
                        args.batch_size, args.cpu_threads, args.latency_runs, args.qat_dir,
                        **({"algos": tuple(args.algos)} if args.algos else {}))
    rows = run_study(cfg, args.model_path, opts)
    command = command_line("tools/ptq_study.py", argv)
    table = study_markdown(rows, args.title or f"{cfg.model.type}: FP32, PTQ and QAT",
                           command, run_environment(), opts)
    print(table)
    if args.result_json:
        write_study(rows, args.result_json, command, run_environment())
    if args.out:
        append_section(args.out, table)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
