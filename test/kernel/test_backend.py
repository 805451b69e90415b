"""A tensor backend that fails inside its WebAssembly is replaced, through jupyter_client (see test/kernel.test.ts).

tfjs's wasm backend cannot recover from an abort in its WebAssembly: a tile whose result needs 4 GB (beyond
wasm's 32-bit memory) ends in "memory access out of bounds", and every later tensor op fails the same way.
The kernel must say so in the cell and start a new executor, so that the next cells work again.
The kernel runs in the repository, so that cells can import @tensorflow/tfjs.
"""

import os
import unittest

from kernel_session import KernelSession

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class BackendFailure(KernelSession):
    @classmethod
    def kernel_cwd(cls):
        return REPO

    def test_a_wasm_abort_resets_the_backend_and_the_next_cells_work(self):
        self.assertEqual(self.result('const base = await model("tiny-moby"); const pid = process.pid; (await import("@tensorflow/tfjs")).getBackend()'), "'wasm'")
        reply, outputs = self.run_cell('import * as tf from "@tensorflow/tfjs";\ntf.tile(tf.ones([1024]), [2 ** 20]).shape')
        self.assertEqual(reply["status"], "error", reply)
        self.assertEqual(reply["ename"], "TensorBackendFailed")
        self.assertIn("memory access out of bounds", reply["evalue"])
        self.assertIn("the tensor backend failed", reply["evalue"])
        self.assertIn("re-run the cells that created models", reply["evalue"])
        self.assertIn("error", [t for t, _ in outputs], "the cell shows the error")
        # A new executor with a working backend: models load and tensors compute again.
        code = 'import * as tf2 from "@tensorflow/tfjs";\nconst again = await model("tiny-moby");\n`${typeof (globalThis as any).base} ${tf2.getBackend()} ${tf2.add(1, 1).dataSync()[0]}`'
        self.assertEqual(self.result(code), "'undefined wasm 2'")

    def test_an_ordinary_error_keeps_the_executor(self):
        self.result("const kept = process.pid; 'ok'")
        reply, _ = self.run_cell("throw new RangeError('not a backend failure')")
        self.assertEqual(reply["ename"], "RangeError")
        self.assertEqual(self.result("kept === process.pid"), "true")


if __name__ == "__main__":
    unittest.main()
