"""What cells can do in the loralab kernel, through jupyter_client (see test/kernel.test.ts).

The kernel runs in a temporary folder holding node_modules/esm-tla, an ES module with top-level await and
types only in package.json "exports" (what require() and tslab's resolver cannot load by themselves).
"""

import json
import os
import tempfile
import unittest

from kernel_session import KernelSession


def esm_fixture():
    root = tempfile.mkdtemp(prefix="loralab-cells-")
    pkg = os.path.join(root, "node_modules", "esm-tla")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "package.json"), "w") as f:
        json.dump({"name": "esm-tla", "type": "module", "exports": {".": {"types": "./index.d.ts", "default": "./index.js"}}}, f)
    with open(os.path.join(pkg, "index.js"), "w") as f:
        f.write("await Promise.resolve();\nexport const answer = 42;\nexport default 'dflt';\n")
    with open(os.path.join(pkg, "index.d.ts"), "w") as f:
        f.write("export declare const answer: number;\ndeclare const d: string;\nexport default d;\n")
    return root


class Cells(KernelSession):
    @classmethod
    def kernel_cwd(cls):
        return esm_fixture()

    def error(self, code):
        reply, outputs = self.run_cell(code)
        self.assertEqual(reply["status"], "error", (reply, outputs))
        return reply

    def test_loralab_import_and_globals(self):
        self.assertEqual(self.result('import { model as m, sweep as s } from "loralab"; [typeof m, typeof s].join()'), "'function,function'")
        self.assertEqual(self.result("[typeof model, typeof dataset, typeof sweep, typeof lastRun].join()"), "'function,function,function,function'")
        self.assertEqual(self.result("model === (await import('loralab')).model"), "true")

    def test_esm_with_top_level_await_and_exports_only_types(self):
        self.assertEqual(self.result('import dflt, { answer } from "esm-tla"; const n: number = answer; [dflt, n]'), "[ 'dflt', 42 ]")

    def test_top_level_await_and_state_across_cells(self):
        self.result("const later = await new Promise<number>((r) => setTimeout(() => r(7), 20)); later")
        self.assertEqual(self.result("later * 6"), "42")

    def test_config_literal_sugar(self):
        self.result("function lora(c: { r: number; alpha?: number }) { return c; } 'ok'")
        self.assertEqual(self.result("lora(<r:8, alpha:16>)"), "{ r: 8, alpha: 16 }")
        self.assertEqual(self.result("const text = 'lora(<r:8>)'; text"), "'lora(<r:8>)'")
        reply = self.error('lora(<r:"8">)')
        self.assertIn("1:7", reply["evalue"], "the error points at r, where the user typed it")

    def test_updatable_display_and_tslab_display(self):
        reply, outputs = self.run_cell("const h = display('first'); h.update('second'); 'x'")
        kinds = [t for t, _ in outputs]
        self.assertEqual(kinds, ["display_data", "update_display_data", "execute_result"], outputs)
        self.assertEqual(outputs[0][1]["transient"]["display_id"], outputs[1][1]["transient"]["display_id"])
        self.assertEqual(outputs[1][1]["data"]["text/plain"], "'second'")
        reply, outputs = self.run_cell('import * as tslab from "tslab"; tslab.display.html("<p>tslab</p>")')
        self.assertEqual(outputs[0][1]["data"]["text/html"], "<p>tslab</p>")

    def test_async_mimebundle_and_json(self):
        reply, outputs = self.run_cell('({ [Symbol.for("Jupyter.display")]: async () => ({ "application/json": { a: 1 } }) })')
        self.assertEqual(outputs[0][0], "execute_result")
        self.assertEqual(outputs[0][1]["data"]["application/json"], {"a": 1})

    def test_user_error_without_stack(self):
        reply = self.error('import { UserError } from "loralab"; throw new UserError("data.jsonl:3: bad row")')
        self.assertEqual(reply["ename"], "UserError")
        self.assertEqual(len(reply["traceback"]), 1)

    def test_silent_cells_publish_nothing(self):
        reply, outputs = self.run_cell("console.log('quiet'); 1", silent=True)
        self.assertEqual(reply["status"], "ok")
        self.assertEqual(outputs, [])

    def test_stop_on_error_aborts_queued_cells(self):
        first = self.kc.execute("throw new Error('first fails')")
        second = self.kc.execute("console.log('must not run')")
        reply, _ = self.collect(first)
        self.assertEqual(reply["status"], "error")
        reply, outputs = self.collect(second)
        self.assertEqual(reply["status"], "aborted")
        self.assertEqual(outputs, [])

    def test_completion_sees_earlier_cells(self):
        self.result("const learningRate = 2e-4; 'ok'")
        msg_id = self.kc.complete("learningR")
        reply = self.kc.get_shell_msg(timeout=30)
        self.assertEqual(reply["content"]["matches"], ["learningRate"])
        self.assertEqual((reply["content"]["cursor_start"], reply["content"]["cursor_end"]), (0, 9))

    def test_input_through_stdin(self):
        msg_id = self.kc.execute("const answer = await input('Your name? '); `hi ${answer}`", allow_stdin=True)
        request = self.kc.get_stdin_msg(timeout=60)
        self.assertEqual(request["msg_type"], "input_request")
        self.assertEqual(request["content"], {"prompt": "Your name? ", "password": False})
        self.kc.input("Ada")
        reply, outputs = self.collect(msg_id)
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual([c["data"]["text/plain"] for t, c in outputs if t == "execute_result"], ["'hi Ada'"])

    def test_user_expressions(self):
        reply, _ = self.run_cell("const width = 6;", user_expressions={"area": "width * 7", "broken": "width("})
        self.assertEqual(reply["status"], "ok", reply)
        self.assertEqual(reply["user_expressions"]["area"], {"status": "ok", "data": {"text/plain": "42"}, "metadata": {}})
        self.assertEqual(reply["user_expressions"]["broken"]["status"], "error")

    def test_runtime_error_points_at_the_cell_line(self):
        reply = self.error("const three = () => {\n  // the next line throws\n  throw new TypeError('at line three');\n};\nthree();")
        count = reply["execution_count"]
        traceback = "\n".join(reply["traceback"])
        self.assertIn(f"at three (Cell In[{count}], line 3:", traceback)
        self.assertIn(f"Cell In[{count}], line 5:", traceback)

    def test_executor_that_exits_is_replaced(self):
        reply = self.error("process.exit(3)")
        self.assertEqual(reply["ename"], "ExecutorDied")
        self.assertIn("lost", reply["evalue"])
        self.assertEqual(self.result("1 + 1"), "2")


if __name__ == "__main__":
    unittest.main()
