"""FP32 against QAT INT8 for one network, side by side: mIoU (dygraph and Paddle Inference),
latency at batch 1, size and speed-up; prints a Markdown table:
python tools/compare_int8.py --config C --fp32_model output_fp32/best_model/model.pdparams
    --model_path output_quant/best_model/model.pdparams --save_dir output_compare
    --input_shape 1 3 360 480 [--cpu_threads 2] [--result_json F] [--out docs/results.md --title T]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ("eval",))
    p.add_argument("--fp32_model", required=True, help="the FP32 weights QAT started from")
    p.add_argument("--save_dir", default="output/compare", help="where the exports go")
    p.add_argument("--input_shape", type=int, nargs=4, required=True,
                   metavar=("N", "C", "H", "W"), help="latency input, e.g. 1 3 360 480")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--latency_runs", type=int, default=50)
    p.add_argument("--out", default=None, help="append the table as a Markdown section here")
    p.add_argument("--title", default=None, help="the section's title (with --out)")
    args = p.parse_args(argv)
    from segq.bench.int8_compare import (compare_fp32_int8, compare_section, rows_markdown,
                                         write_rows)
    from segq.bench.markdown import append_section, command_line
    from segq.config import load_config

    if not args.model_path:
        raise ValueError("--model_path: give the QAT checkpoint")
    cfg = load_config(args.config, config_opts(args))
    rows = compare_fp32_int8(cfg, args.fp32_model, args.model_path, args.save_dir,
                             args.input_shape, args.cpu_threads, args.num_workers,
                             args.latency_runs)
    table = rows_markdown(rows, args.input_shape, args.cpu_threads)
    print(table)
    command = command_line("tools/compare_int8.py", argv)
    if args.result_json:
        write_rows(rows, args.result_json, cfg, command)
    if args.out:
        title = args.title or f"{cfg.model.type}: FP32 against QAT INT8"
        append_section(args.out, compare_section(title, command, args.model_path, table))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
