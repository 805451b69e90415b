"""jupyter_kernel_test's protocol checks against the loralab kernel, with a sample for every check.

Run by test/kernel.test.ts, which installs the kernelspec into a temporary prefix and points JUPYTER_PATH
at it; by hand:

    node bin/loralab.js kernel install --prefix /tmp/k
    cd test/kernel && JUPYTER_PATH=/tmp/k/share/jupyter /usr/bin/python3 -m unittest -v test_loralab_kernel
"""

import os
import unittest

import jupyter_kernel_test as jkt


class LoralabKernelTests(jkt.KernelTests):
    kernel_name = os.environ.get("LORALAB_KERNEL_NAME", "loralab")

    # test_kernel_info
    language_name = "typescript"
    file_extension = ".ts"

    # test_execute_stdout / test_execute_stderr
    code_hello_world = 'console.log("hello, world")'
    code_stderr = 'console.error("something went wrong")'

    # test_completion: the TypeScript language service, also on members and on earlier cells' names
    completion_samples = [
        {"text": "Math.ma", "matches": {"max"}},
        {"text": "JSON.str", "matches": {"stringify"}},
        {"text": "Object.ke", "matches": {"keys"}},
        {"text": "const greeting = 'hi'; greeting.toUpperC", "matches": {"toUpperCase"}},
    ]

    # test_is_complete
    complete_code_samples = [
        "1 + 2",
        "const x = 1;",
        "function f(a: number): number { return a * 2; }",
        "for (let i = 0; i < 3; i++) {\n  console.log(i);\n}",
        "await Promise.resolve(1)",
        "const r = `multi\nline`;",
    ]
    incomplete_code_samples = [
        "function f() {",
        "const xs = [1, 2,",
        "if (ok) {\n  run();",
        "const s = `template ${",
        "const t = `an open template",
        "/* a comment",
        "x.",
    ]
    invalid_code_samples = [
        "const = 5;",
        "1 +* 2",
        "}",
        "let s = 'unterminated",
    ]

    # test_pager: `expr?` pages the documentation of expr, as IPython does
    code_page_something = "Math.max?"

    # test_error: exactly one output message, the error
    code_generate_error = 'throw new Error("boom")'

    # test_execute_result (and test_history, which executes these and searches them)
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": '"lo" + "ra"', "result": "'lora'"},
        {"code": "[1, 2, 3].map((x) => x * 2)", "result": "[ 2, 4, 6 ]"},
        {
            "code": '({ [Symbol.for("Jupyter.display")]() { return { "text/html": "<b>rich</b>" }; } })',
            "mime": "text/html",
            "result": "<b>rich</b>",
        },
    ]

    # test_display_data
    code_display_data = [
        {"code": 'display.html("<b>bold</b>")', "mime": "text/html"},
        {"code": 'display.markdown("# title")', "mime": "text/markdown"},
        {"code": 'display.svg("<svg xmlns=\'http://www.w3.org/2000/svg\'/>")', "mime": "image/svg+xml"},
        {"code": "display.png(new Uint8Array([137, 80, 78, 71]))", "mime": "image/png"},
        {"code": 'display.vegalite({ mark: "point", data: { values: [] } })', "mime": "application/vnd.vegalite.v5+json"},
        {"code": 'display({ [Symbol.for("Jupyter.display")]: () => ({ "text/html": "<i>x</i>" }) })', "mime": "text/html"},
        {"code": "display({ a: 1 })", "mime": "text/plain"},
    ]

    # test_history
    code_history_pattern = "6 ?*"
    supported_history_operations = ("tail", "range", "search")

    # test_inspect
    code_inspect_sample = "Math.max"

    # test_clear_output
    code_clear_output = "clearOutput()"


if __name__ == "__main__":
    unittest.main()
