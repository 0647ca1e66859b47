"""The config tree: a dict whose keys are also attributes."""
from __future__ import annotations

import copy
from typing import Any, Dict

import yaml

__all__ = ["CfgNode"]


class CfgNode(dict):
    """A dict whose keys are also attributes; nested nodes are ``CfgNode`` too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def to_dict(self) -> Dict[str, Any]:
        """A plain nested ``dict`` copy (for YAML/JSON/pickle)."""
        return {k: v.to_dict() if isinstance(v, CfgNode) else copy.deepcopy(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "CfgNode":
        """Build a node tree from a plain nested dict."""
        return cls({k: cls.from_dict(v) if isinstance(v, dict) else v for k, v in d.items()})

    def dump(self) -> str:
        """The config as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
