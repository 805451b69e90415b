/**
 * The card's sugar: config literals in call arguments.
 *
 *   model.lora(<r:8>)                 →  model.lora({r:8})
 *   base.lora(<r:8, alpha:16>)        →  base.lora({r:8, alpha:16})
 *   f(x, <lr: 2e-4, sched: <warmup: 10>>)   (nested, as the value of a key)
 *
 * A `<` starts a config literal only where an argument starts (right after `(` or `,` of a call's argument
 * list, or after `:` inside another config literal) and only when `identifier :` follows it. So generic calls
 * (`f<T>(x)`), type assertions (`f(<T>x)`), generic arrows (`f(<T,>(x: T) => x)`) and comparisons keep
 * their meaning. The rewrite runs on TypeScript's scanner, so strings, template literals, comments and
 * regular expressions are never touched, and it swaps `<` `>` for `{` `}` one for one: every position, and so
 * every error message's line and column, stays where the user typed it.
 * Limitation: a `>` inside a value ends the literal (`<r: a > b ? 1 : 2>`): parenthesize such values.
 */
import { createRequire } from "node:module";
import type * as TS from "@tslab/typescript-for-tslab";

const require = createRequire(import.meta.url);
let tsModule: typeof TS | undefined;

type Frame = "(" | "[" | "{" | "${" | "<";

export function rewriteConfigLiterals(code: string): string {
  if (!code.includes("<")) return code;
  const ts = (tsModule ??= require("@tslab/typescript-for-tslab") as typeof TS);
  const K = ts.SyntaxKind;
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, true, ts.LanguageVariant.Standard, code);
  const stack: Frame[] = [];
  const swaps: [number, string][] = [];
  // Tokens after which an expression has ended, so that `/` divides rather than starts a regex.
  const endsExpression = new Set<TS.SyntaxKind>([
    K.Identifier,
    K.NumericLiteral,
    K.BigIntLiteral,
    K.StringLiteral,
    K.NoSubstitutionTemplateLiteral,
    K.TemplateTail,
    K.RegularExpressionLiteral,
    K.CloseParenToken,
    K.CloseBracketToken,
    K.CloseBraceToken,
    K.ThisKeyword,
    K.SuperKeyword,
    K.TrueKeyword,
    K.FalseKeyword,
    K.NullKeyword,
    K.PlusPlusToken,
    K.MinusMinusToken,
    K.ExclamationToken,
  ]);
  const isName = (k: TS.SyntaxKind) => k === K.Identifier || (k >= K.FirstKeyword && k <= K.LastKeyword);
  let prev: TS.SyntaxKind = K.Unknown;
  for (let token = scanner.scan(); token !== K.EndOfFileToken; token = scanner.scan()) {
    const top = stack[stack.length - 1];
    switch (token) {
      case K.OpenParenToken:
        stack.push("(");
        break;
      case K.OpenBracketToken:
        stack.push("[");
        break;
      case K.OpenBraceToken:
        stack.push("{");
        break;
      case K.TemplateHead:
        stack.push("${");
        break;
      case K.CloseBraceToken:
        if (top === "${") {
          token = scanner.reScanTemplateToken(false);
          if (token === K.TemplateTail) stack.pop();
        } else if (top === "{") stack.pop();
        break;
      case K.CloseParenToken:
      case K.CloseBracketToken:
        if (top === "(" || top === "[") stack.pop();
        break;
      case K.SlashToken:
      case K.SlashEqualsToken:
        if (!endsExpression.has(prev)) token = scanner.reScanSlashToken();
        break;
      case K.LessThanToken: {
        const argumentStart =
          (top === "(" && (prev === K.OpenParenToken || prev === K.CommaToken)) || (top === "<" && prev === K.ColonToken);
        if (argumentStart && scanner.lookAhead(() => isName(scanner.scan()) && scanner.scan() === K.ColonToken)) {
          swaps.push([scanner.getTokenPos(), "{"]);
          stack.push("<");
        }
        break;
      }
      case K.GreaterThanToken:
        if (top === "<") {
          swaps.push([scanner.getTokenPos(), "}"]);
          stack.pop();
        }
        break;
    }
    prev = token;
  }
  if (swaps.length === 0) return code;
  const chars = code.split("");
  for (const [at, c] of swaps) chars[at] = c;
  return chars.join("");
}
