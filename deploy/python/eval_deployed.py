"""mIoU of an exported model run by Paddle Inference (oneDNN) on the config's val set
(--precision int8 needs a quantized export, from slim/qat_export.py):
python deploy/python/eval_deployed.py --config C --model_dir D [--precision fp32|int8]
    [--cpu_threads N] [--result_json F]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ("deploy",))
    args = p.parse_args(argv)
    from segq.config import load_config
    from segq.deploy.deploy_file import require_quantized_export
    from segq.deploy.workflows import evaluate_inference_model

    if args.precision == "int8":  # before the config and dataset: fail in a second
        require_quantized_export(args.model_dir, "--precision int8", "--precision fp32")
    cfg = load_config(args.config, args.opts)
    result = evaluate_inference_model(cfg, args.model_dir, args.precision == "int8",
                                      args.cpu_threads, args.num_workers, args.result_json)
    print(f"[DEPLOY] Paddle Inference oneDNN {args.precision}, {args.cpu_threads} threads")
    print(result.summary())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
