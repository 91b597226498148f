"""Config overrides checked before anything is composed or built: a mistyped config group, option or key is one
line naming it with the closest valid names ("did you mean max_epochs?"), a ConfigError (exit 2).

posereg-train and posereg-sweep check their Hydra overrides against the config tree (`check_overrides`); posereg-
eval, -predict and -export check theirs against a run's stored config (`posereg.runs.open.apply_overrides`, with
`check_key` and `check_option`). Light on purpose: Hydra and OmegaConf only, so a typo answers before torch loads.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.config_search_path import SearchPathQuery
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig

from posereg.errors import ConfigError
from posereg.paths import CONF_DIR

MAX_COMPOSITIONS = 16  # group combinations composed to look for a key before calling it missing
SHOWN = 12  # names listed when none is close


def closest(word: str, names: Iterable[str]) -> list[str]:
    """Up to three of `names` most like `word` (difflib's ratio of at least 0.6), the closest first."""
    return difflib.get_close_matches(word, sorted({str(n) for n in names}), n=3, cutoff=0.6)


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def hint(word: str, names: Iterable[str], kind: str = "options") -> str:
    """'did you mean a or b?' for the closest names, else the valid ones (the first SHOWN)."""
    names = sorted({str(n) for n in names})
    near = closest(word, names)
    if near:
        return f"did you mean {_either(near)}?"
    listed = ", ".join(names[:SHOWN]) + (", ..." if len(names) > SHOWN else "")
    return f"{kind}: {listed}" if names else f"there are no {kind}"


def parse(lines: Sequence[str]) -> list[Override]:
    """Hydra's parse of override lines; ConfigError with the parser's first line when one does not parse."""
    try:
        return OverridesParser.create().parse_overrides(list(lines))
    except HydraException as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot parse the overrides {' '.join(lines)}: {first} (key=value, Hydra's grammar)"
                          ) from None


def values(override: Override) -> list[Any]:
    """The values an override sets: each of a choice or range sweep's (other sweeps give none), else its one value."""
    if not override.is_sweep_override():
        return [override.value()]
    if override.is_choice_sweep() or override.is_range_sweep():
        return list(override.sweep_string_iterator())
    return []


def check_option(line: str, group: str, option: Any, options: Sequence[str]) -> None:
    """ConfigError when `option` is not one of the config group's options."""
    if isinstance(option, str) and option not in options:
        raise ConfigError(f"{line}: {group} has no option {option}; {hint(option, options)}")


def check_key(line: str, cfg: DictConfig, key: str) -> None:
    """ConfigError naming the first part of the dotted `key` that `cfg` lacks, with the closest names there."""
    node: Any = cfg
    parts = key.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the config"
        if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, DictConfig):
            raise ConfigError(f"{line}: {where} is a value ({node!r}), not a group of settings")
        if part not in node.keys():  # noqa: SIM118 - `in` a DictConfig is False for a ??? (missing) value
            near = closest(part, node.keys())
            tail = (f"did you mean {_either(near)}?" if near
                    else f"{hint(part, node.keys(), 'its keys')} (a new key is added with +{key}=...)")
            raise ConfigError(f"{line}: {where} has no key {part}; {tail}")
        try:
            node = node[part]
        except Exception:  # noqa: BLE001 - an interpolation that resolves only at run time: the key exists
            return


