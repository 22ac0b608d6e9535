/**
 * The declarations of shared/contract.ts as the SDK package ships them: the request types, which
 * the contract derives from zod schemas (`ClientRequests`), written out as plain object types, and
 * the contract's values (the schemas, server-side) left out. Bundled as they are, the declarations
 * would bring zod's own (some 100 KB, inlined) or an import of zod that an application does not
 * have. scripts/pack-sdk.ts builds the SDK against this file instead of contract.ts.
 */
import { resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(import.meta.dirname, '..');
/** The contract's types derived from zod: each is written out member by member. */
const DERIVED = new Set(['ClientRequests']);

export function contractDeclarations(root = ROOT): string {
  const file = resolve(root, 'shared/contract.ts');
  const parsed = ts.getParsedCommandLineOfConfigFile(
    resolve(root, 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
  );
  if (!parsed) throw new Error('cannot read tsconfig.json');
  const options = { ...parsed.options, noEmit: false, declaration: true, emitDeclarationOnly: true };
  const program = ts.createProgram([file], options);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(file);
  if (!source) throw new Error(`${file} is not in the program`);
  const errors = ts.getPreEmitDiagnostics(program, source);
  if (errors.length > 0)
    throw new Error(ts.formatDiagnostics(errors, { ...ts.sys, getCanonicalFileName: (f) => f, getNewLine: () => '\n' }));

  // The written-out text of each derived alias, read from the checker on the source.
  const expanded = new Map<string, string>();
  for (const statement of source.statements) {
    if (ts.isTypeAliasDeclaration(statement) && DERIVED.has(statement.name.text)) {
      expanded.set(statement.name.text, printObject(checker, checker.getTypeAtLocation(statement.name), statement, ''));
    }
  }
  for (const name of DERIVED) if (!expanded.has(name)) throw new Error(`shared/contract.ts no longer declares ${name}`);

  let out = '';
  program.emit(
    source,
    (_name, text) => {
      out = text;
    },
    undefined,
    true,
    { afterDeclarations: [() => (sf) => strip(sf as ts.SourceFile, expanded) as never] },
  );
  out = out.replace(/__EXPANDED_(\w+)__/g, (found, name: string) => expanded.get(name) ?? found);
  // A zod type still in use (`z.output<…>`), or the import of zod or of the schemas.
  if (/from ['"]zod['"]|schemas\.js|\bz\.\w+</.test(out))
    throw new Error(`the SDK's contract declarations still name zod or the schemas:\n${out}`);
  return out;
}

/** Drops the contract's values and their imports, and puts a placeholder where each derived type goes. */
function strip(sf: ts.SourceFile, expanded: Map<string, string>): ts.SourceFile {
  const f = ts.factory;
  const kept = sf.statements.flatMap((s): ts.Statement[] => {
    if (ts.isImportDeclaration(s) && ts.isStringLiteral(s.moduleSpecifier) && /^(zod|\.\/schemas\.js)$/.test(s.moduleSpecifier.text))
      return [];
    if (ts.isVariableStatement(s)) return [];
    if (ts.isTypeAliasDeclaration(s) && expanded.has(s.name.text)) {
      const placeholder = f.createTypeReferenceNode(`__EXPANDED_${s.name.text}__`);
      return [f.updateTypeAliasDeclaration(s, s.modifiers, s.name, s.typeParameters, placeholder)];
    }
    return [s];
  });
  return f.updateSourceFile(sf, kept);
}

/** An object type as TypeScript source, member by member, with each member's doc comment; nested object types likewise. */
function printObject(checker: ts.TypeChecker, type: ts.Type, at: ts.Node, indent: string): string {
  const inner = `${indent}  `;
  const members = checker.getPropertiesOfType(type).map((member) => {
    const doc = ts.displayPartsToString(member.getDocumentationComment(checker));
    const optional = (member.flags & ts.SymbolFlags.Optional) !== 0;
    const memberType = checker.getTypeOfSymbolAtLocation(member, at);
    const text = isPlainObject(checker, memberType)
      ? printObject(checker, memberType, at, inner)
      : checker.typeToString(memberType, at, ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType);
    const key = /^[A-Za-z_$][\w$]*$/.test(member.name) ? member.name : `'${member.name}'`;
    return `${doc ? `${inner}/** ${doc.replace(/\n/g, ' ')} */\n` : ''}${inner}${key}${optional ? '?' : ''}: ${text};`;
  });
  return `{\n${members.join('\n')}\n${indent}}`;
}

/** An object type made of named members only (no call or index signature, not an array): what zod's object outputs are. */
function isPlainObject(checker: ts.TypeChecker, type: ts.Type): boolean {
  return (
    (type.flags & ts.TypeFlags.Object) !== 0 &&
    !checker.isArrayType(type) &&
    type.getCallSignatures().length === 0 &&
    checker.getIndexInfosOfType(type).length === 0 &&
    checker.getPropertiesOfType(type).length > 0
  );
}
