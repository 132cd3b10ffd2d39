"""Provenance of results: every table records its commit and command (the markdown too), a results script refuses
uncommitted code unless told, and the report's manifest says which folders are older than their code."""
import json
import subprocess

import pytest

from spikemfm.core import provenance as P
from spikemfm.core.io import save_table
from spikemfm.errors import OutputError


def test_a_table_records_its_commit_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", [str(P.REPO / "experiments" / "energy_table.py"), "--images", "5"])
    md = save_table(tmp_path, "t", [{"x": 1}], {"images": 5}, "T")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["command"] == "python experiments/energy_table.py --images 5"
    assert data["git_commit"] == P.git_commit() and data["config"] == {"images": 5}
    assert f"commit `{data['git_commit']}`" in md and "command `python experiments/energy_table.py --images 5`" in md
    assert (tmp_path / "t.md").read_text() == md


def test_the_cli_command_is_recorded_as_typed():
    assert P.command(["/x/.venv/bin/spikemfm", "energy", "m.pt", "--profile", "a b"]) == "spikemfm energy m.pt --profile 'a b'"
    assert P.command([str(P.REPO / "spikemfm" / "cli" / "__main__.py"), "evaluate"]) == "spikemfm evaluate"


def test_a_results_script_refuses_uncommitted_code_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "git_commit", lambda: "0123abc-dirty")
    monkeypatch.setattr(P, "_POLICY", {})
    P.provenance({})  # the command line's own outputs: recorded, not refused
    with pytest.raises(OutputError, match="--allow-dirty"):
        P.results_run(allow_dirty=False)
    with pytest.raises(OutputError, match="commit first"):
        save_table(tmp_path, "t", [{"x": 1}], {}, "T")
    assert not (tmp_path / "t.json").exists()
    P.results_run(allow_dirty=True)
    save_table(tmp_path, "t", [{"x": 1}], {}, "T")
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["git_commit"] == "0123abc-dirty" and data["allow_dirty"] is True


def test_staleness_compares_the_code_a_result_depends_on():
    head = P.git_commit().removesuffix("-dirty")
    first = subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=P.REPO, capture_output=True,
                           text=True, check=True).stdout.split()[0]
    cmd = "python experiments/energy_table.py --images 5"
    deps = {str(p.relative_to(P.REPO)) for p in P.dependencies(cmd)}
    assert {"experiments/energy_table.py", "spikemfm/energy/model.py", "spikemfm/ir/units/softmax.py",
            "spikemfm/hardware/profiles/loihi2.toml"} <= deps and "spikemfm/neuromorphic/export.py" not in deps
    changed = subprocess.run(["git", "diff", "--name-only", "HEAD", "--", *sorted(deps)], cwd=P.REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert P.staleness(head, cmd) == "current" or changed  # current unless this checkout has edits there
    assert P.staleness(first, cmd).startswith("code changed since")
    assert P.staleness(head + "-dirty", cmd).startswith("made from uncommitted code")
    assert P.staleness(head, "") == "no command recorded"
    assert "energy" in {p.stem for p in P.dependencies("spikemfm energy m.pt")}


def test_the_report_writes_a_manifest_with_each_folders_status(tmp_path):
    from spikemfm.cli import main

    head = P.git_commit().removesuffix("-dirty")
    for folder, commit, cmd in (("new", head, "python experiments/energy_table.py"), ("old", "unknown", "")):
        (tmp_path / "res" / folder).mkdir(parents=True)
        (tmp_path / "res" / folder / "t.json").write_text(json.dumps(
            {"title": folder, "rows": [{"x": 1}], "git_commit": commit, "command": cmd}))
    assert main(["report", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "R.md")]) == 0
    rows = {r["folder"]: r for r in json.loads((tmp_path / "MANIFEST.json").read_text())["folders"]}
    assert rows["old"]["status"] == "no command recorded"
    assert rows["new"]["command"] == "python experiments/energy_table.py" and rows["new"]["status"] in (
        "current", P.staleness(head, "python experiments/energy_table.py"))
    assert "| new |" in (tmp_path / "MANIFEST.md").read_text()


def test_generated_text_stays_in_its_markdown_cell():
    from spikemfm.core.io import markdown_table

    md = markdown_table([{"k": 4, "text": " virtual pet\n\n| x"}, {"k": 8, "text": "sandal"}])
    lines = md.splitlines()
    assert len(lines) == 4 and lines[2] == "| 4 |  virtual pet\\n\\n\\| x |"
