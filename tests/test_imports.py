"""The core stays NumPy-only: importing normlab and fitting with NumPy loads no framework."""

import subprocess
import sys


def test_core_imports_no_framework():
    code = (
        "import sys, numpy as np, normlab\n"
        "x = np.zeros((4, 3, 3, 2), np.uint8) + np.arange(2, dtype=np.uint8)\n"
        "normlab.Standardize().fit(x).transform(x)\n"
        "normlab.Robust().fit(x.reshape(4, -1) * 1.0).transform(x.reshape(4, -1))\n"
        "heavy = [m for m in ('torch', 'keras', 'dask', 'distributed', 'matplotlib', 'sklearn', 'pandas', 'PIL') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout}"


def test_public_api_is_listed():
    import normlab

    for name in normlab.__all__:
        assert hasattr(normlab, name), name
