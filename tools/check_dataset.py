"""Read every image and label a config lists, once, and report what would break training:
python tools/check_dataset.py --config C [--split train|val|all] [--num_workers N]

Prints one line per problem (file, list file and line), class pixel shares, images smaller
than the train crop, and a summary per split; exits 2 if any file has a problem.
"""
import os
import sys

from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ())
    p.add_argument("--split", choices=("train", "val", "all"), default="train")
    # reading is what this tool does, so it uses the cores by default
    p.set_defaults(num_workers=os.cpu_count() or 1)
    args = p.parse_args(argv)
    from segq.config import load_config
    from segq.data.check import check_config

    cfg = load_config(args.config, config_opts(args))
    reports = check_config(cfg, args.split, args.num_workers)
    for report in reports:
        for line in report.lines():
            print(line)
    bad = [r for r in reports if not r.ok]
    if bad:
        problems = sum(len(r.errors) for r in bad)
        fix = " or ".join(f"{r.split}_dataset.skip_bad_files: true" for r in bad)
        print(f"error: {problems} problem(s) in the {' and '.join(r.split for r in bad)} "
              f"data: fix or remove the files listed above, or train with {fix} to skip "
              f"them", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
