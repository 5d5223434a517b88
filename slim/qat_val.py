"""Evaluate a QAT checkpoint (fake-quant dygraph model), with val.py's metrics and JSON:
python slim/qat_val.py --config C --model_path output_quant/best_model/model.pdparams [--result_json F]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("eval",)).parse_args(argv)
    from segq.config import load_config
    from segq.quant.qat import qat_evaluate

    if not args.model_path:
        raise ValueError("--model_path: give the QAT checkpoint to evaluate")
    cfg = load_config(args.config, config_opts(args))
    print(qat_evaluate(cfg, args.model_path, args.num_workers, args.result_json).summary())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
