"""The wheel carries the package, its SQL and its migrations, and works from an installed copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def wheel(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "sqlxmq_py"
    shutil.copytree(
        repo_root,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("sqlxmq_py-*.whl")
    return built


def test_wheel_contains_migrations_sql_and_typing_marker(wheel: Path, repo_root: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (repo_root / "migrations").glob("*.sql"))
    assert migrations
    for name in migrations:
        assert f"sqlxmq_py/migrations/{name}" in names
    assert "sqlxmq_py/sql/queries.sql" in names
    assert "sqlxmq_py/py.typed" in names
    assert "sqlxmq_py/runner/_runner.py" in names
    for source in repo_root.joinpath("sqlxmq_py").rglob("*.py"):
        assert source.relative_to(repo_root).as_posix() in names
    web = repo_root / "sqlxmq_py" / "web"
    assets = [*web.glob("templates/*"), *web.glob("static/*")]
    assert assets
    for asset in assets:  # the dashboard's templates and static files ship
        assert asset.relative_to(repo_root).as_posix() in names


def test_installed_wheel_finds_its_migrations(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = (
        "import sqlxmq_py; from sqlxmq_py.migrate import load_migrations; "
        "print(sqlxmq_py.__file__); print(','.join(x.name for x in load_migrations()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
    ).stdout.splitlines()
    assert out[0].startswith(str(tmp_path))
    assert out[1].split(",") == [
        p.name for p in sorted(Path(__file__).parent.parent.joinpath("migrations").glob("*.sql"))
    ]
