// Writes the table of bench/run.sh's results (one JSON file per runtime)
// into bindings/node/README.md between the bench markers.
//   node report.mjs node.json bun.json
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = path.join(here, '..', 'README.md');
const runs = process.argv.slice(2).map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const us = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ms = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ratio = (a, b) => `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}x`;
const verdict = (ok) => (ok ? 'met' : 'missed');

const lines = [];
lines.push('| runtime, peer | measure | walstate | peer | walstate / peer | target |');
lines.push('|---|---|---|---|---|---|');
for (const r of runs) {
  const m = (f) => med(r.rounds.map(f));
  const who = `${r.runtime}, ${r.peer}`;
  const bw = m((x) => x.durable.walstate.blockedMean);
  const bq = m((x) => x.durable.sqlite.blockedMean);
  lines.push(`| ${who} | **event loop blocked per durable identity write** (mean of ${r.durableWrites}) | ${us(bw)} µs | ${us(bq)} µs | ${ratio(bw, bq)} | <= 0.1x: ${verdict(bw <= 0.1 * bq)} |`);
  lines.push(`| ${who} | durable identity write p50 (until durable) | ${us(m((x) => x.durable.walstate.p50))} µs | ${us(m((x) => x.durable.sqlite.p50))} µs | ${ratio(m((x) => x.durable.walstate.p50), m((x) => x.durable.sqlite.p50))} | |`);
  lines.push(`| ${who} | durable identity write p99 | ${us(m((x) => x.durable.walstate.p99))} µs | ${us(m((x) => x.durable.sqlite.p99))} µs | ${ratio(m((x) => x.durable.walstate.p99), m((x) => x.durable.sqlite.p99))} | |`);
  const bb = m((x) => x.batched.walstate) / 1000;
  const bs = m((x) => x.batched.seedMap) / 1000;
  lines.push(`| ${who} | BATCHED turn update per call (3 field groups; peer: the seed's Map + dirty set, no I/O) | ${us(bb)} µs | ${us(bs)} µs | ${ratio(bb, bs)} | <= 5 µs: ${verdict(bb <= 5)} |`);
  const fw = m((x) => x.flush.walstate.blocked);
  const fq = m((x) => x.flush.sqlite.blocked);
  lines.push(`| ${who} | event loop blocked by the 30 s flush of ${r.dirty} dirty sessions | ${ms(fw)} ms | ${ms(fq)} ms | ${ratio(fw, fq)} | |`);
  lines.push(`| ${who} | (the same flush until durable, off the loop for walstate) | ${ms(m((x) => x.flush.walstate.total))} ms | ${ms(fq)} ms | | |`);
  const rw = med(r.restart.walstate);
  const rq = med(r.restart.sqlite);
  lines.push(`| ${who} | restart to ready, ${r.sessions} sessions (peer: open + SELECT * into a Map) | ${ms(rw)} ms | ${ms(rq)} ms | ${ratio(rw, rq)} | <= 0.5x: ${verdict(rw <= 0.5 * rq)} |`);
}
const r0 = runs[0];
const note = `Medians of ${r0.rounds.length} rounds, contestants alternating within each round, both runtimes in one \`bench/run.sh\` run on a ${r0.cpus}-core VM shared with other engineers' builds (load average at start: ${runs.map((r) => r.loadavg[0].toFixed(1)).join(', ')}): ratios carry over, absolute times do not.`;
const table = `<!-- bench:begin -->\n${note}\n\n${lines.join('\n')}\n<!-- bench:end -->`;
const text = fs.readFileSync(readme, 'utf8');
const re = /<!-- bench:begin -->[\s\S]*<!-- bench:end -->/;
fs.writeFileSync(readme, re.test(text) ? text.replace(re, table) : `${text}\n${table}\n`);
process.stdout.write(`${table}\n`);
