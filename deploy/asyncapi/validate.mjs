// Parse AsyncAPI documents with @asyncapi/parser; print the errors (and a count of lesser diagnostics);
// exit 1 when any document has an error. Usage: node validate.mjs FILE... (--all: print every diagnostic)
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Parser, DiagnosticSeverity } from '@asyncapi/parser';

const args = process.argv.slice(2);
const all = args.includes('--all');
const files = args.filter((a) => a !== '--all');
if (files.length === 0) {
  console.error('usage: node validate.mjs [--all] FILE...');
  process.exit(2);
}
const parser = new Parser();
const names = Object.fromEntries(Object.entries(DiagnosticSeverity).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k.toLowerCase()]));
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await parser.parse(await readFile(file, 'utf8'), { source: resolve(file) });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of all ? diagnostics : errors) {
    const line = d.range ? `:${d.range.start.line + 1}` : '';
    console.log(`${file}${line} ${names[d.severity]} ${d.code} at /${d.path.join('/')}: ${d.message}`);
  }
  const counts = Object.values(DiagnosticSeverity).filter((s) => typeof s === 'number').map((s) => `${diagnostics.filter((d) => d.severity === s).length} ${names[s]}`);
  const ok = errors.length === 0 && document !== undefined;
  console.log(`${file}: ${ok ? 'valid' : 'INVALID'} AsyncAPI ${document ? document.version() : '?'} (${counts.join(', ')})`);
  failed ||= !ok;
}
process.exit(failed ? 1 : 0);
