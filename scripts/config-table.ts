// Prints README's configuration table from the config schema: `npm run docs:config`.
import { configTableRows } from '../server/config/index.js';

const esc = (s: string) => s.replace(/\|/g, '\\|');
console.log('| Variable | Type | Default | Description |');
console.log('| --- | --- | --- | --- |');
for (const r of configTableRows()) {
  console.log(`| \`${r.name}\` | ${r.type} | ${r.default === '' ? '—' : `\`${esc(r.default)}\``} | ${r.description} |`);
}
