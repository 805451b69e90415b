/**
 * The parts of tfjs-backend-wasm's backend object our kernels use: its heap, the ids its C++ kernels
 * address tensors by, and its exported C++ functions. A C++ kernel reads a tensor through an id
 * registered with (offset, size), so any stretch of the heap can be given an id and handed to a kernel
 * without copying it: a view.
 */
import type * as tf from "@tensorflow/tfjs";

type DataId = object;

export interface WasmModule {
  cwrap(name: string, returnType: null, argTypes: string[]): (...args: unknown[]) => void;
  _malloc(bytes: number): number;
  _free(offset: number): void;
  HEAPU8: Uint8Array;
  tfjs: {
    registerTensor(id: number, size: number, offset: number): void;
    /** Forgets the id and runs its disposal callbacks (which delete XNNPACK operators cached on it). */
    disposeData(id: number): void;
  };
}

export interface WasmBackend {
  wasm: WasmModule;
  dataIdMap: { get(dataId: DataId): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array): tf.TensorInfo;
  incRef(dataId: DataId): void;
  disposeData(dataId: DataId, force?: boolean): boolean;
  readSync(dataId: DataId): ArrayLike<number>;
}

/** A stretch of float32s on the heap with an id the C++ kernels accept: a tfjs tensor's, a view, or memory we allocated. */
export interface HeapTensor {
  id: number;
  offset: number;
  kind: "tfjs" | "view" | "owned";
}

export class Heap {
  constructor(readonly backend: WasmBackend) {}

  /** The heap tensor behind a tfjs tensor. */
  of(t: tf.TensorInfo): HeapTensor {
    const data = this.backend.dataIdMap.get(t.dataId)!;
    return { id: data.id, offset: data.memoryOffset, kind: "tfjs" };
  }

  /** A new id for `size` floats at `offset` of existing memory (no copy). Release it with `release`. */
  view(offset: number, size: number): HeapTensor {
    const id = this.backend.dataIdNextNumber++;
    this.backend.wasm.tfjs.registerTensor(id, size, offset);
    return { id, offset, kind: "view" };
  }

  /** Fresh memory for `size` floats, with an id. */
  alloc(size: number): HeapTensor {
    const offset = this.backend.wasm._malloc(size * 4) >>> 0;
    return { ...this.view(offset, size), kind: "owned" };
  }

  /** Forgets a view's id, and frees the memory if it was ours. Tensors of tfjs are left alone. */
  release(t: HeapTensor): void {
    if (t.kind === "tfjs") return;
    this.backend.wasm.tfjs.disposeData(t.id);
    if (t.kind === "owned") this.backend.wasm._free(t.offset);
  }

  floats(offset: number, size: number): Float32Array {
    return new Float32Array(this.backend.wasm.HEAPU8.buffer, offset, size);
  }
}

/** `shape` as the byte array the exported C++ kernels take. */
export function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}
