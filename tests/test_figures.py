"""Figure files say where they were measured, including the libraries that shape the numbers."""

import json
import subprocess
import sys

import transformers

from rlseek.figures import write_figures


def test_figure_file_records_the_transformers_version_when_loaded(tmp_path):
    path = write_figures(tmp_path / "f.json", "demo", {"x": 1})
    doc = json.loads(path.read_text())
    assert doc["machine"]["transformers"] == transformers.__version__
    assert doc["figures"] == {"x": 1}


def test_figure_file_names_no_library_the_process_did_not_load(tmp_path):
    code = ("import json, sys; from rlseek.figures import write_figures; "
            f"write_figures({str(tmp_path / 'g.json')!r}, 'demo', {{}}); "
            "print(json.dumps(['transformers' in sys.modules, 'trl' in sys.modules]))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    machine = json.loads((tmp_path / "g.json").read_text())["machine"]
    assert ("transformers" in machine) == loaded[0]
    assert ("trl" in machine) == loaded[1]
