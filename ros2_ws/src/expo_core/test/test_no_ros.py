import subprocess
import sys


def test_importing_the_core_never_imports_rclpy():
    code = (
        "import sys, pkgutil, importlib, expo_core\n"
        "for m in pkgutil.walk_packages(expo_core.__path__, 'expo_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('rclpy', 'rosidl_runtime_py'))\n"
        "assert not bad, bad\n"
        "print(len([k for k in sys.modules if k.startswith('expo_core')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 10  # the walk really imported the modules
