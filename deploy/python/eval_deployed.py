"""mIoU of an exported model run by Paddle Inference (oneDNN) on the config's val set:
python deploy/python/eval_deployed.py --config C --model_dir D [--precision fp32|int8]
    [--cpu_threads N] [--result_json F]"""
import argparse

from segq.cli import run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--model_dir", required=True, help="directory written by export.py")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--result_json", default=None)
    p.add_argument("--opts", nargs="+", default=[])
    args = p.parse_args(argv)
    from segq.config import load_config
    from segq.engine.workflows import evaluate_inference_model

    cfg = load_config(args.config, args.opts)
    result = evaluate_inference_model(cfg, args.model_dir, args.precision == "int8",
                                      args.cpu_threads, args.num_workers, args.result_json)
    print(f"[DEPLOY] Paddle Inference oneDNN {args.precision}, {args.cpu_threads} threads")
    print(result.summary())


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
