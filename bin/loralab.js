#!/usr/bin/env node
import { main } from "../dist/src/cli/main.js";

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    // An internal error (a bug, not bad input): report it here, because tfjs-wasm's own handler for
    // unhandled rejections would print its whole minified source instead.
    console.error(`loralab: internal error: ${error?.stack ?? error}`);
    process.exitCode = 1;
  },
);
