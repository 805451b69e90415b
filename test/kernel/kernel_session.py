"""A kernel started once per test class, and helpers that run a cell and gather its iopub output."""

import os
import unittest

from jupyter_client.manager import start_new_kernel

KERNEL = os.environ.get("LORALAB_KERNEL_NAME", "loralab")


class KernelSession(unittest.TestCase):
    """Subclasses may set `kernel_cwd()` to start the kernel in another folder."""

    @classmethod
    def kernel_cwd(cls):
        return None

    @classmethod
    def setUpClass(cls):
        cls.km, cls.kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=60, cwd=cls.kernel_cwd())

    @classmethod
    def tearDownClass(cls):
        cls.kc.stop_channels()
        cls.km.shutdown_kernel(now=False)

    def run_cell(self, code, timeout=60, **kwargs):
        """Executes code; returns (reply content, [(msg_type, content)] of its iopub output)."""
        msg_id = self.kc.execute(code, **kwargs)
        return self.collect(msg_id, timeout)

    def collect(self, msg_id, timeout=60):
        reply = self.kc.get_shell_msg(timeout=timeout)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=timeout)
        outputs = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
            if msg["msg_type"] not in ("status", "execute_input"):
                outputs.append((msg["msg_type"], msg["content"]))
        return reply["content"], outputs

    def result(self, code):
        """The text/plain of the cell's one execute_result (the cell must succeed)."""
        reply, outputs = self.run_cell(code)
        self.assertEqual(reply["status"], "ok", (reply, outputs))
        results = [c["data"]["text/plain"] for t, c in outputs if t == "execute_result"]
        self.assertEqual(len(results), 1, outputs)
        return results[0]
