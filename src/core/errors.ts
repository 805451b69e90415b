import { ERROR_KIND, type ErrorKind } from "../runtime/kernel.js";

/**
 * A problem with the user's input (a file, a field, a flag) rather than a bug in loralab.
 * The CLI prints its message as one line and exits with code 2; the kernel shows it without a stack.
 */
export class UserError extends Error {
  override name = "UserError";
  readonly [ERROR_KIND]: ErrorKind = "user";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** `file:field: what is wrong` — the shape every input error takes. */
export function inputError(file: string, what: string): UserError {
  return new UserError(`${file}: ${what}`);
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
