"""The model-zoo table: params, FLOPs and Paddle Inference (oneDNN) FP32 and INT8 latency of
every network, from its CamVid config, written as Markdown + CSV + JSON (see
segq/bench/zoo_table.py for what is measured and how):

    python tools/model_zoo_table.py [--configs configs/*/*_camvid_*.yml] [--out docs/model_zoo]
        [--threads 2] [--warmup 10] [--runs 50]
"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--configs", nargs="+", default=None,
                   help="default: the zoo's CamVid configs (configs/*/*_camvid_*.yml outside "
                        "configs/quant)")
    p.add_argument("--out", default="docs/model_zoo", help="output path without suffix")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--title", default="Model zoo", help="the Markdown file's heading")
    p.add_argument("--results", nargs="+", default=["docs/results/*.json"],
                   help="tools/compare_int8.py JSON files that fill the mIoU / INT8 columns")
    args = p.parse_args(argv)
    from segq.bench.markdown import command_line
    from segq.bench.zoo_table import ZooOptions, write_zoo_table, zoo_configs, zoo_rows

    opts = ZooOptions(args.out, args.threads, args.warmup, args.runs, args.title,
                      tuple(args.results))
    rows = zoo_rows(zoo_configs(args.configs), opts)
    print(write_zoo_table(rows, opts, command_line("tools/model_zoo_table.py", argv)))


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
