"""posereg-weights: the local weight file `backbone.checkpoint` loads, for machines without a network.

    posereg-weights export resnet50 --out resnet50.safetensors           # timm's pretrained weights (needs a network)
    posereg-weights export resnet50.tv_in1k --out resnet50_tv.safetensors    # torchvision's, through timm
    posereg-weights convert resnet50-0676ba61.pth --model resnet50 --out resnet50.safetensors   # a torchvision file

Then, where there is no network: posereg-train ... backbone.pretrained=false backbone.checkpoint=resnet50.safetensors

`export` takes the weights with timm's own mechanism (the Hugging Face hub and its cache: what
`backbone.pretrained=true` uses). `convert` reads a state dict or checkpoint file safely and keeps the tensors
that match timm's model by name and shape; torchvision's ResNets need no renaming (timm's ResNet has
torchvision's tensor names: conv1, bn1, layer1..4, fc). Both write `.safetensors` (tensors only) or `.pth`, and
say how many of posereg's backbone tensors the file fills, with the rule `backbone.checkpoint` loads it by.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from posereg.cli.common import exit_2_on_bad_input
from posereg.errors import ConfigError
from posereg.paths import CONF_DIR
from posereg.weights import (
    load_checkpoint,
    load_matching,
    matching_tensors,
    save_weights,
    strip_prefixes,
    tensors_of,
    weight_file,
)

OFFLINE = "run `posereg-weights export` on a machine with a network and copy the file"


def backbone_fill(name: str, state: dict[str, torch.Tensor], setting: str) -> tuple[int, int, int]:
    """(tensors loaded, backbone tensors, file tensors unused) when posereg's features-only backbone `name`
    loads `state` as `backbone.checkpoint` does (ConfigError below the backbone group's min_fraction)."""
    from posereg.nets import create_timm

    min_fraction = float(OmegaConf.load(CONF_DIR / "backbone" / "timm.yaml").min_fraction)
    return load_matching(create_timm(name, features_only=True), state, min_fraction, setting)


def export(name: str, out: Path) -> str:
    """Write timm's pretrained weights of `name` (the whole model, classifier included) to `out`."""
    from posereg.nets.backbone import require_timm_model
    from posereg.nets.pretrained import pretrained_model, weights_source

    setting = f"posereg-weights export {name}"
    require_timm_model(name, "export")
    state = pretrained_model(name, setting, OFFLINE).state_dict()
    loaded, total, unused = backbone_fill(name, state, setting)
    save_weights(state, out)
    return (f"wrote {out}: {len(state)} tensors of timm's {name} ({weights_source(name)}); posereg's backbone "
            f"{name} loads {loaded} of its {total} tensors from it ({unused} unused: outside the features, e.g. the "
            "classifier)")


def convert(file: Path, name: str, out: Path) -> str:
    """Write the tensors of a state dict or checkpoint `file` that match timm's `name` by name and shape to `out`."""
    import timm

    from posereg.nets.backbone import require_timm_model

    setting = f"posereg-weights convert {file} --model {name}"
    require_timm_model(name, "--model")
    own = timm.create_model(name, pretrained=False).state_dict()
    state = strip_prefixes(tensors_of(load_checkpoint(file), setting), set(own))
    kept = matching_tensors(state, own)
    if not kept:
        raise ConfigError(f"{setting}: none of the file's {len(state)} tensors matches timm's {name} by name and "
                          f"shape (its keys look like {next(iter(state))!r}): is it a checkpoint of another network?")
    loaded, total, _ = backbone_fill(name, kept, setting)
    save_weights(kept, out)
    return (f"wrote {out}: {len(kept)} of the file's {len(state)} tensors match timm's {name} by name and shape "
            f"({len(state) - len(kept)} dropped); posereg's backbone {name} loads {loaded} of its {total} tensors "
            "from it")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="posereg-weights", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="timm's pretrained weights of a model -> a local file (needs a network)")
    e.add_argument("model", help="a timm model name, optionally with a tag (resnet50, resnet50.tv_in1k)")
    e.add_argument("--out", required=True, type=Path, help="the file to write (.safetensors or .pth)")
    c = sub.add_parser("convert", help="a state dict / checkpoint file (e.g. torchvision's) -> a local file")
    c.add_argument("file", type=Path, help="the .pth / .pt / .safetensors file to read (loaded safely)")
    c.add_argument("--model", required=True, help="the timm model whose tensors the file holds (e.g. resnet50)")
    c.add_argument("--out", required=True, type=Path, help="the file to write (.safetensors or .pth)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    """Do the command; the line to print."""
    weight_file(args.out)  # before any download
    if args.command == "export":
        return export(args.model, args.out)
    return convert(args.file, args.model, args.out)


def main(argv: list[str] | None = None) -> int:
    """Console entry point (posereg-weights)."""
    args = parse_args(argv)
    message = exit_2_on_bad_input(run, args)
    print(message)
    print(f"use it with: backbone.pretrained=false backbone.checkpoint={args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
