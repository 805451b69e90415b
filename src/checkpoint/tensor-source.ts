/**
 * Tensors read one at a time: a source holds only the headers, and each `read` decodes one tensor from disk, so a
 * checkpoint larger than memory as float32 (or larger than one Node buffer) can be loaded tensor by tensor, and a
 * loader can check every name, dtype and shape before it allocates anything.
 */
import * as fs from "node:fs";
import { inputError } from "../core/errors.js";
import { decodeChecked, parseSafetensors, type DecodedTensor, type DType, type TensorInfo } from "./safetensors.js";

export interface TensorHeader {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface TensorSource {
  names(): string[];
  header(name: string): TensorHeader | undefined;
  /** The tensor decoded to float32 (a fresh array); a float tensor holding NaN or ±Inf is an error naming it. */
  read(name: string): DecodedTensor;
  /** Releases open files; the source is unusable afterwards. */
  close(): void;
}

/** Reads exactly `length` bytes at `position` (readSync may return fewer, e.g. above 2 GiB). */
function readAt(fd: number, length: number, position: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let done = 0; done < length;) {
    const n = fs.readSync(fd, out, done, length - done, position + done);
    if (n === 0) throw new Error(`unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return out;
}

function openFile(path: string): number {
  try {
    const fd = fs.openSync(path, "r");
    if (fs.fstatSync(fd).isDirectory()) {
      fs.closeSync(fd);
      throw inputError(path, "is a directory; expected a .safetensors file");
    }
    return fd;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw inputError(path, "file does not exist; expected a .safetensors file");
    if (code === "EISDIR") throw inputError(path, "is a directory; expected a .safetensors file");
    throw e;
  }
}

/** One .safetensors file, its header parsed and validated when opened, its tensors read from disk on demand. */
export class SafetensorsFileSource implements TensorSource {
  private constructor(
    readonly path: string,
    private fd: number | undefined,
    private readonly tensors: Map<string, TensorInfo>,
  ) {}

  static open(path: string): SafetensorsFileSource {
    const fd = openFile(path);
    try {
      const size = fs.fstatSync(fd).size;
      const prefix = readAt(fd, Math.min(8, size), 0);
      // Read the header only when its length is plausible; otherwise the parser reports what is wrong from the prefix.
      const headerLen = size >= 8 ? Number(new DataView(prefix.buffer).getBigUint64(0, true)) : Infinity;
      const head = headerLen <= size - 8 && headerLen <= 100_000_000 ? readAt(fd, 8 + headerLen, 0) : prefix;
      return new SafetensorsFileSource(path, fd, parseSafetensors(head, path, size).tensors);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  header(name: string): TensorHeader | undefined {
    return this.tensors.get(name);
  }

  read(name: string): DecodedTensor {
    const info = this.tensors.get(name);
    if (!info) throw new Error(`${this.path}: no tensor "${name}"`);
    if (this.fd === undefined) throw new Error(`${this.path}: read after close`);
    const bytes = readAt(this.fd, info.end - info.begin, info.begin);
    return decodeChecked(this.path, name, bytes, { ...info, begin: 0, end: bytes.length });
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Tensors already in memory (e.g. a trainer checkpoint) as a source. */
export function mapSource(tensors: ReadonlyMap<string, DecodedTensor>): TensorSource {
  return {
    names: () => [...tensors.keys()],
    header: (name) => tensors.get(name),
    read: (name) => tensors.get(name)!,
    close: () => {},
  };
}
