"""How much of an INT8 model's mIoU comes from arg max ties on quantized logits: scores each
ONNX model (whose ArgMax reads a DequantizeLinear, e.g. ONNX Runtime's quantize_static of an
export, the benchmark's work/ort_ptq.onnx) on the val set with ties given to the lowest class
id (as deployed), to the highest, and broken by the float scores; prints a Markdown table.
python tools/argmax_ties.py --config C --onnx F [F ...] [--cpu_threads 2] [--out FILE.md]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--onnx", required=True, nargs="+", help="ONNX files with quantized logits")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--out", default=None, help="append the table as a Markdown section here")
    args = p.parse_args(argv)
    from segq.bench.argmax_ties import argmax_tie_study, tie_markdown
    from segq.bench.markdown import append_section, command_line
    from segq.config import load_config
    from segq.cpu_runtime import run_environment

    cfg = load_config(args.config, args.opts)
    studies = {path: argmax_tie_study(cfg, path, args.cpu_threads) for path in args.onnx}
    env = ", ".join(f"{k} {v}" for k, v in run_environment().items())
    table = (tie_markdown(studies) + "\n\n"
             f"Command: `{command_line('tools/argmax_ties.py', argv)}`. Environment: {env}.")
    print(table)
    if args.out:
        append_section(args.out, table)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
