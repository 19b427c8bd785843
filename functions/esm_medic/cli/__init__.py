"""The ``esm-medic`` command line. One module per command family; see ``main.py``."""
