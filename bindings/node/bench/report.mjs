// Writes the table of bench/run.sh's results (one JSON file per bench.mjs
// process; rounds of the same runtime are merged) into
// bindings/node/README.md between the bench markers.
//   node report.mjs [--command "what produced them"] a.json b.json ...
//
// A target is "met" when the median meets it by more than the run-to-run
// noise (half the interquartile range of the per-round values, relative to
// their median), "not yet met" when it meets it by less, "missed"
// otherwise; the verdict also says in how many rounds the target was met.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = path.join(here, '..', 'README.md');
const argv = process.argv.slice(2);
let command = 'bench/run.sh';
if (argv[0] === '--command') {
  command = argv[1];
  argv.splice(0, 2);
}

// Merge the processes' rounds by runtime, in the order first seen.
const byRuntime = new Map();
for (const f of argv) {
  const r = JSON.parse(fs.readFileSync(f, 'utf8'));
  const m = byRuntime.get(r.runtime);
  if (m === undefined) {
    byRuntime.set(r.runtime, { ...r, loads: [r.loadavg[0]] });
    continue;
  }
  m.rounds.push(...r.rounds);
  for (const k of Object.keys(r.restart)) m.restart[k].push(...r.restart[k]);
  m.loads.push(r.loadavg[0]);
}

const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const noise = (xs) => {
  const a = [...xs].sort((x, y) => x - y);
  const q1 = a[Math.floor((a.length - 1) / 4)];
  const q3 = a[Math.ceil((3 * (a.length - 1)) / 4)];
  return (q3 - q1) / 2 / med(a);
};
const us = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const ms = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ratio = (a, b) => `${(a / b).toFixed(a / b < 0.1 ? 3 : 2)}x`;
function verdict(value, target, perRound) {
  const n = noise(perRound);
  const k = perRound.filter((x) => x <= target).length;
  const detail = `noise ±${(n * 100).toFixed(0)}%, met in ${k}/${perRound.length} rounds`;
  if (value > target) return `missed (${detail})`;
  if ((target - value) / target < n) return `not yet met: margin < noise (${detail})`;
  return `met (${detail})`;
}

const lines = [];
lines.push('| runtime, peer | measure | walstate | peer | walstate / peer | target |');
lines.push('|---|---|---|---|---|---|');
let roundsSeen = 0;
for (const r of byRuntime.values()) {
  roundsSeen = r.rounds.length;
  const m = (f) => med(r.rounds.map(f));
  const per = (f, g) => r.rounds.map((x) => f(x) / g(x));
  const who = `${r.runtime}, ${r.peer}`;
  const row = (measure, w, p, rat, target) => lines.push(`| ${who} | ${measure} | ${w} | ${p} | ${rat} | ${target} |`);

  const bwF = (x) => x.durable.walstate.blockedMean;
  const bqF = (x) => x.durable.sqlite.blockedMean;
  const bw = m(bwF);
  const bq = m(bqF);
  row(`**event loop blocked per durable identity write** (mean of ${r.durableWrites})`, `${us(bw)} µs`, `${us(bq)} µs`,
    ratio(bw, bq), `<= 0.1x: ${verdict(bw / bq, 0.1, per(bwF, bqF))}`);
  const b99w = m((x) => x.durable.walstate.blockedP99);
  const b99q = m((x) => x.durable.sqlite.blockedP99);
  row('event loop blocked per durable identity write, p99', `${us(b99w)} µs`, `${us(b99q)} µs`, ratio(b99w, b99q), '');
  const p50w = m((x) => x.durable.walstate.p50);
  const p50q = m((x) => x.durable.sqlite.p50);
  row('durable identity write p50 (until durable)', `${us(p50w)} µs`, `${us(p50q)} µs`, ratio(p50w, p50q), '');
  const p99w = m((x) => x.durable.walstate.p99);
  const p99q = m((x) => x.durable.sqlite.p99);
  row('durable identity write p99', `${us(p99w)} µs`, `${us(p99q)} µs`, ratio(p99w, p99q), '');

  const cpuF = (x) => x.batched.walstate.cpu / 1000;
  const wallF = (x) => x.batched.walstate.wall / 1000;
  const cpu = m(cpuF);
  const wall = m(wallF);
  const seed = m((x) => x.batched.seedMap) / 1000;
  row(`**BATCHED turn update per call**, CPU (3 field groups, ${r.batchedCalls} calls; process.cpuUsage)`, `${us(cpu)} µs`, '', '',
    `<= 5 µs: ${verdict(cpu, 5, r.rounds.map(cpuF))}`);
  row('BATCHED turn update per call, wall (peer: the seed\'s Map + dirty set, no I/O)', `${us(wall)} µs`, `${us(seed)} µs`, ratio(wall, seed),
    `<= 5 µs: ${verdict(wall, 5, r.rounds.map(wallF))}`);

  const fw = m((x) => x.flush.walstate.blocked);
  const fq = m((x) => x.flush.sqlite.blocked);
  row(`event loop blocked by the 30 s flush of ${r.dirty} dirty sessions`, `${ms(fw)} ms`, `${ms(fq)} ms`, ratio(fw, fq), '');
  row('(the same flush until durable, off the loop for walstate)', `${ms(m((x) => x.flush.walstate.total))} ms`, `${ms(fq)} ms`, '', '');

  const rq = med(r.restart.sqlite);
  const perRestart = (k) => r.restart[k].map((x, i) => x / r.restart.sqlite[i]);
  const rw = med(r.restart.walstate);
  row(`**restart to ready, ${r.sessions} sessions**, from the log (a fresh store, no snapshot yet; peer: open + SELECT * into a Map)`,
    `${ms(rw)} ms`, `${ms(rq)} ms`, ratio(rw, rq), `<= 0.5x: ${verdict(rw / rq, 0.5, perRestart('walstate'))}`);
  const rs = med(r.restart.walstateSnapshot);
  row(`**restart to ready, ${r.sessions} sessions**, from a snapshot (after compact(), as a store that has run a while)`,
    `${ms(rs)} ms`, `${ms(rq)} ms`, ratio(rs, rq), `<= 0.5x: ${verdict(rs / rq, 0.5, perRestart('walstateSnapshot'))}`);
}
const runs = [...byRuntime.values()];
const loads = runs.flatMap((r) => r.loads);
const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
const note = [
  `\`${command}\` (${date} UTC): medians of ${roundsSeen} rounds per runtime, the rounds alternating between Node and Bun`,
  '(one process per round), walstate and its peer alternating within each round, on a',
  `${runs[0].cpus}-core VM shared with other engineers' builds: load average ${Math.min(...loads).toFixed(1)}-${Math.max(...loads).toFixed(1)}`,
  'at the rounds\' starts. Wall times are inflated by the load (a process got a fraction of a core), CPU times and',
  'ratios less so. Noise: half the interquartile range of the per-round values (or ratios) relative to their median.',
].join('\n');
const table = `<!-- bench:begin -->\n## Benchmark\n\n${note}\n\n${lines.join('\n')}\n<!-- bench:end -->`;
const text = fs.readFileSync(readme, 'utf8');
const re = /<!-- bench:begin -->[\s\S]*<!-- bench:end -->/;
fs.writeFileSync(readme, re.test(text) ? text.replace(re, table) : `${text}\n${table}\n`);
process.stdout.write(`${table}\n`);
