/**
 * The cell globals as the type checker sees them (tslab checks cells as TypeScript): display (display.ts),
 * clearOutput, input and kernel (executor/). The DSL's own globals are declared apart (executor/dsl-globals.ts).
 */
/** Type declarations of the cell globals, given to tslab's type checker (it sees cells as TypeScript). */
export const CELL_GLOBALS_DTS = `
declare global {
  interface LoralabDisplayOptions {
    /** Reuse (update) the output with this id; new outputs get a fresh id. */
    displayId?: string;
    metadata?: Record<string, unknown>;
  }
  interface LoralabDisplayHandle {
    readonly displayId: string;
    /** Replaces the output shown by this handle (update_display_data). */
    update(value: unknown): LoralabDisplayHandle;
  }
  /**
   * Shows a value in the output area: objects with [Symbol.for("Jupyter.display")]() by their mimebundle,
   * anything else as text. Returns a handle whose update() replaces the output in place.
   */
  function display(value: unknown, options?: LoralabDisplayOptions): LoralabDisplayHandle;
  namespace display {
    function html(html: string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function markdown(markdown: string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function svg(svg: string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function png(data: Uint8Array | string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function jpeg(data: Uint8Array | string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function json(value: unknown, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    /** A Vega-Lite spec (rendered by JupyterLab's built-in Vega renderer). */
    function vegalite(spec: object, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function latex(latex: string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function text(text: string, options?: LoralabDisplayOptions): LoralabDisplayHandle;
    function mimebundle(bundle: Record<string, unknown>, options?: LoralabDisplayOptions): LoralabDisplayHandle;
  }
  /** Clears this cell's output (with wait, when the next output arrives). */
  function clearOutput(wait?: boolean): void;
  /**
   * Asks the user for one line of text (the frontend shows an input box; password hides what is typed).
   * Fails when the frontend does not accept input (nbconvert, for one).
   */
  function input(prompt?: string, options?: { password?: boolean }): Promise<string>;
  /** The kernel's handle for cooperative code: interrupt checks and the running cell's AbortSignal. */
  var kernel: {
    /** Aborted when the running cell is interrupted. */
    readonly signal: AbortSignal;
    /** True once the running cell was asked to stop. */
    interruptRequested(): boolean;
    /** Throws an "Interrupted" error if the running cell was asked to stop. */
    throwIfInterrupted(): void;
  };
}
`;
