"""What every model family shares: the :class:`~bayesimg.models.core.base.Model` interface,
the exact-Gibbs kernel base, the shared conditional samplers, jittered linear algebra and
input checks.  Family packages import from here, never from one another."""

from bayesimg.models.core.base import Model

__all__ = ["Model"]
