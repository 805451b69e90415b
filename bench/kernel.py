#!/usr/bin/python3
"""Kernel start time and trivial-cell round trip: loralab's kernel vs plain tslab, same machine, same run.

  /usr/bin/python3 bench/kernel.py [--trials 5] [--cells 30]

Each trial starts a fresh kernel through jupyter_client (what JupyterLab does) and measures
  start: from launching the process to the first kernel_info reply (Jupyter shows the kernel as idle);
  first: from launching the process to the end of the first `1 + 1` cell (the kernel has done work);
  cell:  the round trip of `1 + 1` (execute_request → idle status), median over the next --cells cells.
Kernels alternate (loralab, tslab, loralab, …) so machine noise hits both alike; medians are reported.
Needs Debian's python3-jupyter-client; kernelspecs are written to a temporary JUPYTER_PATH.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def install_kernelspecs(prefix):
    node = subprocess.run(["which", "node"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([node, os.path.join(REPO, "bin", "loralab.js"), "kernel", "install", "--prefix", prefix, "--name", "bench-loralab"], check=True, capture_output=True)
    tslab_dir = os.path.join(prefix, "share", "jupyter", "kernels", "bench-tslab")
    os.makedirs(tslab_dir, exist_ok=True)
    with open(os.path.join(tslab_dir, "kernel.json"), "w") as f:
        json.dump({"argv": [node, os.path.join(REPO, "node_modules", "tslab", "bin", "tslab"), "kernel", "--config-path", "{connection_file}"],
                   "display_name": "tslab (bench)", "language": "typescript"}, f)


def trial(name, cells):
    from jupyter_client.manager import KernelManager
    km = KernelManager(kernel_name=name)
    started = time.perf_counter()
    km.start_kernel(cwd=tempfile.mkdtemp(prefix="kernel-bench-"))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)  # sends kernel_info_request until a reply arrives
    start = time.perf_counter() - started
    times = []
    for _ in range(cells + 1):
        t0 = time.perf_counter()
        msg_id = kc.execute("1 + 1")
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        times.append(time.perf_counter() - t0)
        if len(times) == 1:
            first = time.perf_counter() - started
    kc.stop_channels()
    km.shutdown_kernel(now=True)
    return start, first, statistics.median(times[1:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    prefix = tempfile.mkdtemp(prefix="kernel-bench-specs-")
    install_kernelspecs(prefix)
    os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
    results = {k: {"start": [], "first": [], "cell": []} for k in ("loralab", "tslab")}
    for _ in range(args.trials):
        for kernel in results:
            start, first, cell = trial(f"bench-{kernel}", args.cells)
            results[kernel]["start"].append(start)
            results[kernel]["first"].append(first)
            results[kernel]["cell"].append(cell)
    summary = {k: {"start_s": statistics.median(v["start"]), "first_cell_s": statistics.median(v["first"]), "cell_ms": 1000 * statistics.median(v["cell"])}
               for k, v in results.items()}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"median of {args.trials} kernel starts and {args.trials}×{args.cells} `1 + 1` cells")
    for kernel, s in summary.items():
        print(f"  {kernel:8} start {s['start_s']:6.2f} s   first cell done {s['first_cell_s']:6.2f} s   cell round trip {s['cell_ms']:7.1f} ms")
    lo, ts = summary["loralab"], summary["tslab"]
    print(f"  loralab / tslab: start {lo['start_s'] / ts['start_s']:.2f}×, first cell {lo['first_cell_s'] / ts['first_cell_s']:.2f}×, cell {lo['cell_ms'] / ts['cell_ms']:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
