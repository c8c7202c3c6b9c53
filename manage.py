#!/usr/bin/env python
"""Django's command-line utility for volbal."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "volbal.settings")
    # OpenBLAS (numpy's) starts a thread per core when numpy is imported (django.setup() imports
    # it): about 40 ms of a command's start-up, for linear algebra no command does. Before the
    # import, and only if unset (an operator's value wins).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # after DJANGO_SETTINGS_MODULE is set (Django's own manage.py)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
