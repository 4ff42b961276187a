"""The small model configs of the tests; their home is :mod:`nequip_pol.testing`."""

from nequip_pol.testing import ALLEGRO_POL, NEQUIP_POL, TYPE_NAMES  # noqa: F401
