"""Every declared method x data combination composes; the impossible ones fail with a clear ConfigError."""

from __future__ import annotations

import pytest

from conftest import compose_config
from posereg.data.datamodule import DataInfo
from posereg.errors import ConfigError
from posereg.methods.build import validate_combination
from posereg.paths import CONF_DIR

METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
DATA = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
# H3/I3 (disk BCE) are defined in 2D only, as in the paper
INVALID = {(m, d) for m in ("h3", "i3") for d in DATA}


def _info(cfg) -> DataInfo:
    """DataInfo from the data config alone (real datasets need a root to be built)."""
    dims = int(cfg.data.dims)
    return DataInfo(joint_set=cfg.data.joint_set, input_size=int(cfg.data.input_size), has_2d=True,
                    has_3d=dims == 3, depth_range=float(cfg.data.depth_range), dataset_names=tuple(cfg.data.sources))


def test_the_matrix_is_complete():
    assert {"r1", "h1", "h2", "h3", "istar", "i1", "i2", "i3", "ms_h1", "ms_i1", "sspnet", "luvizon17"} <= set(METHODS)
    real = {"mpii", "coco", "h36m", "mpi_inf_3dhp", "lsp", "h36m_mpii"}
    assert {"synth2d", "synth3d", "synth_mixed"} | real <= set(DATA)


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("method", METHODS)
def test_method_data_combination(method, data):
    cfg = compose_config([f"method={method}", f"data={data}"])
    info = _info(cfg)
    if (method, data) in INVALID and info.has_3d:
        with pytest.raises(ConfigError, match=r"3D|2D"):
            validate_combination(cfg, info)
    else:
        validate_combination(cfg, info)
