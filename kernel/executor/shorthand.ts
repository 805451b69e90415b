/**
 * Earlier cells' variables in shorthand properties. tslab rewrites a reference to a variable of an earlier cell
 * into `exports.name`, finding such references by the symbol the checker gives each identifier; for `{ lr }` the
 * checker gives the property's symbol, not the variable's, so the reference stayed a bare `lr` and failed with
 * "lr is not defined". These two hooks into the TypeScript tslab's converter sees turn such a property into
 * `lr: exports.lr`, deciding with the checker's value symbol of the shorthand (so a local `lr` is left alone).
 */
import type * as TS from "@tslab/typescript-for-tslab";

/** tslab's file of earlier cells' declarations. */
const EARLIER_CELLS = "__prev__.d.ts";

type Builder = { getProgram(): TS.Program };
type Host = { afterProgramCreate?: (builder: Builder) => void };

export function shorthandHooks(ts: typeof TS): Partial<Record<"createWatchProgram" | "visitEachChild", unknown>> {
  let builder: Builder | undefined;

  /** The converter's current program: tslab's watch host hears of each new one. */
  const createWatchProgram = (host: Host, ...rest: unknown[]) => {
    const after = host.afterProgramCreate;
    host.afterProgramCreate = (b) => {
      builder = b;
      after?.(b);
    };
    return (ts.createWatchProgram as (...a: unknown[]) => unknown)(host, ...rest);
  };

  const fromEarlierCell = (node: TS.ShorthandPropertyAssignment): boolean => {
    const original = ts.getParseTreeNode(node, ts.isShorthandPropertyAssignment);
    if (!original || !builder || original.objectAssignmentInitializer) return false;
    const symbol = builder.getProgram().getTypeChecker().getShorthandAssignmentValueSymbol(original);
    return (symbol?.declarations ?? []).some((d) => d.getSourceFile().fileName.endsWith(EARLIER_CELLS));
  };

  const visitEachChild = (node: TS.Node, visitor: TS.Visitor, context: TS.TransformationContext, ...rest: unknown[]) => {
    if (ts.isShorthandPropertyAssignment(node) && fromEarlierCell(node)) {
      const f = ts.factory;
      return f.createPropertyAssignment(node.name.text, f.createPropertyAccessExpression(f.createIdentifier("exports"), node.name.text));
    }
    return (ts.visitEachChild as (...a: unknown[]) => TS.Node)(node, visitor, context, ...rest);
  };

  return { createWatchProgram, visitEachChild };
}
