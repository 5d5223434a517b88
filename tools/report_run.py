"""Write a Markdown record of a finished training run, re-evaluating its best model:
python tools/report_run.py --config C --run_dir D [--log D.log] [--command "..."] [--out F]

Prints (or appends to ``--out``) the command, iterations, batch size, wall time, CPU and
thread count of the run, and the val mIoU / accuracy / kappa / per-class IoU measured now by
segq's own evaluator on ``D/best_model`` (the run's own config.yml; --config is the name
the record shows).
"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--run_dir", required=True)
    p.add_argument("--log", default=None, help="the run's log (for runs without recorded threads)")
    p.add_argument("--command", default=None, help="the command that produced the run")
    p.add_argument("--title", default=None)
    p.add_argument("--out", default=None, help="append the section to this file")
    args = p.parse_args(argv)
    from segq.bench.markdown import append_section
    from segq.bench.run_report import run_report

    text = run_report(args.config, args.run_dir, args.command, args.title, args.log, args.opts)
    print(text)
    if args.out:
        append_section(args.out, text)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
