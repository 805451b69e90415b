"""Interrupts, heartbeats and control during busy cells, through jupyter_client (see test/kernel.test.ts).

Every interrupt must end the running cell with an "Interrupted" error within 5 s, keep the kernel alive and
keep the variables of earlier cells. LORALAB_STORIES (a checkpoint folder) adds a real LoRA training run.
"""

import os
import signal
import time
import unittest

import zmq
from kernel_session import KernelSession

DSL = os.environ.get("LORALAB_DSL")  # absolute path of dist/dsl/index.js
STORIES = os.environ.get("LORALAB_STORIES")
LIMIT = 5.0


class Interrupts(KernelSession):
    def interrupted(self, code, interrupt, wait=1.0, limit=LIMIT, ename="Interrupted"):
        """Starts code, interrupts it after `wait` s; returns (seconds from interrupt to reply, reply)."""
        msg_id = self.kc.execute(code)
        time.sleep(wait)
        started = time.monotonic()
        interrupt()
        reply, outputs = self.collect(msg_id, timeout=30)
        took = time.monotonic() - started
        self.assertEqual(reply["status"], "error", reply)
        self.assertEqual(reply["ename"], ename, reply)
        self.assertLess(took, limit, f"the interrupt took {took:.2f} s")
        self.assertIn("error", [t for t, _ in outputs])
        return took, reply

    def by_message(self):
        self.km.interrupt_kernel()  # the kernelspec's interrupt_mode is "message"

    def by_signal(self):
        self.km.signal_kernel(signal.SIGINT)  # SIGINT to the kernel's process group

    def setUp(self):
        self.result("let counter = 0; const kept = 'kept'; const steps: number[] = []; 'ready'")

    def test_synchronous_infinite_loop_by_message(self):
        self.interrupted("while (true) { counter++; }", self.by_message)
        self.assertEqual(self.result("`${kept} ${counter > 0}`"), "'kept true'")

    def test_synchronous_loop_after_await_by_signal(self):
        self.interrupted("await new Promise((r) => setTimeout(r, 10)); while (true) { counter++; }", self.by_signal)
        self.assertEqual(self.result("`${kept} ${counter > 0}`"), "'kept true'")

    def test_pending_promise(self):
        self.interrupted("await new Promise(() => {})", self.by_message)
        self.assertEqual(self.result("kept"), "'kept'")

    def test_cooperative_loop_stops_at_a_step_boundary(self):
        code = (
            "for (let step = 0; ; step++) {\n"
            "  const until = Date.now() + 20; while (Date.now() < until) {}\n"
            "  steps.push(step);\n"
            "  kernel.throwIfInterrupted();\n"
            "  await new Promise((r) => setImmediate(r));\n"
            "}"
        )
        took, reply = self.interrupted(code, self.by_message, limit=1.0)
        # The loop stopped between steps: the last recorded step is complete and the list is contiguous.
        self.assertEqual(self.result("steps.length > 5 && steps.every((s, i) => s === i)"), "true")

    def test_abort_signal_of_the_cell(self):
        code = "await new Promise((resolve, reject) => kernel.signal.addEventListener('abort', () => reject(kernel.signal.reason)))"
        took, _ = self.interrupted(code, self.by_message, limit=1.0)

    def test_interrupt_when_idle_is_harmless(self):
        self.by_message()
        self.by_signal()
        time.sleep(0.5)
        self.assertEqual(self.result("kept"), "'kept'")

    def test_heartbeat_and_control_answer_during_a_busy_cell(self):
        msg_id = self.kc.execute("while (true) { counter++; }")
        time.sleep(1.0)
        ctx = zmq.Context.instance()
        hb = ctx.socket(zmq.REQ)
        hb.linger = 0
        hb.connect(f"{self.km.transport}://{self.km.ip}:{self.km.hb_port}")
        for _ in range(3):
            hb.send(b"ping")
            self.assertTrue(hb.poll(1000), "no heartbeat while a cell is busy")
            self.assertEqual(hb.recv(), b"ping")
        hb.close()
        request = self.kc.session.msg("kernel_info_request")
        self.kc.control_channel.send(request)
        reply = self.kc.get_control_msg(timeout=2)
        self.assertEqual(reply["msg_type"], "kernel_info_reply")
        self.assertEqual(reply["content"]["status"], "ok")
        self.by_message()
        reply, _ = self.collect(msg_id, timeout=30)
        self.assertEqual(reply["ename"], "Interrupted")

    @unittest.skipUnless(DSL and STORIES, "LORALAB_DSL and LORALAB_STORIES name the DSL and a checkpoint")
    def test_training_run_is_interrupted_and_the_next_cell_reads_it(self):
        self.result(f'import {{ model, lastRun }} from "{DSL}"; const base = await model("{STORIES}"); "loaded"')
        rows = "[" + ", ".join(f'{{ text: "Once upon a time there was a cat number {i}." }}' for i in range(12)) + "]"
        code = f"const run = await base.lora({{ r: 2 }}).train({rows}, {{ maxSteps: 100000, batchSize: 2, runsDir: false, signal: kernel.signal }})"
        # The DSL's own error: the run stopped between two steps and keeps its history.
        took, reply = self.interrupted(code, self.by_message, wait=3.0, ename="TrainingInterrupted")
        self.assertIn("lastRun()", reply["evalue"])
        self.assertEqual(self.result("lastRun()!.step > 0 && lastRun()!.history.length === lastRun()!.step"), "true")


if __name__ == "__main__":
    unittest.main()
