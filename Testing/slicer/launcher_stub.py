"""A stand-in for Slicer's PythonSlicer (a CTKAppLauncher) in the engine tests: `python launcher_stub.py ARGS...`.

Like CTKAppLauncher 0.1.31 / 0.1.33 it starts the real program (here `sys.executable ARGS...`) as its child
with the same stdin / stdout / stderr, forwards no signal (SIGTERM is ignored here, as the launcher does
not pass it on), and when the child crashed or was killed prints "error: [...] exit abnormally - Report
the problem." and exits 1; otherwise it exits with the child's exit code.
"""
import signal
import subprocess
import sys

if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable] + sys.argv[1:])
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:
            continue
    if code < 0:
        sys.stderr.write(f"error: [{sys.executable}] exit abnormally - Report the problem.\n")
        sys.exit(1)
    sys.exit(code)
