"""Per-op time of exported models under Paddle Inference (oneDNN), ONNX Runtime or OpenVINO:
where the milliseconds go, FP32 against INT8. Prints Markdown tables; --out appends them with
the command.
python tools/profile_inference.py --model_dir D [D ...] --backend paddle|onnxruntime|openvino
    (with onnxruntime or openvino, a D may also be a model file: .onnx, or OpenVINO's .xml)
    [--input_shape 1 3 360 480] [--cpu_threads 2] [--runs 30] [--out F --title T]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--model_dir", required=True, nargs="+", help="exports to profile")
    p.add_argument("--backend", choices=("paddle", "onnxruntime", "openvino"), default="paddle")
    p.add_argument("--input_shape", type=int, nargs=4, default=[1, 3, 360, 480])
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--out", default=None, help="append the tables here")
    p.add_argument("--title", default=None, help="section title (with --out)")
    args = p.parse_args(argv)
    from pathlib import Path

    import numpy as np

    from segq.bench.markdown import append_section, command_line
    from segq.bench.profile import (onnx_file_of, profile_markdown, profile_onnxruntime,
                                    profile_openvino, profile_paddle)
    from segq.cpu_runtime import run_environment
    from segq.deploy import load_deploy_info

    batch = np.random.default_rng(0).standard_normal(args.input_shape).astype("float32")
    tables = []
    onnx_profile = {"onnxruntime": profile_onnxruntime, "openvino": profile_openvino}
    for model_dir in args.model_dir:
        if args.backend != "paddle" and Path(model_dir).is_file():
            ops = onnx_profile[args.backend](model_dir, batch, args.cpu_threads, args.runs)
            tables.append(profile_markdown(f"{model_dir}: {args.backend}", ops))
            continue
        int8 = load_deploy_info(model_dir).is_int8
        if args.backend == "paddle":
            ops = profile_paddle(model_dir, batch, int8, args.cpu_threads, args.runs)
        else:
            ops = onnx_profile[args.backend](onnx_file_of(model_dir), batch, args.cpu_threads,
                                             args.runs)
        kind = "INT8" if int8 else "FP32"
        tables.append(profile_markdown(f"{model_dir}: {args.backend} {kind}", ops))
    env = run_environment()
    footer = (f"Input {'x'.join(map(str, args.input_shape))}, {args.cpu_threads} threads, "
              f"{args.runs} runs; {env['cpu']}, {env['cores']} cores. Paddle's profile includes "
              f"the first run (oneDNN primitive creation); ONNX Runtime's and OpenVINO's "
              f"exclude one warm-up.")
    text = "\n\n".join(tables) + "\n\n" + footer
    print(text)
    if args.out:
        command = command_line("tools/profile_inference.py", argv)
        append_section(args.out, f"## {args.title or 'Profile'}\n\n- written by: `{command}`"
                                 f"\n\n{text}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
