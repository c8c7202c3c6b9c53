"""The token example of docs/auth.md#who-may-call works as written on a fresh database: its
commands, run in order (but the interactive ``createsuperuser``), print a token that the API
accepts outside local mode."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from volbal.tests.live_server import ROOT, call, live_server

pytestmark = [pytest.mark.system, pytest.mark.django_db]


def token_block() -> list[str]:
    readme = (ROOT / "docs" / "auth.md").read_text()
    section = readme.split("## Who may call\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_token_example_works_on_a_fresh_database(tmp_path):
    lines = token_block()
    assert lines[-1].startswith('curl -H "Authorization: Bearer <token>"')
    out = []

    def run_the_readme(env):
        for line in lines[:-1]:
            argv = shlex.split(line, comments=True)
            assert argv[:2] == [".venv/bin/python", "manage.py"], line
            if argv[2] == "createsuperuser":  # interactive; an operator, not needed here
                continue
            result = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, (line, result.stderr)
            out.append(result.stdout)

    env = {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "readme-token-test-" + "x" * 40,
           "DJANGO_SECURE_SSL_REDIRECT": "0"}
    with live_server(tmp_path, workers=1, env=env, before_start=run_the_readme) as base:
        token = re.search(r"Generated token (\w+) for user alice", "".join(out)).group(1)
        url = shlex.split(lines[-1], comments=True)[-1].replace("localhost:8000", base)
        for scheme in ("Bearer", "Token"):  # the line's own, and the one its comment offers
            status, body, _ = call(url, headers={"Authorization": f"{scheme} {token}"})
            assert status == 200 and body["positions"] == [], (scheme, body)
        assert call(url)[0] == 401  # and without it, nothing
