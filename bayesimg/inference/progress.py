"""A single compact progress bar with named phases (compiling, warmup, sampling, ...)."""

from __future__ import annotations

import contextlib
import sys

try:  # notebook widgets when ipywidgets is installed; plain text bars otherwise
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm.std import tqdm


class _Bar:
    def __init__(self, total: int, desc: str, enabled: bool):
        self.desc = desc
        self._bar = tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr,
                         dynamic_ncols=True, leave=True,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                    "[{elapsed}<{remaining}{postfix}]")

    def set_phase(self, phase: str) -> None:
        self._bar.set_description(f"{self.desc} ({phase})", refresh=True)

    def update(self, n: int) -> None:
        self._bar.update(n)

    def set_postfix(self, **kwargs) -> None:
        self._bar.set_postfix(kwargs, refresh=False)

    def close(self) -> None:
        self._bar.close()


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool = True):
    """Context manager yielding a bar with ``set_phase``, ``update``, ``set_postfix``."""
    bar = _Bar(total, desc, enabled)
    try:
        yield bar
    finally:
        bar.close()