class ConfigTree:
    """The config tree Hydra composes from: its groups and options, and compositions for key checks."""

    def __init__(self, config_dir: Path = CONF_DIR, extra_dirs: Sequence[str | Path] = (),
                 searchpath: Sequence[str] = (), config_name: str = "config"):
        search_path = create_config_search_path(str(config_dir))
        for folder in extra_dirs:  # where Hydra's --config-dir puts them: after posereg's, before the schema
            path = Path(folder).expanduser().resolve()
            if not path.is_dir():
                raise ConfigError(f"--config-dir {folder}: no such folder")
            search_path.prepend("command-line", f"file://{path}", anchor=SearchPathQuery(provider="schema"))
        self.loader = ConfigLoaderImpl(config_search_path=search_path)
        self.config_name = config_name
        self.searchpath = list(searchpath)  # hydra.searchpath overrides, which move the tree itself

    @cached_property
    def repository(self) -> Any:
        """Hydra's config repository over the search path (hydra.searchpath overrides included), read once."""
        return self.loader._parse_overrides_and_create_caching_repo(self.config_name, self.searchpath)[1]

    def is_group(self, name: str) -> bool:
        """True for a config group (`method`, `method/loss`, `hydra/launcher`)."""
        return self.repository.group_exists(name)

    def options(self, group: str) -> list[str]:
        """The options of a config group, sorted."""
        return sorted(self.repository.get_group_options(group, ObjectType.CONFIG))

    def subgroups(self, group: str) -> list[str]:
        """The groups directly inside `group` ('' for the top), as full paths."""
        found = self.repository.get_group_options(group, ObjectType.GROUP)
        return [f"{group}/{name}" if group else name for name in found]

    def groups(self, parent: str = "") -> list[str]:
        """Every group with options at or below `parent`, as Hydra's --help lists them."""
        out: list[str] = []
        for group in self.subgroups(parent):
            if self.options(group):
                out.append(group)
            out += self.groups(group)
        return sorted(out)

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The config composed with `overrides` (Hydra's node included); ConfigError with Hydra's first line."""
        try:
            return self.loader.load_configuration(self.config_name, [*self.searchpath, *overrides], RunMode.RUN,
                                                  from_shell=True, validate_sweep_overrides=False)
        except HydraException as err:
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"{' '.join(overrides)}: {first}") from None

    def packages(self, group: str, options: Sequence[Any]) -> set[str]:
        """Where the options of a group write in the config: their `@package` headers (default: the group's path,
        dotted); '' for a global one (`# @package _global_`: anywhere)."""
        found = set()
        for option in options:
            header = self.repository.load_config(f"{group}/{option}").header if option in self.options(group) else {}
            package = header.get("package") or group.replace("/", ".")
            found.add("" if package == "_global_" else package)
        return found

    def check_group(self, override: Override) -> None:
        """An override of a config group: the group and every option it names exist."""
        group = override.key_or_group
        for option in values(override):
            for item in option if isinstance(option, list) else [option]:
                check_option(override.input_line, group, item, self.options(group))

    def check_unknown_group(self, override: Override) -> None:
        """A `group/sub=option` or `group@package=option` override whose group does not exist."""
        group = override.key_or_group
        parent = group.rpartition("/")[0]
        while parent and not self.is_group(parent):
            parent = parent.rpartition("/")[0]
        raise ConfigError(f"{override.input_line}: no config group {group}; "
                          f"{hint(group, self.subgroups(parent), 'groups')}")


def check_overrides(lines: Sequence[str], config_dir: Path = CONF_DIR, extra_dirs: Sequence[str | Path] = ()
                    ) -> None:
    """ConfigError for the first override naming a config group, option or key the tree does not have.

    Group options are checked first; keys then in the config composed with the group choices (each
    combination of swept groups, up to MAX_COMPOSITIONS, until one has the key). Keys added with `+` / `++`
    are not checked; `hydra.*` keys are checked in Hydra's own node.
    """
    parsed = parse(lines)
    tree = ConfigTree(config_dir, extra_dirs, [o.input_line for o in parsed if o.key_or_group == "hydra.searchpath"])
    groups, keys = [], []
    for o in parsed:
        name = o.key_or_group
        if name == "hydra.searchpath":
            continue
        if tree.is_group(name):
            groups.append(o)
        elif "/" in name or o.package is not None:
            tree.check_unknown_group(o)
        elif not (o.is_add() or o.is_force_add()):
            keys.append(o)
    for o in groups:
        if not o.is_delete():
            tree.check_group(o)
    if not keys:
        return
    choices = [[o.input_line] if o.is_delete() or isinstance(o.value(), dict)
               else [f"{o.get_key_element()}={_as_text(v)}" for v in values(o)] for o in groups]
    # where the swept groups write: a key outside all of them is the same in every combination
    swept = set().union(*[tree.packages(o.key_or_group, values(o)) for o in groups
                          if o.is_sweep_override() and not o.is_delete()])
    combos = itertools.islice(itertools.product(*[c for c in choices if c]), MAX_COMPOSITIONS)
    pending: list[Override] = keys
    for number, combo in enumerate(combos):
        cfg = tree.compose(list(combo))
        missing = []
        for o in pending:
            try:
                check_key(o.input_line, cfg, o.key_or_group)
            except ConfigError as err:
                missing.append((o, err))
        if not missing:
            return
        if number == 0:  # a key no swept group writes is missing in every combination
            settled = [err for o, err in missing if not any(o.key_or_group.startswith(p) for p in swept)]
            if settled:
                raise settled[0]
        pending = [o for o, _ in missing]
    raise missing[0][1]


def _as_text(value: Any) -> str:
    """An override value written back as Hydra reads it (a list as [a,b])."""
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)

