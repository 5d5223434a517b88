"""FP32 against INT8 across inference backends for one network, measured in one run: Paddle
Inference oneDNN, ONNX Runtime and OpenVINO on the FP32 export and the QAT INT8 export, plus
the peer post-training INT8 models (ONNX Runtime quantize_static, OpenVINO NNCF) of the same
FP32 model. Both exports need a dynamic batch and a fixed H, W (--input_shape -1 3 H W).
Writes OUT_DIR/runs/NAME.json and regenerates OUT_DIR/results.{md,csv,json,png} from every run.
The published tables are the project's runs: pass --out_dir docs/benchmark for those only.
python deploy/python/benchmark.py --config C --fp32_dir D32 [D32_2 ...] --int8_dir D8 [D8_2 ...]
    --name N
    [--save_dir output/benchmark] [--out_dir output/benchmark] [--cpu_threads 2]
    [--latency_runs 50] [--latency_rounds 5] [--throughput_batch 8] [--calib_images 32]
    [--no_peers] [--latency_only]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


# A user's run must not land in (and rewrite) the project's published docs/benchmark tables.
DEFAULT_OUT_DIR = "output/benchmark"


def parse_args(argv=None):
    p = build_parser(__doc__, ())
    g = p.add_argument_group("benchmark")
    g.add_argument("--fp32_dir", required=True, nargs="+",
                   help="FP32 exports; the first is the speed-up baseline and the peers' source")
    g.add_argument("--int8_dir", required=True, nargs="+",
                   help="INT8 exports: slim/qat_export.py or slim/ptq.py (e.g. with and "
                        "without --argmax_before_resize)")
    g.add_argument("--name", required=True, help="this run's name, e.g. bisenetv2_camvid")
    g.add_argument("--save_dir", default="output/benchmark", help="peer PTQ models go here")
    g.add_argument("--out_dir", default=DEFAULT_OUT_DIR,
                   help="where the run JSON and the tables from every run there go")
    g.add_argument("--cpu_threads", type=int, default=2)
    g.add_argument("--latency_runs", type=int, default=50)
    g.add_argument("--latency_rounds", type=int, default=None,
                   help="the timed runs of every engine are split into this many blocks, "
                        "engines in turn (default: segq.bench.deployment.BenchSettings)")
    g.add_argument("--throughput_batch", type=int, default=8, help="0: skip throughput")
    g.add_argument("--calib_images", type=int, default=32)
    g.add_argument("--no_peers", action="store_true", help="skip the peer PTQ rows")
    g.add_argument("--latency_only", action="store_true",
                   help="no mIoU evaluation (exports with random weights: speed only)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from pathlib import Path

    from segq.bench.deployment import BenchSettings, benchmark_environment, benchmark_network
    from segq.bench.report import load_runs, results_markdown, write_model_rows, write_results
    from segq.bench.markdown import command_line
    from segq.config import load_config
    from segq.deploy import load_deploy_info

    cfg = load_config(args.config, config_opts(args))
    rounds = {} if args.latency_rounds is None else {"latency_rounds": args.latency_rounds}
    settings = BenchSettings(cpu_threads=args.cpu_threads, latency_runs=args.latency_runs,
                             **rounds,
                             throughput_batch=args.throughput_batch,
                             calib_images=args.calib_images, peers=not args.no_peers,
                             num_workers=args.num_workers, evaluate=not args.latency_only)
    rows = benchmark_network(cfg, args.fp32_dir, args.int8_dir,
                             Path(args.save_dir) / args.name, settings)
    command = command_line("deploy/python/benchmark.py", argv)
    out = Path(args.out_dir)
    run_file = out / "runs" / f"{args.name}.json"
    write_model_rows(rows, run_file, benchmark_environment(args.cpu_threads), command,
                     {**vars(settings),
                      "input_hw": load_deploy_info(args.fp32_dir[0]).input_shape[2:]})
    print(results_markdown(load_runs([run_file])))
    written = write_results(load_runs(sorted((out / "runs").glob("*.json"))), out)
    print(f"[BENCH] tables: {', '.join(str(p) for p in written.values())}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
