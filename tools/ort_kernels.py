"""How many convs ONNX Runtime runs as integer kernels: the op types of the graph it runs
after its own optimizations (QLinearConv = integer conv; Conv, FusedConv = float), per ONNX file.
python tools/ort_kernels.py --onnx F [F ...] [--cpu_threads 1]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--onnx", required=True, nargs="+", help="ONNX files, e.g. D/model.onnx")
    p.add_argument("--cpu_threads", type=int, default=1)
    args = p.parse_args(argv)
    from segq.deploy.onnx_qdq import conv_kernels, onnxruntime_op_counts

    print("| model | integer convs | float convs | QuantizeLinear | DequantizeLinear |")
    print("|---|---|---|---|---|")
    for path in args.onnx:
        c = onnxruntime_op_counts(path, args.cpu_threads)
        integer, floating = conv_kernels(c)
        print(f"| {path} | {integer} | {floating} | {c.get('QuantizeLinear', 0)} | "
              f"{c.get('DequantizeLinear', 0)} |")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
