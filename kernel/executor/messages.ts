/**
 * What the protocol process and the executor process say to each other over the child's IPC channel.
 * Positions are UTF-16 offsets here (JavaScript's); the protocol process converts Jupyter's code points.
 */
import type { MimeBundle } from "../../src/runtime/display.js";

export interface ErrorInfo {
  ename: string;
  evalue: string;
  traceback: string[];
}

/** One entry of an execute_reply's user_expressions. */
export type ExpressionResult = { status: "ok"; data: MimeBundle; metadata: Record<string, unknown> } | ({ status: "error" } & ErrorInfo);

export type ToExecutor =
  | { type: "execute"; id: number; code: string; executionCount: number }
  | { type: "complete"; id: number; code: string; pos: number }
  | { type: "inspect"; id: number; code: string; pos: number; detail: number }
  | { type: "evaluate"; id: number; expressions: Record<string, string>; executionCount: number }
  | { type: "input_reply"; id: number; value?: string; error?: string }
  | { type: "shutdown" };

export type FromExecutor =
  | { type: "ready"; typescript: string; tslab: string }
  | { type: "stream"; cell: number; name: "stdout" | "stderr"; text: string }
  | {
      type: "display";
      cell: number;
      update: boolean;
      content: { data: MimeBundle; metadata: Record<string, unknown>; transient: { display_id?: string } };
    }
  | { type: "clear_output"; cell: number; wait: boolean }
  | { type: "execute_result"; cell: number; data: MimeBundle; metadata: Record<string, unknown> }
  /** backendFailed: the tensor backend is unusable (a wasm abort); only a new executor process recovers. */
  | { type: "executed"; id: number; error?: ErrorInfo; interrupted?: boolean; backendFailed?: boolean }
  | { type: "evaluated"; id: number; results: Record<string, ExpressionResult> }
  | { type: "input_request"; cell: number; id: number; prompt: string; password: boolean }
  | { type: "completed"; id: number; start: number; end: number; matches: string[] }
  | { type: "inspected"; id: number; found: boolean; text: string }
  | { type: "log"; text: string };

/**
 * Int32 slots shared between the executor's main thread and its watchdog thread.
 * STATE packs the running cell's id with what the main thread is doing, so that one compare-and-swap tells
 * "still running cell N" apart from "cell N finished and cell N+1 started".
 */
export const SLOT = {
  STATE: 0,
  /** The id of the cell an interrupt was asked for (0: none). */
  INTERRUPT: 1,
  /** Incremented by the main thread each time it answers the watchdog's ping. */
  PONG: 2,
  /** The id of the last cell whose termination the main thread has handled. */
  TERMINATED: 3,
} as const;
export const SLOTS = 4;

export const PHASE = { IDLE: 0, RUNNING: 1, TERMINATING: 2 } as const;
export const packState = (cell: number, phase: number): number => cell * 4 + phase;
export const stateCell = (state: number): number => Math.floor(state / 4);
export const statePhase = (state: number): number => state % 4;

/** File descriptor of the pipe on which the protocol process writes one byte per interrupt. */
export const INTERRUPT_FD = 4;
