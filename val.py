"""Evaluate a model: python val.py --config C --model_path P [--result_json F] [--aug_eval ...]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("eval",)).parse_args(argv)
    from segq.config import load_config
    from segq.engine.workflows import evaluate_checkpoint

    cfg = load_config(args.config, config_opts(args))
    result = evaluate_checkpoint(cfg, args.model_path, args.num_workers, args.result_json)
    print(result.summary())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
