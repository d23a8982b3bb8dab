"""YAML files read safely: ``params.yaml``, recipes, the report's runs.

PyYAML keeps the last of two equal keys silently (DVC refuses such a file), and its errors for bytes that
are not UTF-8 name no line. :func:`load_yaml` refuses both, naming ``file:line`` and the dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genemi.schema import ConfigError


def _duplicates(node: yaml.Node, label: str, prefix: str = "") -> None:
    """Refuse a key given twice in one mapping (PyYAML keeps the last silently; DVC refuses the file)."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicates(item, label, f"{prefix}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, value in node.value:
        if key.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` entries may be overridden by design
            continue
        name = key.value if isinstance(key, yaml.ScalarNode) else f"<{key.tag}>"
        dotted = f"{prefix}.{name}" if prefix else name
        line = key.start_mark.line + 1
        if name in seen:
            raise ConfigError(
                f"{label}:{line}: key {dotted!r} is given twice (first on line {seen[name]}); a YAML "
                "reader keeps only the last silently: delete one of them"
            )
        seen[name] = line
        _duplicates(value, label, dotted)


def load_yaml(source: str | Path | bytes, label: str | Path | None = None) -> Any:
    """A YAML file (or its bytes, named ``label``) parsed safely; text that is not UTF-8 and a key given
    twice in one mapping raise :class:`ConfigError` naming ``file:line`` and the key."""
    from genemi.io import EncodingError, decode_utf8

    if isinstance(source, bytes):
        data, label = source, label or "<yaml>"
    else:
        data, label = Path(source).read_bytes(), label or source
    try:
        text = decode_utf8(data, label)
    except EncodingError as e:
        raise ConfigError(str(e)) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _duplicates(node, str(label))
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: not valid YAML: {e}") from e
    finally:
        loader.dispose()
