"""The train command's options (parsing only: training itself is tested in tests/engine/training)."""

from __future__ import annotations

import pytest


def test_cli_background_swap_overrides_the_presets_share():
    from cli.main import build_parser, register_commands
    from cli.models import augment_config
    from engine.core.errors import ConfigError

    register_commands()
    parse = build_parser().parse_args
    assert augment_config(parse(["train", "d", "--augment", "cell"])).p_background_swap == 0.6
    cfg = augment_config(parse(["train", "d", "--augment", "cell", "--background-swap", "0.9"]))
    assert cfg.p_background_swap == 0.9 and cfg.hue_degrees == 22.0  # the rest of the preset stays
    with pytest.raises(ConfigError, match="probability"):
        augment_config(parse(["train", "d", "--background-swap", "1.5"]))
