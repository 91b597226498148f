"""PoseDataModule: sources -> one joint set, per-batch source ratios for training, concatenated eval splits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from posereg.config import instantiate
from posereg.data.collate import collate_samples
from posereg.data.resumable import ResumableDataLoader
from posereg.data.samplers import MixedSourceBatchSampler, ShardSampler, SourceMix, batch_counts
from posereg.data.transforms import AugmentConfig
from posereg.data.workers import loader_start_method, loader_worker_init
from posereg.errors import ConfigError, require_int
from posereg.skeletons import check_mappable, get_joint_set

_COMMON = ("split", "joint_set", "input_size", "augment", "seed")


@dataclass(frozen=True)
class DataInfo:
    """What models need to know about the data without importing it."""

    joint_set: str
    input_size: int
    has_2d: bool
    has_3d: bool
    depth_range: float
    dataset_names: tuple[str, ...]


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _input_size(value: Any) -> int:
    """The square crop side; each network checks the divisibility it needs."""
    sizes = [value] if not isinstance(value, list | tuple) else list(value)
    if not sizes or len(set(map(str, sizes))) != 1:
        raise ConfigError(f"data.input_size={value!r}: crops are square, give one integer such as 128 or 256")
    return require_int(sizes[0], "data.input_size", 1)


def _ratios(sources: dict[str, Any], ratios: Any) -> dict[str, float]:
    if ratios is None:
        if len(sources) == 1:
            return {next(iter(sources)): 1.0}
        raise ConfigError("data.ratios is required with several data.sources: give each source a fraction")
    ratios = {str(k): v for k, v in dict(ratios).items()}
    unknown = sorted(set(ratios) - set(sources))
    if unknown:
        raise ConfigError(f"data.ratios names unknown sources {unknown}; sources are {sorted(sources)}")
    out = {}
    for name in sources:
        r = ratios.get(name, 0.0)
        if not isinstance(r, (int, float)) or not 0.0 <= r <= 1.0:
            raise ConfigError(f"data.ratios.{name}={r!r} must be a fraction in [0, 1]")
        out[name] = float(r)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ConfigError(f"data.ratios={ratios} sum to {sum(out.values()):.6g}; they must sum to 1")
    return out


class PoseDataModule(L.LightningDataModule):
    """Builds the configured sources per split and serves them (see docs/architecture.md)."""

    def __init__(self, data_cfg: Any, seed: int = 0, budget_scale: int = 1) -> None:
        super().__init__()
        cfg = _plain(data_cfg)
        self.cfg = cfg
        self.seed = int(seed)
        self.budget_scale = require_int(budget_scale, "budget_scale", 1)
        self.joint_set = get_joint_set(cfg.get("joint_set")).name
        self.input_size = _input_size(cfg.get("input_size"))
        sources = cfg.get("sources") or {}
        if not sources:
            raise ConfigError("data.sources is empty: configure at least one dataset source")
        # a null entry drops a source of a base config (e.g. a data config built on another one)
        self.sources: dict[str, dict[str, Any]] = {str(k): dict(v) for k, v in sources.items() if v is not None}
        for name, src in self.sources.items():
            if "_target_" not in src:
                raise ConfigError(f"data.sources.{name} has no _target_ (the dataset class to build)")
        self.ratios = _ratios(self.sources, cfg.get("ratios"))
        self.batch_size = require_int(cfg.get("batch_size"), "data.batch_size", 1)
        self.eval_batch_size = require_int(cfg.get("eval_batch_size") or self.batch_size, "data.eval_batch_size", 1)
        self.counts = batch_counts(list(self.ratios.values()), self.batch_size)
        self.augment = AugmentConfig.from_cfg(cfg.get("augment"))
        self.num_workers = require_int(cfg.get("num_workers", 0), "data.num_workers", 0)
        self.pin_memory = bool(cfg.get("pin_memory", False))
        self.persistent_workers = bool(cfg.get("persistent_workers", False)) and self.num_workers > 0
        self.epoch_length = cfg.get("epoch_length")
        self._datasets: dict[str, list[Dataset]] = {}
        self._source_info = {name: self._describe(name, src) for name, src in self.sources.items()}
        self.info = DataInfo(
            joint_set=self.joint_set, input_size=self.input_size,
            has_2d=any(i["has_2d"] for i in self._source_info.values()),
            has_3d=any(i["has_3d"] for i in self._source_info.values()),
            depth_range=float(cfg.get("depth_range", 2000.0)), dataset_names=tuple(self.sources),
        )

    def _kwargs(self, name: str, split: str) -> dict[str, Any]:
        src = dict(self.sources[name])
        aug = AugmentConfig.from_cfg(src.pop("augment"), f"data.sources.{name}.augment") if "augment" in src \
            else self.augment
        return {**src, "split": split, "joint_set": self.joint_set, "input_size": self.input_size,
                "augment": aug if split == "train" else None, "seed": self.seed}

    def _describe(self, name: str, src: dict[str, Any]) -> dict[str, Any]:
        """has_2d/has_3d/native joint set of a source, cheaply when the class can tell, and a mapping check."""
        try:
            cls = get_class(src["_target_"])
        except Exception as e:  # hydra raises several types for a bad path
            raise ConfigError(f"data.sources.{name}._target_={src['_target_']!r} cannot be imported: {e}") from e
        if hasattr(cls, "source_info"):
            kw = {k: v for k, v in src.items() if k not in ("_target_", *_COMMON)}
            info = dict(cls.source_info(**kw))
        else:
            native = getattr(cls, "source_joint_set", None) or getattr(cls, "native_joint_set", None)
            has_3d = getattr(cls, "has_3d", None)
            if native is None or has_3d is None:
                ds = self._build(name, "val")
                native = native or ds.source_joint_set
                has_3d = bool(getattr(ds, "has_3d", False)) if has_3d is None else has_3d
            info = {"has_2d": bool(getattr(cls, "has_2d", True)), "has_3d": bool(has_3d), "joint_set": native}
        check_mappable(info["joint_set"], self.joint_set, setting=f"data.joint_set (source {name})")
        return info

    def _build(self, name: str, split: str) -> Dataset:
        return instantiate({**self._kwargs(name, split)}, _convert_="all")

    def datasets(self, split: str) -> list[Dataset]:
        """The per-source datasets of a split (built once)."""
        if split not in self._datasets:
            names = list(self.sources) if split != "train" else [n for n in self.sources if self.ratios[n] > 0]
            self._datasets[split] = [self._build(n, split) for n in names]
        return self._datasets[split]

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in splits.get(stage or "fit", ("train", "val", "test")):
            self.datasets(split)

    def dataset(self, split: str) -> Dataset:
        """One dataset per split: (source, index)-keyed mix for train, concatenation for val/test."""
        if split == "train":
            return SourceMix(self.datasets("train"), [n for n in self.sources if self.ratios[n] > 0])
        return ConcatDataset(self.datasets(split))

    def batch_sampler(self) -> MixedSourceBatchSampler:
        """The training batch sampler (exact per-source counts per batch)."""
        ds = self.datasets("train")
        counts = [c for n, c in zip(self.sources, self.counts, strict=True) if self.ratios[n] > 0]
        total = int(self.epoch_length) if self.epoch_length else sum(len(d) for d in ds)
        num_batches = max(1, total * self.budget_scale // self.batch_size)
        rank, world = _rank_world()
        return MixedSourceBatchSampler([len(d) for d in ds], counts, num_batches, self.seed,
                                       [bool(getattr(d, "procedural", False)) for d in ds], rank, world)

    def _loader_kwargs(self) -> dict[str, Any]:
        kwargs = {"num_workers": self.num_workers, "pin_memory": self.pin_memory,
                  "persistent_workers": self.persistent_workers, "collate_fn": collate_samples}
        if self.num_workers > 0:
            rank = self.trainer.global_rank if self.trainer is not None else None
            kwargs["multiprocessing_context"] = method = loader_start_method()
            kwargs["worker_init_fn"] = loader_worker_init(rank, method)
        return kwargs

    def train_dataloader(self) -> DataLoader:
        loader = ResumableDataLoader(self.dataset("train"), batch_sampler=self.batch_sampler(),
                                     **self._loader_kwargs())
        if self.trainer is not None:  # a resumed fit continues at the epoch its checkpoint restored
            loader.start_at(self.trainer.fit_loop.epoch_progress.current.processed)
        return loader

    def _eval_loader(self, split: str) -> DataLoader:
        """Evaluation batches in dataset order; under DDP each rank takes its own share, each sample once."""
        ds = self.dataset(split)
        return DataLoader(ds, batch_size=self.eval_batch_size, sampler=ShardSampler(len(ds), *_rank_world()),
                          **self._loader_kwargs())

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def preview(self, split: str, n: int) -> list[dict[str, Any]]:
        """The first n samples the loaders would give (train: in batch-sampler order)."""
        if split == "train":
            ds, out = self.dataset("train"), []
            for batch in self.batch_sampler():
                out += [ds[k] for k in batch[: n - len(out)]]
                if len(out) >= n:
                    break
            return out
        ds = self.dataset(split)
        return [ds[i] for i in range(min(n, len(ds)))]


def _rank_world() -> tuple[int, int]:
    """(rank, world size) of this process in a distributed run, (0, 1) otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def build_datamodule(cfg: Any) -> PoseDataModule:
    """The data module of a composed config (reads cfg.data, cfg.seed and cfg.budget_scale); validates before
    building data."""
    if "data" not in cfg:
        raise ConfigError("config has no 'data' group: pass data=synth2d (or another conf/data/*.yaml)")
    seed = cfg.get("seed", 0)
    return PoseDataModule(cfg.data, 0 if seed is None else int(seed), cfg.get("budget_scale", 1))


def data_info(cfg: Any) -> DataInfo:
    """What a network needs about the data, from cfg.data alone (no dataset root, no images)."""
    d = cfg.data
    three_d = OmegaConf.select(cfg, "data.dims") == 3 or OmegaConf.select(cfg, "method.dims") == 3
    return DataInfo(joint_set=str(d.joint_set), input_size=_input_size(_plain(d.input_size)), has_2d=True,
                    has_3d=bool(three_d), depth_range=float(d.get("depth_range", 2000.0)),
                    dataset_names=tuple(d.get("sources") or ()))
