"""Export a QAT checkpoint as a Paddle Inference INT8 model (legacy .pdmodel) plus deploy.yaml:
python slim/qat_export.py --config C --model_path output_quant/best_model/model.pdparams
    --save_dir output_quant_infer [--with_softmax] [--without_argmax] [--input_shape N C H W]
    [--argmax_before_resize]"""
from segq.cli import build_parser, config_opts, export_options, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    args = build_parser(__doc__, ("export",)).parse_args(argv)
    from segq.config import load_config
    from segq.quant.qat import qat_export

    cfg = load_config(args.config, config_opts(args))
    out = qat_export(cfg, args.model_path, args.save_dir, export_options(args))
    print(f"exported INT8 model to {out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
