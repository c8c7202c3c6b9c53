#!/usr/bin/env python
"""Django's command-line utility for volbal."""

import gc
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")
    # No command does linear algebra; OpenBLAS (numpy's, loaded with it) would start a worker
    # thread per core that spins ~0.1 s of CPU waiting for work that never comes. Set before
    # numpy loads; a value in the environment is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # after DJANGO_SETTINGS_MODULE is set (Django's own manage.py)
    import django
    from django.core.management import execute_from_command_line

    django.setup = _frozen_setup(django.setup)
    execute_from_command_line(sys.argv)


def _frozen_setup(setup):
    """Django's setup (settings, every app's models and admin modules) without the cyclic
    garbage collector, whose passes over the objects piling up cost a short command ~8 % of its
    CPU; they live as long as the process, so they are then frozen out of its later passes
    (gc.freeze) and the collector is on again for the command."""

    def frozen_setup(*args, **kwargs):
        gc.disable()
        try:
            setup(*args, **kwargs)
        finally:
            gc.freeze()
            gc.enable()

    return frozen_setup


if __name__ == "__main__":
    main()
