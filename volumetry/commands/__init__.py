"""Sub-commands of the ``volumetry`` command line (see :mod:`volumetry.cli`)."""
